#!/bin/sh
# The master's configuration at work: SIGHUP, node commands, and node
# statistics shown in the tree.
. "$(dirname "$0")/lib.sh"

test_setup 'a 2-node cluster comes up' cluster_up 2 "statsfile $T/beostat" "reboot touch /tmp/rebooted"

test_expect_success 'SIGHUP re-reads the config: a node added there appears' '
	! test -e $BPROC/node/7 &&
	echo "node 7 10.77.0.99" >>$CONF &&
	kill -HUP $(bg_pid master-bpmaster) &&
	wait_for "test -d $BPROC/node/7" 5 &&
	read -r n state addr rest <$BPROC/node/7/status &&
	test "$n $state $addr" = "7 down 10.77.0.99" &&
	n=$(nodes_up) && test "$n" = 2
'

test_expect_success 'a config error on SIGHUP keeps the old config' '
	echo "frobnicate" >>$CONF &&
	kill -HUP $(bg_pid master-bpmaster) &&
	wait_for "grep -q \"keeping the old configuration\" $MASTER_LOG" 5 &&
	test -d $BPROC/node/7 &&
	n=$(nodes_up) && test "$n" = 2
'

test_expect_success 'bpctl -R: the slave runs the configured reboot command, the node takes the state' '
	bpctl -S 1 -R &&
	st=$(node_status 1) && test "$st" = reboot &&
	wait_for "in_node 1 test -e /tmp/rebooted" 5 &&
	! in_node 0 test -e /tmp/rebooted &&
	bpsh -a hostname >out &&
	out=$(cat out) && test "$out" = node0 &&
	bpctl -S 1 -s up &&
	st=$(node_status 1) && test "$st" = up
'

test_expect_success 'node/N/stats says ENODATA while recvstats has nothing' '
	! cat $BPROC/node/0/stats/loadavg 2>err &&
	test_grep "No data available" err
'

test_expect_success 'with recvstats on the master, node/N/stats shows each node its own /proc' '
	bg_master $T/recvstats.log recvstats -d -i eth0 -k $KEY --shm $T/beostat --files - &&
	wait_for "grep -q ^MemTotal: $BPROC/node/1/stats/meminfo" 10 &&
	grep "^cpu " $BPROC/node/1/stats/stat &&
	read -r l1 l5 l15 procs last <$BPROC/node/0/stats/loadavg &&
	case "$procs" in */*) ;; *) fail "loadavg $l1 $l5 $l15 $procs" ;; esac &&
	grep -q "eth0:" $BPROC/node/1/stats/net &&
	grep "^node 1$" $BPROC/node/1/stats/stamp &&
	grep "^state up$" $BPROC/node/1/stats/stamp &&
	ls $BPROC/node/1/stats >list &&
	printf "cpuinfo\nloadavg\nmeminfo\nnet\nstamp\nstat\n" >expect &&
	test_cmp expect list
'

test_expect_success '"seal no": after a restart the nodes come back over plain 9P, jobs run' '
	sed -i "/^frobnicate/d" $CONF &&
	echo "seal no" >>$CONF &&
	master_restart &&
	wait_nodes_up 2 20 &&
	out=$(bpsh 1 hostname) && test "$out" = node1 &&
	head -c 1000000 /dev/urandom >data &&
	bpsh 0 cat <data >back &&
	cmp data back
'

test_done
