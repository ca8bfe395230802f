#!/bin/sh
# libbproc: C programs built as a cluster's users build them, against the
# header and library make install puts under PREFIX, instrumented with
# AddressSanitizer and UBSan (the library too), calling BProc's API on a
# live cluster: node information, permissions, processes, node states, the
# notifier, rexec, the rfork/move cases that need no migration and the
# errors the library decides before migrating (migration itself: t7100);
# a BProc 4 program (-DBPROC_API=4); Python ctypes.
. "$(dirname "$0")/lib.sh"

SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
INST=$T/inst
export ASAN_OPTIONS=abort_on_error=0:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# cc_bproc OUT SRC [FLAGS...]: SRC built C99, warnings as errors, against
# the installed header and library.
cc_bproc() {
	local out=$1 src=$2
	shift 2
	cc -std=c99 -Wall -Wextra -Werror $SAN "$@" -I"$INST/include" -o "$out" "$src" \
		-L"$INST/lib" -lbproc -Wl,-rpath,"$INST/lib"
}

# Nodes 0 and 1 up; node 2 configured (the iprange covers it) but down.
test_setup 'a 2-node cluster with a third node down' eval 'CLUSTER_RANGE=3 cluster_up 2'
test_setup 'a test user exists' ensure_user bptest
test_setup 'make install PREFIX=$T/inst, the library under ASan' \
	make -s -C "$BPROC_ROOT" install PREFIX="$INST" DESTDIR= SYSCONFDIR="$T/etc" BUILD="$T/build" \
	CFLAGS="$SAN" LDFLAGS="$SAN"
test_setup 'bpt builds against the installed header and library, -Wall -Wextra -Werror' \
	cc_bproc "$T/bpt" "$TEST_DIRECTORY/t7000/bpt.c"

test_expect_success 'installed: sys/bproc.h, libbproc.so (only the API exported, under ASan), libbproc.a' '
	test -f "$INST/include/sys/bproc.h" &&
	test -f "$INST/lib/libbproc.so" &&
	test -f "$INST/lib/libbproc.a" &&
	nm -D --defined-only "$INST/lib/libbproc.so" >syms &&
	test_grep " T bproc_numnodes$" syms &&
	! grep " T bp_" syms &&
	nm -D --undefined-only "$INST/lib/libbproc.so" >undef &&
	test_grep "__asan_report" undef
'

test_expect_success 'numnodes, currnode (-1 on the master), nodestatus of up and down nodes' '
	out=$(./bpt numnodes) && test "$out" = 3 &&
	out=$(./bpt currnode) && test "$out" = -1 &&
	out=$(./bpt nodestatus 0) && test "$out" = 3 &&
	out=$(./bpt nodestatus 1) && test "$out" = 3 &&
	out=$(./bpt nodestatus 2) && test "$out" = 0 &&
	out=$(./bpt nodestatus -2) && test "$out" = 3 &&
	{ st=0; out=$(./bpt nodestatus 7) || st=$?; } &&
	test "$st" = 1 && test "$out" = "nodestatus: -1 BE_INVALIDNODE"
'

test_expect_success 'nodeaddr, nodelist, getnodebyname' '
	out=$(./bpt nodeaddr 1) && test "$out" = 10.77.0.11 &&
	{ st=0; out=$(./bpt nodeaddr 9) || st=$?; } && test "$st" = 1 &&
	./bpt nodelist >out &&
	printf "0 3 111 0 0 10.77.0.10\n1 3 111 0 0 10.77.0.11\n2 0 111 0 0 10.77.0.12\n" >expect &&
	test_cmp expect out &&
	out=$(./bpt getnodebyname node1) && test "$out" = 1 &&
	out=$(./bpt getnodebyname master) && test "$out" = -1 &&
	out=$(./bpt getnodebyname 2) && test "$out" = 2 &&
	out=$(./bpt getnodebyname nosuch) && test "$out" = -3
