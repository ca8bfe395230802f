#!/bin/sh
# Holes in the master's exec path, as a user would try them: long ctl
# lines, bytes that are not UTF-8, output nobody reads, too many
# processes, /proc/self in a path, PATH entries one may not search.
. "$(dirname "$0")/lib.sh"

test_setup 'a 2-node cluster with maxprocs 3' cluster_up 2 "maxprocs 3"
test_setup 'a test user exists' ensure_user bptest

# nprocs: how many processes proc/ lists (live and recently exited).
nprocs() { ls "$BPROC/proc" | wc -l; }

test_expect_success 'a ctl line longer than 4 KiB runs once, whole' '
	long=$(head -c 12000 /dev/zero | tr "\0" x) &&
	before=$(nprocs) &&
	pid=$(node_exec 0 "/bin/echo $long /KEEP-THIS-WHOLE-NAME") &&
	after=$(nprocs) &&
	test "$after" = $((before + 1)) &&
	cat $BPROC/proc/$pid/stdout >out &&
	echo "$long /KEEP-THIS-WHOLE-NAME" >expect &&
	test_cmp expect out
'

test_expect_success 'one write over 1 MiB (FUSE splits it) is one command' '
	arg=$(head -c 100000 /dev/zero | tr "\0" y) &&
	{
		printf "%s" "exec /bin/sh -c '"'"'echo \$# \$(printf %s \"\$@\" | wc -c)'"'"' sh" &&
		for i in $(seq 15); do printf " %s" "$arg" || return 1; done &&
		echo
	} >line &&
	n=$(wc -c <line) && test "$n" -gt 1100000 &&
	before=$(nprocs) &&
	exec 3<>$BPROC/node/1/ctl &&
	dd if=line bs=4M status=none >&3 &&
	read -r pid <&3 &&
	exec 3>&- &&
	n=$(nprocs) && test "$n" = $((before + 1)) &&
	cat $BPROC/proc/$pid/stdout >out &&
	echo "15 1500000" >expect &&
	test_cmp expect out
'

test_expect_success 'bpsh with 1.5 MB of arguments, over the mount and over 9P (several Twrites)' '
	arg=$(head -c 100000 /dev/zero | tr "\0" w) &&
	set -- $(for i in $(seq 15); do echo $arg; done) &&
	out=$(bpsh 0 /bin/sh -c "echo \$# \$(printf %s \"\$@\" | wc -c)" sh "$@") &&
	test "$out" = "15 1500000" &&
	out=$(in_node 0 env BPROC_MOUNT=/nonexistent BPROC_MASTER=10.77.0.1 BPROC_KEY=$KEY \
		bpsh 1 /bin/sh -c "echo \$# \$(printf %s \"\$@\" | wc -c)" sh "$@") &&
	test "$out" = "15 1500000"
'

test_expect_success 'a line over the maximum fails with E2BIG and runs nothing' '
	head -c 3000000 /dev/zero | tr "\0" z >big &&
	{ printf "exec /bin/echo " && cat big && echo; } >line &&
	before=$(nprocs) &&
	exec 3<>$BPROC/node/0/ctl &&
	! dd if=line bs=4M status=none >&3 2>err &&
	test_grep "Argument list too long" err &&
	cat <&3 >res &&
	exec 3>&- &&
	test_grep "^error: command longer than" res &&
	! bash -c "cat line >$BPROC/node/0/ctl" 2>err &&
	test_grep "Argument list too long" err &&
	n=$(nprocs) && test "$n" = $before
'

test_expect_success 'printf without a newline still runs, at close, and close(2) gives its error' '
	printf "exec /bin/echo no-newline-ran" >$BPROC/node/0/ctl &&
	timeout 5 sed "/no-newline-ran/q" $BPROC/node/0/io >io &&
	test_grep no-newline-ran io &&
	! /usr/bin/printf "exec /nonexistent/prog" >$BPROC/node/0/ctl 2>err &&
	test_grep "No such file or directory" err
'

test_expect_success 'opened for reading and writing, an unfinished line runs at the last close' '
	exec 3<>$BPROC/node/0/ctl &&
	printf "exec /bin/echo rdwr-close-ran" >&3 &&
	exec 3>&- &&
	timeout 5 sed "/rdwr-close-ran/q" $BPROC/node/0/io >io &&
	test_grep rdwr-close-ran io
'

test_expect_success 'a child closing an inherited ctl descriptor does not end the line' '
	before=$(nprocs) &&
	exec 3>$BPROC/node/0/ctl &&
	printf "exec /bin/echo par" >&3 &&
	/bin/true &&
	printf "tial-line-ok\n" >&3 &&
	exec 3>&- &&
	n=$(nprocs) && test "$n" = $((before + 1)) &&
	timeout 5 sed "/partial-line-ok/q" $BPROC/node/0/io >io &&
	test_grep partial-line-ok io
'

test_expect_success 'arguments are byte-exact on the node (not U+FFFD)' '
	out=$(bpsh 0 /bin/sh -c "printf %s \"\$1\" | od -An -tx1" sh "$(printf "\377\376a")") &&
	out=$(echo $out) && test "$out" = "ff fe 61"
'

