#!/bin/sh
# Direct streams with seal no: bpsh splices the frames' bytes from the
# node's socket to its stdout (a pipe, a file, /dev/null) without copying
# them, byte-exact; an append-mode file is written instead, and a reader
# leaving the pipe ends the job as a failed write does.
. "$(dirname "$0")/lib.sh"

test_setup 'a 2-node cluster comes up' cluster_up 2
test_setup 'it runs seal no' eval 'echo "seal no" >>"$CONF" && master_restart'

# spliced FILE STREAM: the bytes of STREAM bpsh's trace in FILE says it spliced.
spliced() { sed -n "s/.* \([0-9]*\) bytes of $2 spliced\$/\1/p" "$1"; }

test_expect_success 'into a pipe: byte-exact, and spliced' '
	head -c 20000000 /dev/urandom >big &&
	in_master bash -c "set -o pipefail; BPSH_TRACE=1 bpsh 1 sh -c \"cat $T/big; echo tail >&2\" 2>$T/trace | cat >$T/out" &&
	cmp big out &&
	grep -qx tail trace &&
	n=$(spliced trace stdout) &&
	test "$n" -gt 10000000
'

test_expect_success 'into a file: byte-exact, and spliced' '
	in_master bash -c "BPSH_TRACE=1 bpsh 1 cat $T/big >$T/out 2>$T/trace" &&
	cmp big out &&
	n=$(spliced trace stdout) &&
	test "$n" -gt 10000000
'

test_expect_success 'a file opened for appending is written, not spliced' '
	echo first >app &&
	in_master bash -c "BPSH_TRACE=1 bpsh 1 cat $T/big >>$T/app 2>$T/trace" &&
	{ echo first && cat big; } >expect &&
	cmp expect app &&
	n=$(spliced trace stdout) &&
	test -z "$n" &&
	grep -q "output goes direct" trace
'

test_expect_success 'BPSH_SPLICE=0 writes instead, byte-exact' '
	in_master bash -c "BPSH_SPLICE=0 BPSH_TRACE=1 bpsh 1 cat $T/big >$T/out 2>$T/trace" &&
	cmp big out &&
	n=$(spliced trace stdout) &&
	test -z "$n" &&
	grep -q "output goes direct" trace
'

test_expect_success 'a reader leaving the pipe ends bpsh and the job' '
	in_master bash -c "bpsh 1 cat $T/big $T/big $T/big | head -c 30000000 >$T/h" &&
	n=$(stat -c %s h) &&
	test "$n" = 30000000
'

test_done
