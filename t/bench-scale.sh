#!/bin/sh
# bench-scale: the master at a thousand nodes and more. A load generator
# (t/loadgen) on node 0 stands in for N slaves, each with its own source
# address, TCP connection, keyed and sealed handshake and the real slave
# protocol (jobs answered without forking), against a real bpmaster with its
# FUSE mount. At each N it measures the master's resident memory per node,
# CPU per node per launch, `bpsh -a /bin/true`, `cat /bproc/status`, the
# master's CPU while idle (the nodes' pings), and the delay from a node going
# silent (its last ping) to `down` in its status line, idle and under
# launches; beside issue 11's targets. bpsh -a runs as a node-set launch
# and, beside it, on the per-node path (BPSH_FANOUT=0); the set launch
# again as a user (bptest: maxprocs counts a user's processes, not
# root's). Knobs:
# BENCH_SCALE_NODES (default "64 1000 4000"), BENCH_SCALE_RUNS (launches and status reads, median; default
# 5), BENCH_SCALE_PING (pingtimeout, s; default 5), BENCH_SCALE_WINDOW (idle
# CPU window, s; default 5), BENCH_SCALE_GENFLAGS (more flags for
# t/loadgen), BENCH_QUICK (one small N, fewer runs).
. "$(dirname "$0")/lib.sh"

if [ -n "${BENCH_QUICK:-}" ]; then
	: "${BENCH_SCALE_NODES:=250}" "${BENCH_SCALE_RUNS:=3}" "${BENCH_SCALE_WINDOW:=2}" "${BENCH_SCALE_PING:=2}"
fi
SIZES=${BENCH_SCALE_NODES:-64 1000 4000}
RUNS=${BENCH_SCALE_RUNS:-5}
PING=${BENCH_SCALE_PING:-5}
WINDOW=${BENCH_SCALE_WINDOW:-5}
NET=10.78 # the fake nodes' addresses: 10.78.0.1 onwards, on node 0

