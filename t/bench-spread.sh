#!/bin/sh
# bench-spread: a 16 MB binary started with `bpsh -a` on many nodes (64 by
# default) of a virtual cluster, where the slaves spread it by tree: the
# bytes the master sent (in copies of the binary, from its /metrics), and
# the time until every node has run it (bpsh -a returns once every node's
# output is in), beside scp of the same binary to every node at once, in
# the same run (the master's link then carries one copy per node). Each
# run ships a fresh binary (the nodes cache what they fetched). Knobs:
# BENCH_SPREAD_NODES (64), BENCH_SPREAD_MB (16), BENCH_SPREAD_RUNS (3),
# BENCH_SSH_INSTALL (1: install openssh-server when sshd is missing).
# Not part of make bench-quick: bringing up 64 nodes takes longer than
# that loop allows.
. "$(dirname "$0")/lib.sh"

NODES=${BENCH_SPREAD_NODES:-64}
MB=${BENCH_SPREAD_MB:-16}
RUNS=${BENCH_SPREAD_RUNS:-3}
HTTP=127.0.0.1:2281

if [ -n "${BENCH_QUICK:-}" ]; then
	echo "bench-spread: skipped in bench-quick (its $NODES-node cluster takes minutes); make bench runs it"
	exit 0
fi

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
row() { printf '%-48s %10s %-7s %4s   %s\n' "$1" "$2" "$3" "$4" "$5"; }
verdict() { if awk -v v="$1" -v l="$3" "BEGIN { exit !(v $2 l) }"; then echo ok; else echo MISSED; fi; }
# sent: the master's bproc_binary_sent_bytes_total.
sent() {
	in_master python3 "$TEST_DIRECTORY/web-get.py" "http://$HTTP/metrics" |
		awk '$1 == "bproc_binary_sent_bytes_total" { printf "%.0f\n", $2; found = 1 } END { exit !found }'
}
# prog FILE TAG: an MB-megabyte script that prints its node and TAG (the
# shell reads its first lines only; the slaves still fetch and hash it all).
prog() {
	{ printf '#!/bin/sh\necho "$(hostname) %s"\nexit 0\n#' "$2" && head -c $((MB << 20)) /dev/zero | tr '\0' '#'; } >"$1" &&
		chmod 755 "$1"
}

echo "bench-spread: bringing up $NODES nodes" >&2
if ! CLUSTER_RANGE=$NODES cluster_up "$NODES" "http $HTTP" >"$T/up.out" 2>&1; then
	cat "$T/up.out"
	_dump_logs
	echo "bench-spread: the cluster did not come up" >&2
	exit 1
fi

