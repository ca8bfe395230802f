#!/bin/sh
# t/demo.sh: a 4-node cluster in network namespaces and a short narrated tour
# of it; everything is torn down at the end (make demo builds the binaries).
if [ "$(id -u)" != 0 ]; then
	echo "demo: needs root (network namespaces, FUSE); try: sudo make demo" >&2
	exit 1
fi
. "$(dirname "$0")/lib.sh"

for p in bpmaster bpslave bpsh; do
	command -v $p >/dev/null || { echo "demo: $p not found; run make build" >&2; exit 1; }
done

# show CMD: prints the command as typed, then runs it.
show() {
	printf '\n$ %s\n' "$1"
	eval "$1"
}

# show_piped: show with the command's output and errors through a pipe,
# as in a terminal: a moving shell whose stdout is a regular file (make
# demo >log, in /tmp) fails the move, since a file is reopened by path
# on the node and each node has its own /tmp.
show_piped() {
	printf '\n$ %s\n' "$1"
	{ eval "$1"; } 2>&1 | cat
}

say "bproc demo: a master and 4 nodes, each in its own network namespace"
say "(master 10.77.0.1, node0..node3 at 10.77.0.10..13, each with its own hostname and /tmp)"
if ! cluster_up 4 >"$T/up.out" 2>&1; then
	cat "$T/up.out"
	_dump_logs
	echo "demo: the cluster did not come up" >&2
	exit 1
fi
say "bpmaster serves the tree over 9P on port 2223 and mounts it with FUSE at"
say "BPROC=$BPROC (the real thing mounts at /bproc); the tools find it through BPROC_MOUNT."
cd "$T"

show 'cat $BPROC/status'
show 'cat $BPROC/node/*/status'
say
say "# Run a program by writing to a node's ctl file; its output lands in io:"
show 'echo exec /usr/bin/hostname > $BPROC/node/2/ctl; timeout 5 head -n1 $BPROC/node/2/io'
if command -v bpstat >/dev/null; then show 'bpstat'; fi
show 'bpsh -a -p hostname'
show "bpsh 1 sh -c 'exit 7'; echo \$?"
say
say "# What bpsh does: one open ctl carries the whole launch: the pid, then"
say "# with exec -o the output and the end as frames:"
show "exec 3<>\$BPROC/node/1/ctl; echo 'exec -o /usr/bin/hostname' >&3; cat <&3; exec 3<&-"
say
say "# A shell moves itself: the rest of the script runs on node 2; its ghost"
say "# stays here, so \$? and kill still work:"
show_piped "bash -c 'echo on \$(hostname); echo move > \$BPROC/node/2/ctl; echo now on \$(hostname); exit 3'; echo \$?"
if command -v bpctl >/dev/null; then
	show 'bpctl -S 3 -s unavailable; bpstat'
else
	show 'echo state unavailable > $BPROC/node/3/ctl; cat $BPROC/status'
fi
say
say "Tearing the cluster down."