die() { echo "bench-scale: $*" >&2; _dump_logs; tail -n 20 "$T/gen.log" >&2 2>/dev/null; exit 1; }
row() { printf '%-44s %12s %-6s %5s   %s\n' "$1" "$2" "$3" "$4" "$5"; }
verdict() { if awk -v v="$1" -v l="$3" "BEGIN { exit !(v $2 l) }"; then echo ok; else echo MISSED; fi; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
div() { awk -v a="$1" -v b="$2" -v f="${3:-%.3f}" 'BEGIN { printf f, a / b }'; }
HZ=$(getconf CLK_TCK)
cpu_ns() { # all of PID's threads, ns: the live ones' from schedstat (exact,
	# not ticks), plus in ticks what threads that have exited used (the
	# process's total less its live threads': a user's exec ends one)
	local f s=0 v dead
	for f in /proc/$1/task/*/schedstat; do
		read -r v _ <"$f" 2>/dev/null && s=$((s + v))
	done
	dead=$(awk 'FNR == 1 { t = $14 + $15; if (FILENAME ~ /task/) live += t; else all = t } END { printf "%d", all - live }' \
		"/proc/$1/stat" /proc/"$1"/task/*/stat 2>/dev/null)
	echo $((s + ${dead:-0} * 1000000000 / HZ))
}
rss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((10#$t / 1000)); }
# ip_of I: the I-th fake node's address (10.78.0.1 is node 0's).
ip_of() { echo "$NET.$((($1 + 1) / 256)).$((($1 + 1) % 256))"; }

# down_delay K: silences fake node K and prints the ms from its last ping
# to the master marking its node down, and to a poll of its status seeing it.
down_delay() {
	local k=$1 num last deadline st= seen t
	num=$(awk -v a="$(ip_of "$k")" '$3 == a { print $1 }' "$BPROC/status")
	[ -n "$num" ] || die "no node with address $(ip_of "$k") in $BPROC/status"
	echo "silence $k" >"$T/gen.ctl"
	wait_for "grep -q '^silenced $k ' '$T/gen.log'" 10 || die "the generator did not silence node $k"
	last=$(awk -v k="$k" '$1 == "silenced" && $2 == k { print $4 }' "$T/gen.log")
	deadline=$(($(now_ms) + PING * 1000 * 3 + 10000))
	while read -r _ st _ <"$BPROC/node/$num/status" && [ "$st" != down ] && [ "$(now_ms)" -lt "$deadline" ]; do
		sleep 0.01
	done
	[ "$st" = down ] || die "node $num is still '$st' $((PING * 3 + 10)) s after its last ping"
	seen=$(now_ms)
	# When the master marked it down, by its log (a reader of the
	# mount may see it later when FUSE is busy).
	t=$(awk -v m="msg=\"node $num down: " 'index($0, m) { sub(/^time=/, "", $1); print $1; exit }' "$MASTER_LOG")
	[ -n "$t" ] || die "no 'node $num down' in the master's log"
	t=$(date -d "$t" +%s%3N) || die "bad time '$t' in the master's log"
	echo "$((t - last)) $((seen - last))"
}

# down_row WHAT MASTER_MS SEEN_MS
down_row() {
	row "$1" "$(div "$2" 1000 %.2f)" s 1 \
		"<= $((PING + 1)) s: $(verdict "$2" '<=' $(((PING + 1) * 1000))); in status after $(div "$3" 1000 %.2f) s"
}

# launches FANOUT LABEL [USER]: bpsh -a /bin/true on the $n nodes, RUNS
# times after a first that ships the binary, with BPSH_FANOUT=FANOUT, as
# USER (default root): wall time (median), the master's and bpsh's CPU per
# node, and the generator's (the slaves' side, for comparison).
launches() {
	local fan=$1 label=$2 r m0 m1 g0 g1 wall bcpu mcpu mraw gcpu mms bms both want as=
	[ -n "${3:-}" ] && as="setpriv --reuid=$3 --regid=$3 --init-groups"
	: >"$T/walls" && : >"$T/mcpu" && : >"$T/mraw" && : >"$T/bcpu" && : >"$T/gcpu"
	for ((r = 0; r <= RUNS; r++)); do
		m0=$(cpu_ns "$mp") g0=$(cpu_ns "$gp")
		BPSH_FANOUT=$fan "$T/loadgen" time -o "$T/one" $as bpsh -a /bin/true </dev/null >"$T/bpsh.out" 2>&1 ||
			{ tail -n 5 "$T/bpsh.out"; die "bpsh -a /bin/true failed on $n nodes"; }
		m1=$(cpu_ns "$mp") g1=$(cpu_ns "$gp")
		[ "$r" = 0 ] && continue # the first run ships the binary to every node
		read -r wall bcpu <"$T/one"
		echo "$wall" >>"$T/walls"
		echo "$bcpu" >>"$T/bcpu"
		# The master's also less what the pings cost meanwhile at the idle
		# rate (an underestimate when launches delay the pings).
		echo $((m1 - m0 - midle * wall / 1000000)) >>"$T/mcpu"
		echo $((m1 - m0)) >>"$T/mraw"
		echo $((g1 - g0)) >>"$T/gcpu"
	done
	# Every launch reached a fake node and was answered (asked again
	# until all is in: the generator counts an exit a moment after bpsh
	# has seen its end).
	launched=$((launched + n * (RUNS + 1)))
	want="starts $launched exits $launched lost 0"
	wait_for "grep -q '^$want ' '$T/gen.log' || { echo count >'$T/gen.ctl'; false; }" 10 || die "the generator counted $(grep '^starts' "$T/gen.log" | tail -n 1), want $want"
	wall=$(median <"$T/walls")
	mcpu=$(median <"$T/mcpu")
	mraw=$(median <"$T/mraw")
	bcpu=$(median <"$T/bcpu")
	gcpu=$(median <"$T/gcpu")
	row "bpsh -a /bin/true, $n nodes, $label" "$(div "$wall" 1000 %.0f)" ms "$RUNS" \
		"$(target_of "$n" "$wall")Flux 5000 ranks < 1 s, BProc 15000 procs/125 nodes 3.3 s (published)"
	# CPU per node in ms: the master's from schedstat (ns, less the idle
	# rate over the launch), bpsh's from its rusage (us).
	mms=$(div "$mcpu" $((n * 1000000)) %.4f)
	bms=$(div "$bcpu" $((n * 1000)) %.4f)
	row "  master CPU per node per launch" "$mms" ms "$RUNS" "(less the idle pings' rate)"
	row "    the same with the pings meanwhile" "$(div "$mraw" $((n * 1000000)) %.4f)" ms "$RUNS"
	row "  bpsh CPU per node per launch" "$bms" ms "$RUNS"
	both=$(awk -v a="$mms" -v b="$bms" 'BEGIN { printf "%.4f", a + b }')
	row "  master + bpsh CPU per node" "$both" ms "$RUNS" "<= 0.3 ms (point 2): $(verdict "$both" '<=' 0.3)"
	row "  fake slaves' CPU per node, with pings" "$(div "$gcpu" $((n * 1000000)) %.4f)" ms "$RUNS" "bpslave: 0.75 ms (issue 11, 64 nodes)"
}

# target_of N WALL_US: the issue's target for bpsh -a on N nodes, with its verdict.
target_of() {
	case $1 in
	64) echo "<= 45 ms: $(verdict "$2" '<=' 45000); " ;;
	1000) echo "<= 1000 ms: $(verdict "$2" '<=' 1000000); " ;;
	esac
}

