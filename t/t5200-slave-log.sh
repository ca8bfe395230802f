#!/bin/sh
# bpslave's log: structured as bpmaster's (log/slog key=value text), a
# level and a time on every line, master= and, once registered, node= as
# fields; under systemd's journal (JOURNAL_STREAM) no time of its own; -v
# adds the message traces at DEBUG.
. "$(dirname "$0")/lib.sh"

test_setup 'a 1-node cluster comes up' cluster_up 1

test_expect_success 'the log has a time and a level on every line, master= and node= as fields' '
	wait_for "grep -q \"registered as node 0\" $T/slave0.log" &&
	cat $T/slave0.log &&
	test_grep "^time=[^ ]* level=INFO msg=\"connected to $MASTER_ADDR:[0-9]*\" master=$MASTER_ADDR:[0-9]*\$" $T/slave0.log &&
	test_grep "^time=[^ ]* level=INFO msg=\"registered as node 0\" master=$MASTER_ADDR:[0-9]* node=0\$" $T/slave0.log &&
	! grep -v "^time=[^ ]* level=" $T/slave0.log &&
	! grep "level=DEBUG" $T/slave0.log
'

test_expect_success 'under the journal (JOURNAL_STREAM) no time; -v logs the traces at DEBUG with node=' '
	slave_kill 0 &&
	wait_node_state 0 down 10 &&
	: >$T/slave0.log &&
	bg_node 0 $T/slave0.log env JOURNAL_STREAM=8:4242 bpslave -d -r -v -k "$KEY" "$MASTER_ADDR" &&
	test_when_finished "bg_kill node0-env" &&
	wait_node_state 0 up 10 &&
	out=$(bpsh 0 echo hello) &&
	test "$out" = hello &&
	wait_for "grep -q \"^level=DEBUG msg=.*start.* node=0\" $T/slave0.log" &&
	cat $T/slave0.log &&
	test_grep "^level=INFO msg=\"registered as node 0\" master=$MASTER_ADDR:[0-9]* node=0\$" $T/slave0.log &&
	! grep -v "^level=" $T/slave0.log &&
	! grep "time=" $T/slave0.log
'

test_done
