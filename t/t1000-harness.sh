#!/bin/sh
# The harness itself: test bookkeeping, and the virtual network the cluster
# tests stand on (hostnames, private /tmp, TCP and multicast between hosts).
. "$(dirname "$0")/lib.sh"

# run_sub_test NAME BODY: a script of its own using lib.sh, run to completion.
run_sub_test() {
	{
		echo "OUTER='$T'"
		echo ". '$TEST_DIRECTORY/lib.sh'"
		echo "$2"
	} >"$T/$1.sh"
	(cd "$T" && BPROC_TEST_ID= bash "$1.sh" >"$1.out" 2>&1; echo $? >"$1.rc")
}

test_expect_success 'a passing and a failing test are counted' '
	run_sub_test mixed "
test_expect_success \"good\" \"true\"
test_expect_success \"bad\" \"echo the-evidence && false && echo not-reached\"
test_done" &&
	rc=$(cat mixed.rc) && test "$rc" = 1 &&
	grep "^ok 1 - good\$" mixed.out &&
	grep "^not ok 2 - bad\$" mixed.out &&
	grep "the-evidence" mixed.out &&
	! grep "^#	not-reached" mixed.out &&
	grep "^# 1 passed, 1 failed\$" mixed.out
'

test_expect_success 'test_expect_code, prereqs and skips' '
	run_sub_test codes "
test_expect_code 7 \"seven\" \"exit 7\"
test_expect_code 7 \"not seven\" \"exit 3\"
test_expect_success NOPE \"needs NOPE\" \"false\"
test_set_prereq YES
test_expect_success YES \"needs YES\" \"true\"
test_done" &&
	rc=$(cat codes.rc) && test "$rc" = 1 &&
	grep "^ok 1 - seven\$" codes.out &&
	grep "^not ok 2 - not seven\$" codes.out &&
	grep "^ok 3 # skip" codes.out &&
	grep "^ok 4 - needs YES\$" codes.out &&
	grep "^# 2 passed, 1 failed, 1 skipped\$" codes.out
'

test_expect_success 'a hanging test is cut off by the time limit' '
	run_sub_test hang "
BPROC_TEST_TIMEOUT=1
test_expect_success \"hangs\" \"sleep 600\"
test_done" &&
	rc=$(cat hang.rc) && test "$rc" = 1 &&
	grep "^not ok 1 - hangs" hang.out &&
	grep "timed out after 1s" hang.out
'

test_expect_success 'the scratch directory and namespaces go away, even after a failed setup' '
	run_sub_test setupfail "
echo \$T >\$OUTER/scratch
echo \$BP_ID >\$OUTER/id
test_setup \"network\" net_up 1
test_setup \"broken\" false
test_expect_success \"not reached\" true
test_done" &&
	rc=$(cat setupfail.rc) && test "$rc" = 1 &&
	grep "^not ok 2 - broken" setupfail.out &&
	! grep "not reached" setupfail.out &&
	id=$(cat id) &&
	scratch=$(cat scratch) &&
	! test -e "$scratch" &&
	! ip netns list | grep "^bp${id}[hmn]"
'

test_expect_success 'Ctrl-C in the middle of a test tears everything down' '
	{
		echo "OUTER=$T"
		echo ". $TEST_DIRECTORY/lib.sh"
		echo "echo \$T >\$OUTER/intr.scratch; echo \$BP_ID >\$OUTER/intr.id"
		echo "net_up 1"
		echo "bg_node 0 \$T/sleeper.log sleep 300"
		echo "bg_pid node0-sleep >\$OUTER/intr.daemon"
		echo "test_expect_success hangs \"touch \$OUTER/intr.ready && sleep 300\""
		echo "test_done"
	} >intr.sh &&
	{
		# SIGINT back to its default: a background job of a script starts
		# with it ignored, and bash could not trap it.
		BPROC_TEST_ID= perl -e "\$SIG{INT} = \"DEFAULT\"; exec @ARGV or die" \
			bash intr.sh >intr.out 2>&1 &
	} &&
	p=$! &&
	wait_for "test -e intr.ready" 10 &&
	kill -INT $p &&
	wait_gone $p 10 &&
	cat intr.out &&
	id=$(cat intr.id) &&
	scratch=$(cat intr.scratch) &&
	daemon=$(cat intr.daemon) &&
	! test -e "$scratch" &&
	! ip netns list | grep "^bp${id}[hmn]" &&
	! pid_alive $daemon
