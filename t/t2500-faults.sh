#!/bin/sh
# Cluster faults: a node cut off from the network and back, a slave that
# starts before its master, two slaves claiming one node.
. "$(dirname "$0")/lib.sh"

test_setup 'a 2-node cluster comes up' cluster_up 2

test_expect_success 'a node partitioned past pingtimeout goes down, its jobs are lost (and killed), then it comes back up' '
	pid=$(node_exec 1 "/bin/sh -c \"echo \\\$\\\$ >$T/pid1; exec sleep 300\"") &&
	wait_for "test -s $T/pid1" &&
	ospid=$(cat $T/pid1) &&
	test_when_finished "ip -n $(ns_node 1) link set eth0 up" &&
	ip -n $(ns_node 1) link set eth0 down &&
	wait_node_state 1 down 8 &&
	timeout 5 cat $BPROC/proc/$pid/wait >wait &&
	echo "lost node 1 down" >expect &&
	test_cmp expect wait &&
	pid_alive $ospid &&
	ip -n $(ns_node 1) link set eth0 up &&
	wait_node_state 1 up 15 &&
	# the master refused the job it had declared lost: the slave killed it
	wait_gone $ospid 10 &&
	grep "job $pid: the master refused it" $T/slave1.log &&
	grep "^$pid 1 exited " $BPROC/proc/$pid/status &&
	out=$(bpsh 1 hostname) &&
	test "$out" = node1
'

test_expect_success 'a slave started before its master comes up once the master starts' '
	master_stop &&
	slave_kill 0 &&
	: >$T/slave0.log &&
	slave_start 0 &&
	wait_for "grep -q \"reconnecting in\" $T/slave0.log" &&
	pid_alive $(slave_pid 0) &&
	master_start &&
	wait_nodes_up 2 20 &&
	out=$(bpsh 0 hostname) &&
	test "$out" = node0
'

test_expect_success 'a second slave for a node is refused; the first keeps the node' '
	first=$(slave_pid 0) &&
	bg_node 0 $T/second.log bpslave -d -k $KEY 10.77.0.1 &&
	second=$(bg_pid node0-bpslave.2) &&
	test -n "$second" &&
	test "$second" != "$first" &&
	wait_gone $second 10 &&
	test_grep "already has a connected slave" $T/second.log &&
	test_grep "node 0: refusing a second slave from 10.77.0.10" $MASTER_LOG &&
	pid_alive $first &&
	st=$(node_status 0) && test "$st" = up &&
	! grep "lost the master" $T/slave0.log &&
	out=$(bpsh 0 hostname) &&
	test "$out" = node0
'

test_expect_success 'a second slave with -r keeps being refused and never takes the node' '
	first=$(slave_pid 0) &&
	bg_node 0 $T/second-r.log bpslave -d -r -k $KEY 10.77.0.1 &&
	second=$(bg_pid node0-bpslave.2) &&
	test_when_finished "kill $second" &&
	wait_for "test \$(grep -c \"already has a connected slave\" $T/second-r.log) -ge 3" 15 &&
	pid_alive $first &&
	st=$(node_status 0) && test "$st" = up &&
	! grep "lost the master" $T/slave0.log &&
	! grep "registered as node" $T/second-r.log &&
	out=$(bpsh 0 hostname) &&
	test "$out" = node0
'

test_done
