#!/bin/sh
# Migration through libbproc: C programs (t7100/mig.c, built against the
# header and library make install puts under PREFIX) rfork, move and
# execmove themselves between the master and the nodes of a live cluster;
# their parents wait, kill and stop them through their ghosts; a bash
# script moves itself with `echo move`; Python with ctypes. Nodes tell
# where a process is by their hostnames (their own UTS namespaces); the
# programs run in the master's (hostname master).
#
# The errors the library decides (no tree, down node, not permitted,
# threads, bad flags) run under ASan and UBSan. The migrations run
# without the sanitizers: ASan's shadow (terabytes of reserved address
# space) is not what a test of moving a 1 MB heap should carry.
#
# With bpslave's node mount (--mount), slaves mount the tree at $BPROC on
# their nodes, where the master's mount is here, so that BPROC_MOUNT means
# the tree wherever a process moves; the tests that need it (a process on
# a node calling the library) are skipped without it.
. "$(dirname "$0")/lib.sh"

SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
export ASAN_OPTIONS=abort_on_error=0:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Binaries that exist only in the master's /tmp (nodes have their own).
MTMP=/tmp/bproc-t7100.$$
at_exit "rm -rf $MTMP"

# install_lib DIR [CFLAGS]: make install PREFIX=DIR.
install_lib() {
	make -s -C "$BPROC_ROOT" install PREFIX="$1" DESTDIR= SYSCONFDIR="$T/etc" BUILD="$1.build" \
		CFLAGS="$2" LDFLAGS="$2"
}

# cc_bproc PREFIX OUT SRC [FLAGS...]: SRC built C99, warnings as errors,
# against the header and library installed under PREFIX.
cc_bproc() {
	local inst=$1 out=$2 src=$3
	shift 3
	cc -std=c99 -Wall -Wextra -Werror "$@" -I"$inst/include" -o "$out" "$src" \
		-L"$inst/lib" -lbproc -Wl,-rpath,"$inst/lib" -pthread
}

# Nodes 0-3 up, node 4 configured but down; with the node mount at $BPROC.
mig_cluster() {
	local i mount=
	CLUSTER_RANGE=5 cluster_up 0 || return 1
	if bpslave -h 2>&1 | grep -q -- "--mount string"; then
		mount="--mount $BPROC"
		test_set_prereq NODEMOUNT
	else
		echo "bpslave has no --mount: no tree on the nodes"
	fi
	for i in 0 1 2 3; do
		net_add_node "$i" && slave_start "$i" -d -r -k "$KEY" $mount "$MASTER_ADDR" || return 1
	done
	CLUSTER_N=4
	wait_nodes_up 4 20
}

# mig ARGS...: the test program in the master's namespaces, stopped if it
# hangs (a migration that never comes back) so that the next test runs.
mig() { in_master timeout -k 5 "$(slow 15)" "$T/mig" "$@"; }

test_setup 'a 4-node cluster, a fifth node down, the tree mounted on the nodes when bpslave can' mig_cluster
if ! test_have_prereq NODEMOUNT; then
	say "# bpslave has no --mount: the tests of processes calling the library on a node are skipped"
fi
test_setup 'a test user exists' ensure_user bptest
test_setup 'make install PREFIX=$T/asan (the library under ASan) and PREFIX=$T/plain' eval \
	'install_lib "$T/asan" "$SAN" && install_lib "$T/plain" ""'
test_setup 'mig, and v4io (-DBPROC_API=4), build against the installed header and library, -Wall -Wextra -Werror' eval \
	'cc_bproc "$T/asan" "$T/mig-asan" "$TEST_DIRECTORY/t7100/mig.c" $SAN &&
	cc_bproc "$T/plain" "$T/mig" "$TEST_DIRECTORY/t7100/mig.c" &&
	cc_bproc "$T/asan" "$T/v4io-asan" "$TEST_DIRECTORY/t7100/v4io.c" -DBPROC_API=4 $SAN &&
	cc_bproc "$T/plain" "$T/v4io" "$TEST_DIRECTORY/t7100/v4io.c" -DBPROC_API=4'