# sshd on every node (bench-core does the same on node 0), as an
# unprivileged user that scp copies into the node's own /tmp.
ssh_ok=
setup_sshd() {
	if ! test -x /usr/sbin/sshd; then
		[ "${BENCH_SSH_INSTALL:-1}" = 1 ] || { echo "sshd absent and BENCH_SSH_INSTALL=0" >&2 && return 1; }
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null 2>&1 || return 1
	fi
	ensure_user bpbench && usermod -p '*' bpbench || return 1
	mkdir -p "$T/ssh" /run/sshd && chmod 0755 "$T/ssh" &&
		ssh-keygen -q -t ed25519 -N '' -f "$T/ssh/host" && ssh-keygen -q -t ed25519 -N '' -f "$T/ssh/id" &&
		cp "$T/ssh/id.pub" "$T/ssh/authorized_keys" && chmod 0644 "$T/ssh/authorized_keys" || return 1
	local i
	for ((i = 0; i < NODES; i++)); do
		printf '%s\n' "ListenAddress $(node_addr $i)" "HostKey $T/ssh/host" "AuthorizedKeysFile $T/ssh/authorized_keys" \
			"PermitRootLogin no" "PasswordAuthentication no" "UsePAM no" "StrictModes no" "PidFile none" \
			"Subsystem sftp internal-sftp" >"$T/ssh/sshd$i.conf" &&
			bg_node $i "$T/sshd$i.log" /usr/sbin/sshd -D -e -f "$T/ssh/sshd$i.conf" || return 1
	done
	for ((i = 0; i < NODES; i++)); do
		wait_for "in_master bash -c 'exec 3<>/dev/tcp/$(node_addr $i)/22'" 10 || return 1
	done
}
SCP="scp -q -F /dev/null -i $T/ssh/id -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
# scp_all FILE: copies FILE to every node at once; prints the wall time (ms).
scp_all() {
	local i t0 t1 pids=
	t0=${EPOCHREALTIME/./}
	for ((i = 0; i < NODES; i++)); do
		in_master $SCP "$1" "bpbench@$(node_addr $i):/tmp/spread.bin" &
		pids="$pids $!"
	done
	for i in $pids; do wait "$i" || return 1; done
	t1=${EPOCHREALTIME/./}
	echo $(((10#$t1 - 10#$t0) / 1000))
}
if setup_sshd >"$T/ssh.out" 2>&1; then ssh_ok=1; else
	echo "bench-spread: no scp peer:" >&2
	tail -n 5 "$T/ssh.out" >&2
fi

# launch R TAG: run R of a fresh binary on every node by bpsh -a; appends
# the copies the master sent to $T/TAG.copies and the time to $T/TAG.ms.
launch() {
	local f=$T/$2$1 before after t0 t1 lines size
	prog "$f" "$2$1" && size=$(stat -c %s "$f") || return 1
	before=$(sent) || { echo "bench-spread: no bproc_binary_sent_bytes_total in /metrics" >&2 && return 1; }
	t0=${EPOCHREALTIME/./}
	bpsh -a "$f" >"$f.out" 2>"$f.err" || { echo "bench-spread: bpsh -a failed:" >&2 && cat "$f.err" >&2 && return 1; }
	t1=${EPOCHREALTIME/./}
	lines=$(grep -c " $2$1\$" "$f.out")
	[ "$lines" = "$NODES" ] || { echo "bench-spread: $lines of $NODES nodes printed their line" >&2 && return 1; }
	after=$(sent) || return 1
	awk -v b=$((after - before)) -v s="$size" 'BEGIN { printf "%.2f\n", b / s }' >>"$T/$2.copies" &&
		echo $(((10#$t1 - 10#$t0) / 1000)) >>"$T/$2.ms"
}
for ((r = 0; r < RUNS; r++)); do
	launch $r spread || exit 1
	if [ -n "$ssh_ok" ]; then scp_all "$T/spread$r" >>"$T/scp.ms" || { echo "bench-spread: scp failed" >&2; exit 1; }; fi
done

# The same without peers (bpslave --peer-port 0): every node fetches from
# the master, as before binaries spread.
nopeer() {
	local i
	for ((i = 0; i < NODES; i++)); do
		slave_kill $i && slave_start $i -d -r -k "$KEY" --peer-port 0 "$MASTER_ADDR" || return 1
	done
	wait_nodes_up "$NODES" 60
}
nopeer >"$T/nopeer.out" 2>&1 || { cat "$T/nopeer.out" && echo "bench-spread: the slaves did not come back" >&2 && exit 1; }
for ((r = 0; r < RUNS; r++)); do launch $r nopeer || exit 1; done

copies=$(median <"$T/spread.copies")
falls=$(in_master python3 "$TEST_DIRECTORY/web-get.py" "http://$HTTP/metrics" | awk '$1 == "bproc_binary_peer_fallbacks_total" { printf "%.0f", $2 }')
echo "spread: a $MB MB binary on $NODES nodes (bpsh -a), medians of $RUNS runs, fresh binary each"
row "master link: copies sent by bpmaster" "$copies" copies "$RUNS" "target <= 4: $(verdict "$copies" "<=" 4)"
row "bpsh -a: time until every node ran it" "$(median <"$T/spread.ms")" ms "$RUNS"
row "peer fetches that fell back to the master" "${falls:-?}" total "$RUNS"
row "without peers (--peer-port 0): copies sent" "$(median <"$T/nopeer.copies")" copies "$RUNS"
row "without peers: time until every node ran it" "$(median <"$T/nopeer.ms")" ms "$RUNS"
if [ -n "$ssh_ok" ]; then
	row "scp to every node at once (peer)" "$(median <"$T/scp.ms")" ms "$RUNS" "master link: $NODES copies"
else
	row "scp to every node at once (peer)" n/a "" "" "(no sshd)"
fi
