#!/bin/sh
# The convention every command keeps (help, version, usage errors exit 1),
# and the daemons' start: a bind failure is the starting command's error, a
# detached daemon serves on the socket its parent bound.
. "$(dirname "$0")/lib.sh"

test_setup 'a 1-node cluster comes up' cluster_up 1

test_expect_success 'every command: -h on stdout, -V the version, a bad option exits 1' '
	for c in bpmaster bpslave bpsh bprsh bpstat bpctl bpcp vmadump beostat sendstats recvstats; do
		$c -h >out 2>err &&
		test_grep "^Usage: $c " out &&
		! test -s err &&
		$c -V >out &&
		test_grep "^$c (bproc) ." out &&
		{ st=0; $c --no-such-option >out 2>err || st=$?; } &&
		test "$st" = 1 &&
		! test -s out &&
		test_grep "^$c: unknown flag: --no-such-option" err &&
		test_grep "^Try .$c -h. for help.$" err || return 1
	done
'

test_expect_success 'bpsh: a usage error exits 1 (255 is a killed or lost process), -v is the version' '
	{ st=0; bpsh 0 >out 2>err || st=$?; } &&
	test "$st" = 1 &&
	test_grep "^bpsh: missing command" err &&
	{ st=0; bpsh nosuchnode true 2>err || st=$?; } &&
	test "$st" = 1 &&
	bpsh -v >out &&
	test_grep "^bpsh (bproc) ." out &&
	bpsh 0 true
'

test_expect_success 'a second bpmaster on the busy port: the starting command fails' '
	sed "s|^mount .*|mount none|" $CONF >busy.conf &&
	{ st=0; in_master bpmaster -c busy.conf -k $KEY >out 2>err || st=$?; } &&
	test "$st" = 1 &&
	test_grep "^bpmaster: .*address already in use" err &&
	n=$(nodes_up) && test "$n" = 1
'

test_expect_success 'bpmaster logs an unmount that fails at shutdown (here: unmounted behind its back)' '
	umount -l $BPROC &&
	bg_kill master-bpmaster TERM &&
	test_grep "shutting down: unmount $BPROC: " $MASTER_LOG
'

# The pid of the process listening on TCP port $BPROC_PORT on the master.
port_owner() {
	in_master ss -Htlnp "sport = :$BPROC_PORT" | sed -n "s/.*pid=\([0-9]*\),.*/\1/p" | head -n 1
}

test_expect_success 'detached bpmaster: serves at once on the socket its parent bound' '
	master_stop &&
	in_master bpmaster -c $CONF -k $KEY &&
	p=$(port_owner) &&
	test -n "$p" &&
	echo "$p" >"$T/.pids/master-bpmaster-detached" &&
	tr "\0" " " </proc/$p/cmdline >cmdline &&
	test_grep "bpmaster -c $CONF -k $KEY" cmdline &&
	in_master env BPROC_MOUNT=/nonexistent BPROC_MASTER=127.0.0.1:$BPROC_PORT BPROC_KEY=$KEY bpstat -M -s -1 >out &&
	out=$(cat out) && test "$out" = up &&
	wait_for "mountpoint -q $BPROC && test -e $BPROC/status" 10 &&
	wait_nodes_up 1 20 &&
	bpsh 0 hostname >out &&
	out=$(cat out) && test "$out" = node0 &&
	kill -TERM $p &&
	wait_gone $p 10 &&
	! mountpoint -q $BPROC
'

test_done
