#!/bin/sh
# A single launch in few steps: exec -b answers the pid before the node has
# forked (a start that fails there ends the process: wait says exit 127),
# exec -w gives the process's end on the same open ctl file, and bpsh uses
# both, keeping its messages and exit statuses.
. "$(dirname "$0")/lib.sh"

test_setup 'a 2-node cluster comes up' cluster_up 2

# A file the master takes as a program but no node can execute: no #! line.
printf 'echo not a program\n' >"$T/noexec" && chmod 755 "$T/noexec"

test_expect_success 'exec -b answers a pid that runs: status, wait, output as for exec' '
	exec 3<>$BPROC/node/1/ctl &&
	echo "exec -b /bin/sh -c \"echo out; exit 4\"" >&3 &&
	read -r pid <&3 &&
	case "$pid" in "" | *[!0-9]*) fail "ctl said: $pid" ;; esac &&
	out=$(timeout 5 cat $BPROC/proc/$pid/wait) && test "$out" = "exit 4" &&
	out=$(timeout 5 cat $BPROC/proc/$pid/stdout) && test "$out" = out
'

test_expect_success 'exec -w: the same open ctl gives the pid, then the end' '
	exec 3<>$BPROC/node/0/ctl &&
	echo "exec -w /bin/sh -c \"exit 3\"" >&3 &&
	read -r pid <&3 &&
	case "$pid" in "" | *[!0-9]*) fail "ctl said: $pid" ;; esac &&
	read -r end <&3 &&
	test "$end" = "exit 3" &&
	out=$(timeout 5 cat $BPROC/proc/$pid/wait) && test "$out" = "exit 3"
'

test_expect_success 'exec -w: the second read waits for the end (a kill, here)' '
	exec 3<>$BPROC/node/1/ctl &&
	echo "exec -b -w /bin/sleep 30" >&3 &&
	read -r pid <&3 &&
	{ timeout 10 cat <&3 >end & } &&
	reader=$! &&
	wait_for "grep -q \"^$pid 1 running \" $BPROC/proc/$pid/status" 10 &&
	! test -s end &&
	echo kill >$BPROC/proc/$pid/ctl &&
	wait $reader &&
	out=$(cat end) && test "$out" = "signal 15 SIGTERM"
'

test_expect_success 'a shell that reads ahead still reads the pid and the end apart' '
	exec 3<>$BPROC/node/0/ctl &&
	echo "exec -w /bin/true" >&3 &&
	pid=$(node_exec 0 "/bin/true") &&
	timeout 5 cat $BPROC/proc/$pid/wait >/dev/null &&
	read -r first <&3 &&
	read -r second <&3 &&
	case "$first" in "" | *[!0-9]*) fail "first line: $first" ;; esac &&
	test "$second" = "exit 0"
'

test_expect_success 'exec -b -w of what the node cannot execute: failed ERRNO TEXT on ctl, exit 127 on wait' '
	exec 3<>$BPROC/node/1/ctl &&
	echo "exec -b -w $T/noexec" >&3 &&
	read -r pid <&3 &&
	case "$pid" in "" | *[!0-9]*) fail "ctl said: $pid" ;; esac &&
	read -r word errno text <&3 &&
	test "$word $errno" = "failed 8" &&
	case "$text" in *"$T/noexec"*"exec format error"*) ;; *) fail "text: $text" ;; esac &&
	out=$(timeout 5 cat $BPROC/proc/$pid/wait) && test "$out" = "exit 127" &&
	out=$(timeout 5 cat $BPROC/proc/$pid/stdout) && test -z "$out" &&
	read -r p node state rest <$BPROC/proc/$pid/status &&
	test "$state" = exited
'

test_expect_success 'plain exec of the same still fails the write with the start error' '
	text=$(node_ctl_refused 1 "exec $T/noexec" "format error") &&
	case "$text" in "error: exec $T/noexec"*) ;; *) fail "ctl answered: $text" ;; esac
'

test_expect_success 'bpsh: a start that fails on the node is the same message and 255' '
	{ st=0; bpsh 1 "$T/noexec" >out 2>err || st=$?; } &&
	test "$st" = 255 &&
	out=$(cat err) && test "$out" = "bpsh: node 1: exec $T/noexec: Exec format error" &&
	! test -s out
'

test_expect_success 'bpsh: output, exit status and stdin of one launch' '
	out=$(bpsh 1 sh -c "echo \$BPROC_NODE; echo e >&2; exit 5" 2>err) || st=$? &&
	test "$st" = 5 &&
	test "$out" = 1 &&
	out=$(cat err) && test "$out" = e &&
	out=$(echo in | bpsh 0 cat) && test "$out" = in
'

test_expect_success 'bpsh: output longer than the first read buffer arrives whole' '
	head -c 3000000 /dev/urandom >big &&
	bpsh 0 cat "$T/big" >got &&
	cmp big got
'

test_done
