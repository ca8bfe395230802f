#!/bin/sh
# Node statistics: recvstats' CPU with 1000 simulated nodes at 1 Hz (a load
# generator on a node sending real signed packets across the bridge),
# sendstats' CPU and traffic on a node at 1 Hz beside Ganglia's gmond on
# another node (Debian's gmond.conf with every metric collected and sent
# each second; measured when gmond is installed: apt-get install
# ganglia-monitor), and the delay from a change in a node's /proc to its
# appearance in the shm file. Figures are medians of several runs, beside
# the issue's targets.
. "$(dirname "$0")/lib.sh"

NODES=${BENCH_STATS_NODES:-1000}
WINDOW=${BENCH_STATS_WINDOW:-10} # seconds per CPU measurement
RUNS=${BENCH_STATS_RUNS:-3}
CHANGES=${BENCH_STATS_CHANGES:-7}
SHM=$T/shm/beostat

beostat() { command beostat --shm "$SHM" "$@"; }
die() { echo "bench-stats: $*" >&2; _dump_logs; exit 1; }

# cpu_ns PID: cpu time of all of PID's threads, ns (schedstat: exact, not ticks).
cpu_ns() {
	local f s=0 v
	for f in /proc/$1/task/*/schedstat; do
		read -r v _ <"$f" 2>/dev/null && s=$((s + v))
	done
	echo $s
}
# cpu_pct PID SECONDS: percent of one core PID used over the next SECONDS.
cpu_pct() {
	local a b
	a=$(cpu_ns "$1")
	sleep "$2"
	b=$(cpu_ns "$1")
	awk -v d=$((b - a)) -v s="$2" 'BEGIN { printf "%.3f", d / (s * 1e9) * 100 }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
up_count() { beostat | awk '$2 == "up"' | wc -l; }

start_recvstats() {
	bg_master "$T/recvstats.log" recvstats -d -i eth0 -k "$KEY" --shm "$SHM" "$@" || die "recvstats did not start"
	wait_for "test -s '$SHM'" 5 || die "no shm file"
}

# /var/shm is a tmpfs on a cluster master (as Scyld's was); so is the bench's.
mkdir -p "$T/shm" && mount -t tmpfs -o mode=0755 tmpfs "$T/shm" || die "cannot mount a tmpfs"
net_up 4 >/dev/null || die "network setup failed"
KEY=$T/cluster.key
make_key "$KEY"
# Node 1's prepared /proc: the real files but a loadavg the bench changes.
P=$T/proc1
mkdir -p "$P"
for f in cpuinfo meminfo stat net; do ln -s "/proc/$f" "$P/$f"; done
echo "0.00 0.00 0.00 1/1 1" >"$P/loadavg"

start_recvstats --files "$T/shm/beostat.d"
bg_node 0 "$T/gen.log" sendstats --simulate "$NODES" -n 0 -i eth0 -k "$KEY" || die "generator did not start"
bg_node 1 "$T/sendstats.log" sendstats -n "$NODES" -i eth0 -k "$KEY" --procfs "$P" || die "sendstats did not start"
# The peer: gmond on node 2 sending every metric each second (deaf, like
# sendstats), and gmond on node 3 receiving $NODES spoofed hosts with 20
# metrics each, every value once a second (mute, like recvstats), from a
# generator speaking Ganglia's XDR protocol on node 0.
GMOND= GMOND_RX= GMOND_SKIP=
if ! command -v gmond >/dev/null; then
	GMOND_SKIP="gmond is not installed (apt-get install ganglia-monitor)"
elif ! [ -f /etc/ganglia/gmond.conf ]; then
	GMOND_SKIP="no /etc/ganglia/gmond.conf"
fi
if [ -z "$GMOND_SKIP" ]; then
	gconf() { sed -e 's/daemonize = yes/daemonize = no/' -e 's/setuid = yes/setuid = no/' "$@" /etc/ganglia/gmond.conf; }
	gconf -e 's/deaf = no/deaf = yes/' -e 's/collect_every = [0-9]*/collect_every = 1/' \
		-e 's/time_threshold = [0-9]*/time_threshold = 1/' >"$T/gmond-tx.conf"
	gconf -e 's/mute = no/mute = yes/' >"$T/gmond-rx.conf"
	cat >"$T/ggen.py" <<'EOF'
# Ganglia load generator: NODES spoofed hosts, METRICS float metrics each,
# every value once a second, metadata at start and every 30 s.
import socket, struct, sys, time
nodes, dst = int(sys.argv[1]), (sys.argv[2], int(sys.argv[3]))
names = ["cpu_user", "cpu_system", "cpu_idle", "cpu_nice", "cpu_wio", "cpu_aidle", "load_one", "load_five",
         "load_fifteen", "proc_run", "proc_total", "mem_free", "mem_shared", "mem_buffers", "mem_cached",
         "swap_free", "bytes_in", "bytes_out", "pkts_in", "pkts_out"]
def xs(s):
    b = s.encode()
    return struct.pack(">I", len(b)) + b + b"\0" * (-len(b) % 4)
def mid(host, name):
    return xs(host) + xs(name) + struct.pack(">I", 1)
hosts = ["10.79.%d.%d:node%d" % (i // 250, i % 250, i) for i in range(nodes)]
meta = [struct.pack(">I", 128) + mid(h, n) + xs("float") + xs(n) + xs("") + struct.pack(">III", 3, 60, 0) +
        struct.pack(">I", 1) + xs("SPOOF_HOST") + xs(h) for h in hosts for n in names]
vals = [struct.pack(">I", 134) + mid(h, n) + xs("%f") for h in hosts for n in names]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
def send(p):
    try:
        s.sendto(p, dst)
    except OSError:
        time.sleep(0.001)
def send_meta():
    for i, p in enumerate(meta):
        send(p)
        if i % 200 == 199:
            time.sleep(0.002)  # paced: a burst would overflow gmond's socket
send_meta()
step, k, t = 0.005, 0, time.monotonic()
nextmeta = t + 30
while True:
    t += step
    d = t - time.monotonic()
    if d > 0:
        time.sleep(d)
    n = int(len(vals) * step)
    for i in range(n):
        send(vals[k] + struct.pack(">f", (k % 100) / 10.0))
        k = (k + 1) % len(vals)
    if time.monotonic() > nextmeta:
        send_meta()
        nextmeta += 30
EOF
	bg_node 2 "$T/gmond-tx.log" gmond -f -c "$T/gmond-tx.conf" && GMOND=$(bg_pid node2-gmond)
	bg_node 3 "$T/gmond-rx.log" gmond -f -c "$T/gmond-rx.conf" && GMOND_RX=$(bg_pid node3-gmond)
	bg_node 0 "$T/ggen.log" python3 "$T/ggen.py" "$NODES" 239.2.11.71 8649
	if [ -z "$GMOND" ] || [ -z "$GMOND_RX" ]; then GMOND= GMOND_SKIP="gmond did not start (see its logs)"; fi
fi
wait_for "test \$(up_count) -ge $((NODES + 1))" 30 || die "only $(up_count) of $((NODES + 1)) nodes up"
sleep 1 # past the start-up burst
REC=$(bg_pid master-recvstats)
GEN=$(bg_pid node0-sendstats)
SND=$(bg_pid node1-sendstats)
# bg_pid is nsenter's pid until it execs; it execs the program itself.

echo "# $NODES simulated nodes at 1 Hz + 1 real node; $RUNS windows of ${WINDOW}s; medians${BENCH_QUICK:+ (quick)}"
# tx_bytes I: bytes node I has sent on eth0.
tx_bytes() { in_node "$1" cat /proc/net/dev | sed 's/:/ /' | awk '$1 == "eth0" { print $10 }'; }
pct() { awk -v d="$1" -v s="$WINDOW" 'BEGIN { printf "%.3f", d / (s * 1e9) * 100 }'; }
rate() { awk -v d="$1" -v s="$WINDOW" 'BEGIN { printf "%.0f", d / s }'; }
rec=() gen=() snd=() gmd=() sndb=() gmdb=() grx=()
for ((r = 0; r < RUNS; r++)); do
	a=$(cpu_ns "$REC") g=$(cpu_ns "$GEN") s=$(cpu_ns "$SND") m=0 x=0 sb=$(tx_bytes 1) mb=$(tx_bytes 2)
	[ -n "$GMOND" ] && m=$(cpu_ns "$GMOND") x=$(cpu_ns "$GMOND_RX")
	sleep "$WINDOW"
	rec+=($(pct $(($(cpu_ns "$REC") - a))))
	gen+=($(pct $(($(cpu_ns "$GEN") - g))))
	snd+=($(pct $(($(cpu_ns "$SND") - s))))
	sndb+=($(rate $(($(tx_bytes 1) - sb))))
	if [ -n "$GMOND" ]; then
		gmd+=($(pct $(($(cpu_ns "$GMOND") - m))))
		grx+=($(pct $(($(cpu_ns "$GMOND_RX") - x))))
		gmdb+=($(rate $(($(tx_bytes 2) - mb))))
	fi
done
rec_files=$(printf '%s\n' "${rec[@]}" | median)
gen_pct=$(printf '%s\n' "${gen[@]}" | median)
snd_pct=$(printf '%s\n' "${snd[@]}" | median)
snd_bps=$(printf '%s\n' "${sndb[@]}" | median)
gmd_pct="skipped" gmd_bps="skipped" grx_pct="skipped" ghosts=
if [ -n "$GMOND" ]; then
	gmd_pct=$(printf '%s\n' "${gmd[@]}" | median)%
	gmd_bps=$(printf '%s\n' "${gmdb[@]}" | median)
	grx_pct=$(printf '%s\n' "${grx[@]}" | median)%
	# How many hosts gmond knows (its XML dump on port 8649).
	ghosts=$(in_node 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/8649 && cat <&3' | grep -c "<HOST ")
	# Done with the peer: its generator would only load the machine.
	bg_kill node0-python3
	bg_kill node2-gmond
	bg_kill node3-gmond
fi
# How far behind the per-node files are under the default CPU share.
now=$(date +%s.%N)
files_age=$(cat "$T"/shm/beostat.d/*/stamp | awk -v now="$now" '$1 == "updated" { printf "%.1f\n", now - $2 }' | median)
drops=$(beostat --counters | awk '$1 != "accepted" && $1 != "received" && $1 != "requests_sent" { s += $2 } END { print s + 0 }')

# Change to shm: write a new loadavg at a random phase of node 1's interval,
# poll the shm file until it shows.
lat=()
for ((c = 1; c <= CHANGES; c++)); do
	sleep "0.$((RANDOM % 1000))"
	v=$(printf '%d.%02d' $((c + 10)) $((RANDOM % 100)))
	echo "$v 0.00 0.00 1/1 1" >"$P/.l" && mv "$P/.l" "$P/loadavg"
	t0=$(_now_ms)
	wait_for "beostat -N $NODES -f loadavg | grep -q '^$v '" 5 || die "change $v never showed"
	lat+=($(($(_now_ms) - t0)))
done
lat_med=$(printf "%s\n" "${lat[@]}" | median | xargs printf "%.0f")
lat_max=$(printf '%s\n' "${lat[@]}" | sort -n | tail -1)

# recvstats_cpu ARGS...: restart recvstats with ARGS; the median of its CPU.
recvstats_cpu() {
	local r rec=()
	bg_kill master-recvstats
	start_recvstats "$@"
	wait_for "test \$(up_count) -ge $((NODES + 1))" 10 || die "nodes did not come back"
	sleep 1 # past the start-up burst (every node answering the request)
	for ((r = 0; r < RUNS; r++)); do rec+=($(cpu_pct "$(bg_pid master-recvstats)" "$WINDOW")); done
	printf '%s\n' "${rec[@]}" | median
}
rec_shm=$(recvstats_cpu --files -)
rec_all=$(recvstats_cpu --files "$T/shm/beostat.d" --files-cpu -1)

printf '%-52s %12s %12s %14s\n' "measure" "bproc" "target" "gmond (1 s)"
printf '%-52s %11s%% %11s%% %14s\n' "recvstats CPU, $NODES nodes x 1 Hz (default)" "$rec_files" "2" "$grx_pct"
printf '%-52s %11s%% %11s%%\n' "recvstats CPU, same, shm file only (--files -)" "$rec_shm" "2"
printf '%-52s %11s%% %12s\n' "recvstats CPU, same, files every packet (--files-cpu -1)" "$rec_all" "-"
printf '%-52s %11ss %12s\n' "age of a node's files (default), median" "$files_age" "-"
printf '%-52s %11s%% %12s\n' "load generator CPU ($NODES nodes)" "$gen_pct" "-"
printf '%-52s %11s%% %11s%% %14s\n' "sendstats CPU per node, 1 Hz" "$snd_pct" "0.5" "$gmd_pct"
printf '%-52s %12s %12s %14s\n' "bytes/s a node sends, 1 Hz" "$snd_bps" "-" "$gmd_bps"
printf '%-52s %10sms %10sms\n' "change on node -> shm file, median of $CHANGES" "$lat_med" "1500"
printf '%-52s %10sms %10sms\n' "change on node -> shm file, worst of $CHANGES" "$lat_max" "1500"
printf '%-52s %12s %12s\n' "packets dropped as bad (should be 0)" "$drops" "0"
if [ -n "$GMOND_SKIP" ]; then
	echo "# gmond (1 s): skipped: $GMOND_SKIP"
else
	echo "# gmond (1 s): Debian's gmond.conf, every metric collected and sent each second; the receiving gmond knew $ghosts hosts"
fi
exit 0