'

test_expect_success 'pidnode of a job on node 1 and of a master process; proclist' '
	pid=$(node_exec 1 "-n /bin/sleep 60") &&
	test_when_finished "echo kill > $BPROC/proc/$pid/ctl" &&
	out=$(./bpt pidnode "$pid") && test "$out" = 1 &&
	out=$(./bpt pidnode $$) && test "$out" = -1 &&
	./bpt proclist 1 >out &&
	test_grep "^$pid 1$" out &&
	./bpt proclist 0 >out &&
	! grep "^$pid " out &&
	./bpt proclist -4 >out &&
	test_grep "^$pid 1$" out
'

test_expect_success 'access and chmod as root and as a user (EACCES, EPERM); chown, chgrp' '
	test_when_finished "chmod 0111 $BPROC/node/1 && chown 0:0 $BPROC/node/1" &&
	out=$(as_user bptest "$T/bpt" access 1) && test "$out" = 0 &&
	out=$(./bpt chmod 1 0100) && test "$out" = 0 &&
	mode=$(stat -c %a "$BPROC/node/1") && test "$mode" = 100 &&
	out=$(./bpt access 1) && test "$out" = 0 &&
	{ st=0; out=$(as_user bptest "$T/bpt" access 1) || st=$?; } &&
	test "$st" = 1 && test "$out" = "access: -1 EACCES" &&
	{ st=0; out=$(as_user bptest "$T/bpt" chmod 1 0111) || st=$?; } &&
	test "$st" = 1 && test "$out" = "chmod: -1 EPERM" &&
	uid=$(id -u bptest) && gid=$(id -g bptest) &&
	out=$(./bpt chown 1 "$uid") && test "$out" = 0 &&
	out=$(./bpt chgrp 1 "$gid") && test "$out" = 0 &&
	owner=$(stat -c %u:%g "$BPROC/node/1") && test "$owner" = "$uid:$gid" &&
	out=$(as_user bptest "$T/bpt" access 1) && test "$out" = 0
'

test_expect_success 'nodesetstatus: root sets a state, a user may not' '
	test_when_finished "echo state up > $BPROC/node/1/ctl" &&
	out=$(./bpt setstatus 1 1) && test "$out" = 0 &&
	st=$(node_status 1) && test "$st" = unavailable &&
	out=$(./bpt nodestatus 1) && test "$out" = 1 &&
	{ st=0; out=$(as_user bptest "$T/bpt" setstatus 1 3) || st=$?; } &&
	test "$st" = 1 && test "$out" = "setstatus: -1 EPERM" &&
	out=$(./bpt setstatus 1 3) && test "$out" = 0 &&
	st=$(node_status 1) && test "$st" = up &&
	{ st=0; out=$(./bpt setstatus 1 42) || st=$?; } &&
	test "$st" = 1 && test "$out" = "setstatus: -1 EINVAL"
'

test_expect_success 'rexec runs the program on the node: its output, its exit status' '
	{ st=0; ./bpt rexec 0 /bin/sh -c "echo out; hostname; echo err >&2; exit 3" >out 2>err || st=$?; } &&
	test "$st" = 3 &&
	printf "out\nnode0\n" >expect && test_cmp expect out &&
	echo err >expect && test_cmp expect err &&
	out=$(echo from-stdin | ./bpt rexec 1 /bin/cat) && test "$out" = from-stdin &&
	./bpt rexec 1 /bin/printf "[%s]\\n" "it'"'"'s" "two
lines" "\$HOME" >out &&
	printf "[it'"'"'s]\n[two\nlines]\n[\$HOME]\n" >expect && test_cmp expect out &&
	out=$(./bpt rexec-env 0 GREETING=hello /usr/bin/env) && test "$out" = GREETING=hello &&
	{ st=0; out=$(./bpt rexec 2 /bin/true) || st=$?; } &&
	test "$st" = 1 && test "$out" = "rexec: -1 BE_NODEDOWN"
