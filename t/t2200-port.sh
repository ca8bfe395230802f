#!/bin/sh
# The 9P port under attack: a flood of strangers, a replayed handshake, a
# corrupted or cut sealed frame, broken 9P from a key holder. Key holders get
# through, nodes come back, the master's log stays short, nothing crashes.
# The attacks come from porttool (srv/internal/porttool), built here; the
# flood from node 3's namespace, on 101 addresses (the pool's eviction favours
# no single address then).
. "$(dirname "$0")/lib.sh"

test_setup 'a 2-node cluster comes up' cluster_up 2

if ! command -v go >/dev/null 2>&1; then
	test_skip 'the port under attack' 'no go to build porttool'
	test_done
fi
tools_up() {
	(cd "$BPROC_ROOT" && go build -o "$T/porttool" ./srv/internal/porttool) &&
		net_add_node 2 && net_add_node 3
}
test_setup 'porttool builds; nodes 2 (client, relay) and 3 (flood) without slaves' tools_up

PORT=$MASTER_ADDR:$BPROC_PORT

# net_bpsh ARGS...: bpsh on node 2 over 9P (no mount there), to
# $MASTER_AT (default the master's port), within 10 s.
net_bpsh() {
	in_node 2 timeout 10 env BPROC_MOUNT=/nonexistent BPROC_MASTER=${MASTER_AT:-$PORT} bpsh -k $KEY "$@"
}

# port_conns: connections established on the master's 9P port.
port_conns() { in_master ss -Htn state established "( sport = :$BPROC_PORT )" | wc -l; }

# port_peers: distinct addresses with connections established to the port.
port_peers() {
	in_master ss -Htn state established "( sport = :$BPROC_PORT )" |
		awk '{ sub(/:[0-9]+$/, "", $4); print $4 }' | sort -u | wc -l
}

# flood_open: the flood's connections open right now, as porttool counts.
flood_open() { read -r word open rest <$T/flood.status && echo "$open"; }

# relay_start PORT ARGS...: porttool relay on node 2 at 127.0.0.1:PORT to
# the master, stopped when the test ends; waits until it listens.
relay_start() {
	local port=$1
	shift
	bg_node 2 $T/relay.log $T/porttool relay -listen 127.0.0.1:$port "$@" $PORT &&
		test_when_finished "bg_kill node2-porttool" &&
		wait_for "in_node 2 ss -Htln \"( sport = :$port )\" | grep -q ." 5
}

# relayed_bpsh_fails PORT: bpsh through the relay at 127.0.0.1:PORT fails,
# and not by timing out (its stderr is shown).
relayed_bpsh_fails() {
	local st=0
	MASTER_AT=127.0.0.1:$1 net_bpsh 0 hostname 2>err || st=$?
	cat err &&
		test $st -ne 0 && test $st -ne 124
}

# serves_on_after REASON NODE: the master logged node 2's connection ending
# with REASON (a pattern), and after the relay is gone still runs a job on
# NODE, with both nodes up.
serves_on_after() {
	local out n
	wait_for "grep -q \"10.77.0.12: p9.recv: $1\" $MASTER_LOG" 5 &&
		bg_kill node2-porttool &&
		out=$(net_bpsh $2 hostname) &&
		test "$out" = node$2 &&
		n=$(nodes_up) && test "$n" = 2
}

# log_lines: lines in the master's log so far.
log_lines() { wc -l <$MASTER_LOG; }

test_expect_success 'a flood of 1550 silent and trickling strangers from 101 addresses is connected to the port' '
	from=$(node_addr 3) &&
	for i in $(seq 100 199); do
		ip -n $(ns_node 3) addr add 10.77.0.$i/24 dev eth0 &&
		from=$from,10.77.0.$i || return 1
	done &&
	log_lines >log.before &&
	bg_node 3 $T/flood.log $T/porttool flood -silent 1500 -drip 50 -from $from -status $T/flood.status $PORT &&
	wait_for "test \$(port_conns) -ge 1000 && test \$(flood_open) -ge 1000" 30 &&
	peers=$(port_peers) &&
	test "$peers" -ge 100 &&
	wait_for "grep -q \"evicted, 1024 connections in the handshake\" $MASTER_LOG" 10
'

test_expect_success 'during the flood bpsh over 9P gets through 10 times of 10' '
	for i in 1 2 3 4 5 6 7 8 9 10; do
		out=$(net_bpsh 0 hostname) && test "$out" = node0 || return 1
	done &&
	n=$(port_conns) &&
	test "$n" -ge 900
'

test_expect_success 'a slave killed during the flood comes back when restarted' '
	slave_kill 1 &&
	wait_for "test \$(nodes_up) -eq 1" 10 &&
	slave_start 1 &&
	wait_nodes_up 2 20 &&
	out=$(bpsh 1 hostname) &&
	test "$out" = node1 &&
	n=$(port_conns) &&
	test "$n" -ge 900
'

test_expect_success 'the flood leaves the master log short: a few lines per kind and a summary' '
	wait_for "grep -q \"more connections evicted (handshake pool full) in the last 10s\" $MASTER_LOG" 15 &&
	read -r word open word dialed <$T/flood.status &&
	before=$(cat log.before) &&
	after=$(log_lines) &&
	echo "$dialed flood connections, $((after - before)) lines of log" &&
	test "$dialed" -ge 3000 &&
	test $((after - before)) -le 200 &&
	bg_kill node3-porttool &&
	wait_for "test \$(port_conns) -le 2" 10
'

test_expect_success 'a recorded handshake replayed to the master is refused' '
	relay_start 2300 -record $T/handshake.rec &&
	out=$(MASTER_AT=127.0.0.1:2300 net_bpsh 0 hostname) &&
	test "$out" = node0 &&
	test -s $T/handshake.rec &&
	bg_kill node2-porttool &&
	in_node 2 $T/porttool replay $T/handshake.rec $PORT >verdict &&
	test_grep "cluster key mismatch" verdict &&
	wait_for "grep -q \"handshake with 10.77.0.12:.*cluster key mismatch\" $MASTER_LOG" 5
'

test_expect_success 'a bit flipped in a sealed frame ends that connection; the master serves on' '
	relay_start 2301 -corrupt flip &&
	relayed_bpsh_fails 2301 &&
	test_grep "flipped a bit" $T/relay.log &&
	serves_on_after "sealed frame does not authenticate" 1
'

test_expect_success 'a sealed frame cut short ends that connection; the master serves on' '
	relay_start 2302 -corrupt truncate &&
	relayed_bpsh_fails 2302 &&
	serves_on_after "sealed frame of [0-9]* bytes cut short" 0
'

test_expect_success 'broken 9P from a key holder: garbage, a 4 GiB message, tag games and a second Tversion' '
	for c in garbage huge tags; do
		in_node 2 $T/porttool bad9p -k $KEY $PORT $c >out &&
		test_grep "closed by the server" out || return 1
	done &&
	n=$(grep -c "10.77.0.12: p9.recv: malformed 9P" $MASTER_LOG) && test "$n" = 3 &&
	pid_alive $(bg_pid master-bpmaster) &&
	out=$(net_bpsh 1 hostname) &&
	test "$out" = node1 &&
	n=$(nodes_up) && test "$n" = 2
'

test_done