# Thousands of sockets: the master and the generator each hold one (the
# generator two) per node.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
for v in "RUNS=$RUNS" "PING=$PING" "WINDOW=$WINDOW"; do
	case ${v#*=} in "" | *[!0-9]* | 0) die "${v%%=*}: want a whole number of at least 1, got '${v#*=}'" ;; esac
done
max=0
for n in $SIZES; do
	case $n in "" | *[!0-9]* | 0) die "BENCH_SCALE_NODES: want node counts, got '$SIZES'" ;; esac
	if [ "$n" -gt "$max" ]; then max=$n; fi
done
[ "$max" -lt 65000 ] || die "at most 65000 fake nodes (one /16)"

(cd "$BPROC_ROOT" && CGO_ENABLED=0 go build -o "$T/loadgen" ./t/loadgen) || die "cannot build t/loadgen"
net_up 1 >"$T/net.out" 2>&1 || { cat "$T/net.out"; die "network setup failed"; }
# Node 0 holds every fake node's address; the master reaches them through it.
for ((i = 0; i < max; i++)); do echo "addr add $(ip_of $i)/32 dev eth0"; done |
	ip -n "$(ns_node 0)" -batch - || die "cannot add $max addresses to node 0"
ip -n "$NS_MASTER" route add "$NET.0.0/16" via "$(node_addr 0)" || die "no route to the fake nodes"

KEY=$T/cluster.key
make_key "$KEY"
BPROC=$T/bproc BPROC_MOUNT=$T/bproc
export BPROC BPROC_MOUNT KEY
mkdir -p "$BPROC"
CONF=$T/bpmaster.conf MASTER_LOG=$T/master.log
{
	echo "bprocport $BPROC_PORT"
	echo "mount $BPROC"
	echo "pingtimeout $PING"
	echo "keyfile $KEY"
	echo "statedir $T/.state"
	echo "maxprocs $((2 * max + 1024))" # the user's launches: counted, never refused
} >"$CONF"
ensure_user bptest || die "no user bptest"
mkfifo "$T/gen.ctl"

echo "bench-scale: fake nodes (t/loadgen) on 1 namespace, bpmaster on another, $(nproc) cores; medians of $RUNS${BENCH_QUICK:+ (quick)}"
row "what" "figure" "" "runs" "target (issue 11); peer"

