#!/bin/sh
# Node statistics: sendstats on 4 nodes multicasting across the bridge to
# recvstats on the master; the shm file, the per-node files, beostat, the
# metrics; stale nodes, a restarted recvstats, forged and garbage packets.
. "$(dirname "$0")/lib.sh"

RATE=5          # samples per second: a 200 ms interval keeps the suite quick
IV_MS=200
SHM=$T/shm/beostat
FILES=$T/shm/beostat.d
METRICS=$MASTER_ADDR:9101

beostat() { command beostat --shm "$SHM" "$@"; }
# The helpers read beostat's output whole, so that they fail when it does.
# node_field I COLUMN: a column of node I's line in the beostat table.
node_field() { local t; t=$(beostat) && awk -v n="$1" -v c="$2" '$1 == n { print $c }' <<<"$t"; }
nodes_in_state() { local t; t=$(beostat) && awk -v s="$1" '$2 == s { n++ } END { print n + 0 }' <<<"$t"; }
# tx_bytes FILE: eth0's transmitted bytes in a /proc/net/dev-format file.
tx_bytes() { sed 's/:/ /' "$1" | awk '$1 == "eth0" { print $10 }'; }
stamp_seq() { local t; t=$(beostat -N "$1" -f stamp) && awk '$1 == "seq" { print $2 }' <<<"$t"; }
counter() { local t; t=$(beostat --counters) && awk -v n="$1" '$1 == n { print $2 }' <<<"$t"; }

# A prepared /proc for node I: the real files, except stat, which a ticker
# advances every 100 ms, all idle (or all busy for node 2).
prepare_proc() {
	local d=$T/proc$1 f
	mkdir -p "$d"
	for f in cpuinfo meminfo loadavg net; do ln -s "/proc/$f" "$d/$f"; done
}
stat_ticker() {
	local t=0
	while :; do
		t=$((t + 10))
		for i in 0 1 2; do
			if [ "$i" = 2 ]; then u=$((1000 + t)) idle=5000; else u=1000 idle=$((5000 + t)); fi
			{
				echo "cpu  $((2 * u)) 0 100 $((2 * idle)) 0 0 0 0 0 0"
				echo "cpu0 $u 0 50 $idle 0 0 0 0 0 0"
				echo "cpu1 $u 0 50 $idle 0 0 0 0 0 0"
				echo "ctxt 1"; echo "btime 1700000000"; echo "processes 1"
			} >"$T/proc$i/.stat" && mv "$T/proc$i/.stat" "$T/proc$i/stat"
		done
		sleep 0.1
	done
}

start_sender() { # start_sender I [ARGS...]
	local i=$1
	shift
	bg_node "$i" "$T/sendstats$i.log" sendstats -n "$i" -i eth0 -k "$KEY" "$@"
}
start_recvstats() {
	bg_master "$T/recvstats.log" recvstats -d -i eth0 -k "$KEY" --shm "$SHM" --files "$FILES" --metrics "$METRICS"
	wait_for "test -s '$SHM'" 5
}

setup() {
	net_up 4 || return 1
	KEY=$T/cluster.key
	make_key "$KEY" || return 1
	for i in 0 1 2; do prepare_proc "$i"; done
	{ declare -f stat_ticker; echo "T='$T' stat_ticker"; } >"$T/ticker.sh"
	bg_master "$T/ticker.log" bash "$T/ticker.sh" || return 1 # the ticker needs no network
	wait_for "test -s '$T/proc2/stat'" 5 || return 1
	start_recvstats
}
test_setup 'a 4-node network, recvstats on the master' setup

test_expect_success 'all nodes appear within two intervals (the default, 1 s) of their sendstats starting' '
	for i in 0 1 2; do start_sender $i --procfs $T/proc$i || return 1; done &&
	start=$(_now_ms) &&
	start_sender 3 &&
	wait_for "test \$(nodes_in_state up) = 4" $(slow 5) &&
	took=$(($(_now_ms) - start)) &&
	echo "all 4 up ${took} ms after the last sendstats started" &&
	within_ms $took 2000
'

