#!/bin/sh
# exec -o: the process's output and end as frames on the same open ctl
# (group/G/io's format), so a one-node launch is one file; detach stops
# the frames at a frame boundary and leaves the rest to proc/PID/stdout
# and stderr, byte for byte; bpsh's C front launches that way and hands
# bulk output to bpsh-go through detach.
. "$(dirname "$0")/lib.sh"

test_setup 'a 2-node cluster' cluster_up 2
test_setup 'a test user exists' ensure_user bptest
test_setup 'a front that finds no bpsh-go' sh -c "
	mkdir -p '$T/lone' && make -s -C '$BPROC_ROOT' bpsh-c BPSH_C='$T/lone/bpsh' BINDIR=/nonexistent"

# frames FILE OUT ERR: splits FILE's frames into OUT's and ERR's bytes;
# prints the end frame's status, if one came.
frames() {
	: >"$2" && : >"$3" &&
	while read -r node kind arg; do
		case $kind in
		out) dd bs="$arg" count=1 iflag=fullblock status=none >>"$2" || return 1 ;;
		err) dd bs="$arg" count=1 iflag=fullblock status=none >>"$3" || return 1 ;;
		end) echo "$arg" ;;
		*) fail "not a frame: $node $kind $arg" ;;
		esac
	done <"$1"
}

# direct_count: how many jobs node 1's slave sent direct so far.
direct_count() { awk "/streams go direct/ { n++ } END { print n + 0 }" "$T/slave1.log"; }

test_expect_success 'exec -o: the pid, then output and end as frames, then EOF' '
	exec 3<>$BPROC/node/1/ctl &&
	echo "exec -o /bin/sh -c \"echo hello; echo oops >&2; exit 3\"" >&3 &&
	read -r pid <&3 &&
	case "$pid" in "" | *[!0-9]*) fail "ctl said: $pid" ;; esac &&
	timeout 10 cat <&3 >got &&
	end=$(frames got out err) && test "$end" = "exit 3" &&
	echo hello >expect && test_cmp expect out &&
	echo oops >expect && test_cmp expect err &&
	tail -n 1 got >last && echo "1 end exit 3" >expect && test_cmp expect last &&
	out=$(timeout 5 cat $BPROC/proc/$pid/wait) && test "$out" = "exit 3"
'

test_expect_success 'exec -b -o: a start that fails on the node ends in a failed frame' '
	printf "#!/no/such/interpreter\n" >bad.sh && chmod +x bad.sh &&
	exec 3<>$BPROC/node/0/ctl &&
	echo "exec -b -o -n $T/bad.sh" >&3 &&
	read -r pid <&3 &&
	timeout 10 cat <&3 >got &&
	end=$(frames got out err) &&
	case "$end" in "failed 2 "*) ;; *) fail "end: $end" ;; esac &&
	test ! -s out && test ! -s err &&
	out=$(timeout 5 cat $BPROC/proc/$pid/wait) && test "$out" = "exit 127"
'

test_expect_success 'bad combinations are refused with EINVAL and their text, and nothing runs' '
	out=$(node_ctl_refused 0 "exec -o -w /usr/bin/touch $T/ran" "Invalid argument") &&
	case "$out" in "error: exec: -o and -w both say"*) ;; *) fail "ctl said: $out" ;; esac &&
	out=$(node_ctl_refused 0 "exec -b -w -o /usr/bin/touch $T/ran" "Invalid argument") &&
	out=$(node_ctl_refused 0-1 "exec -o /usr/bin/touch $T/ran" "Invalid argument") &&
	case "$out" in *"-o are for one node"*) ;; *) fail "set ctl said: $out" ;; esac &&
	out=$(node_ctl_refused 0 "detach" "Invalid argument") &&
	case "$out" in *"gives no exec -o frames"*) ;; *) fail "ctl said: $out" ;; esac &&
	test ! -e ran
'

test_expect_success 'the reader going away: the process meets EPIPE, as with proc/PID/stdout' '
	exec 3<>$BPROC/node/1/ctl &&
	echo "exec -o /bin/sh -c \"while :; do echo y; done\"" >&3 &&
	read -r pid <&3 &&
	dd bs=4k count=1 status=none <&3 >/dev/null &&
	exec 3>&- &&
	out=$(timeout 20 cat $BPROC/proc/$pid/wait) && test "$out" = "signal 13 SIGPIPE"
'

