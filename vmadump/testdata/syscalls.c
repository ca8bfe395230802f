/*
 * syscalls MODE: blocks in a system call, to be dumped there, and reports
 * how the call ended after restore.
 *   read      read(0) blocks; prints "GOT <line>" (the read must be re-issued)
 *   nanosleep relative nanosleep(30s); prints "nanosleep: EINTR" (Linux
 *             cannot restart it elsewhere) or "nanosleep: ok"
 *   absolute  clock_nanosleep(TIMER_ABSTIME) to 2 s after start; prints
 *             "absolute: ok" after the deadline (re-issued, same deadline)
 *   alarm     alarm(2) then pause(); prints "alarm: fired" from the handler
 *             (the interval timer must travel, pause be re-issued)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long pid_at_start;
static void on_alarm(int sig) {
	(void)sig;
	printf("alarm: fired pid changed %d\n", getpid() != pid_at_start);
	fflush(stdout);
	_exit(0);
}

int main(int argc, char **argv) {
	const char *mode = argc > 1 ? argv[1] : "read";
	long pid0 = getpid();
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	printf("READY %ld\n", pid0);
	fflush(stdout);
	if (strcmp(mode, "alarm") == 0) {
		pid_at_start = pid0;
		signal(SIGALRM, on_alarm);
		alarm(2);
		for (;;) pause();
	}
	if (strcmp(mode, "read") == 0) {
		char buf[256];
		ssize_t n = read(0, buf, sizeof buf - 1);
		if (n < 0) { printf("ERR read: %s\n", strerror(errno)); return 1; }
		buf[n] = 0;
		printf("GOT %s", buf);
		printf("pid changed %d\n", getpid() != pid0);
		return 0;
	}
	if (strcmp(mode, "nanosleep") == 0) {
		struct timespec d = {30, 0}, rem = {0, 0};
		int r = nanosleep(&d, &rem);
		printf("nanosleep: %s rem=%ld pid changed %d\n", r == 0 ? "ok" : strerror(errno), (long)rem.tv_sec, getpid() != pid0);
		return 0;
	}
	if (strcmp(mode, "absolute") == 0) {
		struct timespec dl = start, now;
		dl.tv_sec += 2;
		int r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dl, NULL);
		clock_gettime(CLOCK_MONOTONIC, &now);
		int late = now.tv_sec > dl.tv_sec || (now.tv_sec == dl.tv_sec && now.tv_nsec >= dl.tv_nsec);
		printf("absolute: %s after-deadline %d pid changed %d\n", r == 0 ? "ok" : strerror(r), late, getpid() != pid0);
		return 0;
	}
	return 2;
}