# The rest runs the nodes at $RATE samples a second, to be quick.
test_expect_success 'nodes restarted at a shorter interval keep their records' '
	for i in 0 1 2 3; do bg_kill node$i-sendstats || return 1; done &&
	for i in 0 1 2; do start_sender $i -r $RATE --procfs $T/proc$i || return 1; done &&
	start_sender 3 -r $RATE &&
	wait_for "test \$(beostat -N 3 -f stamp | grep -c \"^interval 0.200\$\") = 1" $(slow 3) &&
	n=$(nodes_in_state up) && test "$n" = 4
'

test_expect_success 'the per-node files are the nodes /proc files, in their formats' '
	wait_for "test -s $FILES/3/cpuinfo" $(slow 2) &&
	ls $FILES/3 | sort >names && printf "cpuinfo\nloadavg\nmeminfo\nnet\nstamp\nstat\n" >expect && test_cmp expect names &&
	n=$(grep -c "^processor" $FILES/3/cpuinfo) && want=$(grep -c "^processor" /proc/cpuinfo) &&
	test "$n" = "$want" &&
	grep "^MemTotal:" /proc/meminfo >expect && grep "^MemTotal:" $FILES/3/meminfo >actual && test_cmp expect actual &&
	n=$(wc -w <$FILES/3/loadavg) && test "$n" = 5 &&
	test_grep "^cpu  " $FILES/3/stat && test_grep "^cpu0 " $FILES/3/stat &&
	test_grep "^ *eth0: " $FILES/3/net && test_grep "^Inter-|" $FILES/3/net &&
	test_grep "^node 3$" $FILES/3/stamp && test_grep "^state up$" $FILES/3/stamp &&
	test_grep "^addr 10\.77\.0\.13$" $FILES/3/stamp &&
	modes=$(stat -c %a $SHM $FILES/3/stat) && test "$modes" = "644
644" &&
	# The API renders the same text (polled: the node changes it meanwhile).
	wait_for "beostat -N 3 -f meminfo | cmp -s - $FILES/3/meminfo" $(slow 3)
'

test_expect_success 'traffic through node 1 shows in node 1 network figures and no other node' '
	for i in 0 1 2 3; do beostat -N $i -f net >before$i || return 1; done &&
	in_node 1 python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
