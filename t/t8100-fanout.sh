#!/bin/sh
# Node-set launch: one exec written to node/SET/ctl starts a command on
# every node of the set, and group/G/io brings every process's output and
# end back through one open; bpsh on several nodes goes that way.
. "$(dirname "$0")/lib.sh"

# Nodes 0-3 up; node 4 is configured (the iprange covers it) but down.
test_setup 'a 4-node cluster with a fifth node down' eval 'CLUSTER_RANGE=5 cluster_up 4'
test_setup 'a test user exists' ensure_user bptest

# groups: how many groups group/ lists.
groups() { ls "$BPROC/group" | wc -l; }

test_expect_success 'exec on node/0-2/ctl: one write, a group and a pid per node in rank order' '
	exec 3<>"$BPROC/node/0-2/ctl" &&
	echo "exec -i /bin/sh -c \"echo rank \$BPROC_RANK of \$BPROC_NPROCS on \$BPROC_NODE; echo oops >&2; exit \$BPROC_NODE\"" >&3 &&
	cat <&3 >answer &&
	exec 3>&- &&
	cat answer &&
	read -r word g <answer && test "$word" = group &&
	awk "NR > 1 { print \$1 }" answer >nodes &&
	printf "0\n1\n2\n" >expect && test_cmp expect nodes &&
	pid1=$(awk "\$1 == 1 { print \$2 }" answer) &&
	exec 4<"$BPROC/group/$g/io" &&
	# io has one reader, once
	! cat "$BPROC/group/$g/io" 2>err &&
	test_grep "busy" err &&
	timeout 10 cat <&4 >io &&
	exec 4<&- &&
	cat io &&
	for n in 0 1 2; do
		grep -qx "$n out 17" io &&
		grep -qx "rank $n of 3 on $n" io &&
		grep -qx "$n err 5" io &&
		grep -qx "$n end exit $n" io || return 1
	done &&
	# the end of each process comes after all of its output
	end=$(grep -n "^1 end" io | cut -d: -f1) &&
	last=$(grep -n "^1 \(out\|err\)" io | tail -n 1 | cut -d: -f1) &&
	test "$last" -lt "$end" &&
	# every process is an ordinary proc/PID too
	out=$(timeout 5 cat "$BPROC/proc/$pid1/wait") && test "$out" = "exit 1" &&
	# all read, the group is gone; its processes stay in proc/
	! ls "$BPROC/group/$g" 2>/dev/null
'

test_expect_success 'a set with a node the user may not run on and a node down: errors for those nodes only' '
	test_when_finished "chmod 0111 $BPROC/node/1" &&
	chmod 0110 "$BPROC/node/1" &&
	as_user bptest sh -c "exec 3<>$BPROC/node/0-4/ctl && echo exec -i /bin/hostname >&3 && cat <&3" >answer &&
	cat answer &&
	grep -q "^0 [0-9]*$" answer &&
	grep -q "^1 error 13 .*permission denied" answer &&
	grep -q "^2 [0-9]*$" answer &&
	grep -q "^4 error 112 node 4 is down" answer &&
	g=$(awk "NR == 1 { print \$2 }" answer) &&
	# only the group'"'"'s user (and root) may read it
	exec 3<>"$BPROC/node/0-1/ctl" &&
	echo "exec /bin/true" >&3 &&
	read -r word rg <&3 &&
	exec 3>&- &&
	! as_user bptest cat "$BPROC/group/$rg/io" 2>err &&
	test_grep "Permission denied" err &&
	as_user bptest timeout 10 cat "$BPROC/group/$g/io" >io &&
	grep -qx node0 io && grep -qx node2 io && grep -qx node3 io &&
	! grep -q node1 io &&
	n=$(grep -c " end exit 0$" io) && test "$n" = 3 &&
	# a set where the user may run nowhere fails as one node would
	chmod 0110 "$BPROC/node/2" &&
	test_when_finished "chmod 0111 $BPROC/node/2" &&
	! as_user bptest bash -c "echo exec /bin/true >$BPROC/node/1-2/ctl" 2>err &&
	test_grep "Permission denied" err
'

test_expect_success 'bad sets and commands: a clear error, nothing started' '
	before=$(groups) &&
	! ls "$BPROC/node/nosuchhost" 2>/dev/null &&
	! ls "$BPROC/node/99" 2>/dev/null &&
	node_ctl_refused "0-3" "exec" "Invalid argument" >text &&
	node_ctl_refused "0-3" "exec -c" "Invalid argument" >>text &&
	node_ctl_refused "0-3" "exec /no/such/program" "No such file" >>text &&
	cat text &&
	after=$(groups) && test "$after" = "$before"
'

test_expect_success 'bpsh -a: the output of every node, one group, the exit status the highest' '
	BPSH_TRACE=1 bpsh -a -p -s hostname >out 2>trace &&
	printf "  0: node0\n  1: node1\n  2: node2\n  3: node3\n" >expect && test_cmp expect out &&
	test_grep "set 0-3: started, group" trace &&
	{ st=0; bpsh 0-3 sh -c "echo \$BPROC_RANK; exit \$BPROC_NODE" >out || st=$?; } &&
	test "$st" = 3 &&
	sort out >sorted && printf "0\n1\n2\n3\n" >expect && test_cmp expect sorted &&
	{ st=0; bpsh 0-3 sh -c "test \$BPROC_NODE = 2 && kill -9 \$\$; true" 2>err || st=$?; } &&
	test "$st" = 255 &&
	test_grep "node 2: killed by signal 9" err &&
	echo hi | bpsh 1-3 cat >out &&
	printf "hi\nhi\nhi\n" >expect && test_cmp expect out &&
	bpsh -N 0-3 true &&
	# the per-node path stays selectable, and gives the same
	BPSH_TRACE=1 BPSH_FANOUT=0 bpsh -a -p -s hostname >out 2>trace &&
	printf "  0: node0\n  1: node1\n  2: node2\n  3: node3\n" >expect && test_cmp expect out &&
	! grep "group" trace &&
	test_grep "node 3: pid [0-9]* (starting)" trace
