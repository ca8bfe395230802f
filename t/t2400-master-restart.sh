#!/bin/sh
# Jobs survive a master restart: the -r slaves keep them while the master is
# away (for the grace period), and the new master takes them back with
# their pids, owner, command, state, output and exit status.
. "$(dirname "$0")/lib.sh"

test_setup 'a 2-node cluster with a state directory comes up' \
	cluster_up 2 "grace 60"

# start_job NODE CMD: runs CMD (sh -c) on NODE through its ctl; prints the pid.
start_job() {
	local pid
	exec 3<>$BPROC/node/$1/ctl &&
		printf 'exec /bin/sh -c %s\n' "'$2'" >&3 &&
		read -r pid <&3 &&
		exec 3>&- &&
		echo "$pid" >>$T/pids &&
		echo "$pid"
}

# crash_master: kill -9 and start again; the slaves come back by themselves.
crash_master() {
	master_stop KILL && master_start && wait_nodes_up 2 20
}

test_expect_success 'a job runs on through kill -9 of the master: both lines, then exit 3' '
	pid=$(start_job 0 "echo one; while ! test -e $T/go1; do sleep 0.05; done; echo two; exit 3") &&
	wait_for "grep -q one $BPROC/node/0/io" &&
	cat $BPROC/proc/$pid/status >before &&
	crash_master &&
	wait_for "test -e $BPROC/proc/$pid/status" &&
	cat $BPROC/proc/$pid/status >after &&
	test_cmp before after &&
	grep "^$pid 0 running 0 0 /bin/sh -c " after &&
	touch $T/go1 &&
	timeout 10 cat $BPROC/proc/$pid/stdout >out &&
	printf "one\ntwo\n" >expect &&
	test_cmp expect out &&
	timeout 10 cat $BPROC/proc/$pid/wait >wait &&
	echo "exit 3" >expect &&
	test_cmp expect wait
'

test_expect_success 'a job that ends while the master is down: its real status and all its output after' '
	pid=$(start_job 1 "echo \$\$ >$T/pid2; echo before; while ! test -e $T/go2; do sleep 0.05; done; echo while-away; echo err-away >&2; exit 5") &&
	wait_for "grep -q before $BPROC/node/1/io" &&
	master_stop KILL &&
	touch $T/go2 &&
	wait_gone $(cat $T/pid2) &&
	master_start &&
	wait_nodes_up 2 20 &&
	wait_for "test -e $BPROC/proc/$pid/status" &&
	timeout 10 cat $BPROC/proc/$pid/wait >wait &&
	echo "exit 5" >expect &&
	test_cmp expect wait &&
	grep "^$pid 1 exited 0 0 " $BPROC/proc/$pid/status &&
	timeout 10 cat $BPROC/proc/$pid/stdout >out &&
	printf "before\nwhile-away\n" >expect &&
	test_cmp expect out &&
	timeout 10 cat $BPROC/proc/$pid/stderr >err &&
	echo err-away >expect &&
	test_cmp expect err
'

test_expect_success 'output nobody read survives two restarts, in order, once' '
	pid=$(start_job 0 "seq 1 20000; while ! test -e $T/go3; do sleep 0.05; done; seq 20001 40000") &&
	wait_for "grep -q ^20000\$ $BPROC/node/0/io" &&
	crash_master &&
	wait_for "test -e $BPROC/proc/$pid/status" &&
	crash_master &&
	wait_for "test -e $BPROC/proc/$pid/status" &&
	# a reader from here on, or the exit would leave only the last 64 KiB
	{ timeout 10 cat $BPROC/proc/$pid/stdout >out & } &&
	r=$! &&
	wait_for "grep -q ^20000\$ out" &&
	touch $T/go3 &&
	wait $r &&
	seq 1 40000 >expect &&
	test_cmp expect out
'

