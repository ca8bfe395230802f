#!/bin/sh
# The commands as BProc, pdsh and ClusterShell users know them: bpsh's
# options after the nodespec, node sets, exclusion and intersection with
# states, gathering, timeouts, BPROC_RANK; bpstat's listings for scripts;
# bpcp to and from many nodes at once.
. "$(dirname "$0")/lib.sh"

# Nodes 0-3 up; node 4 is configured (the iprange covers it) but down.
test_setup 'a 4-node cluster with a fifth node down' eval 'CLUSTER_RANGE=5 cluster_up 4'
test_setup 'a test user exists' ensure_user bptest

test_expect_success 'bpsh: options after the nodespec are bpsh'"'"'s, as in BProc' '
	out=$(bpsh 3 -n cat) && test "$out" = "" &&
	bpsh 0-1 -p -s hostname >out &&
	printf "  0: node0\n  1: node1\n" >expect && test_cmp expect out &&
	out=$(bpsh 2 -- ls -d /) && test "$out" = / &&
	out=$(bpsh 2 uname -n) && test "$out" = node2
'

test_expect_success 'bpsh: a node'"'"'s hostname, address or Scyld .N as nodespec; -l names the caller' '
	out=$(bpsh node2 hostname) && test "$out" = node2 &&
	out=$(bpsh 10.77.0.13 hostname) && test "$out" = node3 &&
	out=$(bpsh .1 hostname) && test "$out" = node1 &&
	{ st=0; bpsh nosuchhost true 2>err || st=$?; } &&
	test "$st" = 1 &&
	test_grep "nosuchhost" err &&
	out=$(bpsh -l bptest 0 id -un) && test "$out" = bptest &&
	{ st=0; as_user bptest bpsh -l root 0 true 2>err || st=$?; } &&
	test "$st" = 255 &&
	test_grep "Permission denied" err
'

test_expect_success 'bpsh: node sets, ^ and -x exclude, & intersects with a state' '
	bpsh -s "n[0-1,3]" hostname >out &&
	printf "node0\nnode1\nnode3\n" >expect && test_cmp expect out &&
	bpsh -s "0-3,^2" hostname >out &&
	printf "node0\nnode1\nnode3\n" >expect && test_cmp expect out &&
	bpsh -s -x "n[1-2]" allup hostname >out &&
	printf "node0\nnode3\n" >expect && test_cmp expect out &&
	{ st=0; bpsh -s 2- hostname >out 2>err || st=$?; } &&
	test "$st" = 255 &&
	test_grep "node 4" err &&
	bpsh -s "2-&allup" hostname >out 2>err &&
	printf "node2\nnode3\n" >expect && test_cmp expect out &&
	! test -s err
'

test_expect_success 'bpsh -d: a divider before every node, the first included; --stdout/--stderr' '
	bpsh -d 0-1 hostname >out &&
	n=$(grep -c "^-.* node 0 -" out) && test "$n" = 1 &&
	n=$(grep -c "^-.* node 1 -" out) && test "$n" = 1 &&
	first=$(head -n 1 out) && case "$first" in *"node 0"*) true ;; *) false ;; esac &&
	bpsh --stdout so --stderr se 1 sh -c "echo o; echo e >&2" &&
	out=$(cat so) && test "$out" = o &&
	out=$(cat se) && test "$out" = e &&
	echo in >in && out=$(bpsh --stdin in 1 cat) && test "$out" = in
'

test_expect_success 'bpsh -g: each distinct output once, under its folded node set; stderr apart' '
	bpsh -g 0-3 sh -c "case \$BPROC_NODE in 2) echo two;; *) echo same;; esac; echo err >&2" >out 2>err &&
	printf -- "---------------\nn[0-1,3] (3)\n---------------\nsame\n---------------\nn2 (1)\n---------------\ntwo\n" >expect &&
	test_cmp expect out &&
	printf -- "---------------\nn[0-3] (4)\n---------------\nerr\n" >expect &&
	test_cmp expect err
'