'

test_expect_success 'wait_for polls until a condition holds, and says what it waited for' '
	{ (sleep 0.3 && touch later) & } &&
	wait_for "test -e later" 5 &&
	! wait_for "test -e never" 1 2>err &&
	grep "waiting for: test -e never" err
'

# The bodies of the sub-tests below are in files (sub.N), to keep the quoting
# readable: sub_script NAME N... writes NAME.sh running each sub.N as a test
# called "tN".
sub_script() {
	local name=$1 n
	shift
	{
		echo "OUTER='$T'"
		echo ". '$TEST_DIRECTORY/lib.sh'"
		for n in "$@"; do
			printf 'test_expect_success t%s "$(cat "$OUTER/sub.%s")"\n' "$n" "$n"
		done
		echo "test_done"
	} >"$T/$name.sh" &&
	(cd "$T" && BPROC_TEST_ID= bash "$name.sh" >"$name.out" 2>&1; echo $? >"$name.rc")
}

test_expect_success 'a failure inside a loop fails the test, with fail or with return 1' '
	cat >sub.1 <<-\EOF &&
	for i in 0 1 2; do test $i = 2 || fail "i=$i"; done && true
	EOF
	cat >sub.2 <<-\EOF &&
	for i in 0 1 2; do test $i = 2 || return 1; done && true
	EOF
	cat >sub.3 <<-\EOF &&
	for i in 0 1 2; do
		for j in a b; do
			test $i != 1 || return 1
		done || return 1
	done && true
	EOF
	cat >sub.4 <<-\EOF &&
	for i in 0 1 2; do test $i -le 2 || return 1; done && true
	EOF
	sub_script loops 1 2 3 4 &&
	rc=$(cat loops.rc) && test "$rc" = 1 &&
	grep "^not ok 1 - t1\$" loops.out &&
	grep "FAIL: i=0" loops.out &&
	grep "^not ok 2 - t2\$" loops.out &&
	grep "^not ok 3 - t3\$" loops.out &&
	grep "^ok 4 - t4\$" loops.out &&
	grep "^# 1 passed, 3 failed\$" loops.out
'

test_expect_success 'fail fails the test from $(...), a pipeline, a helper, a setup' '
	cat >sub.1 <<-\EOF &&
	x=$(fail in-a-substitution; echo ok) && test "$x" = ok
	EOF
	cat >sub.2 <<-\EOF &&
	echo x | { fail in-a-pipeline; cat; } >/dev/null && true
	EOF
	cat >sub.3 <<-\EOF &&
	helper() { fail in-a-helper; return 0; } && helper
	EOF
	cat >sub.4 <<-\EOF &&
	(fail in-a-subshell) || true
	EOF
	sub_script fails 1 2 3 4 &&
	grep "^# 0 passed, 4 failed\$" fails.out &&
	for w in substitution pipeline helper subshell; do
		grep "FAIL: in-a-$w" fails.out || return 1
	done &&
	run_sub_test setupfails "
check() { fail from-the-setup; return 0; }
test_setup \"a setup calling fail\" check
test_expect_success \"not reached\" true
test_done" &&
	grep "^not ok 1 - a setup calling fail" setupfails.out &&
	! grep "not reached" setupfails.out
'

test_expect_success 'a broken &&-chain is refused, and nothing of it runs' '
	printf "touch ran1 &&\ntrue\ntouch ran2 && touch ran3" >sub.1 &&
	printf "true\nfor f in \$(touch ran4); do :; done" >sub.2 &&
	printf "true\n(touch ran5)" >sub.3 &&
	printf "true\ntouch ran6 | touch ran7" >sub.4 &&
	printf "true\nx=\$(touch ran8)" >sub.5 &&
	printf "true\ncase \$(touch ran9) in *) ;; esac" >sub.6 &&
	printf "{ touch ran10 & }\ntouch ran11" >sub.7 &&
	printf "touch ran12 &&\nfor i in 1 2; do touch ran13; done\ntouch ran14" >sub.8 &&
	printf "touch ran15 && touch ran16 &\nsleep 0.5" >sub.9 &&
	printf "cat >ran17 <<EOF &&\nno end marker\nEOF2\ntouch ran18" >sub.10 &&
	cat >sub.11 <<-\EOF &&
	touch ran19 && echo "unbalanced
	EOF
	printf "st=0 && touch ran20 || st=\$? && touch ran21\ntouch ran22" >sub.12 &&
	printf "true || { touch ran23; touch ran24; }\ntouch ran25" >sub.13 &&
	sub_script chains 1 2 3 4 5 6 7 8 9 10 11 12 13 &&
	cat chains.out &&
	grep "^# 0 passed, 13 failed\$" chains.out &&
	n=$(grep -c "chain lint: broken &&-chain" chains.out) && test "$n" = 11 &&
	n=$(grep -c "chain lint: the body never reached its end" chains.out) && test "$n" = 2 &&
	grep "^#		touch ran2\$" chains.out &&
	n=$(grep -c "refused, not run" chains.out) && test "$n" = 13 &&
	ls >files &&
	! grep "^ran" files
