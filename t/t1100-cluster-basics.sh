#!/bin/sh
# A 3-node cluster: the tree, running work through ctl and io, and bpsh as a
# user would type it.
. "$(dirname "$0")/lib.sh"

test_setup 'a 3-node cluster comes up' cluster_up 3

test_expect_success 'cat $BPROC/node/*/status shows every node up at its address' '
	cat $BPROC/node/*/status >all &&
	for i in 0 1 2; do
		grep "^$i up 10\.77\.0\.1$i .* node$i\$" all || fail "node $i missing or wrong"
	done &&
	awk "\$1 >= 0 && \$2 == \"up\"" all >up &&
	n=$(wc -l <up) && test "$n" = 3
'

test_expect_success '$BPROC/status has one line per compute node, in order, same as node/N/status' '
	cat $BPROC/status >status &&
	n=$(wc -l <status) && test "$n" = 3 &&
	awk "{ print \$1 }" status >numbers &&
	printf "0\n1\n2\n" >expect &&
	test_cmp expect numbers &&
	cat $BPROC/node/0/status $BPROC/node/1/status $BPROC/node/2/status >each &&
	test_cmp status each
'

test_expect_success 'a node status line has all its fields' '
	read -r n state addr mode user group host <$BPROC/node/1/status &&
	test "$n $state $addr $host" = "1 up 10.77.0.11 node1" &&
	case "$mode" in [d-][r-][w-][xsS-][r-][w-][xsS-][r-][w-][xtT-]) ;; *) fail "mode $mode: want 10 characters as ls shows them" ;; esac &&
	test -n "$user" && test -n "$group"
'

test_expect_success 'node/-1 is the master' '
	read -r n state addr mode user group host <$BPROC/node/-1/status &&
	test "$n $state" = "-1 up" &&
	test "$host" = master
'

test_expect_success 'echo exec /usr/bin/hostname > node/2/ctl; io shows node2' '
	echo exec /usr/bin/hostname >$BPROC/node/2/ctl &&
	timeout 5 head -n1 $BPROC/node/2/io >out &&
	echo node2 >expect &&
	test_cmp expect out
'

test_expect_success 'reading ctl after exec gives the pid, and proc/PID/status describes it' '
	pid=$(node_exec 1 "/bin/sleep 30") &&
	case "$pid" in "" | *[!0-9]*) fail "ctl said: $pid" ;; esac &&
	read -r p node state uid gid cmd <$BPROC/proc/$pid/status &&
	test "$p $node $uid $gid" = "$pid 1 0 0" &&
	test -n "$state" &&
	case "$cmd" in *sleep*) ;; *) fail "command $cmd" ;; esac &&
	echo kill >$BPROC/proc/$pid/ctl &&
	timeout 5 cat $BPROC/proc/$pid/wait >wait &&
	test_grep "^signal 15 " wait
'

test_expect_success 'kill through proc/PID/ctl with a signal name; wait says which' '
	pid=$(node_exec 0 "/bin/sleep 30") &&
	echo "kill KILL" >$BPROC/proc/$pid/ctl &&
	timeout 5 cat $BPROC/proc/$pid/wait >wait &&
	test_grep "^signal 9 " wait &&
	read -r p node state rest <$BPROC/proc/$pid/status &&
	test "$p $node" = "$pid 0"
'

test_expect_success 'a plain exit shows in wait' '
	pid=$(node_exec 0 "/bin/sh -c \"exit 3\"") &&
	out=$(timeout 5 cat $BPROC/proc/$pid/wait) && test "$out" = "exit 3"
'

test_expect_success 'proc/PID/stdin feeds the process; closing it gives EOF' '
	pid=$(node_exec 1 "/usr/bin/wc -l") &&
	printf "one\ntwo\nthree\n" >$BPROC/proc/$pid/stdin &&
	out=$(timeout 5 cat $BPROC/proc/$pid/wait) && test "$out" = "exit 0" &&
	out=$(timeout 5 cat $BPROC/proc/$pid/stdout) && test "$out" = 3
'

test_expect_success 'proc/PID/stdout and stderr are separate streams' '
	pid=$(node_exec 2 "-n /bin/sh -c \"echo out; echo err >&2\"") &&
	out=$(timeout 5 cat $BPROC/proc/$pid/stdout) && test "$out" = out &&
	out=$(timeout 5 cat $BPROC/proc/$pid/stderr) && test "$out" = err
'

test_expect_success 'exec options -c, -e, -a and quoted arguments' '
	exec 3<>$BPROC/node/0/ctl &&
	echo "exec -n -c /usr -e FOO=bar /bin/sh -c '"'"'echo \$FOO \$(pwd) \$HOME; printf \"[%s]\" \"\$@\"'"'"' x \"a  b\" '"'"'c d'"'"' e\\ f" >&3 &&
	read -r pid <&3 &&
	timeout 5 cat $BPROC/proc/$pid/stdout >out &&
	printf "bar /usr\n[a  b][c d][e f]" >expect &&
	test_cmp expect out &&
	echo "exec -n -a myname /bin/sh -c '"'"'echo \$0'"'"'" >&3 &&
	read -r pid <&3 &&
	exec 3>&- &&
	out=$(timeout 5 cat $BPROC/proc/$pid/stdout) && test "$out" = myname
'

test_expect_success 'a bad ctl command fails with EINVAL' '
	! echo frobnicate >$BPROC/node/0/ctl 2>err &&
	test_grep "Invalid argument" err
'

test_expect_success 'the error text is readable on the same open file' '
	node_ctl_refused 0 bogus "Invalid argument" >text &&
	test -s text &&
	cat text
'

# A binary that exists only in the master's /tmp (the nodes have their own).
cat >"$T/tiny.c" <<'EOF'
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	char h[256] = "";
	gethostname(h, sizeof h - 1);
	printf("tiny on %s argc %d\n", h, argc);
	return 0;
}
EOF
TINY=/tmp/bproc-tiny-$BP_ID
if gcc -O -o "$TINY" "$T/tiny.c" 2>"$T/gcc.err"; then
	test_set_prereq TINY
	at_exit "rm -f $TINY"
fi

test_expect_success TINY 'a program only the master has runs on a node' '
	! in_node 1 test -e $TINY &&
	bpsh 1 $TINY a b >out &&
	echo "tiny on node1 argc 3" >expect &&
	test_cmp expect out
'

test_expect_success 'a copy of hostname in the master'"'"'s /tmp runs on a node' '
	cp /usr/bin/hostname /tmp/bproc-hostname-$BP_ID &&
	test_when_finished "rm -f /tmp/bproc-hostname-$BP_ID" &&
	! in_node 2 test -e /tmp/bproc-hostname-$BP_ID &&
	out=$(bpsh 2 /tmp/bproc-hostname-$BP_ID) && test "$out" = node2
'

test_expect_success TINY 'and through ctl, with its output in io' '
	echo "exec $TINY x" >$BPROC/node/0/ctl &&
	timeout 5 grep -m1 "^tiny" $BPROC/node/0/io >out &&
	echo "tiny on node0 argc 2" >expect &&
	test_cmp expect out
'

test_expect_success 'bpsh -a -p hostname prefixes each line with its node' '
	bpsh -a -p hostname >out &&
	sort out >sorted &&
	printf "  0: node0\n  1: node1\n  2: node2\n" >expect &&
	test_cmp expect sorted
'

test_expect_success 'bpsh on a node list' '
	bpsh 0,2 hostname >out &&
	sort out >sorted &&
	printf "node0\nnode2\n" >expect &&
	test_cmp expect sorted
'

test_expect_code 7 'bpsh passes the exit status on' '
	bpsh 1 sh -c "exit 7"
'

test_expect_success 'bpsh exits 255 when the process dies of a signal' '
	st=0 &&
	bpsh 1 sh -c "kill -9 \$\$" 2>err || st=$? &&
	test $st = 255
'

test_expect_success 'echo hi | bpsh 1 cat' '
	out=$(echo hi | bpsh 1 cat) && test "$out" = hi
'

test_expect_success 'stdin reaches EOF when the input ends' '
	seq 1 1000 >in &&
	out=$(bpsh 1 wc -l <in) && test "$out" = 1000 &&
	bpsh 2 cat </dev/null >out &&
	test ! -s out
'

test_expect_success 'stdout and stderr stay apart' '
	bpsh 2 sh -c "echo to-out; echo to-err >&2" >out 2>err &&
	out=$(cat out) && test "$out" = to-out &&
	out=$(cat err) && test "$out" = to-err
'

test_expect_success 'the working directory and arguments arrive intact' '
	mkdir -p "$T/a dir" &&
	cd "$T/a dir" &&
	bpsh 0 sh -c "pwd; printf \"[%s]\" \"\$@\"" argv0 "one two" "" three >out &&
	printf "%s\n[one two][][three]" "$T/a dir" >expect &&
	test_cmp expect out
'

test_expect_success '50 MB through bpsh stdout arrive unchanged' '
	head -c 50000000 /dev/urandom >big &&
	bpsh 1 cat "$T/big" >got.big &&
	cmp big got.big &&
	rm -f got.big
'

test_expect_success '50 MB through bpsh stdin arrive unchanged' '
	test -f big || head -c 50000000 /dev/urandom >big &&
	bpsh 2 sha256sum <big >got &&
	sha256sum <big >want &&
	test_cmp want got
'

test_expect_success 'the tools reach the tree over 9P from inside a node, with the key' '
	in_node 0 env BPROC_MOUNT=/nonexistent BPROC_MASTER=10.77.0.1 BPROC_KEY=$KEY \
		bpsh 2 hostname >out &&
	echo node2 >expect &&
	test_cmp expect out
'

test_expect_success 'and not without the key' '
	make_key other.key &&
	! in_node 0 env BPROC_MOUNT=/nonexistent BPROC_MASTER=10.77.0.1 BPROC_KEY=$T/other.key \
		timeout 20 bpsh 2 hostname >out 2>err &&
	! test -s out &&
	cat err
'

test_expect_success BPSTAT 'bpstat: the compact table groups the up nodes' '
	bpstat >out &&
	cat out &&
	grep -E "^0-2 +up +---x--x--x +root +root\$" out &&
	n=$(wc -l <out) && test "$n" = 2
'

test_expect_success BPSTAT 'bpstat -l, -a, -n, -t' '
	bpstat -l >out &&
	for i in 0 1 2; do
		grep -E "^$i +10\.77\.0\.1$i +up .* node$i\$" out || fail "node $i"
	done &&
	printf "10.77.0.10\n10.77.0.11\n10.77.0.12\n" >expect &&
	bpstat -a >out && test_cmp expect out &&
	printf "0\n1\n2\n" >expect &&
	bpstat -n >out && test_cmp expect out &&
	out=$(bpstat -t) && test "$out" = 3
'

test_expect_success BPSTAT 'bpstat -p lists a running remote process on its node' '
	pid=$(node_exec 2 "/bin/sleep 30") &&
	test_when_finished "echo kill >$BPROC/proc/$pid/ctl" &&
	bpstat -p >out &&
	grep -E "^$pid +2\$" out
'

test_expect_success BPCTL 'bpctl sets a node state, and bpsh -a skips it' '
	test_when_finished "echo state up >$BPROC/node/2/ctl" &&
	bpctl -S 2 -s unavailable &&
	st=$(node_status 2) && test "$st" = unavailable &&
	bpsh -a hostname >out &&
	sort out >sorted &&
	printf "node0\nnode1\n" >expect &&
	test_cmp expect sorted &&
	bpctl -S 2 -s up &&
	st=$(node_status 2) && test "$st" = up
'

test_expect_success 'state through ctl' '
	test_when_finished "echo state up >$BPROC/node/1/ctl" &&
	echo "state unavailable" >$BPROC/node/1/ctl &&
	st=$(node_status 1) && test "$st" = unavailable &&
	grep "^1 unavailable " $BPROC/status &&
	echo "state up" >$BPROC/node/1/ctl &&
	st=$(node_status 1) && test "$st" = up
'

test_expect_success 'garbage on port 2223 does not hurt the master' '
	for i in 1 2 3 4 5; do
		in_node 0 bash -c "exec 3<>/dev/tcp/10.77.0.1/2223 && head -c 65536 /dev/urandom >&3" 2>/dev/null || :
		in_node 1 bash -c "exec 3<>/dev/tcp/10.77.0.1/2223 && printf \"\\377\\377\\377\\377\\144garbage\" >&3 && exec 3>&-" 2>/dev/null || :
	done &&
	pid_alive $(bg_pid master-bpmaster) &&
	n=$(nodes_up) && test "$n" = 3 &&
	out=$(bpsh 2 hostname) && test "$out" = node2
'

# accepted_from ADDR: connections from ADDR that bpmaster has accepted on its
# port (ss shows the owning process only once accept(2) has taken it).
accepted_from() {
	in_master ss -Htnp state established "( sport = :$BPROC_PORT and dst $1 )" |
		awk '/"bpmaster"/ { n++ } END { print n + 0 }'
}

test_expect_success 'a silent connection does not block the others' '
	before=$(accepted_from 10.77.0.10) &&
	{ in_node 0 bash -c "exec 3<>/dev/tcp/10.77.0.1/2223 && sleep 30" & } &&
	silent=$! &&
	test_when_finished "kill $silent" &&
	wait_for "test \$(accepted_from 10.77.0.10) -gt $before" 10 &&
	out=$(bpsh 1 hostname) && test "$out" = node1 &&
	# bpsh ran while the master held the silent connection (its handshake
	# gives up after 5 s)
	n=$(accepted_from 10.77.0.10) && test "$n" -gt "$before" &&
	echo "connections accepted from node 0: $before before, $n during" &&
	echo exec /usr/bin/hostname >$BPROC/node/1/ctl
'

test_expect_success 'a shell script from the master runs on a node, under its own name' '
	printf "#!/bin/sh\necho \"\$(hostname) \$(cat /proc/\$\$/comm) \$1\"\n" >/tmp/bpgreet &&
	chmod 755 /tmp/bpgreet &&
	test_when_finished "rm -f /tmp/bpgreet" &&
	! in_node 1 test -e /tmp/bpgreet &&
	out=$(bpsh 1 /tmp/bpgreet hello) && test "$out" = "node1 bpgreet hello"
'

test_done
