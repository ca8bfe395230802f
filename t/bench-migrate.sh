#!/bin/sh
# bench-migrate: libbproc's migration on a 2-node virtual cluster, beside its
# peers measured in the same run: rfork + child exit + waitpid to node 1
# against a local fork + exit + waitpid; bproc_move of a process with 1, 64
# and 512 MB of dirty memory from the master to node 1 (sealed, then with
# `seal no`) against vmadump's local dump+restore of the same sizes and raw
# TCP from the master's namespace to node 1's. Medians of several runs; each
# move is a fresh process (t7100/mig.c: time-move), its memory checked after.
# Knobs: BENCH_MIGRATE_RUNS (moves and TCP per size, default 7),
# BENCH_MIGRATE_RFORKS (rforks, 50), BENCH_MIGRATE_SIZES (1,64,512),
# BENCH_MIGRATE_TIMEOUT (seconds a run may take, 120), BENCH_QUICK (1: 3
# moves, 20 rforks; the header says "(quick)").
# A row that cannot run says why; the script then exits non-zero.
. "$(dirname "$0")/lib.sh"

if [ -n "${BENCH_QUICK:-}" ]; then
	: "${BENCH_MIGRATE_RUNS:=3}" "${BENCH_MIGRATE_RFORKS:=20}"
fi
RUNS=${BENCH_MIGRATE_RUNS:-7}
RFORKS=${BENCH_MIGRATE_RFORKS:-50}
SIZES=$(echo "${BENCH_MIGRATE_SIZES:-1,64,512}" | tr , ' ')
PORT=4713
bad=

row() { printf '%-48s %10s %-5s %5s   %s\n' "$1" "$2" "$3" "$4" "$5"; }
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
# gbs MB US: GB/s of MB MiB in US microseconds.
gbs() { awk -v mb="$1" -v us="$2" 'BEGIN { printf "%.2f", mb * 1048576 / (us * 1000) }'; }
verdict() { if awk -v v="$1" -v l="$3" "BEGIN { exit !(v $2 l) }"; then echo ok; else echo MISSED; fi; }
# na WHAT WHY: a row that could not run.
na() {
	row "$1" n/a "" "" "failed: $2"
	bad=1
}

# mig ARGS...: the test program in the master's namespaces (errors in
# $T/err), stopped if it hangs (a move that never comes back).
mig() { in_master timeout -k 5 "${BENCH_MIGRATE_TIMEOUT:-120}" "$T/mig" "$@" 2>"$T/err"; }

# times FILE N CMD...: runs CMD N times, each printing one figure, into FILE.
times() {
	local f=$1 n=$2 i out
	shift 2
	: >"$f"
	for ((i = 0; i < n; i++)); do
		out=$("$@") || { echo "$out $(cat "$T/err")" | tr '\n' ' '; return 1; }
		echo "$out" >>"$f"
	done
}

setup() {
	cluster_up 2 || return 1
	make -s -C "$BPROC_ROOT" install PREFIX="$T/inst" DESTDIR= SYSCONFDIR="$T/etc" BUILD="$T/inst.build" || return 1
	cc -std=c99 -O2 -Wall -Wextra -Werror -I"$T/inst/include" -o "$T/mig" "$TEST_DIRECTORY/t7100/mig.c" \
		-L"$T/inst/lib" -lbproc -Wl,-rpath,"$T/inst/lib" -pthread || return 1
	gcc -O2 -static -o "$T/memhog" "$BPROC_ROOT/vmadump/testdata/memhog.c"
}
if ! setup >"$T/setup.out" 2>&1; then
	cat "$T/setup.out"
	_dump_logs
	echo "bench-migrate: the cluster or the test programs did not come up" >&2
	exit 1
fi

echo "bench-migrate: 2 nodes in network namespaces on $(nproc) cores; medians${BENCH_QUICK:+ (quick)}"
row "what" "median" "" "runs" "target"