'

test_expect_success 'a chained body passes the chain lint: &&, loops, { cmd & }, here-documents' '
	cat >sub.1 <<-\EOF &&
	x=1 &&
	for i in 1 2; do
		echo $i >>list || return 1
	done &&
	{ sleep 0.1 & } &&
	wait $! &&
	cat >doc <<-END &&
		here $x
	END
	test_when_finished "rm -f list doc" &&
	grep "here 1" doc &&
	if test -s list; then :; else false; fi &&
	case $x in 1) ;; *) false ;; esac &&
	! false &&
	f() { return 0; } && f &&
	st=0 && sh -c "exit 3" || st=$? &&
	# a comment
	test $st = 3 &&
	true || fail "an alternative" &&
	true || { echo why; false; } &&
	true || (echo why; false) &&
	echo "a || b; c" | grep -q "b; c"
	EOF
	sub_script chained 1 &&
	cat chained.out &&
	grep "^ok 1 - t1\$" chained.out
'

test_expect_success 'a test of a command substitution is caught before it runs: its exit status would be lost' '
	cat >sub.1 <<-\EOF &&
	test "$(touch ran-t1; echo x)" = x
	EOF
	cat >sub.2 <<-\EOF &&
	[ $(false) = "" ]
	EOF
	cat >sub.3 <<-\EOF &&
	[[ `false` = "" ]]
	EOF
	cat >sub.4 <<-\EOF &&
	for i in 1; do ! test "$(false)" = 1 || return 1; done
	EOF
	cat >sub.5 <<-\EOF &&
	out=$(echo x) && test "$out" = x &&
	test $((1 + 2)) = 3 &&
	test "\$(" = "\$(" &&
	wait_for "test \$(echo 1) = 1" 1 &&
	sh -c "test \"\$(hostname)\" = \"\$(hostname)\"" &&
	check() { test "$(echo y)" = y; } && check
	EOF
	sub_script discards 1 2 3 4 5 &&
	cat discards.out &&
	grep "^# 1 passed, 4 failed\$" discards.out &&
	grep "^ok 5 - t5\$" discards.out &&
	n=$(grep -c "the exit status of the command substitution is thrown away" discards.out) &&
	test "$n" = 4 &&
	grep "^#		test \"\$(touch ran-t1; echo x)\" = x\$" discards.out &&
	! test -e ran-t1
'

test_expect_success 'BPROC_TEST_SLOW stretches wall-clock limits' '
	slow_was=$BPROC_TEST_SLOW &&
	test_when_finished "BPROC_TEST_SLOW=$slow_was" &&
	BPROC_TEST_SLOW=3 &&
	within_ms 299 100 &&
	! within_ms 301 100 2>err &&
	grep "took 301 ms, more than 100 ms x BPROC_TEST_SLOW=3" err &&
	n=$(slow 5) && test "$n" = 15 &&
	BPROC_TEST_SLOW=1 &&
	! within_ms 101 100 2>/dev/null
'

