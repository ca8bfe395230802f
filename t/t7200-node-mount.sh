#!/bin/sh
# /bproc on every node: bpslave mounts the master's tree on its node,
# and everything through it is asked as the calling process on that node
# (its uid, gid, groups and pid; the node's number).
. "$(dirname "$0")/lib.sh"

# The iprange covers a node 3 that only the stacking test brings up.
test_setup 'a 3-node cluster' eval 'CLUSTER_RANGE=4 cluster_up 3'
test_setup 'a test user exists' ensure_user bptest

# on_node I CMD...: CMD on node I with the node's own /bproc as the tree
# and no way to the master but the mount (no 9P address, no key).
on_node() {
	local i=$1
	shift
	in_node "$i" env BPROC_MOUNT=/bproc BPROC_MASTER=127.0.0.1:1 BPROC_KEY=/nonexistent "$@"
}

# user_on_node I CMD...: on_node as bptest (its uid, gid and groups).
user_on_node() {
	local i=$1
	shift
	on_node "$i" setpriv --reuid=bptest --regid=bptest --init-groups -- "$@"
}

test_expect_success 'each node has the tree at /bproc; node/self is the node there, -1 on the master' '
	for i in 0 1 2; do
		in_node $i mountpoint -q /bproc &&
		out=$(in_node $i cat /bproc/node/self) &&
		test "$out" = $i || return 1
	done &&
	out=$(cat $BPROC/node/self) &&
	test "$out" = -1 &&
	test_grep "mounted the master.s tree at /bproc" "$T/slave1.log"
'

test_expect_success 'a node sees the public tree: no slave/, and its status is the master.s' '
	in_node 1 ls /bproc >out &&
	printf "node\nproc\nstatus\n" >expect &&
	test_cmp expect out &&
	in_node 1 cat /bproc/status >node-status &&
	test_cmp $BPROC/status node-status
'

test_expect_success 'bpsh on node 1 runs a job on node 2: output and exit status come back' '
	out=$(on_node 1 bpsh 2 hostname) &&
	test "$out" = node2 &&
	st=0 &&
	on_node 1 bpsh 2 sh -c "echo out; echo err >&2; exit 7" >out 2>err || st=$? &&
	test $st = 7 &&
	echo out >expect && test_cmp expect out &&
	echo err >expect && test_cmp expect err
'

test_expect_success 'an attached job keeps all its output for a reader that comes after it exited' '
	pid=$(node_exec 2 "-i /usr/bin/head -c 300000 /dev/urandom") &&
	wait_for "grep -q exited $BPROC/proc/$pid/status" 10 &&
	n=$(wc -c <$BPROC/proc/$pid/stdout) &&
	test "$n" = 300000
'

test_expect_success 'bpcp on node 1 copies a file to node 2 and back' '
	head -c 300000 /dev/urandom >data &&
	in_node 1 cp "$T/data" /tmp/data &&
	on_node 1 bpcp /tmp/data 2:/tmp/copy &&
	on_node 1 bpcp 2:/tmp/copy /tmp/back &&
	in_node 1 cat /tmp/back >back &&
	test_cmp data back &&
	in_node 2 cat /tmp/copy >copy &&
	test_cmp data copy
'

test_expect_success 'bpstat on a node lists what the master does' '
	on_node 1 bpstat >node-out &&
	bpstat >master-out &&
	test_cmp master-out node-out &&
	test_grep "^0-2  *up " node-out
'

test_expect_success 'a user on a node is that user on the master: the job runs as bptest' '
	uid=$(id -u bptest) &&
	out=$(user_on_node 1 bpsh 2 id -u) &&
	test "$out" = "$uid" &&
	! user_on_node 1 chmod 0700 /bproc/node/2 2>err &&
	test_grep "Operation not permitted" err &&
	pid=$(node_exec 2 "/bin/sleep 300") &&
	test_when_finished "echo kill 9 >$BPROC/proc/$pid/ctl" &&
	! user_on_node 1 bash -c "echo kill 9 >/bproc/proc/$pid/ctl" 2>err &&
	test_grep "Operation not permitted\|Permission denied" err &&
	state=$(awk "{ print \$3 }" $BPROC/proc/$pid/status) &&
	test "$state" = running
'

test_expect_success 'node permissions hold from a node: 0100 root refuses the user (EACCES), not root' '
	test_when_finished "chmod 0111 $BPROC/node/2" &&
	chmod 0100 $BPROC/node/2 &&
	! user_on_node 1 bash -c "echo exec /bin/true >/bproc/node/2/ctl" 2>err &&
	test_grep "Permission denied" err &&
	! user_on_node 1 bpsh 2 true 2>err &&
	test_grep "ermission denied" err &&
	out=$(on_node 1 bpsh 2 id -u) &&
	test "$out" = 0
