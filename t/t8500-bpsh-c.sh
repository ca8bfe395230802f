#!/bin/sh
# bpsh's C front (libbproc/bpsh): the single-node launch done in C, the
# same as the Go bpsh (bpsh-go) byte for byte, in status and message;
# everything else handed to bpsh-go before anything ran; bulk output
# handed over to it running, which then goes direct. Each case runs with
# bin/bpsh and with a copy built under AddressSanitizer.
. "$(dirname "$0")/lib.sh"

test_setup 'a 2-node cluster with a third node down' eval 'CLUSTER_RANGE=3 cluster_up 2'
test_setup 'the front builds under ASan, and a copy beside a fake bpsh-go' bpsh_front_copies

# both CMD...: runs CMD with the front ($BPSH, set per pass) and with
# bpsh-go, each's stdout, stderr and status in c.* and go.*, and
# compares them.
both() {
	{ st=0; $BPSH "$@" >c.out 2>c.err || st=$?; } &&
	echo $st >c.st &&
	{ st=0; bpsh-go "$@" >go.out 2>go.err || st=$?; } &&
	echo $st >go.st &&
	test_cmp go.st c.st && test_cmp go.out c.out && test_cmp go.err c.err
}

# is FILE TEXT: FILE holds TEXT (one line, or none).
is() { content=$(cat "$1") && test "$content" = "$2"; }

# direct_count: how many jobs node 1's slave sent direct so far.
direct_count() { awk "/streams go direct/ { n++ } END { print n + 0 }" "$T/slave1.log"; }

