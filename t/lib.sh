# t/lib.sh: the end-to-end test harness, git style, and the virtual cluster.
#
#   . "$(dirname "$0")/lib.sh"
#   test_setup 'a 3-node cluster' cluster_up 3
#   test_expect_success 'nodes are up' '
#           test $(grep -c " up " $BPROC/status) = 3
#   '
#   test_done
#
# Tests run in a subshell with `set -e`, in the scratch directory $T, with
# stdin from /dev/null and a time limit ($BPROC_TEST_TIMEOUT, default 120 s).
# Their output is shown when they fail (always with -v or BPROC_TEST_VERBOSE=1).
# Everything a script starts (namespaces, daemons, mounts) is torn down on exit,
# on failure and on Ctrl-C. BPROC_TEST_KEEP=1 keeps $T for a post-mortem.
#
# The virtual cluster: a bridge bpbr0 in a hub network namespace, the master in
# its own network and UTS namespace (hostname master, 10.77.0.1) but the root
# mount namespace, so its FUSE mount is visible here; node I in its own network,
# UTS (hostname nodeI) and mount namespace (a private tmpfs /tmp), address
# 10.77.0.(10+I). Namespace names carry the script's pid ($BP_ID) so that
# several suites can run at the same time: use $NS_MASTER and $(ns_node I).

# The suite uses bash (arrays, /dev/tcp, $EPOCHREALTIME); re-run under it.
if [ -z "$BASH_VERSION" ]; then exec bash "$0" "$@"; fi

TEST_NAME=$(basename "$0" .sh)
TEST_DIRECTORY=$(cd "$(dirname "$0")" && pwd)
BPROC_ROOT=${BPROC_ROOT:-$(cd "$TEST_DIRECTORY/.." && pwd)}
PATH=$BPROC_ROOT/bin:$PATH
export PATH
LC_ALL=C
export LC_ALL

case " $* " in *" -v "* | *" --verbose "*) BPROC_TEST_VERBOSE=1 ;; esac
: "${BPROC_TEST_VERBOSE:=}" "${BPROC_TEST_KEEP:=}" "${BPROC_TEST_TIMEOUT:=120}"

test_count=0 test_ok=0 test_fail=0 test_skip=0
_test_pid= _test_watchdog=
_prereqs=" "

say() { printf '%s\n' "$*"; }
_indent() { sed 's/^/#	/'; }

if [ "$(id -u)" != 0 ]; then
	say "1..0 # SKIP $TEST_NAME: needs root (network namespaces, FUSE)"
	say "# 0 passed, 0 failed, 1 skipped"
	exit 0
fi

# Scratch directory. Not under /tmp: nodes mount a private tmpfs there, and
# they must see the key, the binaries and the logs.
T=$(mktemp -d "/var/tmp/bproc-$TEST_NAME.XXXXXX") || exit 1
chmod 0755 "$T"
mkdir -p "$T/.pids"
export T
# The binaries too: the checkout may itself live under /tmp (CI clones
# anywhere), which the nodes' private /tmp would hide.
if [ -d "$BPROC_ROOT/bin" ]; then
	cp -a "$BPROC_ROOT/bin" "$T/bin" || exit 1
	PATH=$T/bin:$PATH
fi
BP_ID=${BPROC_TEST_ID:-$$}
NS_HUB=bp${BP_ID}hub
NS_MASTER=bp${BP_ID}m
NSDIR=$T/.ns
BPROC_PORT=2223
MASTER_ADDR=10.77.0.1

ns_node() { echo "bp${BP_ID}n$1"; }
node_addr() { echo "10.77.0.$((10 + $1))"; }

# ---------------------------------------------------------------- tests

# test_set_prereq NAME / test_have_prereq NAME: git-style prerequisites.
test_set_prereq() { _prereqs="$_prereqs$1 "; }
test_have_prereq() { case "$_prereqs" in *" $1 "*) return 0 ;; esac; return 1; }

