#!/bin/sh
# Binaries spread by tree: a binary started on many nodes crosses the
# master's link at most 4 times; the other nodes fetch it from peers (other
# slaves' --peer-port listeners) that the master names in the start
# message, checking the hash whatever the source. A bad peer, a peer that
# stops answering and a stranger without the key change nothing a user
# sees: the fetch falls back to the master, and the fallback is counted.
. "$(dirname "$0")/lib.sh"

HTTP=127.0.0.1:2280
N=8
SIZE=4000000

# http_get URL: GET from the master's network namespace.
http_get() { in_master python3 "$TEST_DIRECTORY/web-get.py" "$@"; }
# counter NAME: a counter of the master's /metrics, as a whole number.
counter() {
	http_get "http://$HTTP/metrics" >scrape &&
		awk -v k="$1" '$1 == k { printf "%.0f\n", $2; found = 1 } END { exit !found }' scrape
}

# prog FILE TAG: a SIZE-byte script that prints its node, its tag and the
# sha256 of the file it runs from (the node's cached copy).
prog() {
	{ printf '#!/bin/sh\necho "$(hostname) %s $(sha256sum <"$0" | cut -c1-64)"\nexit 0\n#' "$2" &&
		head -c "$SIZE" /dev/zero | tr '\0' '#'; } >"$1" && chmod 755 "$1"
}

# want FILE TAG NODES...: what prog FILE TAG prints on NODES, sorted.
want() {
	local f=$1 tag=$2 h i
	shift 2
	h=$(sha256sum <"$f" | cut -c1-64) || return 1
	for i in "$@"; do echo "node$i $tag $h" || return 1; done | sort
}

test_setup "a $N-node cluster, the master's metrics on $HTTP" cluster_up $N "http $HTTP"

test_expect_success 'every slave announces its peer listener on port 2224' '
	for ((i = 0; i < N; i++)); do
		grep -q "node $i serves binaries to peers at $(node_addr $i):2224" "$MASTER_LOG" || return 1
	done
'

test_expect_success "a binary run on $N nodes arrives byte-exact everywhere, sent by the master at most 4 times" '
	prog "$T/a" a &&
	before=$(counter bproc_binary_sent_bytes_total) &&
	bpsh -a "$T/a" >out &&
	sort out >got && want "$T/a" a 0 1 2 3 4 5 6 7 >expect && test_cmp expect got &&
	after=$(counter bproc_binary_sent_bytes_total) &&
	size=$(stat -c %s "$T/a") &&
	echo "master sent $((after - before)) bytes for $N nodes, the binary is $size" &&
	test $((after - before)) -le $((4 * size)) &&
	test $((after - before)) -ge "$size" &&
	falls=$(counter bproc_binary_peer_fallbacks_total) && test "$falls" = 0
'

test_expect_success 'the nodes told to fetch from a peer did so: none fetched from the master' '
	hash=$(sha256sum <"$T/a" | cut -c1-64) &&
	! grep "fetching binary $hash from the master" "$MASTER_LOG" &&
	! grep "failed, trying the next source" "$T"/slave[0-7].log
'

# Nodes 0-3 become bad peers: they serve every byte flipped.
corrupt_peers() {
	for i in 0 1 2 3; do
		slave_kill $i && (export BPSLAVE_TEST_CORRUPT_PEER=1 && slave_start $i) || return 1
	done
	wait_nodes_up $N
}

test_expect_success 'a peer serving corrupt bytes: the hash check refuses them, the node falls back to the master' '
	corrupt_peers &&
	prog "$T/b" b &&
	bpsh 0-3 "$T/b" >out0 &&
	falls=$(counter bproc_binary_peer_fallbacks_total) &&
	out=$(bpsh 4 "$T/b") && want "$T/b" b 4 >expect && echo "$out" >got && test_cmp expect got &&
	grep -q "from peer 10.77.0.1[0-3]:2224 failed, trying the next source: .*corrupt" "$T/slave4.log" &&
	now=$(counter bproc_binary_peer_fallbacks_total) && test "$now" = $((falls + 1)) &&
	grep -q "node 4: fetching binary $(sha256sum <"$T/b" | cut -c1-64) from the master: its peers failed it" "$MASTER_LOG"
'

test_expect_success 'nothing of the corrupt bytes is left in the node cache: the next run there is right' '
	out=$(bpsh 4 "$T/b") && want "$T/b" b 4 >expect && echo "$out" >got && test_cmp expect got
'

# Back to good peers.
good_peers() {
	for i in 0 1 2 3; do
		slave_kill $i && slave_start $i || return 1
	done
	wait_nodes_up $N
}

test_expect_success 'peers that stop answering mid-launch: every node still starts the binary' '
	good_peers &&
	prog "$T/c" c &&
	bpsh 0-3 "$T/c" >out0 &&
	for i in 0 1 2 3; do kill -STOP "$(slave_pid $i)" || return 1; done &&
	test_when_finished "for i in 0 1 2 3; do kill -CONT \$(slave_pid \$i); done" &&
	falls=$(counter bproc_binary_peer_fallbacks_total) &&
	bpsh 4-7 "$T/c" >out &&
	sort out >got && want "$T/c" c 4 5 6 7 >expect && test_cmp expect got &&
	now=$(counter bproc_binary_peer_fallbacks_total) && test "$now" -ge $((falls + 1)) &&
	for i in 0 1 2 3; do kill -CONT "$(slave_pid $i)" || return 1; done &&
	wait_nodes_up $N 30
'

test_expect_success 'a process without the cluster key is refused by a peer port' '
	make_key "$T/other.key" &&
	before=$(grep -c "key mismatch" "$T/slave0.log" || true) &&
	! in_node 5 timeout 20 bpslave -d -k "$T/other.key" --peer-port 0 --no-mount --no-stats "$(node_addr 0)" 2224 >stranger.log 2>&1 &&
	cat stranger.log &&
	grep -q "key mismatch" stranger.log &&
	wait_for "test \$(grep -c \"key mismatch\" \"$T/slave0.log\") -gt $before" 10
'

test_done
