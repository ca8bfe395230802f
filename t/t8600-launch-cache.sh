#!/bin/sh
# What the master keeps between launches (issue 11): the spool's copy of a
# binary or library by file version, each binary's library closure, and the
# directories of ld.so.conf. Each is kept only while what it was read from
# stats the same; these tests change one thing between two launches and see
# the next launch use the new one. The files live in the master's /tmp,
# which the nodes' private /tmp hides: a node runs only what the master
# ships, so a stale cache on the master would show in the output.
. "$(dirname "$0")/lib.sh"

test_setup 'a 1-node cluster comes up' cluster_up 1

if ! command -v gcc >/dev/null; then
	test_skip 'the launch caches' 'no gcc to build libraries with'
	test_done
fi

D=/tmp/bproc-launchcache-$BP_ID
at_exit "rm -rf $D"
# A file of ld.so.conf.d for the last tests, removed at the end whatever
# happens (only ldconfig reads it, and it names $D alone).
CONFD=/etc/ld.so.conf.d/zz-bproc-t8600-$BP_ID.conf
at_exit "rm -f $CONFD"

# lib OUT TEXT: a libx.so whose x() returns TEXT.
lib() {
	mkdir -p "$(dirname "$1")" &&
	printf 'const char *x(void) { return "%s"; }\n' "$2" >"$T/x.c" &&
	gcc -shared -fPIC -o "$1" "$T/x.c"
}

# aged FILE...: each FILE changed (ctime) more than 3 s ago: what the
# master keeps only once a file has been still for 2 s.
aged() {
	local now f c
	now=$(date +%s) || return 1
	for f in "$@"; do
		c=$(stat -c %Z "$f") && test $((c + 3)) -lt "$now" || return 1
	done
}

# fails127 CMD...: CMD exits 127 (the dynamic linker's "cannot open
# shared object file"), its stderr in ./err. A helper, so that a failure
# before it in a body's chain is not taken for this one's status.
fails127() {
	local st=0
	"$@" 2>err || st=$?
	test "$st" = 127 || { echo "exit $st from $*, want 127:" >&2; cat err >&2; return 1; }
}

build() {
	mkdir -p "$D/a" "$D/b" "$D/c" &&
	lib "$D/b/libx.so" "from b" &&
	printf '#include <stdio.h>\nconst char *x(void);\nint main(void) { puts(x()); return 0; }\n' >"$T/main.c" &&
	gcc -o "$D/prog" "$T/main.c" -L"$D/b" -lx -Wl,-rpath,"$D/a:$D/b" &&
	# confprog needs libcz.so, found only through ld.so.conf.
	printf 'const char *cz(void) { return "cz"; }\n' >"$T/cz.c" &&
	gcc -shared -fPIC -o "$D/c/libcz.so" "$T/cz.c" &&
	printf '#include <stdio.h>\nconst char *cz(void);\nint main(void) { puts(cz()); return 0; }\n' >"$T/cz-main.c" &&
	gcc -o "$D/confprog" "$T/cz-main.c" -L"$D/c" -lcz &&
	printf '#!/bin/sh\necho one\n' >"$D/script" && chmod 755 "$D/script" &&
	cp -p "$D/script" "$T/script-ref" &&
	out=$("$D/prog") && test "$out" = "from b" &&
	! in_node 0 test -e "$D/prog" &&
	# Every file still for long enough to be kept.
	wait_for "aged $D/prog $D/b/libx.so $D/b $D/a $D/c/libcz.so $D/confprog $D/script /etc/ld.so.conf /etc/ld.so.conf.d" 10
}
test_setup 'programs and libraries only the master has, settled' build

test_expect_success 'a binary rewritten in place, its size and mtime kept, runs as it now is' '
	out=$(bpsh 0 "$D/script") && test "$out" = one &&
	out=$(bpsh 0 "$D/script") && test "$out" = one &&
	printf "#!/bin/sh\necho two\n" >"$T/two" &&
	cat "$T/two" >"$D/script" &&
	touch -r "$T/script-ref" "$D/script" &&
	n1=$(stat -c %s:%Y "$D/script") && n2=$(stat -c %s:%Y "$T/script-ref") && test "$n1" = "$n2" &&
	out=$(bpsh 0 "$D/script") && test "$out" = two
'

test_expect_success 'the same launch twice: the same library' '
	out=$(bpsh 0 "$D/prog") && test "$out" = "from b" &&
	out=$(bpsh 0 "$D/prog") && test "$out" = "from b"
'

test_expect_success 'a library put where the search looked first is used at once' '
	lib "$D/a/libx.so" "from a" &&
	out=$(bpsh 0 "$D/prog") && test "$out" = "from a"
'

test_expect_success 'a library rewritten in place, its size and mtime kept, is shipped as it now is' '
	wait_for "aged $D/a/libx.so $D/a" 10 &&
	out=$(bpsh 0 "$D/prog") && test "$out" = "from a" &&
	cp -p "$D/a/libx.so" "$T/ref.so" &&
	lib "$T/new.so" "from A" &&
	n1=$(stat -c %s "$T/new.so") && n2=$(stat -c %s "$T/ref.so") && test "$n1" = "$n2" &&
	cat "$T/new.so" >"$D/a/libx.so" &&
	touch -r "$T/ref.so" "$D/a/libx.so" &&
	out=$(bpsh 0 "$D/prog") && test "$out" = "from A"
'

test_expect_success 'a library taken away: the next one in the search is used' '
	out=$(bpsh 0 "$D/prog") && test "$out" = "from A" &&
	rm "$D/a/libx.so" &&
	out=$(bpsh 0 "$D/prog") && test "$out" = "from b"
'

test_expect_success 'a directory of the search closed to the user: not shipped for that user' '
	ensure_user bpuser &&
	chmod 755 "$D" "$D/b" && chmod 644 "$D/b/libx.so" && chmod 755 "$D/prog" &&
	out=$(as_user bpuser bpsh 0 "$D/prog") && test "$out" = "from b" &&
	out=$(as_user bpuser bpsh 0 "$D/prog") && test "$out" = "from b" &&
	chmod 700 "$D/b" &&
	fails127 as_user bpuser bpsh 0 "$D/prog" &&
	test_grep "libx.so: cannot open shared object file" err &&
	out=$(bpsh 0 "$D/prog") && test "$out" = "from b" &&
	chmod 755 "$D/b"
'

test_expect_success 'ld.so.conf: a directory added to it is searched at the next launch, and one removed is not' '
	fails127 bpsh 0 "$D/confprog" &&
	test_grep "libcz.so: cannot open shared object file" err &&
	fails127 bpsh 0 "$D/confprog" &&
	echo "$D/c" >"$CONFD" &&
	out=$(bpsh 0 "$D/confprog") && test "$out" = cz &&
	wait_for "aged $CONFD /etc/ld.so.conf.d" 10 &&
	out=$(bpsh 0 "$D/confprog") && test "$out" = cz &&
	echo "# emptied" >"$CONFD" &&
	fails127 bpsh 0 "$D/confprog" &&
	rm "$CONFD" &&
	fails127 bpsh 0 "$D/confprog"
'

test_done
