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
test_expect_success \"bad\" \"echo the-evidence; false; echo not-reached\"
test_done" &&
	test "$(cat mixed.rc)" = 1 &&
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
	test "$(cat codes.rc)" = 1 &&
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
	test "$(cat hang.rc)" = 1 &&
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
	test "$(cat setupfail.rc)" = 1 &&
	grep "^not ok 2 - broken" setupfail.out &&
	! grep "not reached" setupfail.out &&
	id=$(cat id) &&
	! test -e "$(cat scratch)" &&
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
		echo "test_expect_success hangs \"touch \$OUTER/intr.ready; sleep 300\""
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
	! test -e "$(cat intr.scratch)" &&
	! ip netns list | grep "^bp${id}[hmn]" &&
	! pid_alive $(cat intr.daemon)
'

test_expect_success 'wait_for polls until a condition holds, and says what it waited for' '
	(sleep 0.3; touch later) &
	wait_for "test -e later" 5 &&
	! wait_for "test -e never" 1 2>err &&
	grep "waiting for: test -e never" err
'

test_setup 'a 3-node network comes up' net_up 3

test_expect_success 'every host has its own hostname' '
	test "$(in_master hostname)" = master &&
	test "$(in_node 0 hostname)" = node0 &&
	test "$(in_node 2 hostname)" = node2 &&
	test "$(hostname)" != master
'

test_expect_success 'each node has a private /tmp that persists across calls' '
	in_node 0 sh -c "echo zero >/tmp/mine" &&
	test "$(in_node 0 cat /tmp/mine)" = zero &&
	! in_node 1 test -e /tmp/mine &&
	! test -e /tmp/mine &&
	echo master >/tmp/bproc-harness-$$ &&
	! in_node 1 test -e /tmp/bproc-harness-$$ &&
	rm -f /tmp/bproc-harness-$$
'

test_expect_success 'nodes see the scratch directory and the binaries' '
	echo shared >visible &&
	test "$(in_node 1 cat $T/visible)" = shared
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
