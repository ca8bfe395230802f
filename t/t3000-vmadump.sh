#!/bin/sh
# vmadump, the command: dump a running program, describe the image, restore
# it (from a file, from stdin with the program's input after the image,
# detached, in another network namespace), and the errors.
. "$(dirname "$0")/lib.sh"

# loop.pl: counts in a loop until getpid (the system call; $$ is cached)
# changes, then reports where it got and reads one line of its stdin.
cat >"$T/loop.pl" <<'PERL'
$| = 1;
my $pid0 = syscall(39);
my $i = 0;
print "READY $pid0\n";
while (syscall(39) == $pid0) { $i++ }
print "moved after $i iterations\n";
my $line = <STDIN>;
print "read: $line";
exit 3;
PERL

# start_loop OUT: starts loop.pl with stdout to the file OUT (so the restored
# program writes on at the same offset) and stdin from a fifo held open by
# a sleeping writer; sets $pid. perl is started by a short-lived sh, so
# that its death by the dump is not reported as a job of this shell.
start_loop() {
	rm -f "$T/in.$1" && mkfifo "$T/in.$1" || return 1
	sleep 1000 >"$T/in.$1" &
	pid=$(sh -c 'perl "$1" <"$2" >"$3" & echo $!' - "$T/loop.pl" "$T/in.$1" "$T/$1") || return 1
	wait_for "grep -q READY $T/$1"
}

test_expect_success 'dump a perl loop, then info describes the image' '
	start_loop out1 &&
	vmadump dump $pid "$T/img1" &&
	wait_gone $pid &&
	vmadump info "$T/img1" >"$T/info1" &&
	test_grep "^arch: *x86_64" "$T/info1" &&
	test_grep "^kernel: *$(uname -r)" "$T/info1" &&
	test_grep "^exe: */usr/bin/perl" "$T/info1" &&
	test_grep "\[heap\]" "$T/info1" &&
	test_grep "file/libs *file ref" "$T/info1" &&
	test_grep "^total: .* in the image, image" "$T/info1" &&
	test_grep " 1 file .*/out1  (reopened, offset" "$T/info1"
'

test_expect_success 'restore continues the loop, output goes on in the same file' '
	echo input-line >"$T/line" &&
	{ vmadump restore "$T/img1" <"$T/line"; rc=$?; } &&
	test $rc = 3 &&
	n=$(grep -c READY "$T/out1") && test "$n" = 1 &&
	test_grep "^moved after [1-9][0-9]* iterations" "$T/out1" &&
	test_grep "^read: input-line" "$T/out1"
'

test_expect_success 'dump -leave -flags all: the original runs on, nothing referenced' '
	start_loop out2 &&
	vmadump dump -leave -flags all $pid "$T/img2" &&
	pid_alive $pid &&
	vmadump info "$T/img2" >"$T/info2" &&
	test_grep "^flags: *libs,exec,other" "$T/info2" &&
	! grep "file ref" "$T/info2" &&
	kill $pid
'

test_expect_success 'restore from stdin: what follows the image is the program input' '
	start_loop out3 &&
	vmadump dump $pid - >"$T/img3" &&
	{ cat "$T/img3"; echo after-the-image; } | { vmadump restore - || test $? = 3; } &&
	test_grep "^read: after-the-image" "$T/out3"
'

test_expect_success 'dump streams into a fifo that restore reads at the same time' '
	start_loop out6 &&
	mkfifo "$T/stream" &&
	{ vmadump restore "$T/stream" <"$T/in.out6" & } &&
	r=$! &&
	vmadump dump $pid "$T/stream" &&
	wait_for "grep -q moved $T/out6" &&
	kill $r
'

test_expect_success 'restore -detach prints the pid and leaves it running' '
	start_loop out4 &&
	vmadump dump $pid "$T/img4" &&
	newpid=$(vmadump restore -detach "$T/img4" <"$T/in.out4") &&
	test "$newpid" -gt 0 &&
	wait_for "grep -q moved $T/out4" &&
	pid_alive $newpid &&
	out=$(cat /proc/$newpid/comm) && test "$out" = perl &&
	kill $newpid
'

test_expect_success 'restore inside another network namespace' '
	ns=vmadt$$ &&
	ip netns add $ns &&
	test_when_finished "ip netns del $ns" &&
	start_loop out5 &&
	vmadump dump $pid "$T/img5" &&
	echo x | { ip netns exec $ns vmadump restore "$T/img5" || test $? = 3; } &&
	test_grep "^moved after" "$T/out5" &&
	test_grep "^read: x" "$T/out5"
'

test_expect_success 'a corrupt or truncated image is refused' '
	cp "$T/img1" "$T/bad" &&
	# Flip every bit of one byte: writing a fixed value does nothing
	# when the byte already has it.
	python3 -c "import sys
f = open(sys.argv[1], \"r+b\"); f.seek(30000); b = f.read(1)
f.seek(30000); f.write(bytes([b[0] ^ 0xff]))" "$T/bad" &&
	! cmp -s "$T/img1" "$T/bad" &&
	! vmadump info "$T/bad" 2>"$T/err" &&
	test_grep "corrupt image" "$T/err" &&
	! vmadump restore "$T/bad" 2>"$T/err" &&
	test_grep "corrupt image" "$T/err" &&
	head -c 5000 "$T/img1" >"$T/short" &&
	! vmadump restore "$T/short" 2>"$T/err" &&
	test_grep "truncated" "$T/err"
'

test_expect_success 'a multi-threaded process is refused and keeps running' '
	{
		python3 -c "import threading, time
threading.Thread(target=time.sleep, args=(100,), daemon=True).start()
print(\"READY\", flush=True)
time.sleep(100)" >"$T/py" &
	} &&
	pid=$! &&
	wait_for "grep -q READY $T/py" &&
	! vmadump dump $pid "$T/img6" 2>"$T/err" &&
	test_grep "2 threads: multi-threaded processes cannot be dumped" "$T/err" &&
	test ! -e "$T/img6" &&
	pid_alive $pid &&
	kill $pid
'

test_expect_success 'a user dumps and restores their own process' '
	mkdir -m 777 "$T/user" &&
	cp "$T/loop.pl" "$T/user/" &&
	echo from-user >"$T/user/line" &&
	setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "
		cd $T/user &&
		perl loop.pl <line >out 2>/dev/null &
		until grep -q READY $T/user/out 2>/dev/null; do sleep 0.02; done
		vmadump dump \$! $T/user/img &&
		vmadump restore $T/user/img </dev/null; test \$? = 3" &&
	test_grep "^moved after" "$T/user/out" &&
	test_grep "^read: from-user" "$T/user/out"
'

test_expect_code 1 'usage errors exit 1' 'vmadump dump notapid x'

test_done