# _run_body CODE BODY: runs BODY in its own process group with a time limit,
# output in $T/.out; sets _rc to its exit code.
_run_body() {
	: >"$T/.out"
	set -m
	(
		trap - EXIT INT TERM HUP
		cd "$T" || exit 1
		set -e
		eval "$1"
	) >"$T/.out" 2>&1 </dev/null &
	_test_pid=$!
	(
		trap - EXIT INT TERM HUP
		sleep "$BPROC_TEST_TIMEOUT"
		echo "timed out after ${BPROC_TEST_TIMEOUT}s" >>"$T/.out"
		kill -TERM -- "-$_test_pid" 2>/dev/null
		sleep 2
		kill -KILL -- "-$_test_pid" 2>/dev/null
	) >/dev/null 2>&1 </dev/null &
	_test_watchdog=$!
	set +m
	wait "$_test_pid"
	_rc=$?
	if [ -s "$T/.when_finished" ]; then
		(cd "$T" && . "$T/.when_finished") >>"$T/.out" 2>&1 </dev/null
	fi
	rm -f "$T/.when_finished"
	kill -- "-$_test_watchdog" 2>/dev/null
	wait "$_test_watchdog" 2>/dev/null
	# Reap whatever the test left running in its group (daemons started
	# with bg_node live in sessions of their own and survive).
	kill -KILL -- "-$_test_pid" 2>/dev/null
	_test_pid= _test_watchdog=
	if [ -n "$BPROC_TEST_VERBOSE" ]; then cat "$T/.out"; fi
}

_report() { # _report OK DESC
	if [ "$1" = 1 ]; then
		test_ok=$((test_ok + 1))
		say "ok $test_count - $2"
	else
		test_fail=$((test_fail + 1))
		say "not ok $test_count - $2"
		_indent <"$T/.out"
	fi
}

# test_expect_success [PREREQ] DESC BODY
test_expect_success() {
	local prereq=
	if [ $# = 3 ]; then prereq=$1; shift; fi
	test_count=$((test_count + 1))
	if [ -n "$prereq" ] && ! test_have_prereq "$prereq"; then
		test_skip=$((test_skip + 1))
		say "ok $test_count # skip $1 (missing $prereq)"
		return 0
	fi
	_run_body "$2"
	if [ "$_rc" = 0 ]; then _report 1 "$1"; else
		echo "exit code $_rc; the commands were:$2" >>"$T/.out"
		_report 0 "$1"
	fi
}

# test_expect_code [PREREQ] CODE DESC BODY: BODY must exit with CODE.
test_expect_code() {
	local prereq=
	if [ $# = 4 ]; then prereq=$1; shift; fi
	test_count=$((test_count + 1))
	if [ -n "$prereq" ] && ! test_have_prereq "$prereq"; then
		test_skip=$((test_skip + 1))
		say "ok $test_count # skip $2 (missing $prereq)"
		return 0
	fi
	_run_body "$3"
	if [ "$_rc" = "$1" ]; then _report 1 "$2"; else
		echo "exit code $_rc, wanted $1; the commands were:$3" >>"$T/.out"
		_report 0 "$2"
	fi
}

# test_skip DESC REASON: records a skipped test and says why.
test_skip() {
	test_count=$((test_count + 1))
	test_skip=$((test_skip + 1))
	say "ok $test_count # skip $1 ($2)"
}

# test_setup DESC CMD...: runs CMD in the current shell (so the variables it
# sets stay), counted as a test; when it fails the script stops here.
test_setup() {
	local desc=$1 rc
	shift
	test_count=$((test_count + 1))
	"$@" >"$T/.out" 2>&1 </dev/null
	rc=$?
	if [ -n "$BPROC_TEST_VERBOSE" ]; then cat "$T/.out"; fi
	if [ "$rc" = 0 ]; then _report 1 "$desc"; return 0; fi
	echo "exit code $rc from: $*" >>"$T/.out"
	_report 0 "$desc"
	_dump_logs
	say "# stopping $TEST_NAME: setup failed"
	test_done
}

# test_done: the summary line t/run reads, and the exit code.
test_done() {
	say "1..$test_count"
	if [ "$test_skip" -gt 0 ]; then
		say "# $test_ok passed, $test_fail failed, $test_skip skipped"
	else
		say "# $test_ok passed, $test_fail failed"
	fi
	if [ "$test_fail" -gt 0 ]; then exit 1; fi
	exit 0
}

# _dump_logs: the daemons' logs, for a failed setup.
_dump_logs() {
	local f
	for f in "$T"/*.log; do
		[ -f "$f" ] || continue
		say "# --- ${f##*/} (last 30 lines)"
		tail -n 30 "$f" | _indent
	done
}

# ---------------------------------------------------------------- helpers

_now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# wait_for COND [TIMEOUT_S]: polls the shell condition COND every 25 ms until
# it holds; on timeout says what it waited for and fails.
wait_for() {
	local deadline=$(($(_now_ms) + ${2:-10} * 1000))
	while ! eval "$1" >/dev/null 2>&1; do
		if [ "$(_now_ms)" -ge "$deadline" ]; then
			echo "wait_for: timed out after ${2:-10}s waiting for: $1" >&2
			return 1
		fi
		sleep 0.025
	done
}

# pid_alive PID: true while PID exists and is not a zombie.
pid_alive() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	[ "${s%% *}" != Z ]
}

