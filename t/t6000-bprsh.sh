#!/bin/sh
# bprsh, the rsh/ssh-compatible agent: shell semantics for the command
# words, HOST in every form a launcher may pass, ssh's exit statuses, the
# options launchers add; then real launchers over it: pdsh (-R exec),
# ClusterShell (-R exec and its ssh worker), and MPICH's hydra (-launcher
# rsh -launcher-exec bprsh) with a real MPI job.
. "$(dirname "$0")/lib.sh"

test_setup 'a 2-node cluster comes up' cluster_up 2
test_setup 'a test user exists' ensure_user bptest

test_expect_success 'the command words are joined and run by a shell on the node' '
	bprsh 1 echo "a  b" \; hostname >out &&
	printf "a b\nnode1\n" >expect && test_cmp expect out &&
	bprsh 0 "\"/bin/echo\" quoted path" >out &&
	echo "quoted path" >expect && test_cmp expect out &&
	bprsh 0 "cd / && pwd; echo \$BPROC_TEST_X" >out &&
	printf "/\n\n" >expect && test_cmp expect out
'

test_expect_success 'HOST: a number, nN, .N, the reported hostname, the address, the master' '
	for h in 1 n1 .1 node1 10.77.0.11; do
		out=$(bprsh $h hostname) && test "$out" = node1 || return 1
	done &&
	out=$(in_master bprsh master hostname) && test "$out" = master &&
	out=$(in_master bprsh localhost hostname) && test "$out" = master &&
	{ st=0; bprsh nosuchhost true 2>err || st=$?; } &&
	test "$st" = 255 &&
	test_grep "^bprsh: nosuchhost: " err &&
	{ st=0; bprsh 0-1 true 2>err || st=$?; } &&
	test "$st" = 255
'

test_expect_success 'exit status: the remote one; 255 for a signal or a node that cannot run it' '
	{ st=0; bprsh 0 "exit 7" || st=$?; } &&
	test "$st" = 7 &&
	{ st=0; bprsh 0 "kill -KILL \$\$" 2>err || st=$?; } &&
	test "$st" = 255 &&
	test_grep "killed by signal 9" err &&
	{ st=0; bprsh 9 true 2>err || st=$?; } &&
	test "$st" = 255 &&
	test_grep "^bprsh: 9: " err
'

test_expect_success 'stdin is forwarded, -n gives /dev/null; ssh options launchers add are ignored' '
	out=$(printf "in\n" | bprsh 0 cat) && test "$out" = in &&
	out=$(printf "in\n" | bprsh -n 0 cat) && test "$out" = "" &&
	out=$(bprsh -x -T -q -p 22 -o BatchMode=yes -oStrictHostKeyChecking=no -4 0 hostname) &&
	test "$out" = node0 &&
	{ st=0; bprsh -Z 0 true 2>err || st=$?; } &&
	test "$st" = 1 &&
	test_grep "^Try .bprsh -h. for help" err &&
	{ st=0; bprsh 0 2>err || st=$?; } &&
	test "$st" = 1
'

test_expect_success 'the command runs as the caller, in their home; -l must name them unless root' '
	out=$(as_user bptest bprsh 0 id -un) && test "$out" = bptest &&
	out=$(as_user bptest bprsh -l bptest 0 id -un) && test "$out" = bptest &&
	{ st=0; as_user bptest bprsh -l root 0 id -un 2>err || st=$?; } &&
	test "$st" = 255 &&
	test_grep "Permission denied" err &&
	out=$(bprsh -l bptest 0 id -un) && test "$out" = bptest &&
	out=$(bprsh bptest@0 id -un) && test "$out" = bptest &&
	out=$(bprsh 0 pwd) && test "$out" = "$HOME"
'