for n in $SIZES; do
	master_start >"$T/start.out" 2>&1 || { cat "$T/start.out"; die "bpmaster did not start"; }
	mp=$(bg_pid master-bpmaster)
	# The master's baseline: mounted, serving, no node yet; one read of
	# the tree so the FUSE side is warm.
	cat "$BPROC/status" >/dev/null || die "cannot read $BPROC/status"
	rss0=$(rss_kib "$mp")
	: >"$T/gen.log"
	bg_node 0 "$T/gen.log" "$T/loadgen" ${BENCH_SCALE_GENFLAGS:-} -k "$KEY" -n "$n" -from "$(ip_of 0)" -ctl "$T/gen.ctl" \
		"$MASTER_ADDR:$BPROC_PORT" || die "the generator did not start"
	gp=$(bg_pid node0-loadgen)
	wait_for "grep -q '^ready ' '$T/gen.log' || ! pid_alive $gp" 300 || die "$n fake nodes did not connect in 300 s"
	pid_alive "$gp" || die "the generator died"
	wait_nodes_up "$n" 60 || die "$(nodes_up) of $n nodes up"
	ready_s=$(awk '$1 == "ready" { print $4 }' "$T/gen.log")
	launched=0
	echo "--- $n nodes"
	row "connect and register $n nodes" "$ready_s" s 1

	# Idle: the master's CPU for $n nodes pinging every pingtimeout/4.
	c0=$(cpu_ns "$mp")
	sleep "$WINDOW"
	c1=$(cpu_ns "$mp")
	midle=$(((c1 - c0) / WINDOW)) # ns per s
	row "master CPU, idle, $n nodes pinging" "$(div "$midle" 10000000 %.1f)" "% core" 1
	row "  per ping (pingtimeout $PING s, 4 pings per timeout)" "$(div "$midle" $((n * 4 * 1000 / PING)) %.1f)" us 1
	rss1=$(rss_kib "$mp")

	# bpsh -a /bin/true, the node-set launch (one ctl write, one group
	# io) and, beside it in the same run, the per-node path it replaced
	# (BPSH_FANOUT=0).
	launches "" "set launch"
	rss2=$(rss_kib "$mp")
	launches "" "set launch as a user" bptest
	launches 0 "per-node path, BPSH_FANOUT=0"
	rss3=$(rss_kib "$mp")

	# Memory: the master's resident set at 0 nodes (mounted, serving),
	# with the nodes up and idle, and after the launches (which also hold
	# the shipped binary and the exited processes' records).
	idle=$(div $((rss1 - rss0)) "$n" %.1f)
	after=$(div $((rss2 - rss0)) "$n" %.1f)
	row "master RSS per node, idle" "$idle" KiB 1 "<= 1024 KiB: $(verdict "$idle" '<=' 1024)"
	row "master RSS per node, after the set launches" "$after" KiB 1 "<= 1024 KiB: $(verdict "$after" '<=' 1024)"
	row "  and after the per-node ones too" "$(div $((rss3 - rss0)) "$n" %.1f)" KiB 1
	row "  master RSS: 0 nodes, idle, after each" "$((rss0 / 1024)) $((rss1 / 1024)) $((rss2 / 1024)) $((rss3 / 1024))" MiB 1

	: >"$T/cats"
	for ((r = 0; r < RUNS; r++)); do
		"$T/loadgen" time -o "$T/one" cat "$BPROC/status" >"$T/status.out" || die "cat $BPROC/status failed"
		read -r wall _ <"$T/one"
		echo "$wall" >>"$T/cats"
	done
	lines=$(wc -l <"$T/status.out")
	[ "$lines" -ge "$n" ] || die "$BPROC/status has $lines lines for $n nodes"
	row "cat /bproc/status ($lines lines)" "$(div "$(median <"$T/cats")" 1000 %.1f)" ms "$RUNS"

	# Node-down: a fake node stops pinging; from its last ping to `down` in
	# its status line. The last node while the master is idle, the one
	# before it while bpsh -a runs on every node, again and again (its job
	# there may be lost: bpsh's status is not this row's).
	delay=$(down_delay $((n - 1))) || exit 1
	down_row "silent node to down (pingtimeout $PING s)" $delay
	rm -f "$T/busy.stop"
	(while [ ! -e "$T/busy.stop" ]; do bpsh -a /bin/true; done) </dev/null >"$T/bpsh-busy.out" 2>&1 &
	busy=$!
	delay=$(down_delay $((n - 2))) || exit 1
	touch "$T/busy.stop"
	wait "$busy"
	down_row "  the same during bpsh -a on every node" $delay

	bg_kill node0-loadgen || die "the generator did not stop"
	rm -f "$T/.pids/node0-loadgen"
	master_stop >"$T/stop.out" 2>&1 || { cat "$T/stop.out"; die "bpmaster did not stop"; }
	rm -f "$T/.pids/master-bpmaster"
done
exit 0
