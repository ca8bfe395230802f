#!/bin/sh
# Direct streams with seal no, the slave's side: the slave splices the
# job's pipe to the client's socket (frames of what the pipe holds, the
# bytes never read by the slave), byte-exact whatever sizes the job
# writes, both streams sharing the socket; and bpsh splices them on
# (only the frame headers read). A job killed mid-stream ends cleanly,
# as does a client killed mid-stream, and the slave serves on.
. "$(dirname "$0")/lib.sh"

test_setup 'a 2-node cluster comes up' cluster_up 2
test_setup 'it runs seal no' eval 'echo "seal no" >>"$CONF" && master_restart'
test_setup '64 MB of random bytes' sh -c "head -c 64000000 /dev/urandom >'$T/big'"

# pid_of TRACE: the pid in bpsh's trace.
pid_of() { sed -n 's/.* node 1: pid \([0-9]*\) .*/\1/p' "$1" | head -n 1; }
# done_line PID: node 1's slave's account of PID's direct streams.
done_line() { grep "job $1: direct streams done:" "$T/slave1.log"; }
# sent PID STREAM, spliced PID STREAM: from done_line.
sent() { done_line "$1" | sed -n "s/.* $2 \([0-9]*\) bytes (\([0-9]*\) spliced).*/\1/p"; }
spliced() { done_line "$1" | sed -n "s/.* $2 \([0-9]*\) bytes (\([0-9]*\) spliced).*/\2/p"; }
# bpsh_spliced TRACE STREAM: what bpsh's trace says it spliced.
bpsh_spliced() { sed -n "s/.* \([0-9]*\) bytes of $2 spliced\$/\1/p" "$1"; }

test_expect_success 'odd-sized writes, 64 MB: byte-exact, spliced by the slave and by bpsh' '
	job="{ dd status=none bs=1 count=3; dd status=none bs=4093 count=97; echo mid >&2; dd status=none bs=65537 count=33; dd status=none bs=1048579 count=7; cat; } <$T/big" &&
	in_master bash -c "BPSH_TRACE=1 bpsh 1 sh -c \"$job\" >$T/out 2>$T/trace" &&
	cmp big out &&
	grep -qx mid trace &&
	pid=$(pid_of trace) &&
	wait_for "done_line $pid" 10 &&
	n=$(sent "$pid" stdout) && m=$(spliced "$pid" stdout) && s=$(bpsh_spliced trace stdout) &&
	echo "slave sent $n direct, spliced $m; bpsh spliced $s" &&
	: what the slave kept when the stream went direct is sent from its buffer, the rest spliced &&
	test "$n" -le 64000000 && test "$m" -le "$n" && test "$m" -ge $((n - 4194304)) && test "$m" -ge 32000000 &&
	test "$s" -le "$n" && test $((n - s)) -le 65536
'

# The job alternates blocks of odd sizes between stdout and stderr: both
# streams' frames share the socket, each byte-exact.
test_expect_success 'both streams at once, interleaved: each byte-exact, both spliced' '
	cat >job.sh <<-\EOF &&
		for i in $(seq 0 2 62); do
			dd status=none if="$1" bs=999983 skip=$i count=1 &&
			dd status=none if="$1" bs=999983 skip=$((i + 1)) count=1 >&2 || exit 1
		done
	EOF
	for i in $(seq 0 2 62); do
		dd status=none if=big bs=999983 skip=$i count=1 >>expect.out &&
		dd status=none if=big bs=999983 skip=$((i + 1)) count=1 >>expect.err || return 1
	done &&
	before=$(grep -c "direct streams done" slave1.log) &&
	in_master bash -c "bpsh 1 sh $T/job.sh $T/big >$T/both.out 2>$T/both.err" &&
	cmp expect.out both.out &&
	cmp expect.err both.err &&
	wait_for "test \$(grep -c \"direct streams done\" slave1.log) -gt $before" 10 &&
	line=$(grep "direct streams done" slave1.log | tail -n 1) &&
	echo "$line" &&
	pid=$(echo "$line" | sed -n "s/.*job \([0-9]*\): direct.*/\1/p") &&
	o=$(spliced "$pid" stdout) && e=$(spliced "$pid" stderr) &&
	test "$o" -gt 0 && test "$e" -gt 0
'

test_expect_success 'a job killed mid-stream: bpsh ends (255), its output a prefix of the job'"'"'s, the slave serves on' '
	{ in_master env BPSH_TRACE=1 bpsh 1 cat $T/big $T/big $T/big $T/big >kill.out 2>kill.trace & } &&
	bp=$! &&
	wait_for "pid=\$(pid_of kill.trace) && test -n \"\$pid\" && grep -q \"job \$pid: streams go direct\" $T/slave1.log" 10 &&
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

test_expect_success 'a client killed mid-stream: the job meets a broken pipe and ends, the slave serves on' '
	{ in_master sh -c "echo \$\$ >$T/gone.pid && exec env BPSH_TRACE=1 bpsh 1 cat $T/big $T/big $T/big $T/big" >gone.out 2>gone.trace & } &&
	wait_for "test -s gone.pid" 5 &&
	bp=$(cat gone.pid) &&
	wait_for "pid=\$(pid_of gone.trace) && test -n \"\$pid\" && grep -q \"job \$pid: streams go direct\" $T/slave1.log" 10 &&
	pid=$(pid_of gone.trace) &&
	kill -9 $bp &&
	wait_for "done_line $pid" 10 &&
	end=$(timeout 20 cat "$BPROC/proc/$pid/wait") &&
	echo "the job: $end" &&
	case $end in "exit 0") fail "the job ran to its end: $end" ;; esac &&
	in_master bpsh 1 cat $T/big >again &&
	cmp big again
'

test_done
