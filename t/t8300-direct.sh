#!/bin/sh
# Direct streams: an attached job's output goes from its node's data port
# straight to bpsh, on a ticket the master signs for the process's owner;
# strangers and replays are turned away, and bpsh falls back to the tree.
. "$(dirname "$0")/lib.sh"

test_setup 'a 2-node cluster comes up' cluster_up 2
test_setup 'a test user exists' ensure_user bptest
test_setup 'the test peer builds' sh -c "cd '$BPROC_ROOT' && CGO_ENABLED=0 go build -o '$T/directpeer' ./t/directpeer"
DATA=$(node_addr 1):2225

# bpsh runs on the master (in_master) to reach the nodes' data ports; from
# the root namespace they are unreachable (lib.sh), like a node behind NAT.

# direct_count: how many jobs node 1's slave sent direct so far.
direct_count() { awk "/streams go direct/ { n++ } END { print n + 0 }" "$T/slave1.log"; }

test_expect_success 'bpsh output goes direct, byte-exact, binary included' '
	head -c 5000000 /dev/urandom >big &&
	before=$(direct_count) &&
	in_master bpsh 1 cat "$T/big" >out &&
	cmp big out &&
	after=$(direct_count) &&
	test "$after" -gt "$before"
'

test_expect_success 'stdout and stderr stay apart, exit status comes through' '
	before=$(direct_count) &&
	rc=0 &&
	in_master bpsh 1 sh -c "printf out1; printf err1 >&2; cat $T/big; printf out2; printf err2 >&2; exit 3" >o 2>e || rc=$? &&
	test "$rc" = 3 &&
	{ printf out1 && cat big && printf out2; } >expect && cmp expect o &&
	printf err1err2 >expect && test_cmp expect e &&
	after=$(direct_count) &&
	test "$after" -gt "$before"
'

test_expect_success 'another user cannot read proc/PID/direct' '
	pid=$(node_exec 1 "-i /bin/sleep 30") &&
	test_when_finished "echo kill KILL >$BPROC/proc/$pid/ctl" &&
	! as_user bptest cat $BPROC/proc/$pid/direct 2>err &&
	test_grep "Permission denied" err &&
	cat $BPROC/proc/$pid/direct >line &&
	test_grep "^$DATA [0-9a-f]* [0-9a-f]*\$" line
'

test_expect_success 'a ticket works once: a replay is refused; the tree then gives EOF' '
	pid=$(node_exec 1 "-i /bin/sh -c \"echo hello; exec sleep 30 >/dev/null 2>&1\"") &&
	test_when_finished "echo kill KILL >$BPROC/proc/$pid/ctl" &&
	cat $BPROC/proc/$pid/direct >ticket &&
	in_master "$T/directpeer" use ticket >out &&
	echo hello >expect && test_cmp expect out &&
	! in_master "$T/directpeer" use ticket 2>err &&
	test_grep "ticket already used" err &&
	timeout 5 cat $BPROC/proc/$pid/stdout >tree &&
	test ! -s tree
'

test_expect_success 'a stranger on the data port is refused at once' '
	in_master "$T/directpeer" stranger $DATA "GET / HTTP/1.0\n\n" >answer &&
	test_grep "refused: not a direct-stream greeting" answer &&
	junk=$(printf "%0131d" 0 | tr 0 x) &&
	in_master "$T/directpeer" stranger $DATA "bproc-direct-1\n$junk" >answer &&
	test_grep "MAC does not check" answer
'

test_expect_success 'a silent stranger is dropped after the greeting time' '
	in_master "$T/directpeer" stranger $DATA "" >answer &&
	test_grep "reading the greeting" answer &&
	ms=$(sed -n "s/ ms\$//p" answer) &&
	limit=$(slow 1500) &&
	test "$ms" -lt "$limit"
'

test_expect_success 'a direct stream from a frozen node ends with the process lost' '
	before=$(direct_count) &&
	{ in_master bpsh 1 sh -c "cat $T/big; echo started; exec sleep 300" >frozen.out 2>frozen.err & } &&
	bp=$! &&
	wait_for "grep -q started frozen.out" 10 &&
	after=$(direct_count) &&
	test "$after" -gt "$before" &&
	kill -STOP $(slave_pid 1) &&
	test_when_finished "kill -CONT $(slave_pid 1)" &&
	wait_gone $bp 20 &&
	test_grep "lost" frozen.err &&
	! grep -i "reading std" frozen.err &&
	kill -CONT $(slave_pid 1) &&
	wait_nodes_up 2
'

test_expect_success 'with the data port off bpsh falls back to the tree' '
	slave_kill 0 &&
	slave_start 0 -d -r -k "$KEY" --data-port 0 "$MASTER_ADDR" &&
	wait_nodes_up 2 &&
	pid=$(node_exec 0 "-i /bin/sleep 30") &&
	test_when_finished "echo kill KILL >$BPROC/proc/$pid/ctl" &&
	! cat $BPROC/proc/$pid/direct 2>err &&
	test_grep "No such device or address" err &&
	before=$(direct_count) &&
	in_master bpsh 0 cat "$T/big" >out0 &&
	cmp big out0 &&
	BPROC_DIRECT=0 in_master bpsh 1 cat "$T/big" >out1 &&
	cmp big out1 &&
	after=$(direct_count) &&
	test "$after" = "$before"
'

test_expect_success 'a short job never tries the data port' '
	out=$(BPSH_TRACE=1 in_master bpsh 1 echo hi 2>trace) &&
	test "$out" = hi &&
	! grep "direct" trace
'

test_expect_success 'bpsh falls back when the data port is out of its reach' '
	before=$(direct_count) &&
	bpsh 1 cat "$T/big" >out &&
	cmp big out &&
	after=$(direct_count) &&
	test "$after" = "$before"
'

test_expect_success 'with seal no the direct stream (spliced) is byte-exact too' '
	echo "seal no" >>"$CONF" &&
	master_restart &&
	head -c 20000000 /dev/urandom >big20 &&
	before=$(direct_count) &&
	in_master bpsh 1 sh -c "cat $T/big20; echo tail >&2" >out 2>err &&
	cmp big20 out &&
	echo tail >expect && test_cmp expect err &&
	after=$(direct_count) &&
	test "$after" -gt "$before"
'

test_done
