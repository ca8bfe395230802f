#!/bin/sh
# Direct streams follow a move: a job whose output went direct moves on,
# its node sends what it holds and ends the direct stream "moved", the
# master takes the streams back at that byte, and bpsh reads on through
# the tree, then direct again from the new node: byte-exact, in order.
. "$(dirname "$0")/lib.sh"

test_setup 'a 3-node cluster comes up' cluster_up 3

# direct_count I: how many jobs node I's slave sent direct so far.
direct_count() { awk "/streams go direct/ { n++ } END { print n + 0 }" "$T/slave$1.log"; }

# went_direct I N: node I's slave sent more than N jobs direct.
went_direct() {
	local n
	n=$(direct_count "$1") && test "$n" -gt "$2"
}

# The job: a known sequence (2 MB: it goes direct), then it waits for the
# test to see that, moves itself from node 1 to node 2 and prints the rest
# of the sequence (6 MB more: direct again, from node 2, once it has moved).
cat >"$T/mvdirect.sh" <<EOF
seq 1 300000
echo e1 >&2
while test ! -e "$T/go"; do sleep 0.05; done
echo move > /bproc/node/2/ctl || exit 99
echo e2 >&2
seq 300001 1200000
hostname >&2
exit 5
EOF

# moved_job: bpsh runs mvdirect.sh on node 1, whose output goes direct
# before it moves to node 2: its output comes byte-exact and in order,
# its exit status kept, its stdout back to the tree at the move.
moved_job() {
	rm -f "$T/go" &&
	before1=$(direct_count 1) &&
	{ BPSH_TRACE=1 in_master bpsh 1 bash "$T/mvdirect.sh" >out 2>err & } &&
	bp=$! &&
	wait_for "went_direct 1 $before1" 20 &&
	touch "$T/go" &&
	{ st=0; wait $bp || st=$?; } &&
	test "$st" = 5 &&
	cmp expect out &&
	grep -v "^bpsh: " err >job.err &&
	test_cmp expect.err job.err &&
	test_grep "direct stream 1 moved: back to the tree" err
}

test_expect_success 'a job that went direct moves: bpsh output byte-exact, in order, exit status kept' '
	seq 1 1200000 >expect &&
	printf "e1\ne2\nnode2\n" >expect.err &&
	before2=$(direct_count 2) &&
	moved_job &&
	test_grep "streams given back to the master to move" "$T/slave1.log" &&
	test_grep "direct stream 2 moved: back to the tree" err &&
	n=$(grep -c "node 1: output goes direct" err) && test "$n" -ge 2 &&
	wait_for "went_direct 2 $before2" 10
'

test_expect_success 'with seal no (spliced streams) too' '
	echo "seal no" >>"$CONF" &&
	master_restart &&
	moved_job
'

test_done