test_expect_success 'and over 9P from a node' '
	out=$(in_node 0 env BPROC_MOUNT=/nonexistent BPROC_MASTER=10.77.0.1 BPROC_KEY=$KEY \
		bpsh 1 /bin/sh -c "printf %s \"\$1\" | od -An -tx1" sh "$(printf "\351t\351")") &&
	out=$(echo $out) && test "$out" = "e9 74 e9"
'

test_expect_success 'environment, a Latin-1 binary name and cwd arrive byte-exact' '
	name=$(printf "caf\351") &&
	cp /bin/sh "$T/$name" &&
	mkdir -p "$T/d$name" &&
	pid=$(node_exec 0 "-c $T/d$name -e V=$name -- $T/$name -c '"'"'printf \"%s|%s|%s\" \"\$0\" \"\$V\" \"\$PWD\" | od -An -tx1'"'"'") &&
	cat $BPROC/proc/$pid/stdout >out &&
	printf "%s|%s|%s" "$T/$name" "$name" "$T/d$name" | od -An -tx1 >expect &&
	test_cmp expect out
'

test_expect_success 'proc status shows such bytes escaped' '
	pid=$(node_exec 0 "/bin/sleep 30 $(printf "\377")") &&
	test_when_finished "echo kill KILL >$BPROC/proc/$pid/ctl" &&
	cat $BPROC/proc/$pid/status >st &&
	test_grep "sleep 30 .\\\\xff" st
'

test_expect_success 'past maxprocs a user gets EAGAIN, with its text, and nothing starts' '
	test_when_finished "echo kill KILL >$BPROC/node/0/ctl" &&
	for i in 1 2 3; do
		as_user bptest bash -c "echo exec /bin/sleep 60 >$BPROC/node/0/ctl" || return 1
	done &&
	before=$(nprocs) &&
	! as_user bptest bash -c "exec 3<>$BPROC/node/0/ctl && echo exec /bin/sleep 60 >&3; cat <&3 >res; exit 1" 2>err &&
	test_grep "Resource temporarily unavailable" err &&
	test_grep "maxprocs" $T/home-bptest/res &&
	n=$(nprocs) && test "$n" = $before &&
	echo "exec /bin/true" >$BPROC/node/0/ctl
'

# rss: bpmaster's resident set, in KiB.
rss() { awk "/^VmRSS:/ { print \$2 }" /proc/$(bg_pid master-bpmaster)/status; }

test_expect_success 'output nobody reads: 100 jobs of 5 MB leave the master small' '
	base=$(rss) &&
	for i in $(seq 100); do
		echo "exec /usr/bin/head -c 5000000 /dev/zero" >$BPROC/node/$((i % 2))/ctl || return 1
	done &&
	wait_for "! grep -lv \" exited \" $BPROC/proc/*/status" 60 &&
	n=$(cat $BPROC/proc/*/status | grep -c "usr/bin/head -c 5000000") &&
	test "$n" -ge 100 &&
	peak=$(awk "/^VmHWM:/ { print \$2 }" /proc/$(bg_pid master-bpmaster)/status) &&
	{ wait_for "test \$(rss) -lt $((base + 48 * 1024))" 20 || fail "RSS $(rss) KiB"; } &&
	echo "bpmaster RSS: $base KiB before, peak $peak KiB, $(rss) KiB after"
'

test_expect_success 'exec /proc/self/exe is refused, as root and as a user, at any depth of symlinks' '
	ln -s /proc/self/exe self-exe &&
	ln -s /proc/self self &&
	for p in /proc/self/exe /proc/thread-self/exe $T/self-exe $T/self/exe /proc/self/fd/0; do
		! bash -c "echo exec $p -V >$BPROC/node/0/ctl" 2>err &&
		exec 3<>$BPROC/node/0/ctl &&
		{ ! echo "exec $p -V" >&3; } 2>/dev/null &&
		cat <&3 >res &&
		exec 3>&- &&
		test_grep "magic link" res &&
		! as_user bptest bash -c "echo exec $p -V >$BPROC/node/0/ctl" 2>err || return 1
	done
'

test_expect_success 'a relative path is the writer'"'"'s' '
	cp /bin/echo $T/home-bptest/myecho &&
	chown bptest $T/home-bptest/myecho &&
	as_user bptest bash -c "exec 3<>$BPROC/node/0/ctl && echo exec ./myecho rel-ok >&3 && read -r pid <&3 && cat $BPROC/proc/\$pid/stdout" >out &&
	echo rel-ok >expect &&
	test_cmp expect out
'

test_expect_success 'PATH is searched as the user: a closed directory tells nothing, EACCES does not end the search' '
	mkdir -p closed noexec &&
	chmod 0700 closed &&
	cp /bin/true closed/secretprog &&
	cp /bin/false noexec/true &&
	chmod 0744 noexec/true &&
	! as_user bptest bash -c "echo exec -e PATH=$T/closed secretprog >$BPROC/node/0/ctl" 2>err1 &&
	! as_user bptest bash -c "echo exec -e PATH=$T/closed nosuchprog >$BPROC/node/0/ctl" 2>err2 &&
	test_grep "Permission denied" err1 &&
	test_grep "Permission denied" err2 &&
	as_user bptest bash -c "exec 3<>$BPROC/node/0/ctl && echo exec -e PATH=$T/noexec:/bin true >&3 && read -r pid <&3 && cat $BPROC/proc/\$pid/wait" >wait &&
	echo "exit 0" >expect &&
	test_cmp expect wait
'

test_done
