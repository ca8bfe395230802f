#!/bin/sh
# Things going wrong: a slave with the wrong key, slaves dying or freezing,
# the master restarting under reconnecting (-r) slaves.
. "$(dirname "$0")/lib.sh"

# The iprange covers a fourth address (10.77.0.13) for the wrong-key slave, so
# the only thing wrong with it is its key.
CLUSTER_RANGE=4
test_setup 'a 3-node cluster comes up' cluster_up 3

# stays_up N: N nodes stay up for longer than pingtimeout (2 s).
stays_up() {
	! wait_for "test \$(nodes_up) -ne $1" 3 2>/dev/null || {
		echo "a node went down:"
		cat $BPROC/status
		grep -v "9p: " $MASTER_LOG | tail -n 5
		return 1
	}
}

test_expect_success 'a slave with the wrong key is turned away and never appears' '
	net_add_node 3 &&
	make_key $T/wrong.key &&
	slave_start 3 -d -r -k $T/wrong.key 10.77.0.1 &&
	wait_for "grep 10.77.0.13 $MASTER_LOG | grep -i -E \"key|auth|handshake|reject|denied\"" 10 &&
	grep 10.77.0.13 $MASTER_LOG &&
	st=$(node_status 3) && test "$st" != up &&
	n=$(nodes_up) && test "$n" = 3 &&
	! grep "^3 up" $BPROC/status &&
	slave_kill 3 &&
	st=$(node_status 3) && test "$st" != up
'

test_expect_success 'a slave killed with -9 is marked down, its jobs are lost' '
	exec 3<>$BPROC/node/2/ctl &&
	echo "exec /bin/sh -c \"/bin/sleep 300; :\"" >&3 &&
	read -r pid <&3 &&
	exec 3>&- &&
	{ bpsh 2 sleep 300 >bpsh.out 2>bpsh.err & } &&
	bpsh=$! &&
	wait_for "grep -q \"^[0-9]* 2 .*sleep\" $BPROC/proc/*/status 2>/dev/null && test \$(cat $BPROC/proc/*/status 2>/dev/null | grep -c \" 2 .*sleep\") -ge 2" 10 &&
	start=$(_now_ms) &&
	slave_kill 2 KILL &&
	wait_node_state 2 down $(slow 5) &&
	elapsed=$(($(_now_ms) - start)) &&
	echo "down after ${elapsed} ms" &&
	# at once, from the closed connection, not after a ping timeout
	grep "node 2 down: " $MASTER_LOG >why &&
	tail -n 1 why | grep "node 2 down: connection closed" &&
	within_ms $elapsed 3000 &&
	timeout 5 cat $BPROC/proc/$pid/wait >wait &&
	test_grep "^lost node 2 down" wait &&
	# and the jobs on the node died with their slave, the processes they
	# started too (the sleep under sh above)
	wait_for "test -z \"\$(ip netns pids $(ns_node 2))\"" 5 &&
	st=0 && wait $bpsh || st=$? &&
	test $st = 255 &&
	cat bpsh.err &&
	n=$(nodes_up) && test "$n" = 2
'

test_expect_success 'bpsh to a down node fails at once with 255' '
	st=0 &&
	timeout 10 bpsh 2 true 2>err || st=$? &&
	test $st = 255 &&
	test -s err &&
	cat err
'

test_expect_success 'the node comes back when its slave starts again' '
	slave_start 2 &&
	wait_node_state 2 up 10 &&
	out=$(bpsh 2 hostname) && test "$out" = node2
'

test_expect_success 'a frozen slave is marked down after pingtimeout, and up again when it thaws' '
	p=$(slave_pid 1) &&
	test_when_finished "kill -CONT $p" &&
	start=$(_now_ms) &&
	kill -STOP $p &&
	wait_node_state 1 down $(slow 8) &&
	elapsed=$(($(_now_ms) - start)) &&
	echo "down after ${elapsed} ms (pingtimeout 2 s)" &&
	grep "node 1 down: " $MASTER_LOG >why &&
	tail -n 1 why | grep "node 1 down: no ping for 2s" &&
	test $elapsed -ge 1000 &&
	within_ms $elapsed 6000 &&
	kill -CONT $p &&
	wait_node_state 1 up 10 &&
	out=$(bpsh 1 hostname) && test "$out" = node1
'

test_expect_success 'the master restarts and the -r slaves come back without help' '
	old0=$(slave_pid 0) &&
	master_restart &&
	n=$(nodes_up) && test "$n" = 3 &&
	stays_up 3 &&
	out=$(slave_pid 0) && test "$out" = "$old0" &&
	pid_alive $old0 &&
	bpsh -a -p hostname >out &&
	sort out >sorted &&
	printf "  0: node0\n  1: node1\n  2: node2\n" >expect &&
	test_cmp expect sorted
'

test_expect_success 'the master killed with -9 leaves a dead mount that a new master replaces' '
	master_stop KILL &&
	master_start &&
	wait_nodes_up 3 20 &&
	stays_up 3 &&
	out=$(bpsh 0 hostname) && test "$out" = node0
'

test_expect_success 'a slave without -r exits when the master goes away' '
	slave_kill 0 &&
	slave_start 0 -d -k $KEY 10.77.0.1 &&
	wait_node_state 0 up 10 &&
	p=$(bg_pid node0-bpslave) &&
	master_stop &&
	wait_gone $p 10 &&
	master_start &&
	wait_nodes_up 2 20 &&
	st=$(node_status 0) && test "$st" != up
'

test_done
