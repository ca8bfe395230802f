#!/bin/sh
# Migration from a shell: a bash script writes `move` to a node's ctl (the
# shell itself is the writer: echo is a builtin) and the rest of the script
# runs there. Its ghost stays on the master: its parent waits for it, kill
# reaches it, its stdio stays its own, /bproc/proc lists it under its pid.
. "$(dirname "$0")/lib.sh"

test_setup 'a 3-node cluster with a fourth node down' eval 'CLUSTER_RANGE=4 cluster_up 3'
test_setup 'a test user exists' ensure_user bptest

test_expect_success 'echo move: the rest of the script runs on the node, its exit status comes home' '
	cat >"$T/mv.sh" <<-EOF &&
	echo before \$(hostname)
	echo move > $BPROC/node/1/ctl || exit 99
	echo after \$(hostname)
	exit 3
	EOF
	{ st=0; bash "$T/mv.sh" >out 2>err || st=$?; } &&
	test "$st" = 3 &&
	printf "before %s\nafter node1\n" "$(hostname)" >expect &&
	test_cmp expect out
'

test_expect_success 'the moved shell is listed under its own pid on its new node; kill reaches it through the ghost' '
	cat >"$T/mvsleep.sh" <<-EOF &&
	echo move > $BPROC/node/2/ctl || exit 99
	hostname > "$T/where"
	exec sleep 300
	EOF
	{ bash "$T/mvsleep.sh" & } &&
	pid=$! &&
	wait_for "test -s \"$T/where\"" 10 &&
	out=$(cat "$T/where") && test "$out" = node2 &&
	read -r spid snode sstate _ <"$BPROC/proc/$pid/status" &&
	test "$spid" = "$pid" && test "$snode" = 2 &&
	wait_for "rss_at_most $pid 1024" 10 &&
	comm=$(tr "\0" " " </proc/$pid/cmdline) &&
	test "$comm" = "bash $T/mvsleep.sh " &&
	kill -TERM $pid &&
	{ st=0; wait $pid || st=$?; } &&
	test "$st" = 143 &&
	wait_for "grep -q exited \"$BPROC/proc/$pid/status\"" 10
'

test_expect_success 'kill -9 of the ghost ends the moved process on its node' '
	cat >"$T/mvkill.sh" <<-EOF &&
	echo move > $BPROC/node/1/ctl || exit 99
	echo \$\$ > "$T/inner"
	exec sleep 301
	EOF
	{ bash "$T/mvkill.sh" & } &&
	pid=$! &&
	wait_for "test -s \"$T/inner\"" 10 &&
	wait_for "grep -q \" 1 running \" \"$BPROC/proc/$pid/status\"" 10 &&
	n=$(pgrep -cf "^sleep 301") && test "$n" = 1 &&
	kill -KILL $pid &&
	{ st=0; wait $pid || st=$?; } &&
	test "$st" = 137 &&
	wait_for "grep -q \"exited\" \"$BPROC/proc/$pid/status\"" 10 &&
	wait_for "! pgrep -f \"^sleep 301\"" 10
'

test_expect_success 'stdin and stdout stay the process'"'"'s own after the move' '
	cat >"$T/mvio.sh" <<-EOF &&
	echo move > $BPROC/node/0/ctl || exit 99
	read -r line
	echo "got \$line on \$(hostname)"
	echo "to stderr" >&2
	EOF
	out=$(echo hello | bash "$T/mvio.sh" 2>err) &&
	test "$out" = "got hello on node0" &&
	test_grep "to stderr" err
'

test_expect_success 'a job on a node moves on with its pid, or execmoves: output and status come back through bpsh' '
	out=$(bpsh 1 bash -c "echo move > /bproc/node/2/ctl && hostname && exit 4") ||
	test $? = 4 &&
	test "$out" = node2 &&
	out=$(bpsh 1 bash -c "echo execmove /usr/bin/hostname > /bproc/node/0/ctl; echo not reached") &&
	test "$out" = node0
'

test_expect_success 'a move that cannot happen fails the write; the script carries on where it was' '
	cat >"$T/mvfail.sh" <<-EOF &&
	echo move > $BPROC/node/3/ctl && exit 98
	echo still on \$(hostname)
	echo move > $BPROC/node/9/ctl && exit 97
	echo still on \$(hostname)
	EOF
	bash "$T/mvfail.sh" >out 2>err &&
	printf "still on %s\nstill on %s\n" "$(hostname)" "$(hostname)" >expect &&
	test_cmp expect out &&
	test_grep "Host is down" err &&
	test_grep "No such file" err
'

test_expect_success 'a move whose stdout is a file the node lacks fails with ENOENT; the script carries on' '
	f=$(mktemp /tmp/bpmv.XXXXXX) &&
	test_when_finished "rm -f $f" &&
	cat >"$T/mvfile.sh" <<-EOF &&
	echo move > $BPROC/node/1/ctl && exit 98
	echo still on \$(hostname)
	EOF
	bash "$T/mvfile.sh" >"$f" 2>err &&
	h=$(hostname) && out=$(cat "$f") && test "$out" = "still on $h" &&
	test_grep "write error: No such file or directory" err
'

test_expect_success 'the failed move'"'"'s text on the ctl names the missing file and its errno once' '
	f=$(mktemp /tmp/bpmv.XXXXXX) &&
	test_when_finished "rm -f $f" &&
	cat >"$T/mvwhy.sh" <<-EOF &&
	exec 3<>$BPROC/node/1/ctl
	echo move 1>&3 && exit 98
	read -r why <&3
	echo "\$why" >&2
	EOF
	bash "$T/mvwhy.sh" >"$f" 2>err &&
	test_grep "^error: .*fd 3: open $BPROC/node/1/ctl.*: no such file or directory$" err &&
	n=$(grep -o "no such file or directory" err | wc -l) && test "$n" = 1
'

test_expect_success 'a user may not move to a node closed to them (EACCES), and moving to the node one is on does nothing' '
	chmod 0100 "$BPROC/node/2" &&
	test_when_finished "chmod 0111 $BPROC/node/2" &&
	cat >"$T/mvuser.sh" <<-EOF &&
	echo move > $BPROC/node/-1/ctl || exit 96
	echo move > $BPROC/node/2/ctl && exit 95
	hostname
	EOF
	chmod 0755 "$T/mvuser.sh" &&
	out=$(as_user bptest bash "$T/mvuser.sh" 2>err) &&
	h=$(hostname) && test "$out" = "$h" &&
	test_grep "Permission denied" err
'

test_done