test_expect_success 'another command on the file ends the frames as a reader going away' '
	exec 3<>$BPROC/node/1/ctl &&
	echo "exec -o /bin/sh -c \"while :; do echo y; done\"" >&3 &&
	read -r pid <&3 &&
	echo "exec -n /bin/true" >&3 &&
	out=$(timeout 20 cat $BPROC/proc/$pid/wait) && test "$out" = "signal 13 SIGPIPE"
'

test_expect_success 'a user may exec -o only on a node they may run on; the job is theirs' '
	mkdir -p u && chmod 777 u &&
	out=$(as_user bptest sh -c "exec 3<>$BPROC/node/0/ctl && echo \"exec -o -c $T/u /bin/sh -c \\\"id -u; touch ran\\\"\" >&3 && read -r pid <&3 && cat <&3") &&
	echo "$out" >got && end=$(frames got out err) && test "$end" = "exit 0" &&
	uid=$(id -u bptest) && ran_as=$(cat out) && test "$ran_as" = "$uid" &&
	test -e u/ran && rm u/ran &&
	test_when_finished "chmod 0111 $BPROC/node/0" &&
	chmod 0110 $BPROC/node/0 &&
	! as_user bptest bash -c "echo \"exec -o -c $T/u /usr/bin/touch ran\" >$BPROC/node/0/ctl" 2>err &&
	test_grep "Permission denied" err &&
	test ! -e u/ran
'

test_expect_success 'detach: frames, then the rest on proc/PID/stdout and stderr, byte for byte, then the end' '
	seq 1 500000 >want.out && seq 7 300000 >want.err &&
	exec 3<>$BPROC/node/1/ctl &&
	echo "exec -o /bin/sh -c \"seq 1 500000; seq 7 300000 >&2; exit 6\"" >&3 &&
	read -r pid <&3 &&
	dd bs=64k count=1 status=none <&3 >got &&
	echo detach >&3 &&
	timeout 20 cat <&3 >>got &&
	{ timeout 20 cat $BPROC/proc/$pid/stderr >rest.err & } && ep=$! &&
	timeout 20 cat $BPROC/proc/$pid/stdout >rest.out &&
	wait $ep &&
	read -r end <&3 && test "$end" = "exit 6" &&
	end=$(frames got out err) && test "$end" = "" &&
	test -s rest.out &&
	cat out rest.out >all.out && cmp want.out all.out &&
	cat err rest.err >all.err && cmp want.err all.err
'

test_expect_success 'bpsh: bulk stdout and stderr through the hand-off, byte-exact, then direct' '
	head -c 3000000 /dev/urandom >big && head -c 2500000 /dev/urandom >big2 &&
	before=$(direct_count) &&
	{ st=0; in_master bpsh 1 sh -c "cat $T/big; cat $T/big2 >&2; cat $T/big; exit 5" >out 2>err || st=$?; } &&
	test "$st" = 5 && cat big big >expect && cmp expect out && cmp big2 err &&
	after=$(direct_count) && test "$after" -gt "$before"
'

test_expect_success 'bpsh without bpsh-go or with BPROC_DIRECT=0: the front reads the streams after detach, byte-exact' '
	before=$(direct_count) &&
	{ st=0; in_master $T/lone/bpsh 1 sh -c "cat $T/big; cat $T/big2 >&2; cat $T/big; exit 5" >out 2>err || st=$?; } &&
	test "$st" = 5 && cmp expect out && cmp big2 err &&
	seq 1 300000 >in &&
	in_master $T/lone/bpsh 1 sh -c "cat $T/big; cat" <in >out && cat big in >expect && cmp expect out &&
	BPROC_DIRECT=0 in_master bpsh 1 sh -c "cat $T/big; cat $T/big2 >&2" >out 2>err &&
	cmp big out && cmp big2 err &&
	after=$(direct_count) && test "$after" = "$before"
'

test_expect_success 'bpsh: a failed start with a long text is worded as bpsh-go words it' '
	d=$T/$(printf "%0200d" 0)/$(printf "%0200d" 1) && mkdir -p "$d" &&
	printf "#!/no/such/interpreter\n" >"$d/bad.sh" && chmod +x "$d/bad.sh" &&
	{ st=0; bpsh 1 "$d/bad.sh" 2>c.err || st=$?; } && test "$st" = 255 &&
	{ st=0; bpsh-go 1 "$d/bad.sh" 2>go.err || st=$?; } && test "$st" = 255 &&
	test_cmp go.err c.err && test_grep "exec $d/bad.sh: " c.err
'

test_done
