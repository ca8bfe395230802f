#!/bin/sh
# The library cache: a dynamically linked program whose shared library (and
# even interpreter) exists only on the master runs on a node. The master
# resolves what it needs, the slave fetches what the node lacks by content,
# once; a library the node has with the same content is used where it is;
# `libcache no` in bpmaster's config is the old behaviour.
. "$(dirname "$0")/lib.sh"

test_setup 'a 3-node cluster comes up' cluster_up 3

# The library lives in the master's /tmp: the nodes have a private /tmp,
# so only the master has it. $T, which the nodes share, holds the programs.
LIB=/tmp/bproc-libcache-$BP_ID
at_exit "rm -rf $LIB"

# build: libgreet.so (a version of it for planting on a node, with another
# text), greet linked against it (RUNPATH $LIB), and greet-ld, which also
# names a copy of the dynamic linker in $LIB as its interpreter.
build() {
	mkdir -p "$LIB" "$T/other" &&
	printf 'const char *greet(void) { return "hello from libgreet"; }\n' >"$T/greet.c" &&
	printf 'const char *greet(void) { return "the node'"'"'s own libgreet"; }\n' >"$T/other.c" &&
	cat >"$T/main.c" <<-\EOF &&
	#include <stdio.h>
	#include <string.h>
	const char *greet(void);
	int main(int argc, char **argv) {
		printf("%s, argv0 %s, argc %d\n", greet(), strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0], argc);
		return 0;
	}
	EOF
	gcc -shared -fPIC -o "$LIB/libgreet.so" "$T/greet.c" &&
	gcc -shared -fPIC -o "$T/other/libgreet.so" "$T/other.c" &&
	gcc -o "$T/greet" "$T/main.c" -L"$LIB" -lgreet -Wl,-rpath,"$LIB" &&
	interp=$(readelf -l "$T/greet" | sed -n "s/.*Requesting program interpreter: \(.*\)]/\1/p") &&
	test -n "$interp" &&
	cp "$interp" "$LIB/ld.so" &&
	gcc -o "$T/greet-ld" "$T/main.c" -L"$LIB" -lgreet -Wl,-rpath,"$LIB" -Wl,--dynamic-linker="$LIB/ld.so" &&
	out=$("$T/greet") && test "$out" = "hello from libgreet, argv0 greet, argc 1"
}
test_setup 'a program linked against a library in the master'"'"'s /tmp' build

# fetches I: how many library fetches node I's slave logged.
fetches() { grep -c "fetched library" "$T/slave$1.log" || :; }

test_expect_success 'the nodes lack the library' '
	for i in 0 1 2; do
		! in_node $i test -e "$LIB/libgreet.so" || return 1
	done
'

test_expect_success 'a library the node has at that path with the same content is not fetched' '
	cp "$LIB/libgreet.so" "$T/greet-copy" &&
	in_node 1 sh -c "mkdir -p $LIB && cp $T/greet-copy $LIB/libgreet.so" &&
	out=$(bpsh 1 "$T/greet") && test "$out" = "hello from libgreet, argv0 greet, argc 1" &&
	n=$(fetches 1) && test "$n" = 0
'

test_expect_success 'a library the node has at that path with other content is fetched, and the master'"'"'s runs' '
	in_node 1 cp "$T/other/libgreet.so" "$LIB/libgreet.so" &&
	out=$(in_node 1 "$T/greet") && test "$out" = "the node'"'"'s own libgreet, argv0 greet, argc 1" &&
	out=$(bpsh 1 "$T/greet") && test "$out" = "hello from libgreet, argv0 greet, argc 1" &&
	test_grep "fetched library $LIB/libgreet.so" "$T/slave1.log" &&
	n=$(fetches 1) && test "$n" = 1
'

test_expect_success 'through bpsh: the library is fetched once, argv[0] and arguments as given' '
	out=$(bpsh 0 "$T/greet" a b) && test "$out" = "hello from libgreet, argv0 greet, argc 3" &&
	n=$(fetches 0) && test "$n" = 1 &&
	out=$(bpsh 0 "$T/greet") && test "$out" = "hello from libgreet, argv0 greet, argc 1" &&
	n=$(fetches 0) && test "$n" = 1
'

test_expect_success 'through bprsh' '
	out=$(bprsh 0 "$T/greet" x) && test "$out" = "hello from libgreet, argv0 greet, argc 2" &&
	n=$(fetches 0) && test "$n" = 1
'

test_expect_success 'through ctl exec, with argv[0] set by -a' '
	pid=$(node_exec 2 "-a myname $T/greet") &&
	out=$(cat "$BPROC/proc/$pid/stdout") && test "$out" = "hello from libgreet, argv0 myname, argc 1" &&
	st=$(cat "$BPROC/proc/$pid/wait") && test "$st" = "exit 0" &&
	n=$(fetches 2) && test "$n" = 1
'

test_expect_success 'as a user, who may read the library' '
	ensure_user bpuser &&
	out=$(as_user bpuser bpsh 2 "$T/greet") && test "$out" = "hello from libgreet, argv0 greet, argc 1" &&
	n=$(fetches 2) && test "$n" = 1
'

test_expect_success 'an interpreter only the master has is shipped too; argv[0] is kept' '
	! in_node 0 test -e "$LIB/ld.so" &&
	out=$(bpsh 0 "$T/greet-ld" a) && test "$out" = "hello from libgreet, argv0 greet-ld, argc 2" &&
	test_grep "fetched library $LIB/ld.so" "$T/slave0.log" &&
	n=$(fetches 0) && test "$n" = 2 &&
	pid=$(node_exec 0 "-a other $T/greet-ld") &&
	out=$(cat "$BPROC/proc/$pid/stdout") && test "$out" = "hello from libgreet, argv0 other, argc 1" &&
	n=$(fetches 0) && test "$n" = 2
'

test_expect_success 'a static program and a script run as before, nothing fetched' '
	printf "#!/bin/sh\necho script on \$(hostname)\n" >"$T/script" && chmod 755 "$T/script" &&
	out=$(bpsh 0 "$T/script") && test "$out" = "script on node0" &&
	n=$(fetches 0) && test "$n" = 2
'

test_expect_success 'with libcache no, the program fails on the node with the dynamic linker'"'"'s error' '
	echo "libcache no" >>"$CONF" &&
	master_restart &&
	st=0 && bpsh 0 "$T/greet" 2>err || st=$? && test "$st" = 127 &&
	test_grep "libgreet.so: cannot open shared object file" err &&
	exec 3<>"$BPROC/node/0/ctl" &&
	! echo "exec $T/greet-ld" >&3 2>err &&
	cat <&3 >text &&
	exec 3>&- &&
	cat text &&
	test_grep "greet-ld: no such file or directory" text
'

test_done
