#!/bin/sh
# The slave's binary cache (bpslave -c): a directory others could fill is
# refused, nothing planted in it runs, a full disk is a clear error that
# loses nothing. And bpcp: a failed copy leaves the destination as it was.
. "$(dirname "$0")/lib.sh"

test_setup 'a 2-node cluster comes up' cluster_up 2

# A script that exists only on the master (the nodes have their own /tmp,
# and $T is where the master's binaries are shipped from).
printf '#!/bin/sh\necho genuine\n' >"$T/greet" && chmod 755 "$T/greet"
GREET_HASH=$(sha256sum "$T/greet" | cut -d" " -f1)

# slave1_with ARGS...: node 1's bpslave again, with ARGS before the master.
slave1_with() {
	slave_kill 1 &&
	wait_node_state 1 down 10 &&
	slave_start 1 -d -r -k "$KEY" "$@" "$MASTER_ADDR" &&
	wait_node_state 1 up 10
}

# refused DIR TEXT: bpslave -c DIR exits at once, saying TEXT.
refused() {
	slave_kill 1 &&
	: >"$T/slave1.log" &&
	slave_start 1 -d -k "$KEY" -c "$1" "$MASTER_ADDR" &&
	wait_gone "$(slave_pid 1)" 10 &&
	test_grep "$2" "$T/slave1.log" &&
	cat "$T/slave1.log"
}

test_expect_success 'bpslave -c refuses a cache directory another user owns' '
	in_node 1 sh -c "mkdir -m 0711 /tmp/theirs && chown 4242 /tmp/theirs" &&
	refused /tmp/theirs "owned by uid 4242, not by the slave.s uid 0"
'

test_expect_success 'bpslave -c refuses a cache directory reached through a symlink' '
	in_node 1 sh -c "mkdir -m 0711 /tmp/real && ln -s /tmp/real /tmp/link" &&
	refused /tmp/link "reached through a symlink"
'

test_expect_success 'bpslave -c refuses a cache directory others may write' '
	in_node 1 sh -c "mkdir /tmp/open && chmod 0777 /tmp/open" &&
	refused /tmp/open "writable by group or others"
'

test_expect_success 'a file planted in the cache under the right hash and name is not run' '
	in_node 1 sh -c "mkdir -p /tmp/cache/$GREET_HASH && printf \"#!/bin/sh\\necho planted\\n\" >/tmp/cache/$GREET_HASH/greet && chmod 755 /tmp/cache/$GREET_HASH/greet" &&
	slave1_with -c /tmp/cache &&
	out=$(bpsh 1 "$T/greet") &&
	test "$out" = genuine &&
	out=$(in_node 1 cat /tmp/cache/$GREET_HASH/greet) &&
	want=$(cat "$T/greet") && test "$out" = "$want"
'

test_expect_success 'a cached file changed after its check is checked again' '
	in_node 1 sh -c "printf \"#!/bin/sh\\necho changed\\n\" >/tmp/cache/$GREET_HASH/greet" &&
	out=$(bpsh 1 "$T/greet") &&
	test "$out" = genuine
'

test_expect_success 'a binary larger than the cache disk: ENOSPC with its text, nothing left behind' '
	in_node 1 sh -c "mkdir -m 0755 /tmp/small && mount -t tmpfs -o size=1m,mode=0755 tmpfs /tmp/small" &&
	slave1_with -c /tmp/small/cache &&
	head -c 3000000 /dev/urandom >"$T/big" && chmod 755 "$T/big" &&
	st=0 &&
	bpsh 1 "$T/big" 2>err || st=$? &&
	test $st != 0 &&
	test_grep "No space left on device" err &&
	cat err &&
	node_ctl_refused 1 "exec $T/big" "No space left on device" >text &&
	test_grep "storing 3000000 bytes: no space left on device" text &&
	in_node 1 ls -A /tmp/small/cache >left &&
	! grep -v "^[0-9a-f]\{64\}\$" left &&
	used=$(in_node 1 du -s /tmp/small | cut -f1) &&
	test "$used" -lt 100
'

test_expect_success 'after a full cache disk the node is up and runs the next job' '
	st=$(node_status 1) && test "$st" = up &&
	out=$(bpsh 1 "$T/greet") &&
	test "$out" = genuine
'

test_expect_success 'bpcp from a node: a missing source leaves the local file as it was' '
	echo precious >keep.txt &&
	! bpcp 1:/tmp/nope keep.txt 2>err &&
	test_grep "No such file or directory" err &&
	out=$(cat keep.txt) && test "$out" = precious &&
	! ls -A | grep "bpcp-"
'

test_expect_success 'bpcp between nodes: a missing source leaves the file on the node as it was' '
	in_node 1 sh -c "echo precious >/tmp/keep" &&
	! bpcp 0:/tmp/nope 1:/tmp/keep 2>err &&
	test_grep "No such file or directory" err &&
	out=$(in_node 1 cat /tmp/keep) &&
	test "$out" = precious &&
	! in_node 1 ls -A /tmp | grep "bpcp-"
'

test_expect_success 'bpcp to a node: a source that fails to read leaves the file on the node as it was' '
	! bpcp /proc/self/mem 1:/tmp/keep 2>err &&
	test_grep "^bpcp: /proc/self/mem: Input/output error" err &&
	out=$(in_node 1 cat /tmp/keep) &&
	test "$out" = precious &&
	! in_node 1 ls -A /tmp | grep "bpcp-"
'

# jobs_on I: the running processes of node I, one status line each.
jobs_on() { cat $BPROC/proc/*/status 2>/dev/null | awk -v n="$1" '$2 == n && $3 == "running"'; }

test_expect_success 'bpcp to a node killed half-way leaves the file on the node as it was' '
	mkfifo slow &&
	{ bpcp slow 1:/tmp/keep 2>err & } &&
	pid=$! &&
	exec 4>slow &&
	echo partial >&4 &&
	wait_for "jobs_on 1 | grep -q sh" 10 &&
	kill -9 $pid &&
	exec 4>&- &&
	wait_for "! jobs_on 1 | grep -q sh" 10 &&
	out=$(in_node 1 cat /tmp/keep) &&
	test "$out" = precious &&
	! in_node 1 ls -A /tmp | grep "bpcp-"
'

test_expect_success 'bpcp over an existing file keeps its mode, and copies' '
	in_node 1 chmod 600 /tmp/keep &&
	echo fresh >new.txt &&
	bpcp new.txt 1:/tmp/keep &&
	out=$(in_node 1 stat -c "%a %s" /tmp/keep) &&
	test "$out" = "600 6" &&
	bpcp 1:/tmp/keep back.txt &&
	test_cmp new.txt back.txt
'

test_done
