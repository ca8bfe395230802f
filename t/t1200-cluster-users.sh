#!/bin/sh
# Users on a 2-node cluster: work runs as the writer, node permission bits
# decide who may run there, and only root changes nodes or others' processes.
# (bash -c, not sh -c, where a write error matters: dash's echo reports every
# write error as "I/O error", whatever the errno.)
. "$(dirname "$0")/lib.sh"

test_setup 'a 2-node cluster comes up' cluster_up 2
test_setup 'a test user exists' ensure_user bptest
U=$(id -u bptest)
G=$(id -g bptest)

test_expect_success 'a user runs with their own uid, gid and groups on the node' '
	as_user bptest bpsh 1 id -u >uid &&
	echo $U >expect && test_cmp expect uid &&
	as_user bptest bpsh 1 id -g >gid &&
	echo $G >expect && test_cmp expect gid &&
	as_user bptest bpsh 1 id -G >groups &&
	id -G bptest >expect && test_cmp expect groups
'

test_expect_success 'their process belongs to them in proc/' '
	as_user bptest bash -c "exec 3<>$BPROC/node/0/ctl && echo \"exec /bin/sleep 30\" >&3 && cat <&3" >pid &&
	pid=$(cat pid) &&
	read -r p node state uid gid rest <$BPROC/proc/$pid/status &&
	test "$p $node $uid $gid" = "$pid 0 $U $G" &&
	out=$(stat -c %u $BPROC/proc/$pid/wait) && test "$out" = $U &&
	as_user bptest bash -c "echo kill >$BPROC/proc/$pid/ctl" &&
	test_grep "^signal 15 " $BPROC/proc/$pid/wait
'

test_expect_success 'a user may not signal or wait for root'"'"'s process' '
	exec 3<>$BPROC/node/0/ctl &&
	echo "exec /bin/sleep 30" >&3 &&
	read -r pid <&3 &&
	exec 3>&- &&
	test_when_finished "echo kill KILL >$BPROC/proc/$pid/ctl" &&
	! as_user bptest bash -c "echo kill >$BPROC/proc/$pid/ctl" 2>err &&
	grep -E "Permission denied|Operation not permitted" err &&
	! as_user bptest timeout 5 cat $BPROC/proc/$pid/wait 2>err &&
	grep -E "Permission denied|Operation not permitted" err &&
	read -r p node state rest <$BPROC/proc/$pid/status &&
	test "$state" != exited
'

test_expect_success 'a user sees only their own output in io; root sees all' '
	echo "exec /bin/echo root-secret" >$BPROC/node/0/ctl &&
	as_user bptest bash -c "echo \"exec /bin/echo user-line\" >$BPROC/node/0/ctl" &&
	as_user bptest timeout 5 sed "/user-line/q" $BPROC/node/0/io >user-io &&
	test_grep user-line user-io &&
	! grep root-secret user-io &&
	timeout 5 sed "/user-line/q" $BPROC/node/0/io >root-io &&
	test_grep root-secret root-io
'

test_expect_success 'a user may not change a node state' '
	! as_user bptest bash -c "echo state unavailable >$BPROC/node/1/ctl" 2>err &&
	grep -E "Operation not permitted|Permission denied" err &&
	st=$(node_status 1) && test "$st" = up
'

test_expect_success BPCTL 'nor with bpctl (EPERM), while root may' '
	test_when_finished "echo state up >$BPROC/node/1/ctl" &&
	! as_user bptest bpctl -S 1 -s unavailable 2>err &&
	cat err &&
	grep -E "not permitted|denied" err &&
	st=$(node_status 1) && test "$st" = up &&
	bpctl -S 1 -s unavailable &&
	st=$(node_status 1) && test "$st" = unavailable
'

test_expect_success 'a user may not chmod a node' '
	! as_user bptest chmod 0111 $BPROC/node/1 2>err &&
	grep -E "Operation not permitted|Permission denied" err
'

test_expect_success 'chmod 0110 on a node: the user gets Permission denied there, root does not' '
	test_when_finished "chmod 0111 $BPROC/node/1" &&
	chmod 0110 $BPROC/node/1 &&
	out=$(stat -c %a $BPROC/node/1) && test "$out" = 110 &&
	read -r n state addr mode rest <$BPROC/node/1/status &&
	test "$mode" = "---x--x---" &&
	! as_user bptest bash -c "echo exec /bin/true >$BPROC/node/1/ctl" 2>err &&
	test_grep "Permission denied" err &&
	st=0 &&
	as_user bptest bpsh 1 true 2>err || st=$? &&
	test $st = 255 &&
	test_grep "ermission denied" err &&
	out=$(as_user bptest bpsh 0 hostname) && test "$out" = node0 &&
	out=$(bpsh 1 hostname) && test "$out" = node1
'

test_expect_success BPCTL 'bpctl -m gives the right back and takes it again' '
	test_when_finished "chmod 0111 $BPROC/node/1" &&
	bpctl -S 1 -m 0110 &&
	! as_user bptest bpsh 1 true 2>err &&
	test_grep "ermission denied" err &&
	bpctl -S 1 -m 0111 &&
	as_user bptest bpsh 1 true
'

test_expect_success 'a node owned by the user with mode 0100 is theirs alone' '
	test_when_finished "chown root:root $BPROC/node/1 && chmod 0111 $BPROC/node/1" &&
	chown bptest $BPROC/node/1 &&
	chmod 0100 $BPROC/node/1 &&
	read -r n state addr mode user group rest <$BPROC/node/1/status &&
	test "$mode $user" = "---x------ bptest" &&
	out=$(as_user bptest bpsh 1 id -u) && test "$out" = $U &&
	ensure_user bptest2 4243 &&
	! as_user bptest2 bpsh 1 true 2>err &&
	test_grep "ermission denied" err
'

test_done
