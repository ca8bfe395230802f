#!/bin/sh
# Big binaries: the master copies a shipped binary into its spool on disk
# (statedir/binspool) and serves the slaves' reads from there, so its memory
# does not grow with the binary; the spool is bounded by bincache (least
# recently used binaries nobody holds go first) and emptied when the master
# stops, or starts again after a crash.
. "$(dirname "$0")/lib.sh"

test_setup 'a 2-node cluster comes up, its spool bounded at 200 MiB' \
	cluster_up 2 "bincache 200M"

SPOOL=$T/.state/binspool

# padded FILE BYTES LINE...: a script of the LINEs, padded to over BYTES by
# a comment sh never reads (it exits first; the slave still checks every
# byte by hash).
padded() {
	local f=$1 n=$2
	shift 2
	{ printf '#!/bin/sh\n' && printf '%s\n' "$@" "exit 0" "#" && head -c "$n" /dev/zero | tr '\0' '#'; } >"$f" &&
		chmod 755 "$f"
}

# bins: a ~200 MB binary that prints its node's name, and a 20 MB one (with
# the big one, more than the spool holds).
bins() {
	padded "$T/big" 200000000 hostname &&
		BIG_HASH=$(sha256sum "$T/big" | cut -d" " -f1) &&
		padded "$T/mid" 20000000 'echo mid on $(hostname)' &&
		MID_HASH=$(sha256sum "$T/mid" | cut -d" " -f1)
}
test_setup 'a 200 MB binary and a 20 MB one' bins

# peak_kb PID: the process's peak resident set (VmHWM), in kB.
peak_kb() { awk '$1 == "VmHWM:" { print $2 }' "/proc/$1/status"; }

test_expect_success 'a 200 MB binary runs on two nodes at once; the master grows by far less than that' '
	pid=$(bg_pid master-bpmaster) &&
	comm=$(cat /proc/$pid/comm) && test "$comm" = bpmaster &&
	before=$(peak_kb $pid) &&
	bpsh 0-1 "$T/big" >out &&
	after=$(peak_kb $pid) &&
	echo "bpmaster peak RSS: $before kB before, $after kB after the exec" &&
	sort out >got && printf "node0\nnode1\n" >want && test_cmp want got &&
	test $((after - before)) -lt 51200
'

test_expect_success 'the spool holds that binary once, by its hash, only for root' '
	ls -A "$SPOOL" >got && echo "$BIG_HASH" >want && test_cmp want got &&
	size=$(stat -c %s "$SPOOL/$BIG_HASH") && want=$(stat -c %s "$T/big") && test "$size" = "$want" &&
	mode=$(stat -c "%a %U" "$SPOOL" "$SPOOL/$BIG_HASH" | tr "\n" " ") && test "$mode" = "700 root 600 root "
'

test_expect_success 'past bincache, the binary nobody holds is evicted from the spool' '
	out=$(bpsh 1 "$T/mid") && test "$out" = "mid on node1" &&
	ls -A "$SPOOL" >got && echo "$MID_HASH" >want && test_cmp want got
'

test_expect_success 'a binary larger than bincache is refused with its text, the spool as it was' '
	truncate -s 210M "$T/huge" && chmod 755 "$T/huge" &&
	node_ctl_refused 0 "exec $T/huge" "File too large" >text &&
	test_grep "more than the master.s binary cache holds (bincache 209715200)" text &&
	ls -A "$SPOOL" >got && test_cmp want got
'

test_expect_success 'a master killed with -9 leaves its spool; the next one empties it' '
	out=$(bpsh 0 "$T/big") && test "$out" = node0 &&
	master_stop KILL &&
	ls -A "$SPOOL" >got && echo "$BIG_HASH" >want && test_cmp want got &&
	master_start &&
	ls -A "$SPOOL" >got && ! test -s got &&
	wait_nodes_up 2 20
'

test_expect_success 'a master that stops empties its spool' '
	out=$(bpsh 1 "$T/mid") && test "$out" = "mid on node1" &&
	ls -A "$SPOOL" >got && test -s got &&
	master_stop &&
	ls -A "$SPOOL" >got && ! test -s got
'

test_done