# One process, RFORKS forks or rforks one after the other.
if mig time-fork - "$RFORKS" >"$T/fork"; then
	row "local fork + exit + waitpid" "$(ms "$(median "$T/fork")")" ms "$RFORKS"
else
	na "local fork + exit + waitpid" "$(cat "$T/fork" "$T/err" | tr '\n' ' ')"
fi
if mig time-rfork 1 "$RFORKS" >"$T/rfork"; then
	row "bproc_rfork(1) + exit + waitpid" "$(ms "$(median "$T/rfork")")" ms "$RFORKS"
else
	na "bproc_rfork(1) + exit + waitpid" "$(cat "$T/rfork" "$T/err" | tr '\n' ' ')"
fi

# The peers, once for every size: vmadump's dump+restore through a pipe in
# one process, and raw TCP master -> node 1.
vmadump bench -prog "$T/memhog" -sizes "$(echo $SIZES | tr ' ' ,)" -runs "$RUNS" >"$T/vmadump" 2>&1 ||
	{ cat "$T/vmadump"; bad=1; }
# vmadump_ms MB: its dump+restore median for MB.
vmadump_ms() { awk -v mb="$1" '$1 == mb && $2 == "MB" && $4 == "ms" { print $3 }' "$T/vmadump"; }
# tcp_once MB: a fresh sink on node 1 (it takes one connection), then the
# send's microseconds.
tcp_once() {
	local log=$T/sink.${EPOCHREALTIME/./}.log
	bg_node 1 "$log" "$T/mig" tcp-sink "$PORT" || return 1
	wait_for "grep -q ready '$log'" 10 || return 1
	in_master "$T/mig" tcp-send "$(node_addr 1)" "$PORT" "$1" 2>"$T/err"
}

# moves LABEL: a row per size, the peers beside it.
moves() {
	local mb us v t
	for mb in $SIZES; do
		if times "$T/move.$mb" "$RUNS" mig time-move 1 "$mb" >"$T/why"; then
			us=$(median "$T/move.$mb")
			case $mb in
			1) t="<= 5 ms: $(verdict "$us" '<=' 5000)" ;;
			512) if [ "$1" = sealed ]; then
				t=">= 0.6 GB/s: $(verdict "$(gbs "$mb" "$us")" '>=' 0.6)"
			else
				t=">= 1 GB/s: $(verdict "$(gbs "$mb" "$us")" '>=' 1)"
			fi ;;
			*) t= ;;
			esac
			row "bproc_move(1), $mb MB dirty, $1" "$(ms "$us")" ms "$RUNS" "$(gbs "$mb" "$us") GB/s  $t"
		else
			na "bproc_move(1), $mb MB dirty, $1" "$(cat "$T/why")"
		fi
		[ "$1" = sealed ] || continue
		v=$(vmadump_ms "$mb")
		if [ -n "$v" ]; then
			row "  vmadump local dump+restore, $mb MB" "$v" ms "$RUNS" "$(gbs "$mb" "$(awk -v m="$v" 'BEGIN { print m * 1000 }')") GB/s"
		else
			na "  vmadump local dump+restore, $mb MB" "see its output above"
		fi
		if times "$T/tcp.$mb" "$RUNS" tcp_once "$mb" >"$T/why"; then
			us=$(median "$T/tcp.$mb")
			row "  raw TCP master -> node1, $mb MB" "$(ms "$us")" ms "$RUNS" "$(gbs "$mb" "$us") GB/s"
		else
			na "  raw TCP master -> node1, $mb MB" "$(cat "$T/why")"
		fi
	done
}
moves sealed

echo "seal no" >>"$CONF"
if ! { master_restart && wait_nodes_up 2 20; } >"$T/plain.out" 2>&1; then
	cat "$T/plain.out"
	echo "bench-migrate: the cluster did not come back with seal no" >&2
	exit 1
fi
moves "seal no"

if [ -n "$bad" ]; then
	echo "bench-migrate: some rows could not run (above)" >&2
	exit 1
fi
exit 0