test_expect_success 'bpsh -u and BPSH_TIMEOUT: slow nodes are killed and reported folded' '
	{ st=0; bpsh -u 1 0-3 sh -c "case \$BPROC_NODE in 1|3) exec sleep 30;; esac; echo done" >out 2>err || st=$?; } &&
	test "$st" = 124 &&
	test_grep "^bpsh: n\[1,3\]: command timeout$" err &&
	n=$(grep -c done out) && test "$n" = 2 &&
	{ st=0; BPSH_TIMEOUT=1 bpsh 2 sleep 30 2>err || st=$?; } &&
	test "$st" = 124 &&
	test_grep "^bpsh: n2: command timeout$" err &&
	{ st=0; BPSH_TIMEOUT=soon bpsh 2 true 2>err || st=$?; } &&
	test "$st" = 1
'

test_expect_success 'bpsh: each process gets BPROC_RANK, BPROC_NODE and BPROC_NPROCS' '
	bpsh -s 3,1,2 sh -c "echo \$BPROC_RANK \$BPROC_NODE \$BPROC_NPROCS" >out &&
	printf "0 3 3\n1 1 3\n2 2 3\n" >expect && test_cmp expect out
'

test_expect_success 'bpstat -n: node numbers one per line; -t: the total; -A: a host'"'"'s node' '
	bpstat -n >out &&
	printf "0\n1\n2\n3\n4\n" >expect && test_cmp expect out &&
	N=$(bpstat -t) && test "$N" = 5 &&
	N=$(bpstat -t allup) && test "$N" = 4 &&
	out=$(bpstat -A node2) && test "$out" = 2 &&
	out=$(bpstat -A 10.77.0.13) && test "$out" = 3 &&
	{ st=0; bpstat -A nosuchhost 2>err || st=$?; } &&
	test "$st" = 1
'

test_expect_success 'bpstat: BProc'"'"'s order and columns; -R -N -O sort; -M shows the master apart' '
	bpstat >out &&
	cat out &&
	sed -n 2p out | grep -E "^4 +down +---x--x--x " &&
	sed -n 3p out | grep -E "^0-3 +up +---x--x--x +root +root$" &&
	bpstat -c >out2 && test_cmp out out2 &&
	bpstat -n -R >out &&
	printf "4\n3\n2\n1\n0\n" >expect && test_cmp expect out &&
	bpstat -n -O 3,1 >out &&
	printf "3\n1\n" >expect && test_cmp expect out &&
	bpstat -M >out &&
	grep -E "^-1 +up |^-1,0-3 +up " out &&
	! grep -E "^-1-" out &&
	chmod 0751 $BPROC/node/1 &&
	test_when_finished "chmod 0111 $BPROC/node/1" &&
	bpstat -l 1 >out &&
	grep -E "^1 .* ---x--x--x " out
'

test_expect_success 'bpstat -U into a file: no escape sequences, the table once per change' '
	{ st=0; timeout 2 bpstat -U --interval 100ms >out || st=$?; } &&
	test "$st" = 124 &&
	! grep -q "$(printf "\033")" out &&
	n=$(grep -c "^Node(s)" out) && test "$n" = 1
'

test_expect_success 'bpcp FILE NODESET:/dst copies to every node of the set' '
	head -c 300000 /dev/urandom >data &&
	bpcp data "n[0-3]:/tmp/data" &&
	for i in 0 1 2 3; do
		in_node $i cat /tmp/data >got.$i && cmp data got.$i || return 1
	done &&
	{ st=0; bpcp data "0-4:/tmp/data2" 2>err || st=$?; } &&
	test "$st" = 1 &&
	test_grep "node 4" err &&
	in_node 3 cmp data /tmp/data2
'

test_expect_success 'bpcp to a node set on a terminal: a progress line for a large copy' '
	head -c $((20 << 20)) /dev/zero >big &&
	script -qec "bpcp big n[0-1]:/tmp/big" typescript >/dev/null &&
	test_grep "bpcp: 40 of 40 MiB (100%)" typescript &&
	bpcp big "n[0-1]:/tmp/big" 2>err &&
	! test -s err
'

test_expect_success 'bpcp NODESET:/src dst gathers into dst.NODE' '
	bpsh 0-3 sh -c "hostname >/tmp/name" &&
	bpcp "n[0-2]:/tmp/name" name &&
	for i in 0 1 2; do
		out=$(cat name.$i) && test "$out" = node$i || return 1
	done &&
	! test -e name.3 &&
	mkdir into &&
	bpcp "allup:/tmp/name" into &&
	out=$(cat into/name.3) && test "$out" = node3 &&
	n=$(ls into | wc -l) && test "$n" = 4
'

test_done
