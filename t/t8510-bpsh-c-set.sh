#!/bin/sh
# bpsh's C front on a node set (libbproc/bpsh/set.c): -a, -A and lists
# run as one set launch in C, the same as the Go bpsh (bpsh-go) in output,
# messages and exit status; every other form still handed to bpsh-go
# before anything ran. Each case runs with bin/bpsh and with a copy built
# under AddressSanitizer and UBSan, and is compared with bpsh-go's run.
. "$(dirname "$0")/lib.sh"

# Nodes 0-3 up; node 4 configured but down; node 7 none at all.
test_setup 'a 4-node cluster with a fifth node down' eval 'CLUSTER_RANGE=5 cluster_up 4'
test_setup 'the front builds under ASan, and a copy beside a fake bpsh-go' bpsh_front_copies

# run WHO ARGS...: one run of bpsh (WHO c: the front, $BPSH; go:
# bpsh-go), stdin from $IN (default /dev/null), into WHO.out, WHO.err and
# WHO.st.
run() {
	who=$1 && shift &&
	bin=$BPSH && { test "$who" = c || bin=bpsh-go; } &&
	{ st=0; $bin "$@" <"${IN:-/dev/null}" >"$who.out" 2>"$who.err" || st=$?; } &&
	echo $st >"$who.st"
}

# both ARGS...: runs bpsh ARGS with the front and with bpsh-go and
# compares them: the status, stdout and stderr exactly when one node
# writes (ONE=1), else as sets of lines (the nodes' order is the
# network's) with bpsh's own messages (at the end, in node order) exact.
both() {
	run c "$@" && run go "$@" &&
	test_cmp go.st c.st &&
	if test -n "${ONE:-}"; then
		cmp go.out c.out && test_cmp go.err c.err
	else
		sort go.out >go.sout && sort c.out >c.sout && test_cmp go.sout c.sout &&
		sort go.err >go.serr && sort c.err >c.serr && test_cmp go.serr c.serr &&
		{ grep "^bpsh: " go.err >go.msg || :; } && { grep "^bpsh: " c.err >c.msg || :; } &&
		test_cmp go.msg c.msg
	fi
}

# state PID S: process PID is in state S (T: stopped).
state() { st=$(awk "{ print \$3 }" /proc/$1/stat) && test "$st" = "$2"; }

# is FILE TEXT: FILE holds TEXT.
is() { content=$(cat "$1") && test "$content" = "$2"; }