b = bytes(1400)
for _ in range(15000):
    s.sendto(b, (\"$MASTER_ADDR\", 9))
" &&
	b1=$(tx_bytes before1) &&
	wait_for "test \$(( \$(beostat -N 1 -f net | tx_bytes /dev/stdin) - $b1 )) -gt 20000000" $(slow 5) &&
	# Two more samples from every other node: each had every chance to show it.
	for i in 0 2 3; do
		s=$(stamp_seq $i) && wait_for "test \$(stamp_seq $i) -ge $((s + 2))" $(slow 3) || return 1
	done &&
	for i in 0 2 3; do
		beostat -N $i -f net >after$i &&
		a=$(tx_bytes after$i) && b=$(tx_bytes before$i) &&
		d=$((a - b)) &&
		echo "node $i sent $d bytes meanwhile" &&
		{ test $d -lt 1000000 || fail "node $i shows node 1 traffic"; } || return 1
	done
'

test_expect_success 'a node whose prepared stat shows busy cpus shows it, no other node does' '
	wait_for "test \$(node_field 2 5 | cut -d. -f1) -ge 95" $(slow 5) &&
	beostat &&
	for i in 0 1; do
		p=$(node_field $i 5) && { test ${p%.*} -le 5 || fail "node $i at $p%"; } || return 1
	done &&
	head -1 $FILES/2/stat >line && read -r cpu user rest <line && test $user -gt 2000
'

test_expect_success 'beostat -w redraws the table in place' '
	beostat -w --interval 100ms --count 3 >live &&
	n=$(grep -c "^ NODE STATE" live) && test "$n" = 3 &&
	n=$(grep -c "$(printf "\033")\[H" live) && test "$n" = 3 &&
	n=$(grep -c "^    3 up " live) && test "$n" = 3
'

test_expect_success '--metrics serves the nodes in Prometheus format' '
	in_master bash -c "exec 3<>/dev/tcp/${METRICS%:*}/${METRICS#*:} &&
		printf \"GET /metrics HTTP/1.0\r\n\r\n\" >&3 && cat <&3" >response &&
	test_grep "^HTTP/1.[01] 200 OK" response &&
	test_grep "^Content-Type: text/plain; version=0.0.4" response &&
	sed "1,/^\r\$/d" response >metrics &&
	test_grep "^node_load1{node=\"3\"} " metrics &&
	test_grep "^node_memory_MemTotal_bytes{node=\"0\"} " metrics &&
	test_grep "^node_cpu_seconds_total{node=\"2\",cpu=\"1\",mode=\"user\"} " metrics &&
	test_grep "^node_network_transmit_bytes_total{node=\"1\",device=\"eth0\"} " metrics &&
	n=$(grep -c "^bproc_node_up{node=\"[0-3]\"} 1" metrics) && test "$n" = 4
'

test_expect_success 'stopping a node sendstats marks it stale, and only it' '
	bg_kill node0-sendstats &&
	wait_for "test \"\$(node_field 0 2)\" = stale" $(slow 3) &&
	{
		wait_for "grep -q \"^state stale$\" $FILES/0/stamp" $(slow 2) || {
			echo "shm:" && beostat -N 0 -f stamp &&
			echo "file:" && cat $FILES/0/stamp &&
			date +%s.%N && false
		}
	} &&
	n=$(nodes_in_state up) && test "$n" = 3
'

test_expect_success 'a restarted recvstats has every node within 1 s (nodes at 5 s intervals)' '
	for i in 1 2 3; do bg_kill node$i-sendstats || return 1; done &&
	for i in 0 1 2; do start_sender $i -r 0.2 --procfs $T/proc$i || return 1; done &&
	start_sender 3 -r 0.2 &&
	wait_for "test \$(nodes_in_state up) = 4" $(slow 3) &&
	bg_kill master-recvstats &&
	start=$(_now_ms) &&
	start_recvstats &&
	wait_for "test \$(nodes_in_state up) = 4" $(slow 3) &&
	took=$(($(_now_ms) - start)) &&
	echo "all 4 back ${took} ms after recvstats was started" &&
	within_ms $took 1000
'

test_expect_success 'packets signed with the wrong key change nothing' '
	(umask 077 && echo not-the-cluster-key >$T/wrong.key) &&
	bad=$(counter bad_mac) &&
	bg_node 3 $T/forged7.log sendstats -n 7 -i eth0 -k $T/wrong.key -r 20 &&
	bg_node 3 $T/forged1.log sendstats -n 1 -i eth0 -k $T/wrong.key -r 20 --procfs $T/proc2 &&
	wait_for "test \$(counter bad_mac) -ge \$((bad + 10))" $(slow 5) &&
	bg_kill node3-sendstats.2 && bg_kill node3-sendstats.3 &&
	out=$(node_field 7 2) && test -z "$out" &&
	beostat -N 1 -f stat >stat1 && head -1 stat1 >line && read -r cpu user rest <line &&
	{ test "$user" = 2000 || fail "node 1 shows the forged busy stat: $user"; } &&
	test_grep "^addr 10\.77\.0\.11$" $FILES/1/stamp &&
	out=$(node_field 1 2) && test "$out" = up
'

test_expect_success 'garbage on the port changes nothing' '
	beostat >table &&
	awk "{ print \$1, \$2, \$3 }" table >table.before &&
	for c in short bad_magic oversized; do eval "$c=\$(counter $c)" || return 1; done &&
	in_node 2 python3 -c "
import os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
dst = (\"239.2.11.72\", 3040)
for n in (0, 1, 5, 47, 80, 1000, 1472):
    s.sendto(os.urandom(n), dst)
s.sendto(b\"BPST\\x01\\x01\" + os.urandom(42) + os.urandom(32), dst)
s.sendto(b\"BPST\\x01\\x01\" + bytes(200), dst)
s.sendto(os.urandom(40000), dst)
" &&
	wait_for "test \$(counter oversized) -gt $oversized" $(slow 3) &&
	n=$(counter short) && test "$n" -gt $short &&
	n=$(counter bad_magic) && test "$n" -gt $bad_magic &&
	p=$(bg_pid master-recvstats) && pid_alive $p &&
	beostat >table &&
	awk "{ print \$1, \$2, \$3 }" table >table.after &&
	test_cmp table.before table.after
'

test_done
