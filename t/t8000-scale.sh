#!/bin/sh
# Thousands of nodes: fake slaves (t/loadgen, real connections, handshakes
# and slave protocol, jobs answered without forking) on node 0, one source
# address each, against a real bpmaster and its mount.
. "$(dirname "$0")/lib.sh"

N=3500 # bpsh's three blocked reads per running job pass Go's 10000 threads
NET=10.78
ip_of() { echo "$NET.$((($1 + 1) / 256)).$((($1 + 1) % 256))"; }
threads() { awk '$1 == "Threads:" { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# scale_up N: the master (pingtimeout 5) and N fake nodes whose jobs run
# until "release" is written to $T/gen.ctl.
scale_up() {
	local n=$1 i
	ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
	(cd "$BPROC_ROOT" && CGO_ENABLED=0 go build -o "$T/loadgen" ./t/loadgen) || return 1
	net_up 1 || return 1
	for ((i = 0; i < n; i++)); do echo "addr add $(ip_of $i)/32 dev eth0"; done |
		ip -n "$(ns_node 0)" -batch - || return 1
	ip -n "$NS_MASTER" route add "$NET.0.0/16" via "$(node_addr 0)" || return 1
	KEY=$T/cluster.key BPROC=$T/bproc BPROC_MOUNT=$T/bproc
	export KEY BPROC BPROC_MOUNT
	make_key "$KEY" && mkdir -p "$BPROC" || return 1
	CONF=$T/bpmaster.conf MASTER_LOG=$T/master.log
	printf '%s\n' "bprocport $BPROC_PORT" "mount $BPROC" "pingtimeout 5" "keyfile $KEY" \
		"statedir $T/.state" >"$CONF"
	master_start || return 1
	mkfifo "$T/gen.ctl" || return 1
	bg_node 0 "$T/gen.log" "$T/loadgen" -hold -k "$KEY" -n "$n" -from "$(ip_of 0)" -ctl "$T/gen.ctl" \
		"$MASTER_ADDR:$BPROC_PORT" || return 1
	wait_for "grep -q '^ready ' '$T/gen.log'" 110 || return 1
	wait_nodes_up "$n" 30
}

test_setup "$N fake nodes come up" scale_up $N

# The per-node path (BPSH_FANOUT=0: a ctl write and three blocked reads
# per job) past Go's thread limit.
test_expect_success "bpsh -a runs a job on each of $N nodes, all running at once" '
	_bg bpsh "$T/bpsh.log" sh -c "BPSH_FANOUT=0 bpsh -a /bin/true; echo \$? >$T/bpsh.rc" &&
	sh=$(bg_pid bpsh) &&
	wait_for "grep -q \"^starts $N \" $T/gen.log || { echo count >$T/gen.ctl; false; }" 100 &&
	bp=$(pgrep -x -P "$sh" bpsh) &&
	# each job held: bpsh blocks in reading its stdout, stderr and wait
	wait_for "test \$(threads $bp) -ge $((3 * N)) || ! pid_alive $bp" 60 &&
	pid_alive "$bp" &&
	echo release >$T/gen.ctl &&
	wait_for "test -s $T/bpsh.rc" 60 &&
	rc=$(cat $T/bpsh.rc) &&
	test "$rc" = 0 &&
	wait_for "grep -q \"^starts $N exits $N lost 0 \" $T/gen.log || { echo count >$T/gen.ctl; false; }" 10
'

# Released above, the jobs now exit at once. The count is asked again
# until it is all in: bpsh sees an end as soon as the master has the exit,
# and the generator counts it when the master's answer to its report
# comes back, a moment later (under load the single count came too early).
test_expect_success "bpsh -a as one node-set launch on $N nodes" '
	rm -f $T/bpsh.rc &&
	_bg bpsh2 "$T/bpsh2.log" sh -c "bpsh -a /bin/true; echo \$? >$T/bpsh.rc" &&
	wait_for "test -s $T/bpsh.rc" 60 &&
	rc=$(cat $T/bpsh.rc) &&
	test "$rc" = 0 &&
	wait_for "grep -q \"^starts $((2 * N)) exits $((2 * N)) lost 0 \" $T/gen.log || { echo count >$T/gen.ctl; false; }" 10
'

test_done
