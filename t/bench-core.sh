#!/bin/sh
# bench-core: launch latency and output throughput of bpsh on a 4-node virtual
# cluster, beside a local fork/exec, ssh to a node, and a local cat.
# Every figure is the median of several runs. Knobs: BENCH_RUNS (latency runs,
# default 200), BENCH_SSH_RUNS (30), BENCH_TP_RUNS (5), BENCH_MB (512),
# BENCH_SSH_INSTALL (1: install openssh-server when sshd is missing; 0: the
# ssh rows say n/a instead), BENCH_QUICK (1: the header says "(quick)").
. "$(dirname "$0")/lib.sh"

RUNS=${BENCH_RUNS:-200}
SSH_RUNS=${BENCH_SSH_RUNS:-30}
TP_RUNS=${BENCH_TP_RUNS:-5}
MB=${BENCH_MB:-512}
NODES=4

# The measuring loops, run on the master (its network namespace, the root
# mount namespace), so bpsh and ssh start from the same place.
cat >"$T/measure.sh" <<'EOF'
# median FILE: the middle value of a file of numbers.
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
now_us() { local t=${EPOCHREALTIME/./}; echo $((10#$t)); }
case "$1" in
lat) # lat RUNS CMD...: median wall time of CMD in microseconds.
	runs=$2; shift 2
	f=$(mktemp) e=$(mktemp); trap 'rm -f "$f" "$e"' EXIT
	"$@" >/dev/null 2>"$e" </dev/null || { echo "failed: $*:" >&2; cat "$e" >&2; exit 1; }  # warm up
	for ((i = 0; i < runs; i++)); do
		t0=${EPOCHREALTIME/./}
		"$@" >/dev/null 2>"$e" </dev/null || { echo "failed (run $i): $*:" >&2; cat "$e" >&2; exit 1; }
		t1=${EPOCHREALTIME/./}
		echo $((10#$t1 - 10#$t0)) >>"$f"
	done
	median "$f" ;;
alt) # alt RUNS CMD...: each CMD's (a string of words) median wall time in
	# microseconds, one a line; the runs take turns, so a change in the
	# machine's load falls on all alike.
	runs=$2; shift 2
	cmds=("$@") files=() e=$(mktemp); trap 'rm -f "$e" "${files[@]}"' EXIT
	for c in "${cmds[@]}"; do
		files+=("$(mktemp)")
		$c >/dev/null 2>"$e" </dev/null || { echo "failed: $c:" >&2; cat "$e" >&2; exit 1; }  # warm up
	done
	for ((i = 0; i < runs; i++)); do
		for k in "${!cmds[@]}"; do
			t0=${EPOCHREALTIME/./}
			${cmds[k]} >/dev/null 2>"$e" </dev/null || { echo "failed (run $i): ${cmds[k]}:" >&2; cat "$e" >&2; exit 1; }
			t1=${EPOCHREALTIME/./}
			echo $((10#$t1 - 10#$t0)) >>"${files[k]}"
		done
	done
	for f in "${files[@]}"; do median "$f"; done ;;
cpu) # cpu RUNS CMD...: the CPU time (user + system) CMD takes per run, in
	# microseconds, from its parent's times.
	runs=$2; shift 2
	f=$(mktemp); trap 'rm -f "$f"' EXIT
	for ((i = 0; i < runs; i++)); do "$@" >/dev/null 2>&1 </dev/null; done
	times >"$f" # not in a pipe: a subshell's times are its own
	awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.0f\n", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * 1e6 / '"$runs"' }' "$f" ;;
tp) # tp RUNS BYTES CMD...: median throughput of CMD >/dev/null in MB/s.
	runs=$2 bytes=$3; shift 3
	f=$(mktemp); trap 'rm -f "$f"' EXIT
	for ((i = 0; i < runs; i++)); do
		t0=${EPOCHREALTIME/./}
		"$@" >/dev/null 2>/dev/null </dev/null || { echo "failed: $*" >&2; exit 1; }
		t1=${EPOCHREALTIME/./}
		echo "$bytes $((10#$t1 - 10#$t0))" | awk '{ printf "%.0f\n", $1 / $2 }' >>"$f"  # bytes/us = MB/s
	done
	median "$f" ;;
esac
EOF
measure() { in_master bash "$T/measure.sh" "$@"; }

# row WHAT VALUE UNIT RUNS [TARGET]
row() { printf '%-44s %10s %-5s %5s   %s\n' "$1" "$2" "$3" "$4" "$5"; }
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
# verdict VALUE OP LIMIT: "ok" or "MISSED" for a target.
verdict() { if awk -v v="$1" -v l="$3" "BEGIN { exit !(v $2 l) }"; then echo ok; else echo MISSED; fi; }

if ! cluster_up $NODES >"$T/up.out" 2>&1; then
	cat "$T/up.out"
	_dump_logs
	echo "bench-core: the cluster did not come up" >&2
	exit 1
fi

# ssh to the nodes as the peer: sshd in each node's namespaces with a host
# key and a client key made for this run only (ssh to node 0 beside bpsh 1;
# pdsh over ssh to all of them beside bpsh -a). The login is a bench user whose shell
# is /bin/sh: ssh runs commands through the login shell, and bash would read
# root's ~/.bashrc, whose cost (pyenv and the like) is not ssh's.
ssh_ok=
setup_ssh() {
	if ! command -v sshd >/dev/null && ! test -x /usr/sbin/sshd; then
		if [ "${BENCH_SSH_INSTALL:-1}" = 0 ]; then
			echo "bench-core: sshd absent and BENCH_SSH_INSTALL=0: no ssh peer" >&2
			return 1
		fi
		echo "bench-core: installing openssh-server for the ssh peer" >&2
		apt-get update -qq >/dev/null 2>&1
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null 2>&1 || return 1
		# The package may start a system sshd; the bench runs its own.
	fi
	ensure_user bpbench 4244 || return 1
	usermod -p '*' bpbench || return 1 # not locked ("!"), sshd refuses locked accounts; still no password
	mkdir -p "$T/ssh" /run/sshd && chmod 0755 "$T/ssh" || return 1 # the user reads authorized_keys
	ssh-keygen -q -t ed25519 -N '' -f "$T/ssh/host" || return 1
	ssh-keygen -q -t ed25519 -N '' -f "$T/ssh/id" || return 1
	cp "$T/ssh/id.pub" "$T/ssh/authorized_keys" && chmod 0644 "$T/ssh/authorized_keys"
	local i
	for i in $(seq 0 $((NODES - 1))); do
		cat >"$T/ssh/sshd_config.$i" <<-EOF
			ListenAddress $(node_addr "$i")
			Port 22
			HostKey $T/ssh/host
			AuthorizedKeysFile $T/ssh/authorized_keys
			PermitRootLogin no
			PasswordAuthentication no
			KbdInteractiveAuthentication no
			UsePAM no
			StrictModes no
			MaxStartups 100
			PidFile $T/ssh/sshd.$i.pid
		EOF
		bg_node "$i" "$T/sshd.$i.log" /usr/sbin/sshd -D -e -f "$T/ssh/sshd_config.$i" || return 1
		wait_for "in_master bash -c 'exec 3<>/dev/tcp/$(node_addr "$i")/22'" 10 || return 1
	done
	SSH="ssh -F /dev/null -i $T/ssh/id -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
	in_master $SSH bpbench@$(node_addr 0) /bin/true
}
if setup_ssh >"$T/ssh.out" 2>&1; then ssh_ok=1; else
	echo "bench-core: ssh peer unavailable:" >&2
	cat "$T/ssh.out" "$T"/sshd.*.log 2>/dev/null | tail -n 5 >&2
fi
# pdsh (its ssh module) to every node as the fan-out's peer.
pdsh_ok=
if [ -n "$ssh_ok" ] && ! command -v pdsh >/dev/null && [ "${BENCH_SSH_INSTALL:-1}" != 0 ]; then
	echo "bench-core: installing pdsh for the fan-out's peer" >&2
	apt-get update -qq >/dev/null 2>&1
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pdsh >/dev/null 2>&1
fi
if [ -n "$ssh_ok" ] && command -v pdsh >/dev/null; then
	PDSH_HOSTS=$(for i in $(seq 0 $((NODES - 1))); do printf '%s,' "$(node_addr "$i")"; done)
	PDSH_HOSTS=${PDSH_HOSTS%,}
	# pdsh's ssh module takes ssh's arguments from PDSH_SSH_ARGS (%u the
	# user, %h the host); with ControlPath, connections made once are reused.
	PDSH_SSH="${SSH#ssh } -l%u %h"
	PDSH_SSH_CM="${SSH#ssh } -o ControlMaster=auto -o ControlPath=$T/ssh/pdsh-%h -o ControlPersist=120 -l%u %h"
	if in_master env PDSH_SSH_ARGS="$PDSH_SSH" pdsh -R ssh -l bpbench -w "$PDSH_HOSTS" /bin/true >"$T/pdsh.out" 2>&1; then
		pdsh_ok=1
	else
		echo "bench-core: pdsh peer unavailable:" >&2
		tail -n 5 "$T/pdsh.out" >&2
	fi
fi

# Direct streams (node to bpsh, the master out of the path) beside their
# peers in the same run: raw TCP from node 1 to the master's namespace, and
# the same bytes as AES-128-GCM frames (srv's sealing) over it. The peer
# (t/directpeer serve) sends from memory; for comparison, it also sends
# the file as cat writes it into a pipe, the hop a job's output takes.
(cd "$BPROC_ROOT" && CGO_ENABLED=0 go build -o "$T/directpeer" ./t/directpeer) || { echo "bench-core: cannot build t/directpeer" >&2; exit 1; }
PEER=$(node_addr 1):2299
bg_node 1 "$T/peer.log" "$T/directpeer" serve "$PEER" "$T/big" || exit 1
wait_for "in_master bash -c 'exec 3<>/dev/tcp/${PEER%:*}/${PEER#*:}'" 10 || { echo "bench-core: the TCP peer did not start" >&2; exit 1; }
# direct_rows [SUFFIX]: raw TCP, the sealed stream and bpsh's direct
# stream; 0.8x the peer the cluster's sealing calls for is the target.
direct_rows() {
	local tcp gcm dir peer what pipe
	tcp=$(measure tp "$TP_RUNS" "$bytes" "$T/directpeer" get "$PEER" "$bytes") || exit 1
	row "raw TCP node->master $MB MB${1-}" "$tcp" MB/s "$TP_RUNS"
	peer=$tcp what="raw TCP"
	if [ -n "${1-}" ]; then
		pipe=$(measure tp "$TP_RUNS" "$bytes" "$T/directpeer" get "$PEER" "$bytes" pipe) || exit 1
		row "  for comparison: the same fed by cat through a pipe" "$pipe" MB/s "$TP_RUNS"
	fi
	if [ -z "${1-}" ]; then
		gcm=$(measure tp "$TP_RUNS" "$bytes" "$T/directpeer" get "$PEER" "$bytes" seal) || exit 1
		row "AES-128-GCM TCP stream $MB MB" "$gcm" MB/s "$TP_RUNS"
		pipe=$(measure tp "$TP_RUNS" "$bytes" "$T/directpeer" get "$PEER" "$bytes" sealpipe) || exit 1
		row "  for comparison: the same fed by cat through a pipe" "$pipe" MB/s "$TP_RUNS"
		peer=$gcm what="AES-GCM"
	fi
	dir=$(measure tp "$TP_RUNS" "$bytes" bpsh 1 cat "$T/big") || exit 1
	row "bpsh 1 cat $MB MB, direct${1-}" "$dir" MB/s "$TP_RUNS" \
		">= 0.8x $what ($(awk -v p="$peer" 'BEGIN { printf "%.0f", 0.8 * p }')): $(verdict "$dir" '>=' "$(awk -v p="$peer" 'BEGIN { print 0.8 * p }')")"
}

head -c $((MB * 1000000)) /dev/urandom >"$T/big"
cat "$T/big" >/dev/null # in the page cache for everyone

echo "bench-core: $NODES nodes in network namespaces on $(nproc) cores; medians${BENCH_QUICK:+ (quick)}"
row "what" "median" "" "runs" "target"

# bpsh is the C front (libbproc/bpsh), bpsh-go the Go bpsh it hands all
# but the plain launch to: alternating with the local fork/exec, and with
# that of a static C program that does nothing (bpsh is one): a launch
# starts two processes in series, bpsh and the job, so their sum is the
# floor under it on this machine.
# noop: with no arguments it does nothing; `noop PROG N` prints the median
# time, in microseconds, of N posix_spawn(3)s of PROG and their waits (a
# vfork, as the slave's start of a job).
cat >"$T/noop.c" <<'EOF'
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
extern char **environ;
static int cmp(const void *a, const void *b) { return (*(const long *)a > *(const long *)b) - (*(const long *)a < *(const long *)b); }
int main(int argc, char **argv)
{
	if (argc < 3)
		return 0;
	int n = atoi(argv[2]);
	long *us = calloc(n > 0 ? n : 1, sizeof *us);
	char *args[] = {argv[1], NULL};
	for (int i = 0; i < n; i++) {
		struct timespec a, b;
		pid_t pid;
		int st;
		clock_gettime(CLOCK_MONOTONIC, &a);
		if (posix_spawn(&pid, argv[1], NULL, NULL, args, environ) != 0 || waitpid(pid, &st, 0) != pid || st != 0)
			return 1;
		clock_gettime(CLOCK_MONOTONIC, &b);
		us[i] = (b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000;
	}
	qsort(us, n, sizeof *us, cmp);
	printf("%ld\n", us[n / 2]);
	return 0;
}
EOF
${CC:-cc} -O2 -static -o "$T/noop" "$T/noop.c" 2>"$T/noop.err" || { echo "bench-core: cannot build a static no-op:" >&2; cat "$T/noop.err" >&2; exit 1; }
alt=$(measure alt "$RUNS" /bin/true "$T/noop" "bpsh 1 /bin/true" "bpsh-go 1 /bin/true") || exit 1
set -- $alt
local_us=$1 noop_us=$2 bpsh_us=$3 go_us=$4
spawn_us=$("$T/noop" /bin/true "$RUNS") || { echo "bench-core: noop /bin/true failed" >&2; exit 1; }
row "local fork/exec /bin/true" "$(ms "$local_us")" ms "$RUNS"
row "  of a static no-op (a start as bpsh's)" "$(ms "$noop_us")" ms "$RUNS"
row "  posix_spawn of /bin/true (a start as a job's)" "$(ms "$spawn_us")" ms "$RUNS"
row "bpsh 1 /bin/true" "$(ms "$bpsh_us")" ms "$RUNS" "<= 1.5 ms: $(verdict "$bpsh_us" '<=' 1500)"
row "  floor: bpsh's start + the job's (rows above)" "$(ms "$(awk -v a="$noop_us" -v b="$spawn_us" 'BEGIN { print a + b }')")" ms "$RUNS" "the two starts in series any launch makes"
row "  for comparison: bpsh-go 1 /bin/true (Go)" "$(ms "$go_us")" ms "$RUNS"

# cpu_ticks PID: the process's user and system time so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# per_launch TICKS LAUNCHES: CPU ms per launch.
per_launch() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t * 1000 / hz / n }'; }
mpid=$(bg_pid master-bpmaster) && spid=$(slave_pid 1) || exit 1
m0=$(cpu_ticks "$mpid") && s0=$(cpu_ticks "$spid") || exit 1
c_cpu=$(measure cpu "$RUNS" bpsh 1 /bin/true) || exit 1
m1=$(cpu_ticks "$mpid") && s1=$(cpu_ticks "$spid") || exit 1
go_cpu=$(measure cpu "$RUNS" bpsh-go 1 /bin/true) || exit 1
row "  bpsh's own CPU per launch: C front / Go" "$(ms "$c_cpu") / $(ms "$go_cpu")" ms "$RUNS"
# The C front's launches, from the daemons' side: a mean.
row "  bpmaster CPU per launch (mean)" "$(per_launch $((m1 - m0)) "$RUNS")" ms "$RUNS"
row "  bpslave CPU per launch (mean)" "$(per_launch $((s1 - s0)) "$RUNS")" ms "$RUNS"

# Where bpsh's time goes: a Go program starting, and the tree's own cost
# (an exec written to ctl, then wait) from a shell.
v_us=$(measure lat "$RUNS" bpsh-go -V) || exit 1
row "  for comparison: bpsh-go -V (Go start-up)" "$(ms "$v_us")" ms "$RUNS"
raw='exec 3<>"$BPROC/node/1/ctl" && echo "exec -n /bin/true" >&3 && read -r pid <&3 && cat "$BPROC/proc/$pid/wait"'
raw_us=$(measure lat "$RUNS" sh -c "$raw") || exit 1
row "  for comparison: sh exec via ctl + wait" "$(ms "$raw_us")" ms "$RUNS"
# What bpsh writes: the pid before the node forks (-b), the end on the same
# open ctl (-w), no open of wait.
early='exec 3<>"$BPROC/node/1/ctl" && echo "exec -n -b -w /bin/true" >&3 && read -r pid <&3 && read -r end <&3 && test "$end" = "exit 0"'
early_us=$(measure lat "$RUNS" sh -c "$early") || exit 1
row "  for comparison: sh exec -b -w via ctl" "$(ms "$early_us")" ms "$RUNS"

if [ -n "$ssh_ok" ]; then
	ssh_us=$(measure lat "$SSH_RUNS" $SSH bpbench@$(node_addr 0) /bin/true) || exit 1
	row "ssh node0 /bin/true" "$(ms "$ssh_us")" ms "$SSH_RUNS"
	CM="-o ControlMaster=auto -o ControlPath=$T/ssh/cm-%h -o ControlPersist=120"
	sshm_us=$(measure lat "$SSH_RUNS" $SSH $CM bpbench@$(node_addr 0) /bin/true) || exit 1
	row "ssh node0 /bin/true (ControlMaster)" "$(ms "$sshm_us")" ms "$SSH_RUNS"
else
	row "ssh node0 /bin/true" "n/a" "" "" "(no sshd)"
fi

all_us=$(measure lat $((RUNS / 2)) bpsh -a /bin/true) || exit 1
row "bpsh -a /bin/true ($NODES nodes, set launch)" "$(ms "$all_us")" ms $((RUNS / 2))
# The per-node path the set launch replaced, in the same run.
all0_us=$(measure lat $((RUNS / 2)) env BPSH_FANOUT=0 bpsh -a /bin/true) || exit 1
row "  for comparison: per-node path (BPSH_FANOUT=0)" "$(ms "$all0_us")" ms $((RUNS / 2))
if [ -n "$pdsh_ok" ]; then
	pdsh_us=$(measure lat "$SSH_RUNS" env PDSH_SSH_ARGS="$PDSH_SSH" pdsh -R ssh -l bpbench -w "$PDSH_HOSTS" /bin/true) || exit 1
	row "pdsh -R ssh -w ($NODES nodes) /bin/true" "$(ms "$pdsh_us")" ms "$SSH_RUNS"
	pdshm_us=$(measure lat "$SSH_RUNS" env PDSH_SSH_ARGS="$PDSH_SSH_CM" pdsh -R ssh -l bpbench -w "$PDSH_HOSTS" /bin/true) || exit 1
	row "pdsh -R ssh ($NODES nodes, ControlMaster)" "$(ms "$pdshm_us")" ms "$SSH_RUNS"
else
	row "pdsh -R ssh ($NODES nodes) /bin/true" "n/a" "" "" "(no pdsh or sshd)"
fi

bytes=$(stat -c %s "$T/big")
cat_mbs=$(measure tp "$TP_RUNS" "$bytes" cat "$T/big") || exit 1
row "local cat $MB MB >/dev/null" "$cat_mbs" MB/s "$TP_RUNS"
bpcat_mbs=$(BPROC_DIRECT=0 measure tp "$TP_RUNS" "$bytes" bpsh 1 cat "$T/big") || exit 1
row "bpsh 1 cat $MB MB >/dev/null, via master" "$bpcat_mbs" MB/s "$TP_RUNS" ">= 1000 MB/s: $(verdict "$bpcat_mbs" '>=' 1000)"
direct_rows
pipe_mbs=$(measure tp "$TP_RUNS" "$bytes" sh -c "cat '$T/big' | cat") || exit 1
row "local cat $MB MB | cat >/dev/null" "$pipe_mbs" MB/s "$TP_RUNS"

# The same with "seal no" (9P in the clear after the handshake): what
# sealing the master-slave link costs.
echo "seal no" >>"$CONF"
if ! { master_restart && wait_nodes_up $NODES 20; } >"$T/plain.out" 2>&1; then
	cat "$T/plain.out"
	echo "bench-core: the cluster did not come back with seal no" >&2
	exit 1
fi
plain_us=$(measure lat "$RUNS" bpsh 1 /bin/true) || exit 1
row "bpsh 1 /bin/true, seal no" "$(ms "$plain_us")" ms "$RUNS" "<= 1.5 ms: $(verdict "$plain_us" '<=' 1500)"
plain_mbs=$(BPROC_DIRECT=0 measure tp "$TP_RUNS" "$bytes" bpsh 1 cat "$T/big") || exit 1
row "bpsh 1 cat $MB MB >/dev/null, via master, seal no" "$plain_mbs" MB/s "$TP_RUNS" ">= 1000 MB/s: $(verdict "$plain_mbs" '>=' 1000)"
direct_rows ", seal no"
exit 0