# wait_gone PID [TIMEOUT_S]
wait_gone() { wait_for "! pid_alive $1" "${2:-10}"; }

# test_cmp EXPECTED ACTUAL: files must match; shows the diff otherwise.
test_cmp() { diff -u "$1" "$2"; }

# test_grep PATTERN FILE: like grep -q, but shows the file when it fails.
test_grep() {
	if grep -q -e "$1" "$2"; then return 0; fi
	echo "pattern '$1' not found in $2:" >&2
	cat "$2" >&2
	return 1
}

# test_when_finished CMD: inside a test, a command to run when the test ends,
# however it ends (to put back state that later tests rely on).
test_when_finished() { printf '%s\n' "$*" >>"$T/.when_finished"; }

# at_exit CMD: a shell command for the final cleanup (top level only).
_at_exit=
at_exit() { _at_exit="$_at_exit
$1"; }

# fail MESSAGE: fails the test with a message.
fail() { echo "FAIL: $*" >&2; return 1; }

# ---------------------------------------------------------------- network

# _t_mounts: every mount under $T (namespace files, the FUSE tree),
# deepest first.
_t_mounts() {
	awk -v t="$T" 'index($2, t) == 1 { print $2 }' /proc/self/mounts | sort -r
}

_our_netns() {
	ip netns list 2>/dev/null | awk -v p="bp${BP_ID}" '$1 ~ "^" p "(hub|m|n[0-9]+)$" { print $1 }'
}

# _reap_stale: namespaces left by a suite that was killed hard (its pid gone).
_reap_stale() {
	local ns id p
	for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^bp[0-9]+(hub|m|n[0-9]+)$/ { print $1 }'); do
		id=${ns#bp}
		id=${id%%[!0-9]*}
		[ "$id" = "$BP_ID" ] && continue
		kill -0 "$id" 2>/dev/null && continue
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
}

_nsdir_up() {
	mountpoint -q "$NSDIR" && return 0
	mkdir -p "$NSDIR"
	mount --bind "$NSDIR" "$NSDIR" && mount --make-private "$NSDIR"
}

# _host_add NS TAG ADDR HOSTNAME [node]: a network namespace wired to the
# bridge, with its own UTS namespace (and mount namespace with a private /tmp
# for nodes) kept in $NSDIR.
_host_add() {
	local ns=$1 tag=$2 addr=$3 host=$4 kind=$5
	ip netns add "$ns" || return 1
	ip -n "$NS_HUB" link add "v$tag" type veth peer name eth0 netns "$ns" || return 1
	ip -n "$NS_HUB" link set "v$tag" master bpbr0 up || return 1
	ip -n "$ns" link set lo up || return 1
	ip -n "$ns" addr add "$addr/24" dev eth0 || return 1
	ip -n "$ns" link set eth0 up || return 1
	ip -n "$ns" route add 224.0.0.0/4 dev eth0 || return 1
	: >"$NSDIR/$host.uts"
	if [ "$kind" = node ]; then
		: >"$NSDIR/$host.mnt"
		unshare --mount="$NSDIR/$host.mnt" --uts="$NSDIR/$host.uts" --propagation private \
			sh -c "hostname $host && { $_drop_fuse; } && mount -t tmpfs -o mode=1777 tmpfs /tmp" || return 1
	else
		unshare --uts="$NSDIR/$host.uts" hostname "$host" || return 1
	fi
}

# A new mount namespace copies every FUSE mount there is (a master's tree, this
# suite's or another's); a copy would keep that master's FUSE connection alive
# after it unmounts, and its shutdown waiting. Nodes drop them.
_drop_fuse='awk '"'"'$3 ~ /^fuse/ { print $2 }'"'"' /proc/self/mounts | while read -r m; do umount -l "$m" 2>/dev/null; done; true'

# net_up N: the bridge, the master and nodes 0..N-1.
net_up() {
	local n=$1 i
	_reap_stale
	_nsdir_up || return 1
	ip netns add "$NS_HUB" || return 1
	ip -n "$NS_HUB" link set lo up
	ip -n "$NS_HUB" link add bpbr0 type bridge mcast_snooping 0 || return 1
	ip -n "$NS_HUB" link set bpbr0 up || return 1
	_host_add "$NS_MASTER" m "$MASTER_ADDR" master || return 1
	NET_NODES=0
	for ((i = 0; i < n; i++)); do net_add_node "$i" || return 1; done
}

# net_add_node I: one more node namespace (node I, 10.77.0.(10+I)).
net_add_node() {
	_host_add "$(ns_node "$1")" "$1" "$(node_addr "$1")" "node$1" node || return 1
	if [ "$1" -ge "${NET_NODES:-0}" ]; then NET_NODES=$(($1 + 1)); fi
}

# net_down: kills every process in our namespaces and removes them.
net_down() {
	local ns p m
	for ns in $(_our_netns); do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	done
	for m in $(_t_mounts); do umount -l "$m" 2>/dev/null; done
	for ns in $(_our_netns); do ip netns del "$ns" 2>/dev/null; done
	return 0
}

# in_master CMD...: runs CMD in the master's network and UTS namespaces (the
# root mount namespace).
in_master() {
	nsenter --net="/run/netns/$NS_MASTER" --uts="$NSDIR/master.uts" -- "$@"
}

# in_node I CMD...: runs CMD on node I (its network, UTS and mount namespaces).
in_node() {
	local i=$1 wd=$PWD
	shift
	case "$wd" in /tmp | /tmp/*) wd=/ ;; esac
	nsenter --net="/run/netns/$(ns_node "$i")" --mount="$NSDIR/node$i.mnt" \
		--uts="$NSDIR/node$i.uts" --wd="$wd" -- "$@"
}

# _bg NAME LOGFILE CMD...: starts CMD in a session of its own (it outlives the
# test that started it, and Ctrl-C reaches it only through our cleanup),
# output to LOGFILE; records its pid in $T/.pids/NAME.
_bg() {
	local name=$1 log=$2 pf="$T/.pids/$1" n=1
	shift 2
	# A name still in use by a live daemon gets a suffix: NAME.2, NAME.3...
	while [ -f "$pf" ] && pid_alive "$(cat "$pf")"; do
		n=$((n + 1))
		pf="$T/.pids/$name.$n"
	done
	rm -f "$pf"
	setsid sh -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$pf" "$@" \
		>>"$log" 2>&1 </dev/null &
	disown $! # no "Killed" notice from bash when we end it
	wait_for "test -s '$pf'" 5 || return 1
}

# bg_pid NAME: the pid recorded by _bg (the first daemon of that name).
bg_pid() { cat "$T/.pids/$1" 2>/dev/null; }

# bg_node I LOGFILE CMD...: a daemon on node I (pid: bg_pid nodeI-<cmd>).
bg_node() {
	local i=$1 log=$2
	shift 2
	_bg "node$i-${1##*/}" "$log" nsenter --net="/run/netns/$(ns_node "$i")" \
		--mount="$NSDIR/node$i.mnt" --uts="$NSDIR/node$i.uts" --wd=/ -- "$@"
}

# bg_master LOGFILE CMD...: a daemon on the master (pid: bg_pid master-<cmd>).
bg_master() {
	local log=$1
	shift
	_bg "master-${1##*/}" "$log" nsenter --net="/run/netns/$NS_MASTER" \
		--uts="$NSDIR/master.uts" -- "$@"
}

# bg_kill NAME [SIG]: signals a recorded daemon and waits until it is gone.
bg_kill() {
	local p
	p=$(bg_pid "$1") || return 1
	[ -n "$p" ] || return 1
	kill "-${2:-TERM}" "$p" 2>/dev/null
	wait_gone "$p" 10
}

# ---------------------------------------------------------------- cluster

# make_key FILE: a fresh cluster key, mode 0600.
make_key() {
	(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$1" && echo >>"$1")
}

# cluster_up N [CONFIG LINE...]: the network, a key, bpmaster with its FUSE
# mount at $BPROC, and bpslave -r on nodes 0..N-1; returns once all N are up.
# CLUSTER_RANGE=M (M >= N) makes the iprange cover M nodes.
cluster_up() {
	local n=$1 i
	shift
	CLUSTER_N=$n
	net_up "$n" || return 1
	KEY=$T/cluster.key
	make_key "$KEY" || return 1
	BPROC=$T/bproc
	mkdir -p "$BPROC"
	BPROC_MOUNT=$BPROC
	export BPROC BPROC_MOUNT KEY
	CONF=$T/bpmaster.conf
	MASTER_LOG=$T/master.log
	{
		echo "bprocport $BPROC_PORT"
		echo "iprange 0 $(node_addr 0) $(node_addr $((${CLUSTER_RANGE:-$n} - 1)))"
		echo "mount $BPROC"
		echo "pingtimeout 2"
		echo "keyfile $KEY"
		for i in "$@"; do echo "$i"; done
	} >"$CONF"
	master_start || return 1
	for ((i = 0; i < n; i++)); do slave_start "$i" || return 1; done
	wait_nodes_up "$n" 20
}

# nodes_up: how many nodes $BPROC/status shows up.
nodes_up() { awk '$2 == "up"' "$BPROC/status" 2>/dev/null | wc -l; }

# wait_nodes_up N [TIMEOUT_S]
wait_nodes_up() { wait_for "test \$(nodes_up) -eq $1" "${2:-20}"; }

# node_status I: the node's state field.
node_status() { awk '{ print $2 }' "$BPROC/node/$1/status"; }

# wait_node_state I STATE [TIMEOUT_S]
wait_node_state() { wait_for "test \"\$(node_status $1)\" = $2" "${3:-10}"; }

# master_start: bpmaster in the master's namespaces; waits for the mount.
master_start() {
	bg_master "$MASTER_LOG" bpmaster -d -c "$CONF" -k "$KEY" || return 1
	local p
	p=$(bg_pid master-bpmaster)
	# Stop waiting as soon as the master dies: its log says why.
	wait_for "! pid_alive $p || { mountpoint -q '$BPROC' && test -e '$BPROC/status'; }" 10 || return 1
	pid_alive "$p" || { echo "bpmaster died:" >&2; tail -n 20 "$MASTER_LOG" >&2; return 1; }
}

# _holders DIR: processes with a file, cwd or root under DIR.
_holders() {
	local d l
	for d in /proc/[0-9]*; do
		for l in "$d"/cwd "$d"/root "$d"/fd/*; do
			case "$(readlink "$l" 2>/dev/null)" in
			"$1" | "$1"/*) echo "${d#/proc/} $(tr '\0' ' ' <"$d/cmdline" 2>/dev/null): ${l#$d/} -> $(readlink "$l")" ;;
			esac
		done
	done
}

# master_stop [SIG]: stops bpmaster and makes sure its mount is gone.
master_stop() {
	local p
	p=$(bg_pid master-bpmaster)
	if ! bg_kill master-bpmaster "${1:-TERM}"; then
		# A hung master: SIGQUIT makes Go dump its goroutines into the log.
		echo "bpmaster $p did not exit on SIG${1:-TERM}; files open on the mount:" >&2
		_holders "$BPROC" >&2
		echo "goroutines:" >&2
		kill -QUIT "$p" 2>/dev/null
		wait_gone "$p" 5 || kill -KILL "$p"
		# Only the goroutines in bproc's own code, the rest is runtime noise.
		sed -n '/^goroutine /,$p' "$MASTER_LOG" |
			awk -v RS= '/bproc\// { print; print "" }' | grep -v "^	/usr/local/go\|fp=0x" >&2
		umount -l "$BPROC" 2>/dev/null
		return 1
	fi
	if mountpoint -q "$BPROC"; then umount -l "$BPROC"; fi
	return 0
}

# master_restart: stop, start, and wait until the slaves (-r) are back.
master_restart() {
	master_stop || return 1
	master_start || return 1
	wait_nodes_up "$CLUSTER_N" 20
}

# slave_start I [ARGS...]: bpslave on node I (default: -d -r -k $KEY master),
# logging to $T/slaveI.log.
slave_start() {
	local i=$1
	shift
	if [ $# = 0 ]; then set -- -d -r -k "$KEY" "$MASTER_ADDR"; fi
	bg_node "$i" "$T/slave$i.log" bpslave "$@"
}

# slave_pid I
slave_pid() { bg_pid "node$1-bpslave"; }

# slave_kill I [SIG]: signals node I's bpslave and waits until it is gone.
slave_kill() { bg_kill "node$1-bpslave" "${2:-TERM}"; }

# cluster_down: everything cluster_up made.
cluster_down() {
	_kill_recorded
	net_down
}

# ---------------------------------------------------------------- users

# ensure_user NAME [UID]: a local user for permission tests.
ensure_user() {
	local uid=${2:-4242}
	id "$1" >/dev/null 2>&1 && return 0
	useradd -u "$uid" -U -M -d /nonexistent -s /bin/sh "$1" 2>/dev/null ||
		useradd -M -d /nonexistent -s /bin/sh "$1" 2>/dev/null ||
		id "$1" >/dev/null # another suite may have made it meanwhile
}

# as_user NAME CMD...: runs CMD as NAME (uid, gid, groups), HOME and cwd in
# $T/home-NAME.
as_user() {
	local u=$1 h="$T/home-$1"
	shift
	mkdir -p "$h" && chown "$u:" "$h" || return 1
	(cd "$h" && HOME=$h USER=$u LOGNAME=$u setpriv --reuid="$u" --regid="$u" --init-groups -- "$@")
}

# ---------------------------------------------------------------- cleanup

_kill_recorded() {
	local f p pids=
	for f in "$T"/.pids/*; do
		[ -f "$f" ] || continue
		p=$(cat "$f" 2>/dev/null)
		# CONT too: a test may have left it stopped.
		[ -n "$p" ] && pid_alive "$p" && kill -TERM "$p" 2>/dev/null && kill -CONT "$p" 2>/dev/null && pids="$pids $p"
		rm -f "$f"
	done
	for p in $pids; do
		wait_for "! pid_alive $p" 3 2>/dev/null || kill -KILL "$p" 2>/dev/null
	done
	return 0
}

_cleanup() {
	# Only the script's own shell tears down; a subshell that inherited the
	# traps (a test body, the watchdog) must not.
	[ "$BASHPID" = "$$" ] || return 0
	trap - EXIT
	# Finish the teardown whatever comes now: timeout(1) answers a Ctrl-C
	# with a SIGTERM of its own, and the reader of our output may be gone.
	trap '' INT TERM HUP PIPE
	disown -a 2>/dev/null # no "Killed" notices for the jobs we end here
	if [ -n "$_test_pid" ]; then kill -KILL -- "-$_test_pid" 2>/dev/null; fi
	if [ -n "$_test_watchdog" ]; then kill -KILL -- "-$_test_watchdog" 2>/dev/null; fi
	_kill_recorded
	net_down
	cd /
	eval "$_at_exit"
	if [ -n "$BPROC_TEST_KEEP" ]; then
		say "# kept $T"
	elif [ -z "$(_t_mounts)" ]; then
		rm -rf --one-file-system "$T"
	else
		say "# $T still has mounts; not removed"
	fi
}

trap '_rc_exit=$?; _cleanup; exit $_rc_exit' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap 'exit 141' PIPE

# Prerequisites for the optional tools.
for _p in bpstat bpctl gcc; do
	if command -v $_p >/dev/null 2>&1; then
		test_set_prereq "$(echo $_p | tr a-z A-Z)"
	fi
done

cd "$T" || exit 1