'

test_expect_success 'a process on node 1 writes exec to node/2/ctl and reads proc/PID/wait' '
	on_node 1 sh -c "exec 3<>/bproc/node/2/ctl &&
		echo \"exec /bin/sh -c '"'"'hostname; exit 5'"'"'\" >&3 &&
		read -r pid <&3 &&
		cat /bproc/proc/\$pid/stdout &&
		cat /bproc/proc/\$pid/wait" >out &&
	printf "node2\nexit 5\n" >expect &&
	test_cmp expect out
'

test_expect_success 'exec written from a node runs a relative path from the writer.s cwd' '
	mkdir -p "$T/work" &&
	printf "#!/bin/sh\npwd\n" >"$T/work/here.sh" &&
	chmod 755 "$T/work/here.sh" &&
	on_node 1 sh -c "cd $T/work &&
		exec 3<>/bproc/node/2/ctl &&
		echo \"exec ./here.sh\" >&3 &&
		read -r pid <&3 &&
		cat /bproc/proc/\$pid/stdout" >out &&
	echo "$T/work" >expect &&
	test_cmp expect out
'

test_expect_success 'a read blocked on the node mount is interrupted by a signal, and loses nothing' '
	pid=$(node_exec 2 "/bin/sh -c '"'"'read x; echo got \$x'"'"'") &&
	st=0 &&
	on_node 1 timeout -s INT 1 cat /bproc/proc/$pid/stdout >out1 2>&1 || st=$? &&
	test $st = 124 &&
	test ! -s out1 &&
	echo hello >$BPROC/proc/$pid/stdin &&
	out=$(in_node 1 cat /bproc/proc/$pid/stdout) &&
	test "$out" = "got hello"
'

test_expect_success 'libbproc on a node: bproc_currnode() is the node, bproc_numnodes() the cluster.s (4 configured)' '
	make -s -C "$BPROC_ROOT" install PREFIX="$T/inst" DESTDIR= SYSCONFDIR="$T/etc" BUILD="$T/build" &&
	cat >cur.py <<-PY &&
	import ctypes
	lib = ctypes.CDLL("$T/inst/lib/libbproc.so")
	print(lib.bproc_currnode(), lib.bproc_numnodes())
	PY
	out=$(on_node 1 python3 cur.py) &&
	test "$out" = "1 4" &&
	out=$(BPROC_MOUNT=$BPROC python3 cur.py) &&
	test "$out" = "-1 4"
'

test_expect_success 'the mount goes with the master and comes back when the slave reconnects' '
	master_stop &&
	wait_for "! in_node 1 mountpoint -q /bproc" 10 &&
	master_start &&
	wait_nodes_up 3 20 &&
	wait_for "in_node 1 mountpoint -q /bproc" 10 &&
	out=$(in_node 1 cat /bproc/node/self) &&
	test "$out" = 1 &&
	out=$(on_node 1 bpsh 0 hostname) &&
	test "$out" = node0
'

test_expect_success 'a second slave on the host (-s) leaves the tree mounted there alone' '
	in_node 0 ip addr add $(node_addr 3)/24 dev eth0 &&
	bg_node 0 "$T/slave3.log" bpslave -d -k "$KEY" -s $(node_addr 3) --no-stats "$MASTER_ADDR" &&
	test_when_finished "bg_kill node0-bpslave.2" &&
	wait_node_state 3 up 20 &&
	wait_for "grep -q \"already has one\" $T/slave3.log" 10 &&
	out=$(in_node 0 cat /bproc/node/self) &&
	test "$out" = 0 &&
	n=$(in_node 0 awk "\$2 == \"/bproc\"" /proc/self/mounts | wc -l) &&
	test "$n" = 1
'

test_expect_success '--no-mount leaves the node without the tree; --mount PATH makes and uses PATH; exit unmounts' '
	slave_kill 0 &&
	wait_for "! in_node 0 mountpoint -q /bproc" 10 &&
	slave_start 0 -d -r -k "$KEY" --no-mount "$MASTER_ADDR" &&
	wait_node_state 0 up 20 &&
	! in_node 0 mountpoint -q /bproc &&
	slave_kill 0 &&
	slave_start 0 -d -r -k "$KEY" --mount "$T/n0/tree" "$MASTER_ADDR" &&
	wait_for "in_node 0 mountpoint -q $T/n0/tree" 20 &&
	out=$(in_node 0 cat "$T/n0/tree/node/self") &&
	test "$out" = 0 &&
	! in_node 0 mountpoint -q /bproc &&
	slave_kill 0 &&
	! in_node 0 mountpoint -q "$T/n0/tree"
'

test_done