'

test_expect_success 'bpsh on a set with a closed node and a down node: those fail, the others run' '
	test_when_finished "chmod 0111 $BPROC/node/1" &&
	chmod 0110 "$BPROC/node/1" &&
	{ st=0; as_user bptest bpsh -s 0-4 hostname >out 2>err || st=$?; } &&
	cat err &&
	test "$st" = 255 &&
	printf "node0\nnode2\nnode3\n" >expect && test_cmp expect out &&
	test_grep "node 1: .*ermission denied" err &&
	test_grep "node 4: .*down" err
'

test_expect_success 'a node lost during a set launch ends as lost in the stream and in bpsh' '
	{ bpsh 2-3 sh -c "echo up; exec sleep 300" >out 2>err & } &&
	bpsh=$! &&
	wait_for "test \$(grep -c up out) = 2" 10 &&
	slave_kill 3 KILL &&
	wait_node_state 3 down $(slow 5) &&
	# the survivor is killed through the group: every live process
	g=$(ls "$BPROC/group" | sort -n | tail -n 1) &&
	echo kill KILL >"$BPROC/group/$g/ctl" &&
	st=0 && wait $bpsh || st=$? &&
	cat err &&
	test "$st" = 255 &&
	test_grep "node 3: lost: node 3 went down" err &&
	slave_start 3 &&
	wait_node_state 3 up 10
'

# rss: bpmaster's resident set, in KiB.
rss() { awk "/^VmRSS:/ { print \$2 }" /proc/$(bg_pid master-bpmaster)/status; }

test_expect_success 'a flood of output from a set with a slow reader keeps the master bounded' '
	base=$(rss) &&
	exec 3<>"$BPROC/node/0-3/ctl" &&
	echo "exec -i /bin/sh -c \"exec cat /dev/zero\"" >&3 &&
	read -r word g <&3 &&
	exec 3>&- &&
	exec 4<"$BPROC/group/$g/io" &&
	peak=0 &&
	for i in $(seq 40); do
		dd bs=64k count=1 <&4 >/dev/null 2>&1 &&
		now=$(rss) &&
		peak=$((now > peak ? now : peak)) &&
		sleep 0.05 || return 1
	done &&
	echo "bpmaster RSS: $base KiB before, peak $peak KiB while flooding" &&
	test "$peak" -lt $((base + 48 * 1024)) &&
	echo kill KILL >"$BPROC/group/$g/ctl" &&
	timeout 20 cat <&4 >rest &&
	exec 4<&- &&
	n=$(grep -a -c " end signal 9 SIGKILL$" rest) && test "$n" = 4
'

# trapper: on every node, says ready, then on TERM says term and exits 3.
trapper='trap "echo term; exit 3" TERM; echo ready; while :; do sleep 0.1; done'

test_expect_success 'a TERM sent to bpsh -a reaches every node: one group ctl write (per node without the set)' '
	for fan in 1 0; do
		rm -f out &&
		{ BPSH_FANOUT=$fan BPSH_TRACE=1 bpsh -a -p sh -c "$trapper" >out 2>trace & } &&
		bpsh=$! &&
		wait_for "test \$(grep -c ready out) = 4" 10 &&
		kill -TERM $bpsh &&
		st=0 && { wait $bpsh || st=$?; } &&
		test "$st" = 3 &&
		n=$(grep -c "^  [0-3]: term$" out) && test "$n" = 4 &&
		if test $fan = 1; then
			test_grep "forwarding TERM: 1 writes" trace
		else
			test_grep "forwarding TERM: 4 writes" trace
		fi || return 1
	done
'

test_expect_success 'bpsh -u 1 on a set: the nodes still running are killed and reported folded, status 124' '
	for fan in 1 0; do
		{ st=0; BPSH_FANOUT=$fan BPSH_TRACE=1 bpsh -u 1 0-3 sh -c "test \$BPROC_NODE -lt 2 || exec sleep 30" 2>err || st=$?; } &&
		test "$st" = 124 &&
		test_grep "^bpsh: n\[2-3\]: command timeout$" err &&
		n=$(grep -c "command timeout" err) && test "$n" = 1 &&
		{ st=0; BPSH_FANOUT=$fan bpsh -u 1 -a sleep 30 2>err || st=$?; } &&
		test "$st" -ge 124 &&
		test_grep "^bpsh: n\[0-3\]: command timeout$" err || return 1
	done &&
	# the set path killed them with one write to the group
	{ st=0; BPSH_TRACE=1 bpsh -u 1 0-3 sleep 30 2>err || st=$?; } &&
	test "$st" = 124 &&
	test_grep "timeout: killing group [0-9]* (4 running)" err
'

test_done