test_setup 'hello, only in the master'"'"'s /tmp' eval \
	'mkdir -p "$MTMP" && cc -std=c99 -Wall -Wextra -Werror -o "$MTMP/hello" "$TEST_DIRECTORY/t7100/hello.c"'

# ---------------------------------------------------------------- errors
# What the library refuses before anything is written: these pass with or
# without migration in the tree.

test_expect_success 'rfork, move, execmove to a down node: BE_NODEDOWN, the caller unharmed' '
	here=$(hostname) &&
	./mig-asan rfork 4 >out &&
	printf "rfork: -1 BE_NODEDOWN\nalive on %s\n" "$here" >expect && test_cmp expect out &&
	{ st=0; ./mig-asan move 4 >out || st=$?; } && test "$st" = 1 &&
	printf "move: -1 BE_NODEDOWN\nalive on %s\n" "$here" >expect && test_cmp expect out &&
	{ st=0; ./mig-asan execmove 4 "$MTMP/hello" >out || st=$?; } && test "$st" = 1 &&
	printf "execmove: -1 BE_NODEDOWN\nalive on %s\n" "$here" >expect && test_cmp expect out &&
	./mig-asan rfork 9 >out &&
	printf "rfork: -1 BE_INVALIDNODE\nalive on %s\n" "$here" >expect && test_cmp expect out &&
	./mig-asan vrfork 4 9 >out &&
	printf "vrfork: 2\nindex 0: BE_NODEDOWN\nindex 1: BE_INVALIDNODE\n" >expect && test_cmp expect out &&
	./mig-asan vexecmove "$MTMP/hello" 4 >out &&
	printf "vexecmove: 1\nindex 0: BE_NODEDOWN\n" >expect && test_cmp expect out
'

test_expect_success 'with no tree mounted: EBUSY' '
	here=$(hostname) &&
	mkdir -p empty &&
	BPROC_MOUNT=$T/empty ./mig-asan rfork 0 >out &&
	printf "rfork: -1 EBUSY\nalive on %s\n" "$here" >expect && test_cmp expect out &&
	{ st=0; BPROC_MOUNT=$T/empty ./mig-asan move 0 >out || st=$?; } && test "$st" = 1 &&
	printf "move: -1 EBUSY\nalive on %s\n" "$here" >expect && test_cmp expect out &&
	{ st=0; BPROC_MOUNT=$T/empty ./mig-asan execmove 0 "$MTMP/hello" >out || st=$?; } && test "$st" = 1 &&
	printf "execmove: -1 EBUSY\nalive on %s\n" "$here" >expect && test_cmp expect out &&
	{ st=0; BPROC_MOUNT=$T/empty ./mig-asan vrfork 0 1 >out || st=$?; } && test "$st" = 1 &&
	echo "vrfork: -1 EBUSY" >expect && test_cmp expect out
'

test_expect_success 'to a node the user may not use: EACCES (rfork, move, execmove)' '
	test_when_finished "chmod 0111 $BPROC/node/0" &&
	chmod 0100 "$BPROC/node/0" &&
	here=$(hostname) &&
	as_user bptest "$T/mig-asan" rfork 0 >out &&
	printf "rfork: -1 EACCES\nalive on %s\n" "$here" >expect && test_cmp expect out &&
	{ st=0; as_user bptest "$T/mig-asan" move 0 >out || st=$?; } && test "$st" = 1 &&
	printf "move: -1 EACCES\nalive on %s\n" "$here" >expect && test_cmp expect out &&
	{ st=0; as_user bptest "$T/mig-asan" execmove 0 "$MTMP/hello" >out || st=$?; } && test "$st" = 1 &&
	printf "execmove: -1 EACCES\nalive on %s\n" "$here" >expect && test_cmp expect out
'