for BPSH in "$BPROC_ROOT/bin/bpsh" "$T/asan/bpsh"; do
pass=${BPSH#$T/} && pass=${pass%/bpsh} && pass=${pass##*/}

test_expect_success "$pass: exit statuses, stdout and stderr apart, as bpsh-go" '
	both 1 true && is c.st 0 &&
	both 1 sh -c "echo out; echo err >&2; exit 3" && test_grep "^out\$" c.out &&
	test_grep "^err\$" c.err && is c.st 3 &&
	both 0 sh -c "printf %s \"\$BPROC_RANK \$BPROC_NODE \$BPROC_NPROCS \$PWD\"" &&
	is c.out "0 0 1 $T"
'

test_expect_success "$pass: argv0, quoting, PATH lookup and a relative path, as bpsh-go" '
	both 1 printf "[%s]\n" "a b" "it'"'"'s" "" "x\"y" &&
	printf "#!/bin/sh\necho rel \"\$@\"\n" >rel.sh && chmod +x rel.sh &&
	both 1 ./rel.sh one && test_grep "^rel one\$" c.out &&
	both 1 ../$(basename $T)/./rel.sh two
'

test_expect_success "$pass: stdin from a file, a pipe, -I; -n and -N read none" '
	seq 1 20000 >in &&
	{ $BPSH 1 cat <in >out; } && test_cmp in out &&
	seq 1 20000 | $BPSH 1 cat >out && test_cmp in out &&
	$BPSH 1 -I in cat >out && test_cmp in out &&
	$BPSH --stdin=in 1 wc -l >out && is out 20000 &&
	out=$(seq 3 | $BPSH 1 -n cat) && test "$out" = "" &&
	out=$(seq 3 | $BPSH -N 1 cat) && test "$out" = "" &&
	both 1 -N sh -c "echo gone; exit 4" && is c.st 4 && test ! -s c.out
'

test_expect_success "$pass: -O and -E write files, messages stay on stderr" '
	{ st=0; $BPSH 1 -O o -E e sh -c "echo so; echo se >&2; kill -9 \$\$" 2>msgs || st=$?; } &&
	test "$st" = 255 && is o so && is e se &&
	test_grep "^bpsh: node 1: killed by signal 9 (KILL)\$" msgs &&
	both 1 --stdout=o2 --error=e2 sh -c "echo x; echo y >&2" && is o2 x
'

test_expect_success "$pass: a killed job: 255 and the message; forwarded signals are quiet" '
	both 1 sh -c "kill -TERM \$\$" && is c.st 255 &&
	test_grep "^bpsh: node 1: killed by signal 15 (TERM)\$" c.err &&
	rm -f up && { $BPSH 1 sh -c "echo up; exec sleep 30" >up 2>err & } && bp=$! &&
	wait_for "grep -q up up" 10 &&
	kill -TERM $bp && { st=0; wait $bp || st=$?; } &&
	test "$st" = 255 && test ! -s err
'

test_expect_success "$pass: a broken stdout stops the job quietly, as bpsh-go" '
	{ $BPSH 1 sh -c "yes; echo never >&2" | head -1 >h; } 2>err &&
	is h y && test ! -s err &&
	both 1 sh -c "exec 1>&-; echo err >&2; exit 0"
'

test_expect_success "$pass: errors are bpsh-go's: no such node, a down node, no program" '
	both 7 true && is c.st 255 && test -s c.err &&
	both 2 true && is c.st 255 && test_grep "node 2" c.err &&
	both 1 /no/such/program && is c.st 255 &&
	both 1 no-such-program-anywhere && test -s c.err &&
	both 1 -I /no/such/file cat && test -s c.err &&
	printf "#!/no/such/interpreter\n" >bad.sh && chmod +x bad.sh &&
	both 1 ./bad.sh && is c.st 255 && test_grep "^bpsh: node 1: exec $T/bad.sh: " c.err &&
	both 1 && is c.st 1
'

test_expect_success "$pass: bulk output goes direct through the hand-off, byte-exact" '
	head -c 8000000 /dev/urandom >big &&
	before=$(direct_count) &&
	{ st=0; in_master $BPSH 1 sh -c "printf e1 >&2; cat $T/big; printf e2 >&2; exit 5" >out 2>err || st=$?; } &&
	test "$st" = 5 && cmp big out && is err e1e2 &&
	after=$(direct_count) && test "$after" -gt "$before" &&
	seq 1 300000 >in && before=$after &&
	in_master $BPSH 1 sh -c "cat $T/big; cat" <in >out && { cat big in; } >expect && cmp expect out &&
	after=$(direct_count) && test "$after" -gt "$before" &&
	BPROC_DIRECT=0 in_master $BPSH 1 cat big >out && cmp big out &&
	after2=$(direct_count) && test "$after2" = "$after"
'

# in_master is a function: $! would be its subshell; nsenter execs bpsh.
test_expect_success "$pass: after the hand-off bpsh-go is named bpsh and forwards signals, USR1 included" '
	before=$(direct_count) &&
	rm -f ready.err &&
	{ nsenter --net="/run/netns/$NS_MASTER" -- $BPSH 1 sh -c "trap \"echo got >&2; exit 7\" USR1; cat $T/big; echo ready >&2; while :; do sleep 0.1; done" >out 2>ready.err & } &&
	bp=$! &&
	wait_for "grep -q ready ready.err" 30 &&
	wait_for "test \$(direct_count) -gt $before" 10 &&
	comm=$(cat /proc/$bp/comm) && test "$comm" = bpsh &&
	kill -USR1 $bp && { st=0; wait $bp || st=$?; } &&
	test "$st" = 7 && test_grep "^got\$" ready.err && cmp big out
'
done

BPSH=$T/fake/bpsh
test_expect_success 'the fast path runs no bpsh-go; every other form goes to it, argv unchanged' '
	out=$($BPSH 1 echo fast) && test "$out" = fast &&
	out=$($BPSH -n 1 -O /dev/stdout echo fast) && test "$out" = fast &&
	for args in "-p 1 true" "1 -L true" "-s 1 true" "-d 1 true" \
		"-g 1 true" "-u 3 1 true" "-x 0 1 true" "-l root 1 true" "-t 1 true" "-b 4096 1 true" \
		"--key k 1 true" "-h" "-V" "-1 true" "master true" "n1 true" "01 true" "-nN 1 true" \
		"-n -I in 1 true" "-- 1 true" "1"; do
		{ st=0; $BPSH $args 2>err || st=$?; } &&
		test "$st" = 77 && echo "GO $args" >expect && test_cmp expect err || return 1
	done &&
	{ st=0; BPSH_TIMEOUT=5 $BPSH 1 true 2>err || st=$?; } && test "$st" = 77 &&
	{ st=0; BPSH_TRACE=1 $BPSH 1 true 2>err || st=$?; } && test "$st" = 77 &&
	{ st=0; BPROC_MOUNT=$T/nothing BPROC_MASTER=10.77.0.1 $BPSH 1 true 2>err || st=$?; } && test "$st" = 77
'

test_expect_success 'bpsh-go refuses a malformed hand-off' '
	{ st=0; BPSH_ATTACH="1 2 3" bpsh-go 1 true 2>err || st=$?; } &&
	test "$st" = 255 && test_grep "BPSH_ATTACH: want 13 fields" err &&
	{ st=0; BPSH_ATTACH="1 2 99 -1 -1 -1 -1 -1 1 2 0 0 /bin/true" bpsh-go 1 true 2>err || st=$?; } &&
	test "$st" = 255 && test_grep "descriptor 99 is not open" err
'

test_done