'

test_expect_success 'rfork to the current node forks (with I/O redirections, vrfork), waitpid works; move to it returns 0' '
	out=$(./bpt rfork -1) && test "$out" = "child exit 7" &&
	out=$(./bpt rfork -2) && test "$out" = "child exit 7" &&
	out=$(./bpt move -1) && test "$out" = 0 &&
	out=$(./bpt rfork-io -1 "$T/child.out") && test "$out" = "child exit 0" &&
	echo "in the child" >expect && test_cmp expect child.out &&
	./bpt vrfork -1 -2 2 >out &&
	printf "rank 0 exit 0\nrank 1 exit 1\nvrfork: -1 BE_NODEDOWN\n" >expect && test_cmp expect out
'

test_expect_success 'rfork with no tree mounted: EBUSY' '
	mkdir -p nothere &&
	BPROC_MOUNT=$T/nothere ./bpt rfork -1 >out &&
	printf "rfork: -1 EBUSY\nalive\n" >expect && test_cmp expect out &&
	{ st=0; BPROC_MOUNT=$T/nothere ./bpt numnodes >out || st=$?; } &&
	test "$st" = 1 && echo "numnodes: -1 EBUSY" >expect && test_cmp expect out
'

test_expect_success 'rfork to a node down or unknown, or with threads, fails cleanly, the caller unharmed (migration: t7100)' '
	./bpt rfork 2 >out &&
	printf "rfork: -1 BE_NODEDOWN\nalive\n" >expect && test_cmp expect out &&
	./bpt rfork 7 >out &&
	printf "rfork: -1 BE_INVALIDNODE\nalive\n" >expect && test_cmp expect out &&
	{ st=0; out=$(./bpt move 2) || st=$?; } &&
	test "$st" = 1 && test "$out" = "move: -1 BE_NODEDOWN" &&
	{ st=0; out=$(./bpt rfork-threaded 0) || st=$?; } &&
	test "$st" = 1 && test "$out" = "rfork-threaded: -1 ENOTSUP"
'

test_expect_success 'rfork to a node the user may not use: EACCES' '
	test_when_finished "chmod 0111 $BPROC/node/0" &&
	chmod 0100 "$BPROC/node/0" &&
	as_user bptest "$T/bpt" rfork 0 >out &&
	printf "rfork: -1 EACCES\nalive\n" >expect && test_cmp expect out
'

test_expect_success 'strerror knows BProc'"'"'s errors' '
	out=$(./bpt strerror 301) && test "$out" = "Node is down" &&
	out=$(./bpt strerror 13) && test "$out" = "Permission denied"
'

test_expect_success 'the notifier becomes readable when a node goes down' '
	test_when_finished "slave_start 1; wait_nodes_up 2" &&
	{ ./bpt notifier >nout 2>&1 & } &&
	np=$! &&
	wait_for "grep -q ready nout" 10 &&
	slave_kill 1 &&
	wait_node_state 1 down 10 &&
	wait "$np" &&
	printf "ready\nchanged\n" >expect && test_cmp expect nout
'

test_expect_success 'a BProc 4 program (-DBPROC_API=4) compiles unchanged and runs' '
	cc_bproc v4 "$TEST_DIRECTORY/t7000/v4.c" -DBPROC_API=4 &&
	./v4 >out &&
	printf "api 4\n0 up\n2 down\nup: 0 1\nnot up: 2\n0-1: 0 1\nbad: -1\n" >expect &&
	test_cmp expect out
'

test_expect_success 'Python ctypes calls the library' '
	asan=$(cc -print-file-name=libasan.so) &&
	out=$(LD_PRELOAD=$asan ASAN_OPTIONS=detect_leaks=0 python3 -c "import ctypes; print(ctypes.CDLL(\"$INST/lib/libbproc.so\").bproc_numnodes())") &&
	test "$out" = 3
'

test_done