for BPSH in "$BPROC_ROOT/bin/bpsh" "$T/asan/bpsh"; do
pass=${BPSH#$T/} && pass=${pass%/bpsh} && pass=${pass##*/}

test_expect_success "$pass: -a, -A and lists: ranks, statuses and output as bpsh-go" '
	both -a sh -c "echo \$BPROC_RANK \$BPROC_NODE \$BPROC_NPROCS \$PWD; echo e\$BPROC_NODE >&2; exit \$BPROC_NODE" &&
	is c.st 3 && printf "0 0 4 $T\n1 1 4 $T\n2 2 4 $T\n3 3 4 $T\n" >expect && test_cmp expect c.sout &&
	printf "e0\ne1\ne2\ne3\n" >expect && test_cmp expect c.serr &&
	both -A sh -c "echo \$BPROC_NODE" && is c.st 0 && is c.sout "$(printf "0\n1\n2\n3")" &&
	both 1,3 sh -c "echo \$BPROC_RANK/\$BPROC_NODE" && is c.sout "$(printf "0/1\n1/3")" &&
	both n0-n1,3 -n printf "[%s]\n" "a b" "it'"'"'s" "" && is c.st 0 &&
	both allup,2 true && is c.st 0 && test ! -s c.err &&
	both 0,1,0,2-3,1 sh -c "echo \$BPROC_RANK/\$BPROC_NODE" && is c.sout "$(printf "0/0\n1/1\n2/2\n3/3")" &&
	both 2- sh -c "echo \$BPROC_NODE" && is c.sout "$(printf "2\n3")" &&
	both 0-1 sh -c "exit \$((BPROC_NODE + 3))" && is c.st 4
'

test_expect_success "$pass: a down node, no such node, no program: the messages of bpsh-go" '
	both 0-4 true && is c.st 255 && test_grep "^bpsh: node 4: exec .*/true: node 4 is down: Host is down\$" c.msg &&
	both 2- true && is c.st 255 && test_grep "^bpsh: node 4: " c.msg &&
	both 0,7 sh -c "echo ran \$BPROC_NODE" && is c.st 255 && is c.msg "bpsh: node 7: no such node" &&
	is c.out "ran 0" &&
	both 0-1 /no/such/program && is c.st 255 &&
	both 0-1 -I /no/such/file cat && is c.st 255 &&
	both 4,7 true && is c.st 255
'

test_expect_success "$pass: exits and signals on some nodes: the highest status, 255 and a message for a killed one" '
	both 0-3 sh -c "case \$BPROC_NODE in 1) exit 5;; 2) kill -9 \$\$;; 3) kill -TERM \$\$;; esac" &&
	is c.st 255 &&
	printf "bpsh: node 2: killed by signal 9 (KILL)\nbpsh: node 3: killed by signal 15 (TERM)\n" >expect &&
	test_cmp expect c.msg &&
	both 0-3 sh -c "exit \$BPROC_NODE" && is c.st 3 && test ! -s c.err
'

test_expect_success "$pass: -p prefixes each line, -L keeps lines whole, as bpsh-go" '
	both -p 0-3 sh -c "echo a; printf \"b\nc\n\"; echo x >&2" &&
	test_grep "^  2: c\$" c.out && test_grep "^  3: x\$" c.err &&
	ONE=1 both -p 0-1 sh -c "test \$BPROC_NODE = 0 || { printf \"b\nc\"; printf d >&2; }" &&
	printf "  1: b\n  1: c" >expect && cmp expect c.out && is c.err "  1: d" &&
	both -L 0-3 sh -c "printf par; sleep 0.2; echo tial" &&
	awk "\$0 != \"partial\" { exit 1 }" c.out &&
	both 1-2 -p -L sh -c "printf \"one\ntwo\n\" >&2" && test_grep "^  1: two" c.err &&
	head -c 3000000 /dev/zero | tr "\0" x >long && ONE=1 both -p 0-1 sh -c "test \$BPROC_NODE = 0 || cat $T/long" &&
	size=$(wc -c <c.out) && test "$size" = 3000005
'

test_expect_success "$pass: stdin from a file reaches every node; -n and -N read none" '
	seq 1 30000 >in && sum=$(md5sum <in) &&
	IN=in both 0-3 md5sum && is c.st 0 &&
	printf "%s\n%s\n%s\n%s\n" "$sum" "$sum" "$sum" "$sum" >expect && test_cmp expect c.sout &&
	IN=in both -n 0-3 wc -c && is c.sout "$(printf "0\n0\n0\n0")" &&
	IN=in both -I in 0-1 wc -l && is c.sout "$(printf "30000\n30000")" &&
	IN=in both -N 0-3 sh -c "cat; echo gone; exit 2" && is c.st 2 && test ! -s c.out &&
	seq 1 1000 | $BPSH -a wc -l >out && is out "$(printf "1000\n1000\n1000\n1000")"
'

test_expect_success "$pass: a few MB from one node and -O, -E: byte-exact" '
	head -c 5000000 /dev/urandom >big &&
	ONE=1 both 0-3 sh -c "test \$BPROC_NODE != 2 || { printf e1 >&2; cat $T/big; printf e2 >&2; }" &&
	cmp big c.out && is c.err e1e2 &&
	both 0-1 -O o -E e sh -c "echo so\$BPROC_NODE; echo se >&2; exit 1" && is c.st 1 &&
	sort o >so && is so "$(printf "so0\nso1")" && is e "$(printf "se\nse")" && test ! -s c.out
'

test_expect_success "$pass: a broken stdout (| head -1) stops the processes quietly; a closed one is /dev/null: as bpsh-go" '
	for who in c go; do
		bin=$BPSH && { test $who = c || bin=bpsh-go; } &&
		{ { st=0; $bin 0-3 sh -c "yes; echo never >&2" 2>$who.err || st=$?; echo $st >$who.st; } | head -1 >$who.out; } &&
		is $who.out y && test ! -s $who.err || return 1
	done &&
	test_cmp go.st c.st && is c.st 255 &&
	for who in c go; do
		bin=$BPSH && { test $who = c || bin=bpsh-go; } &&
		{ st=0; $bin 0-1 sh -c "echo x; echo y >&2" >&- 2>$who.err || st=$?; } &&
		echo $st >$who.st &&
		{ st=0; $bin 1 sh -c "echo x; echo y >&2" >&- 2>$who.err1 || st=$?; } &&
		echo $st >$who.st1 || return 1
	done &&
	test_cmp go.st c.st && is c.st 0 && test_cmp go.err c.err && is c.err "$(printf "y\ny")" &&
	test_cmp go.st1 c.st1 && is c.st1 0 && test_cmp go.err1 c.err1 && is c.err1 y
'

test_expect_success "$pass: -a on one node up, and on none: as bpsh-go" '
	test_when_finished "for n in 0 1 2 3; do echo state up >$BPROC/node/\$n/ctl; done" &&
	for n in 1 2 3; do echo state unavailable >$BPROC/node/$n/ctl || return 1; done &&
	ONE=1 both -a sh -c "echo \$BPROC_RANK \$BPROC_NODE \$BPROC_NPROCS; exit 3" && is c.st 3 && is c.out "0 0 1" &&
	ONE=1 both -a -p sh -c "echo x; kill -9 \$\$" && is c.st 255 && is c.out "  0: x" &&
	is c.err "bpsh: node 0: killed by signal 9 (KILL)" &&
	both -A true && is c.st 0 &&
	echo state unavailable >$BPROC/node/0/ctl &&
	ONE=1 both -a true && is c.st 255 && is c.err "bpsh: no nodes in \"allup\""
'

test_expect_success "$pass: TSTP stops bpsh; USR1 and TERM reach every node once, quietly" '
	for who in c go; do
		bin=$BPSH && { test $who = c || bin=bpsh-go; } &&
		rm -f up.$who &&
		{ $bin -a sh -c "trap \"echo usr1\" USR1; echo up; while :; do sleep 0.05; done" >up.$who 2>$who.err & } &&
		bp=$! &&
		wait_for "test \$(grep -c up up.$who) = 4" 20 &&
		kill -TSTP $bp && wait_for "state $bp T" 10 && kill -CONT $bp && wait_for "! state $bp T" 10 &&
		kill -USR1 $bp &&
		wait_for "test \$(grep -c usr1 up.$who) = 4" 20 &&
		kill -TERM $bp && { st=0; wait $bp || st=$?; } &&
		echo $st >$who.st && n=$(grep -c usr1 up.$who) && test "$n" = 4 &&
		! grep "^bpsh:" $who.err || return 1
	done &&
	test_cmp go.st c.st && is c.st 255
'
done

BPSH=$T/fake/bpsh
test_expect_success 'a set launch runs no bpsh-go; the forms it does not take still go to it, argv unchanged' '
	$BPSH -a echo fast >out && printf "fast\nfast\nfast\nfast\n" >expect && test_cmp expect out &&
	$BPSH 0-1 -n sh -c "echo \$BPROC_NODE" >out.0 && sort out.0 >out && printf "0\n1\n" >expect && test_cmp expect out &&
	$BPSH 0,1,0,2 echo y >out && printf "y\ny\ny\n" >expect && test_cmp expect out &&
	$BPSH -p -L 2,3 echo x >out.0 && sort out.0 >out && printf "  2: x\n  3: x\n" >expect && test_cmp expect out &&
	for args in "-s 0-1 true" "-d -a true" "-g -a true" "-u 3 -a true" "-x 0 -a true" "-t -a true" \
		"-b 4096 -a true" "-a -A true" "-an true" "3,1 true" "1,1 true" "n[0-1] true" "-1,0 true" \
		"master,0 true" "node0,1 true" "0-1 -a true" "0-1" "-a" "0-1 -s true" "2,^3 true" "allnotup true"; do
		{ st=0; $BPSH $args 2>err || st=$?; } &&
		test "$st" = 77 && echo "GO $args" >expect && test_cmp expect err || return 1
	done &&
	{ st=0; BPSH_FANOUT=0 $BPSH -a true 2>err || st=$?; } && test "$st" = 77 &&
	test_when_finished "for n in 0 1 2 3; do echo state up >$BPROC/node/\$n/ctl; done" &&
	for n in 1 2 3; do echo state unavailable >$BPROC/node/$n/ctl || return 1; done &&
	out=$($BPSH -a echo one) && test "$out" = one &&
	echo state unavailable >$BPROC/node/0/ctl &&
	{ st=0; $BPSH -a true 2>err || st=$?; } && test "$st" = 77 &&
	{ st=0; $BPSH 4,7 true 2>err || st=$?; } && test "$st" = 77
'

test_done