test_expect_success 'a caller with two threads: ENOTSUP; flags that are not BProc'"'"'s: EINVAL' '
	here=$(hostname) &&
	./mig-asan threaded 0 >out &&
	printf "rfork: -1 ENOTSUP\nmove: -1 ENOTSUP\nalive on %s\n" "$here" >expect && test_cmp expect out &&
	for n in 0 -1; do
		{ st=0; ./mig-asan rfork-flags $n 8 >out || st=$?; } &&
		test "$st" = 1 && echo "rfork-flags: -1 EINVAL" >expect && test_cmp expect out || return 1
	done
'

test_expect_success 'Python via ctypes: bproc_move to a down node fails with BE_NODEDOWN (301)' '
	here=$(hostname) &&
	out=$(LD_LIBRARY_PATH=$T/plain/lib python3 "$TEST_DIRECTORY/t7100/move.py" libbproc.so 4) &&
	test "$out" = "-1 301 $here"
'

test_expect_success 'BProc 3 _bproc_rfork_io with a port, to the master (a fork): stdout, stderr, stdin connect back' '
	mig rfork-port -1 4711 >out &&
	printf "stdout: child read ping\nstderr: child on master\nchild exit 0\n" >expect && test_cmp expect out
'

test_expect_success 'BProc 4 _bproc_rfork_io (struct bproc_io_t) to the master: the file opened in the child' '
	in_master ./v4io-asan -1 "$T/v4.out" >out &&
	echo "child exit 0" >expect && test_cmp expect out &&
	echo "child on master" >expect && test_cmp expect v4.out &&
	{ st=0; in_master ./v4io-asan 4 "$T/v4.out" >out || st=$?; } &&
	test "$st" = 1 &&
	echo "_bproc_rfork_io: -1 Node is down" >expect && test_cmp expect out
'

# ---------------------------------------------------------------- migration

test_expect_success 'rfork to each node: the child exits 7 there, the parent'"'"'s waitpid gets 7' '
	echo "child exit 7" >expect &&
	for n in 0 1 2 3 -1; do
		mig rfork $n >out && test_cmp expect out || return 1
	done &&
	mig rfork-flags 2 7 >out && test_cmp expect out
'

test_expect_success 'the parent kills its rforked child through the ghost: SIGTERM' '
	mig rfork-kill 1 >out &&
	echo "child signal 15" >expect && test_cmp expect out
'

test_expect_success 'WUNTRACED sees the remote SIGSTOP, WCONTINUED its SIGCONT' '
	mig rfork-stop 2 >out &&
	printf "stopped 19\ncontinued 1\nchild signal 9\n" >expect && test_cmp expect out
'

test_expect_success 'bproc_move to node 1 from the master: the process carries on there' '
	mig move 1 >out &&
	echo "move: 0 on node1" >expect && test_cmp expect out
'

test_expect_success NODEMOUNT 'a 1 MB heap and an open file move 0, 1, 2, master: memory, offset, currnode at each stop' '
	seq 1 1000 >data &&
	mig tour "$T/data" 0 1 2 -1 >out &&
	for n in 0 1 2; do
		echo "at $n on node$n sum ok off ok read ok currnode $n" || return 1
	done >expect &&
	echo "at -1 on master sum ok off ok read ok currnode -1" >>expect &&
	test_cmp expect out
'

test_expect_success 'execmove of a binary that only the master has: it runs on node 1 in place of the caller' '
	in_node 1 test ! -e "$MTMP/hello" &&
	{ st=0; mig execmove 1 "$MTMP/hello" 5 >out || st=$?; } &&
	test "$st" = 5 &&
	echo "hello on node1 rank - argv0 $MTMP/hello 5" >expect && test_cmp expect out &&
	{ st=0; mig execmove 1 "$MTMP/nosuch" >out || st=$?; } &&
	test "$st" = 1 &&
	printf "execmove: -1 ENOENT\nalive on master\n" >expect && test_cmp expect out
