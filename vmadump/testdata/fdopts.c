/*
 * fdopts: has /dev/null at fd 11 (close-on-exec), prints READY and waits
 * for a line on stdin. Restored with DumpOptions Stdio {10: 1} and Mem
 * {11: ...}, it then writes "VIA10" to fd 10 and prints what fd 11 holds,
 * its close-on-exec flag and whether it is open read-write.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
	int n = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (n < 0 || dup3(n, 11, O_CLOEXEC) < 0) return 1;
	close(n);
	printf("READY %d\n", (int)getpid());
	fflush(stdout);
	char line[64];
	if (read(0, line, sizeof line) <= 0) return 2;
	if (write(10, "VIA10\n", 6) != 6) printf("FAIL write fd 10\n");
	char buf[64] = {0};
	ssize_t got = pread(11, buf, sizeof buf - 1, 0);
	int fdfl = fcntl(11, F_GETFD), fl = fcntl(11, F_GETFL);
	printf("MEM %zd %s cloexec %d rdwr %d\n", got, strtok(buf, "\n"), (fdfl & FD_CLOEXEC) != 0, (fl & O_ACCMODE) == O_RDWR);
	fflush(stdout);
	return 0;
}