test_expect_success 'a signal to bprsh reaches the remote command' '
	{ bprsh 0 "echo started; exec sleep 61" >out 2>err & } &&
	p=$! &&
	wait_for "test -s out" 10 &&
	pid=$(cat $BPROC/proc/*/status | awk "/sleep 61/ && \$3 != \"exited\" { print \$1 }") &&
	test -n "$pid" &&
	kill -TERM $p &&
	{ st=0; wait $p || st=$?; } &&
	test "$st" = 255 &&
	test_grep "^signal 15 " $BPROC/proc/$pid/wait
'

# hostname_on_each LAUNCHER: LAUNCHER -R exec runs hostname through bprsh
# on both nodes, and each answers with its own name.
hostname_on_each() {
	"$1" -R exec -w "node[0-1]" bprsh %h hostname >out &&
	sort out >sorted &&
	printf "node0: node0\nnode1: node1\n" >expect &&
	test_cmp expect sorted
}

if command -v pdsh >/dev/null 2>&1; then test_set_prereq PDSH; fi

test_expect_success 'pdsh -R exec over bprsh runs on every node' '
	test_have_prereq PDSH || { echo "skip: pdsh is not installed (t/deps.sh installs it)"; return 0; } &&
	hostname_on_each pdsh &&
	{ st=0; pdsh -S -R exec -w node1 bprsh %h "exit 3" || st=$?; } &&
	test "$st" = 3
'

if command -v clush >/dev/null 2>&1; then test_set_prereq CLUSH; fi

test_expect_success 'ClusterShell over bprsh: clush -R exec, and its ssh worker with ssh_path' '
	test_have_prereq CLUSH || { echo "skip: clustershell is not installed (t/deps.sh installs it)"; return 0; } &&
	hostname_on_each clush &&
	printf "[Main]\nssh_path: bprsh\nssh_options:\n" >clush.conf &&
	mkdir -p cs && mv clush.conf cs/ &&
	CLUSTERSHELL_CFGDIR=$PWD/cs clush -w "node[0-1]" -b "echo \$((6 * 7))" >out &&
	test_grep "^node\[0-1\] (2)$" out &&
	test_grep "^42$" out
'

# write_hello: an MPI program whose ranks talk to each other (Allreduce).
write_hello() {
	cat <<-\EOC
	#include <mpi.h>
	#include <stdio.h>
	#include <unistd.h>
	int main(int argc, char **argv) {
		int rank, size, sum = 0;
		char host[64];
		MPI_Init(&argc, &argv);
		MPI_Comm_rank(MPI_COMM_WORLD, &rank);
		MPI_Comm_size(MPI_COMM_WORLD, &size);
		MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
		gethostname(host, sizeof host);
		printf("rank %d of %d on %s sum %d\n", rank, size, host, sum);
		MPI_Finalize();
		return 0;
	}
	EOC
}

if command -v mpiexec.hydra >/dev/null 2>&1 && command -v mpicc.mpich >/dev/null 2>&1; then
	test_set_prereq MPICH
fi

test_expect_success 'MPICH hydra over bprsh: its proxies start on the nodes, a real MPI job runs' '
	test_have_prereq MPICH || { echo "skip: MPICH is not installed (t/deps.sh installs it)"; return 0; } &&
	write_hello >hello.c &&
	mpicc.mpich -o hello hello.c &&
	in_master timeout 60 mpiexec.hydra -launcher rsh -launcher-exec bprsh -localhost 10.77.0.1 \
		-hosts node0,node1 -n 2 ./hello >out 2>err &&
	sort out >sorted &&
	printf "rank 0 of 2 on node0 sum 1\nrank 1 of 2 on node1 sum 1\n" >expect &&
	test_cmp expect sorted
'

if command -v mpirun.openmpi >/dev/null 2>&1 && command -v mpicc.openmpi >/dev/null 2>&1; then
	test_set_prereq OPENMPI
fi

test_expect_success 'Open MPI over bprsh (plm_rsh_agent): orted starts on the nodes, a real MPI job runs' '
	test_have_prereq OPENMPI || { echo "skip: Open MPI is not installed (t/deps.sh installs it)"; return 0; } &&
	write_hello >hello.c &&
	mpicc.openmpi -o hello-ompi hello.c &&
	in_master timeout 60 mpirun.openmpi --allow-run-as-root --mca plm_rsh_agent bprsh \
		-H node0,node1 -np 2 ./hello-ompi >out 2>err &&
	sort out >sorted &&
	printf "rank 0 of 2 on node0 sum 1\nrank 1 of 2 on node1 sum 1\n" >expect &&
	test_cmp expect sorted
'

test_done