'

test_expect_success 'vrfork to 4 nodes: each child gets its index (and exits with it), the parent 4' '
	mig vrfork 0 1 2 3 >out &&
	printf "vrfork: 4\nindex 0 exit 0\nindex 1 exit 1\nindex 2 exit 2\nindex 3 exit 3\n" >expect &&
	test_cmp expect out &&
	mig vrfork 3 4 -1 >out &&
	printf "vrfork: 3\nindex 0 exit 0\nindex 1: BE_NODEDOWN\nindex 2 exit 2\n" >expect &&
	test_cmp expect out
'

test_expect_success 'vexecmove to 4 nodes: the binary runs on each with BPROC_RANK' '
	mig vexecmove "$MTMP/hello" 0 1 2 3 >out &&
	for i in 0 1 2 3; do
		echo "hello on node$i rank $i argv0 $MTMP/hello 0 1 2 3" &&
		echo "index $i exit $i" || return 1
	done >expect &&
	echo "vexecmove: 4" >>expect &&
	sort expect >expect.sorted && sort out >out.sorted &&
	test_cmp expect.sorted out.sorted
'

test_expect_success 'BProc 3 _bproc_rfork_io with a port, to node 2: the child connects back from there' '
	mig rfork-port 2 4712 >out &&
	printf "stdout: child read ping\nstderr: child on node2\nchild exit 0\n" >expect && test_cmp expect out
'

test_expect_success 'BProc 4 _bproc_rfork_io (struct bproc_io_t) to node 3: the file opened there' '
	in_master ./v4io 3 "$T/v4.out" >out &&
	echo "child exit 0" >expect && test_cmp expect out &&
	echo "child on node3" >expect && test_cmp expect v4.out
'

test_expect_success NODEMOUNT 'rfork from a process on node 1 (started with bpsh) to node 2' '
	out=$(bpsh 1 "$T/mig" rfork 2) && test "$out" = "child exit 7" &&
	out=$(bpsh 1 "$T/mig" rfork -1) && test "$out" = "child exit 7"
'

test_expect_success 'echo move from a bash script: the rest of the script runs on node 2' '
	cat >move.sh <<-EOF &&
	hostname
	echo move >"$BPROC/node/2/ctl"
	hostname
	exit 3
	EOF
	{ st=0; in_master bash move.sh >out || st=$?; } &&
	test "$st" = 3 &&
	printf "master\nnode2\n" >expect && test_cmp expect out
'

test_expect_success 'Python via ctypes: ctypes.CDLL("libbproc.so").bproc_move(2), then on node2' '
	LD_LIBRARY_PATH=$T/plain/lib in_master python3 "$TEST_DIRECTORY/t7100/move.py" libbproc.so 2 >out &&
	echo "0 0 node2" >expect && test_cmp expect out
'

test_expect_success 'a ghost holds at most 1 MiB after its 256 MB process moved; ps shows it' '
	{ in_master "$T/mig" bigmove 1 256 >big.out 2>&1 & } &&
	job=$! &&
	wait_for "test -s big.out" 60 &&
	# The ghost: the job itself, or its child when the subshell forked
	# (the moved process on node 1 has the same command line).
	pid=$(pgrep -P "$job" -xf "$T/mig bigmove 1 256" || echo "$job") &&
	test_when_finished "kill -KILL $pid 2>/dev/null" &&
	echo "moved to node1" >expect && test_cmp expect big.out &&
	# The ghost is emptied once the process runs on node 1 (freeing 256 MB
	# takes the kernel a while): its resident size comes down to 1 MiB.
	wait_for "rss_at_most $pid 1024" 10 &&
	ps -o args= -p "$pid" >ps.out &&
	echo "$T/mig bigmove 1 256" >expect && test_cmp expect ps.out &&
	kill -TERM "$pid" &&
	{ st=0; wait "$job" || st=$?; } &&
	test "$st" = 143
'

test_done
