#!/bin/sh
# Direct streams, the slave's side. With seal no the slave splices the
# job's pipe to the client's socket (frames of what the pipe holds, the
# bytes never read by the slave) and bpsh splices them on (only the frame
# headers read); sealed, the slave reads each piece of the pipe into one
# buffer and sends it as a frame. Either way byte-exact whatever sizes the
# job writes, both streams sharing the socket; a job killed mid-stream
# ends cleanly, as does a client killed mid-stream, and the slave serves
# on. The tests run sealed, then with seal no.
. "$(dirname "$0")/lib.sh"

test_setup 'a 2-node cluster comes up' cluster_up 2
test_setup '64 MB of random bytes' sh -c "head -c 64000000 /dev/urandom >'$T/big'"

# pid_of TRACE: the pid in bpsh's trace.
pid_of() { sed -n 's/.* node 1: pid \([0-9]*\) .*/\1/p' "$1" | head -n 1; }
# mark: from here on, logged (pids come again after the master's restart).
mark() { MARK=$(wc -l <"$T/slave1.log"); }
# logged: node 1's slave's log since the mark.
logged() { tail -n +$((MARK + 1)) "$T/slave1.log"; }
# done_line PID: node 1's slave's account of PID's direct streams.
done_line() { logged | grep "job $1: direct streams done:"; }
# sent PID STREAM, spliced PID STREAM: from done_line.
sent() { done_line "$1" | sed -n "s/.* $2 \([0-9]*\) bytes (\([0-9]*\) spliced).*/\1/p"; }
spliced() { done_line "$1" | sed -n "s/.* $2 \([0-9]*\) bytes (\([0-9]*\) spliced).*/\2/p"; }
# bpsh_spliced TRACE STREAM: what bpsh's trace says it spliced.
bpsh_spliced() { sed -n "s/.* \([0-9]*\) bytes of $2 spliced\$/\1/p" "$1"; }

# direct_tests: the tests, in the cluster's mode $MODE (sealed, seal no).
direct_tests() {
test_expect_success "odd-sized writes, 64 MB, $MODE: byte-exact, spliced by the slave and by bpsh with seal no" '
	mark &&
	job="{ dd status=none bs=1 count=3; dd status=none bs=4093 count=97; echo mid >&2; dd status=none bs=65537 count=33; dd status=none bs=1048579 count=7; cat; } <$T/big" &&
	in_master bash -c "BPSH_TRACE=1 bpsh 1 sh -c \"$job\" >$T/out 2>$T/trace" &&
	cmp big out &&
	grep -qx mid trace &&
	pid=$(pid_of trace) &&
	wait_for "done_line $pid" 10 &&
	n=$(sent "$pid" stdout) && m=$(spliced "$pid" stdout) && s=$(bpsh_spliced trace stdout) &&
	echo "slave sent $n direct, spliced $m; bpsh spliced $s" &&
	test "$n" -le 64000000 && test "$n" -ge 32000000 &&
	if [ "$MODE" = sealed ]; then
		test "$m" = 0 && test "${s:-0}" = 0
	else
		: what the slave kept when the stream went direct is sent from its buffer, the rest spliced &&
		test "$m" -le "$n" && test "$m" -ge $((n - 4194304)) &&
		: bpsh writes what the handshake read ahead and its first read after the switch, splices the rest &&
		test "$s" -le "$n" && test $((n - s)) -le 2097152
	fi
'

# The job alternates blocks of odd sizes between stdout and stderr: both
# streams' frames share the socket, each byte-exact.
test_expect_success "both streams at once, interleaved, $MODE: each byte-exact, both direct" '
	cat >job.sh <<-\EOF &&
		for i in $(seq 0 2 62); do
			dd status=none if="$1" bs=999983 skip=$i count=1 &&
			dd status=none if="$1" bs=999983 skip=$((i + 1)) count=1 >&2 || exit 1
		done
	EOF
	: >expect.out && : >expect.err &&
	for i in $(seq 0 2 62); do
		dd status=none if=big bs=999983 skip=$i count=1 >>expect.out &&
		dd status=none if=big bs=999983 skip=$((i + 1)) count=1 >>expect.err || return 1
	done &&
	mark &&
	in_master bash -c "bpsh 1 sh $T/job.sh $T/big >$T/both.out 2>$T/both.err" &&
	cmp expect.out both.out &&
	cmp expect.err both.err &&
	wait_for "logged | grep -q \"direct streams done\"" 10 &&
	line=$(logged | grep "direct streams done") &&
	echo "$line" &&
	pid=$(echo "$line" | sed -n "s/.*job \([0-9]*\): direct.*/\1/p") &&
	o=$(sent "$pid" stdout) && e=$(sent "$pid" stderr) &&
	test "$o" -gt 0 && test "$e" -gt 0 &&
	o=$(spliced "$pid" stdout) && e=$(spliced "$pid" stderr) &&
	if [ "$MODE" = sealed ]; then
		test "$o" = 0 && test "$e" = 0
	else
		test "$o" -gt 0 && test "$e" -gt 0
	fi
'

test_expect_success "a job killed mid-stream, $MODE: bpsh ends (255), its output a prefix of the job's, the slave serves on" '
	mark &&
	{ in_master env BPSH_TRACE=1 bpsh 1 cat $T/big $T/big $T/big $T/big >kill.out 2>kill.trace & } &&
	bp=$! &&
	wait_for "pid=\$(pid_of kill.trace) && test -n \"\$pid\" && logged | grep -q \"job \$pid: streams go direct\"" 10 &&
	pid=$(pid_of kill.trace) &&
	wait_for "test \$(stat -c %s kill.out) -gt 8000000" 10 &&
	echo "kill 9" >"$BPROC/proc/$pid/ctl" &&
	st=0 && wait $bp || st=$? &&
	test "$st" = 255 &&
	n=$(stat -c %s kill.out) &&
	echo "$n bytes before the kill" &&
	test "$n" -lt 256000000 &&
	{ cat big big big big | head -c "$n" >expect.kill; } &&
	cmp expect.kill kill.out &&
	wait_for "done_line $pid" 10 &&
	in_master bpsh 1 cat $T/big >again &&
	cmp big again
'

test_expect_success "a client killed mid-stream, $MODE: the job meets a broken pipe and ends, the slave serves on" '
	rm -f gone.pid && mark &&
	{ in_master sh -c "echo \$\$ >$T/gone.pid && exec env BPSH_TRACE=1 bpsh 1 cat $T/big $T/big $T/big $T/big" >gone.out 2>gone.trace & } &&
	wait_for "test -s gone.pid" 5 &&
	bp=$(cat gone.pid) &&
	wait_for "pid=\$(pid_of gone.trace) && test -n \"\$pid\" && logged | grep -q \"job \$pid: streams go direct\"" 10 &&
	pid=$(pid_of gone.trace) &&
	kill -9 $bp &&
	wait_for "done_line $pid" 10 &&
	end=$(timeout 20 cat "$BPROC/proc/$pid/wait") &&
	echo "the job: $end" &&
	case $end in "exit 0") fail "the job ran to its end: $end" ;; esac &&
	in_master bpsh 1 cat $T/big >again &&
	cmp big again
'

}

MODE=sealed
direct_tests
test_expect_success 'the cluster runs seal no' '
	echo "seal no" >>"$CONF" &&
	master_restart
'
MODE="seal no"
direct_tests

test_done
