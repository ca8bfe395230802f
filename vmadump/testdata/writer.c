/*
 * writer PATH: opens PATH for writing (or uses fd 3 if PATH is "-"),
 * prints "READY <pid> <fd>", writes "hello" to it once, then prints
 * "WROTE <ret> <errno>" and waits for a line on stdin before exiting 0.
 * The tests hold it while its write is in the kernel.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
	int fd = 3;
	if (argc > 1 && strcmp(argv[1], "-") != 0) {
		fd = open(argv[1], O_WRONLY);
		if (fd < 0) { printf("ERR open %s: %s\n", argv[1], strerror(errno)); return 1; }
	}
	printf("READY %d %d\n", (int)getpid(), fd);
	fflush(stdout);
	errno = 0;
	ssize_t n = write(fd, "hello", 5);
	printf("WROTE %zd %d\n", n, n < 0 ? errno : 0);
	fflush(stdout);
	char buf[64];
	if (read(0, buf, sizeof buf) < 0) return 2;
	return 0;
}
