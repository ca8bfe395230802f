# t/lib.sh: the end-to-end test harness, git style, and the virtual cluster.
#
#   . "$(dirname "$0")/lib.sh"
#   test_setup 'a 3-node cluster' cluster_up 3
#   test_expect_success 'nodes are up' '
#           n=$(grep -c " up " $BPROC/status) &&
#           test "$n" = 3
#   '
#   test_done
#
# A test body runs inside a function (so `return 1` ends it, from a loop too)
# in a subshell, in the scratch directory $T, with stdin from /dev/null, in a
# process group of its own under a time limit ($BPROC_TEST_TIMEOUT, default
# 120 s). There is no `set -e`: the body's status is its last command's, so
# every command in it is chained with `&&`, and a loop ends `|| return 1`.
# The harness holds bodies to that:
#   - chain lint: before it runs, a body is run once as `false && BODY` under a
#     DEBUG trap that stops at the first command reached; a body with a broken
#     `&&` chain (or a runaway here-document, or a syntax error) is refused and
#     nothing of it runs. `cmd || alternative && more` and
#     `cmd || { echo why; false; }` are fine. BPROC_TEST_CHAIN_LINT=0 turns
#     the lint off;
#   - `fail MSG` fails the test wherever it is called: in a loop, in $(...), in
#     a pipeline, in a helper (it records MSG in $T/.failed);
#   - a `test`, `[` or `[[` of the body itself whose words hold a command
#     substitution throws that command's exit status away: the test fails
#     there, before that command runs. Write out=$(cmd) && test "$out" = x.
# Output is shown when a test fails (always with -v or BPROC_TEST_VERBOSE=1).
# Wall-clock limits in assertions go through within_ms (and timeouts that are
# limits through slow), which multiply them by BPROC_TEST_SLOW (a whole
# number, default 4: a loaded 2-core machine is slow; 1 for the bare limits).
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
: "${BPROC_TEST_SLOW:=4}" "${BPROC_TEST_CHAIN_LINT:=1}"
case $BPROC_TEST_SLOW in "" | *[!0-9]* | 0) echo "BPROC_TEST_SLOW=$BPROC_TEST_SLOW: want a whole number >= 1" >&2; exit 1 ;; esac

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
# And the suite's helper files, for the same reason, when the checkout is
# under /tmp: tests hand them to nodes by $TEST_DIRECTORY.
case "$TEST_DIRECTORY/" in /tmp/*)
	cp -a "$TEST_DIRECTORY" "$T/t" || exit 1
	TEST_DIRECTORY=$T/t
	;;
esac
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

# _chain_lint BODY: runs BODY once as `false && BODY` under a DEBUG trap (and
# extdebug: a trap that fails skips its command) that sees every command the
# shell reaches. With every command chained, it reaches only the end marker,
# and the alternatives after a `||` with what is chained to them; the trap
# skips those (nothing runs, a skipped command succeeds). Any other command
# comes after a break in the chain: the trap records it and stops before it
# runs. Whether a reached command follows `&&`, `||` or `|` is read from the
# body's text at the trap's $LINENO. Command substitutions, subshells and
# pipelines inherit the trap (set -T). A body that never reaches the end
# marker has a runaway here-document or quote, or does not parse.
# Limit: a redirection on a compound command right after a break ({ ...; }
# >file) is opened before the trap sees the first command inside.
_chain_lint() {
	local rec=$T/.lint
	rm -f "$rec"
	(
		trap - EXIT INT TERM HUP
		cd "$T" || exit 1
		_lint_code="test _bp_lint_ = begin && $1
test _bp_lint_ = end"
		mapfile -t _lint_lines <<<"$_lint_code"
		_lint_line0= _lint_cl=0 _lint_cc=0 _lint_depth=0
		shopt -s extdebug
		set -T
		trap '_lint_trap "$LINENO"' DEBUG
		eval "$_lint_code"
	) >/dev/null 2>"$rec.err" </dev/null
	if grep -q '^broken ' "$rec" 2>/dev/null; then
		echo "chain lint: broken &&-chain: nothing chains this command to the ones before:"
		sed -n '/^broken /{s/^broken /	/p;q}' "$rec"
		echo "(chain every command with &&, end a loop body with || return 1, write { cmd & } &&)"
		return 1
	fi
	if ! grep -q '^end$' "$rec" 2>/dev/null; then
		echo "chain lint: the body never reached its end: a runaway here-document or quote, or a syntax error"
		cat "$rec.err"
		return 1
	fi
}
_lint_trap() { # LINENO
	case $BASH_COMMAND in
	'eval "$_lint_code"')
		_lint_line0=$1
		return 0
		;;
	"test _bp_lint_ = begin") return 0 ;;
	"test _bp_lint_ = end")
		echo end >>"$T/.lint"
		return 0
		;;
	esac
	_lint_chained "$(($1 - _lint_line0))" "${BASH_COMMAND%%[[:space:]]*}"
	case $? in
	0) return 1 ;; # chained: skip it
	2)
		# Back at an earlier line: a loop after an alternative, whose
		# condition the skipping made true. What came before checked.
		echo end >>"$T/.lint"
		exit 0
		;;
	esac
	printf 'broken %s\n' "$BASH_COMMAND" >>"$T/.lint"
	exit 99
}
# _lint_chained N WORD: the reached command starting with WORD is on line N
# (from 0) of the lint code, at the first place after the previous reached
# command where WORD stands in command position. True when an &&, || or |
# joins it to what comes before (perhaps with { ( or ! between), on its line
# or at the end of the line before, or when it is inside a group that was
# itself so joined (cmd || { echo why; false; }). Moves the cursor past it.
_lint_chained() {
	local n=$1 w=$2 l off=0 pre k=-1 j pos
	[ -n "$w" ] || return 1
	if ((n < _lint_cl)); then return 2; fi # back up the text: a loop
	if ((n == _lint_cl)); then off=$_lint_cc; fi
	l=${_lint_lines[n]}
	while :; do
		pre=${l:0:off}
		[[ ${l:off} == *"$w"* ]] || return 1
		local before=${l:off}
		before=${before%%"$w"*}
		pre+=$before
		off=$((${#pre} + ${#w}))
		_lint_trim "$pre"
		if [ -z "$_lint_p" ]; then
			k=$((n - 1))
			# (blank lines and comment lines do not count)
			while ((k >= 0)) && [[ -z ${_lint_lines[k]//[[:space:]]/} || ${_lint_lines[k]} =~ ^[[:space:]]*# ]]; do
				k=$((k - 1))
			done
			((k < 0)) && break
			[[ ${_lint_lines[k]} == *\\ ]] && continue # a continued line: an argument
			_lint_trim "${_lint_lines[k]}"
			break
		fi
		case $_lint_p in
		*"&&" | *"|" | *";" | *"&" | *then | *do | *else) break ;;
		esac
	done
	pos=$((off - ${#w}))
	# The text since the previous reached command: the groups it opens
	# (when joined) and closes.
	local gap
	if ((n == _lint_cl)); then
		gap=${l:_lint_cc:pos-_lint_cc}
	else
		gap=${_lint_lines[_lint_cl]:_lint_cc}
		for ((j = _lint_cl + 1; j < n; j++)); do gap+=$'\n'${_lint_lines[j]}; done
		gap+=$'\n'${l:0:pos}
	fi
	_lint_cl=$n _lint_cc=$off
	local re='(^|[[:space:];&|])([{}()])([[:space:];&|]|$)' done= tok
	while [[ $gap =~ $re ]]; do
		tok=${BASH_REMATCH[2]}
		done+=${gap%%"${BASH_REMATCH[0]}"*}${BASH_REMATCH[1]}
		gap=${gap#*"${BASH_REMATCH[0]}"}
		gap=${BASH_REMATCH[3]}$gap
		case $tok in
		"{" | "(")
			_lint_trim "$done"
			if ((_lint_depth > 0)) || [[ $_lint_p == *"&&" || $_lint_p == *"|" ]]; then
				_lint_depth=$((_lint_depth + 1))
			fi
			;;
		*) ((_lint_depth > 0)) && _lint_depth=$((_lint_depth - 1)) ;;
		esac
		done+=$tok
	done
	((_lint_depth > 0)) && return 0
	_lint_trim "$pre"
	if [ -z "$_lint_p" ] && ((k >= 0)); then _lint_trim "${_lint_lines[k]}"; fi
	[[ $_lint_p == *"&&" || $_lint_p == *"|" ]]
}
# _lint_trim TEXT: TEXT without the spaces, { ( and ! it ends with, in _lint_p.
_lint_trim() {
	_lint_p=$1
	while [[ $_lint_p == *[[:space:]\{\(!] ]]; do _lint_p=${_lint_p%?}; done
}

# _test_eval_inner BODY: the body runs inside a function, so `return` ends it.
# Its trace attribute (declare -ft below) gives the DEBUG trap _discard_check
# the body's own commands, and not those of the functions it calls.
_test_eval_inner() {
	local _bp_body_=$1
	shift
	eval "$_bp_body_"
}
declare -ft _test_eval_inner

# _discard_check: a DEBUG trap on the body's own commands. A test, [ or [[
# whose words hold a command substitution ($(...) or `...`; not $((...)) nor
# an escaped \$( in a string) throws that command's exit status away: fail the
# test before it runs. Only the body's own commands are checked (a condition
# given to wait_for is polled, its status does not matter).
_discard_check() {
	case $BASH_COMMAND in
	"test "* | "[ "* | "[[ "*) ;;
	*) return 0 ;;
	esac
	local c=${BASH_COMMAND//'$(('/}
	c=${c//'\$('/}
	case $c in
	*'$('* | *'`'*) ;;
	*) return 0 ;;
	esac
	fail "exit status thrown away by: $BASH_COMMAND" 2>/dev/null
	echo "FAIL: the exit status of the command substitution is thrown away:" >&2
	echo "	$BASH_COMMAND" >&2
	echo "write out=\$(cmd) && test \"\$out\" ... instead" >&2
	exit 1
}

# _run_body CODE BODY: runs BODY in its own process group with a time limit,
# output in $T/.out; sets _rc to its exit code and _ok to 1 when the test
# passes: BODY passed the chain lint, exited with CODE, and called no fail.
_run_body() {
	_ok=0 _rc=
	: >"$T/.out"
	rm -f "$T/.failed" "$T/.when_finished"
	if [ "$BPROC_TEST_CHAIN_LINT" != 0 ] && ! _chain_lint "$2" >>"$T/.out" 2>&1; then
		echo "refused, not run; the commands were:$2" >>"$T/.out"
		if [ -n "$BPROC_TEST_VERBOSE" ]; then cat "$T/.out"; fi
		return 0
	fi
	set -m
	(
		trap - EXIT INT TERM HUP
		cd "$T" || exit 1
		trap _discard_check DEBUG
		_test_eval_inner "$2"
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
	if [ -s "$T/.failed" ]; then
		echo "fail was called (exit code $_rc); the commands were:$2" >>"$T/.out"
	elif [ "$_rc" = "$1" ]; then
		_ok=1
	elif [ "$1" = 0 ]; then
		echo "exit code $_rc; the commands were:$2" >>"$T/.out"
	else
		echo "exit code $_rc, wanted $1; the commands were:$2" >>"$T/.out"
	fi
	rm -f "$T/.failed"
	if [ -n "$BPROC_TEST_VERBOSE" ]; then cat "$T/.out"; fi
	return 0
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
	if [ $# = 3 ]; then
		test_expect_code "$1" 0 "$2" "$3"
	else
		test_expect_code 0 "$1" "$2"
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
	_run_body "$1" "$3"
	_report "$_ok" "$2"
}

# test_skip DESC REASON: records a skipped test and says why.
test_skip() {
	test_count=$((test_count + 1))
	test_skip=$((test_skip + 1))
	say "ok $test_count # skip $1 ($2)"
}

# test_setup DESC CMD...: runs CMD in the current shell (so the variables it
# sets stay), counted as a test; when it fails (or calls fail) the script
# stops here.
test_setup() {
	local desc=$1 rc
	shift
	test_count=$((test_count + 1))
	rm -f "$T/.failed"
	"$@" >"$T/.out" 2>&1 </dev/null
	rc=$?
	if [ -s "$T/.failed" ] && [ "$rc" = 0 ]; then rc=1; fi
	rm -f "$T/.failed"
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
# rss_at_most PID KB: PID's resident size is at most KB (and says it).
rss_at_most() {
	local rss
	rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$1/status") || return 1
	echo "VmRSS of $1: $rss kB"
	test "$rss" -le "$2"
}

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

# fail MESSAGE: fails the test with a message, wherever it is called (a loop,
# $(...), a pipeline, a helper): it records MESSAGE in $T/.failed, which the
# harness checks after the body.
fail() {
	echo "FAIL: $*" >&2
	printf '%s\n' "$*" >>"$T/.failed"
	return 1
}

# slow N: N (a time limit, in any unit) times BPROC_TEST_SLOW.
slow() { echo $(($1 * BPROC_TEST_SLOW)); }

# within_ms MS LIMIT_MS: an elapsed time MS is at most LIMIT_MS, with the
# slack of BPROC_TEST_SLOW; says so when it is not.
within_ms() {
	local lim
	lim=$(slow "$2")
	[ "$1" -le "$lim" ] && return 0
	echo "took $1 ms, more than $2 ms x BPROC_TEST_SLOW=$BPROC_TEST_SLOW" >&2
	return 1
}

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
	# The cluster's addresses exist only in its namespaces. From the root
	# one, where tests run most commands (bpsh's direct streams connect
	# to the nodes), they must fail at once, never reach a real network.
	ip route replace unreachable 10.77.0.0/16 || return 1
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

# bpsh_front_copies: $T/asan/bpsh, bpsh's C front built under
# AddressSanitizer and UBSan beside the real bpsh-go, and $T/fake/bpsh, a
# copy beside a bpsh-go that only says it ran, to see what the front hands
# over (t8500, t8510). ASan's and UBSan's options are exported.
bpsh_front_copies() {
	local san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
	export ASAN_OPTIONS=abort_on_error=0:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	mkdir -p "$T/asan" "$T/fake" &&
	make -s -C "$BPROC_ROOT" bpsh-c BPSH_C="$T/asan/bpsh" BPSH_CFLAGS="-O1 -g $san" BPSH_STATIC= &&
	ln -s "$BPROC_ROOT/bin/bpsh-go" "$T/asan/bpsh-go" &&
	cp "$BPROC_ROOT/bin/bpsh" "$T/fake/bpsh" &&
	printf '#!/bin/sh\necho "GO $*" >&2\nexit 77\n' >"$T/fake/bpsh-go" &&
	chmod +x "$T/fake/bpsh-go"
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
		echo "statedir $T/.state"
		for i in "$@"; do echo "$i"; done
	} >"$CONF"
	master_start || return 1
	for ((i = 0; i < n; i++)); do slave_start "$i" || return 1; done
	wait_nodes_up "$n" 20
}

# node_exec N 'ARGS': writes "exec ARGS" to node N's ctl (ARGS as ctl takes
# them: options such as -n, -c DIR, -e V=x, then the program and its
# arguments) and prints the pid ctl answers with on the same open file.
node_exec() (
	exec 3<>"$BPROC/node/$1/ctl" &&
	printf 'exec %s\n' "$2" >&3 &&
	read -r pid <&3 &&
	echo "$pid"
)

# node_ctl_refused N 'LINE' 'ERROR': writes LINE to node N's ctl, which must
# refuse the write with ERROR (the errno's text, as the writer sees it), and
# prints the text ctl then answers with on the same open file.
node_ctl_refused() (
	exec 3<>"$BPROC/node/$1/ctl" || return 1
	if err=$(printf '%s\n' "$2" 2>&1 >&3); then
		echo "node_ctl_refused: node $1's ctl took: $2" >&2
		return 1
	fi
	case $err in
	*"$3"*) ;;
	*) echo "node_ctl_refused: $2: got '$err', want '$3'" >&2; return 1 ;;
	esac
	cat <&3
)

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