test_expect_success 't/run counts a script whose status or plan disagrees with its summary' '
	mkdir runner &&
	cp "$TEST_DIRECTORY/run" runner/run &&
	cat >runner/t1-good.sh <<-\EOF &&
	echo 1..1 && echo "# 1 passed, 0 failed" && exit 0
	EOF
	cat >runner/t2-status.sh <<-\EOF &&
	echo 1..1 && echo "# 1 passed, 0 failed" && exit 3
	EOF
	cat >runner/t3-plan.sh <<-\EOF &&
	echo 1..3 && echo "# 1 passed, 0 failed"
	EOF
	echo "echo 1..1" >runner/t4-nosummary.sh &&
	sh runner/run t1-good.sh >good.out &&
	grep "^1 passed, 0 failed\$" good.out &&
	! sh runner/run t1-good.sh t2-status.sh t3-plan.sh t4-nosummary.sh >all.out &&
	cat all.out &&
	grep "t2-status.sh: exit status 3 after a summary without failures" all.out &&
	grep "t3-plan.sh: the summary .* does not add up to the plan (1..3)" all.out &&
	grep "t4-nosummary.sh: ended without a summary" all.out &&
	grep "^failed scripts: t2-status.sh t3-plan.sh t4-nosummary.sh\$" all.out &&
	grep "^3 passed, 3 failed\$" all.out
'

test_setup 'a 3-node network comes up' net_up 3

test_expect_success 'every host has its own hostname' '
	h=$(in_master hostname) && test "$h" = master &&
	h=$(in_node 0 hostname) && test "$h" = node0 &&
	h=$(in_node 2 hostname) && test "$h" = node2 &&
	h=$(hostname) && test "$h" != master
'

test_expect_success 'each node has a private /tmp that persists across calls' '
	in_node 0 sh -c "echo zero >/tmp/mine" &&
	out=$(in_node 0 cat /tmp/mine) && test "$out" = zero &&
	! in_node 1 test -e /tmp/mine &&
	! test -e /tmp/mine &&
	echo master >/tmp/bproc-harness-$$ &&
	! in_node 1 test -e /tmp/bproc-harness-$$ &&
	rm -f /tmp/bproc-harness-$$
'

test_expect_success 'nodes see the scratch directory and the binaries' '
	echo shared >visible &&
	out=$(in_node 1 cat $T/visible) && test "$out" = shared
'

test_expect_success 'addresses are set on eth0' '
	in_master ip -4 addr show dev eth0 | grep "inet 10.77.0.1/24" &&
	in_node 2 ip -4 addr show dev eth0 | grep "inet 10.77.0.12/24" &&
	in_node 0 ip route show | grep "^224.0.0.0/4 dev eth0"
'

# A one-connection TCP echo server on node 1 port 7000.
cat >"$T/echo.py" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(8)
open(sys.argv[3], "w").close()  # ready
while True:
    c, _ = s.accept()
    data = c.recv(1024)
    c.sendall(b"echo " + data)
    c.close()
EOF

test_expect_success 'TCP reaches a node from the master and from another node' '
	bg_node 1 "$T/echo.log" python3 "$T/echo.py" 10.77.0.11 7000 "$T/echo.ready" &&
	wait_for "test -e $T/echo.ready" 10 &&
	out=$(in_master bash -c "exec 3<>/dev/tcp/10.77.0.11/7000; echo from-master >&3; cat <&3") &&
	test "$out" = "echo from-master" &&
	out=$(in_node 2 bash -c "exec 3<>/dev/tcp/10.77.0.11/7000; echo from-node2 >&3; cat <&3") &&
	test "$out" = "echo from-node2"
'

cat >"$T/mrecv.py" <<'EOF'
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", 5555))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             struct.pack("4s4s", socket.inet_aton("239.77.0.1"), socket.inet_aton(sys.argv[1])))
open(sys.argv[2], "w").close()
s.settimeout(10)
data, addr = s.recvfrom(100)
print(data.decode(), addr[0])
EOF

test_expect_success 'multicast from the master reaches every node' '
	for i in 0 1 2; do
		bg_node $i "$T/mrecv$i.log" python3 "$T/mrecv.py" $(node_addr $i) "$T/mrecv$i.ready" || return 1
	done &&
	wait_for "test -e $T/mrecv0.ready -a -e $T/mrecv1.ready -a -e $T/mrecv2.ready" 10 &&
	in_master python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
for i in range(3):  # datagrams may be dropped; each receiver takes one
    s.sendto(b\"hello\", (\"239.77.0.1\", 5555))" &&
	for i in 0 1 2; do
		wait_for "grep -q \"hello 10.77.0.1\" $T/mrecv$i.log" 5 || return 1
	done
'

test_expect_success 'net_down removes the namespaces and the daemons in them' '
	p=$(ip netns pids $(ns_node 1)) && test -n "$p" && pid_alive $p &&
	net_down &&
	! ip netns list | grep "^bp${BP_ID}[hmn]" &&
	wait_gone $p 5
'

test_done