test_expect_success 'a signal through proc/PID/ctl works after the master took the job back' '
	pid=$(start_job 1 "echo \$\$ >$T/pid4; exec sleep 300") &&
	wait_for "test -s $T/pid4" &&
	ospid=$(cat $T/pid4) &&
	crash_master &&
	wait_for "test -e $BPROC/proc/$pid/status" &&
	pid_alive $ospid &&
	echo stop >$BPROC/proc/$pid/ctl &&
	wait_for "grep -q \" stopped \" $BPROC/proc/$pid/status" &&
	wait_for "grep -q \"^State:.*stopped\" /proc/$ospid/status" &&
	echo cont >$BPROC/proc/$pid/ctl &&
	wait_for "grep -q \"^State:.*sleeping\" /proc/$ospid/status" &&
	grep " running " $BPROC/proc/$pid/status &&
	echo kill >$BPROC/proc/$pid/ctl &&
	timeout 10 cat $BPROC/proc/$pid/wait >wait &&
	echo "signal 15 SIGTERM" >expect &&
	test_cmp expect wait &&
	wait_gone $ospid
'

test_expect_success 'a new job after the restart gets a pid above every earlier one' '
	crash_master &&
	pid=$(start_job 0 "true") &&
	for old in $(cat $T/pids); do
		test "$old" = "$pid" || test "$old" -lt "$pid" || return 1
	done &&
	sort -n $T/pids >sorted && n=$(uniq -d sorted | wc -l) && test "$n" = 0
'

test_expect_success 'a bpsh attached through the restart exits with a clear error; its job runs on' '
	{ bpsh 1 sh -c "echo \$\$ >$T/pid6; echo hi; while ! test -e $T/go6; do sleep 0.05; done; echo bye" >bpsh.out 2>bpsh.err & } &&
	b=$! &&
	wait_for "grep -q hi bpsh.out" &&
	ospid=$(cat $T/pid6) &&
	master_stop KILL &&
	st=0 && wait $b || st=$? &&
	cat bpsh.err &&
	test $st != 0 &&
	test_grep "connection abort" bpsh.err &&
	pid_alive $ospid &&
	master_start &&
	wait_nodes_up 2 20 &&
	wait_for "grep -l \"^[0-9]* 1 running .*go6\" $BPROC/proc/*/status" &&
	f=$(grep -l "^[0-9]* 1 running .*go6" $BPROC/proc/*/status) &&
	read -r pid rest <$f &&
	touch $T/go6 &&
	timeout 10 cat $BPROC/proc/$pid/stdout >out &&
	echo bye >expect &&
	test_cmp expect out &&
	timeout 10 cat $BPROC/proc/$pid/wait >wait &&
	echo "exit 0" >expect &&
	test_cmp expect wait
'

test_expect_success 'when the grace period ends without a master, the jobs are killed' '
	sed -i "s/^grace .*/grace 1/" $CONF &&
	master_restart &&
	pid=$(start_job 0 "echo \$\$ >$T/pid7; exec sleep 300") &&
	wait_for "test -s $T/pid7" &&
	ospid=$(cat $T/pid7) &&
	master_stop KILL &&
	start=$(_now_ms) &&
	wait_gone $ospid 10 &&
	elapsed=$(($(_now_ms) - start)) &&
	echo "killed ${elapsed} ms after the master" &&
	test $elapsed -ge 500 &&
	master_start &&
	wait_nodes_up 2 20 &&
	test ! -e $BPROC/proc/$pid &&
	grep -q "grace period: killing" $T/slave0.log
'

test_expect_success 'jobs of the master node itself die with the master' '
	pid=$(start_job -1 "echo \$\$ >$T/pid8; exec sleep 300") &&
	wait_for "test -s $T/pid8" &&
	ospid=$(cat $T/pid8) &&
	master_stop KILL &&
	wait_gone $ospid 5 &&
	master_start &&
	test ! -e $BPROC/proc/$pid
'

test_done
