/* mig: libbproc's migration calls from the shell, for t7100 and
 * bench-migrate. `mig CALL ARGS...` prints what happened, one line per
 * step; a failed call prints "CALL: -1 ERRNONAME" and mig goes on (or
 * exits 1 where nothing is left to do). Where a process is, it tells by
 * its hostname: every node of the suite has its own UTS namespace. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <sys/bproc.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const struct {
	int e;
	const char *name;
} names[] = {
	{EBUSY, "EBUSY"},
	{EACCES, "EACCES"},
	{EPERM, "EPERM"},
	{EINVAL, "EINVAL"},
	{ENOTSUP, "ENOTSUP"},
	{ENOENT, "ENOENT"},
	{EHOSTDOWN, "EHOSTDOWN"},
	{EIO, "EIO"},
	{BE_INVALIDNODE, "BE_INVALIDNODE"},
	{BE_NODEDOWN, "BE_NODEDOWN"},
};

static const char *ename(int e)
{
	static char b[32];
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (names[i].e == e)
			return names[i].name;
	snprintf(b, sizeof b, "errno %d", e);
	return b;
}

static int failed(const char *call)
{
	printf("%s: -1 %s\n", call, ename(errno));
	fflush(stdout);
	return 1;
}

static int num(const char *s) { return (int)strtol(s, NULL, 0); }

static const char *host(void)
{
	static char h[256];
	if (gethostname(h, sizeof h) < 0)
		snprintf(h, sizeof h, "?");
	return h;
}

/* on_node: whether the hostname says node n (-1: the master). */
static int on_node(int n)
{
	char want[32];
	if (n < 0)
		snprintf(want, sizeof want, "master");
	else
		snprintf(want, sizeof want, "node%d", n);
	return strcmp(host(), want) == 0;
}

/* listen_on listens on TCP port of every address; -1 on failure. */
static int listen_on(int port, int backlog)
{
	int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(l, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(l, backlog) < 0) {
		if (l >= 0)
			close(l);
		return -1;
	}
	return l;
}

/* rfork_pause rforks a child to node n that waits there for signals. */
static pid_t rfork_pause(int n)
{
	pid_t p = bproc_rfork(n);
	if (p == 0)
		for (;;)
			pause();
	return p;
}

static int child_status(pid_t p, const char *what)
{
	int st;
	if (waitpid(p, &st, 0) != p)
		return failed("waitpid");
	if (WIFEXITED(st))
		printf("%s exit %d\n", what, WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		printf("%s signal %d\n", what, WTERMSIG(st));
	return 0;
}

/* A heap of n bytes, filled from a seed; its checksum (FNV-1a). */
static uint64_t sum(const unsigned char *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h;
}

static unsigned char *heap(size_t n)
{
	unsigned char *p = malloc(n);
	if (!p)
		return NULL;
	uint32_t x = 12345;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245 + 12345;
		p[i] = (unsigned char)(x >> 16);
	}
	return p;
}

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void *idle(void *arg)
{
	(void)arg;
	pause();
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: mig CALL ARGS...\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	const char *c = argv[1];
	int a = argc > 2 ? num(argv[2]) : 0;
	if (!strcmp(c, "rfork")) {
		/* rfork NODE: the child exits 7 where it should be (8 if not),
		 * the parent waits for it. */
		pid_t p = bproc_rfork(a);
		if (p == 0)
			_exit(on_node(a) ? 7 : 8);
		if (p < 0) {
			failed(c);
			printf("alive on %s\n", host());
			return 0;
		}
		return child_status(p, "child");
	} else if (!strcmp(c, "rfork-kill")) {
		/* rfork-kill NODE: the parent SIGTERMs the child (through its
		 * ghost) once it is there. */
		pid_t p = rfork_pause(a);
		if (p < 0)
			return failed(c);
		if (kill(p, SIGTERM) < 0)
			return failed("kill");
		return child_status(p, "child");
	} else if (!strcmp(c, "rfork-stop")) {
		/* rfork-stop NODE: SIGSTOP seen by WUNTRACED, SIGCONT by
		 * WCONTINUED, then SIGKILL. */
		pid_t p = rfork_pause(a);
		if (p < 0)
			return failed(c);
		int st;
		if (kill(p, SIGSTOP) < 0 || waitpid(p, &st, WUNTRACED) != p)
			return failed("stop");
		printf("stopped %d\n", WIFSTOPPED(st) ? WSTOPSIG(st) : -1);
		if (kill(p, SIGCONT) < 0 || waitpid(p, &st, WCONTINUED) != p)
			return failed("cont");
		printf("continued %d\n", WIFCONTINUED(st));
		if (kill(p, SIGKILL) < 0)
			return failed("kill");
		return child_status(p, "child");
	} else if (!strcmp(c, "move")) {
		/* move NODE: where the process is after bproc_move. */
		if (bproc_move(a) < 0) {
			failed(c);
			printf("alive on %s\n", host());
			return 1;
		}
		printf("move: 0 on %s\n", host());
	} else if (!strcmp(c, "tour")) {
		/* tour FILE NODE...: a 1 MB heap and FILE open, moved to each
		 * NODE in turn; at each stop the heap's checksum, the file's
		 * offset and the next 10 bytes, the host and currnode. */
		size_t n = 1 << 20;
		unsigned char *p = heap(n);
		int fd = open(argv[2], O_RDONLY);
		char want[11], got[11];
		if (!p || fd < 0)
			return failed("setup");
		uint64_t h = sum(p, n);
		off_t off = 0;
		for (int i = 3; i < argc; i++) {
			int node = num(argv[i]);
			if (bproc_move(node) < 0)
				return failed("move");
			int sum_ok = sum(p, n) == h;
			int off_ok = lseek(fd, 0, SEEK_CUR) == off;
			int rd = open(argv[2], O_RDONLY);
			int read_ok = rd >= 0 && pread(rd, want, 10, off) == 10 && read(fd, got, 10) == 10 &&
				      memcmp(want, got, 10) == 0;
			if (rd >= 0)
				close(rd);
			off += 10;
			errno = 0;
			int cur = bproc_currnode();
			printf("at %d on %s sum %s off %s read %s currnode %d%s\n", node, host(),
			       sum_ok ? "ok" : "BAD", off_ok ? "ok" : "BAD", read_ok ? "ok" : "BAD", cur,
			       cur == -1 && errno ? ename(errno) : "");
			p[i] ^= 0xff; /* dirty it again for the next hop */
			h = sum(p, n);
		}
		free(p);
	} else if (!strcmp(c, "execmove")) {
		/* execmove NODE PATH ARGS...: does not return on success. */
		if (bproc_execmove(a, argv[3], argv + 3, NULL) < 0) {
			failed(c);
			printf("alive on %s\n", host());
			return 1;
		}
		printf("execmove returned 0\n");
		return 1;
	} else if (!strcmp(c, "vrfork") || !strcmp(c, "vexecmove")) {
		/* vrfork NODE...: child i checks it is on its node and exits i.
		 * vexecmove PATH NODE...: PATH runs on each node (BPROC_RANK).
		 * The parent prints each child's status, or its errno. */
		int ve = c[1] == 'e', first = ve ? 3 : 2;
		int nn = argc - first, nodes[16], pids[16];
		if (nn > 16)
			return 2;
		for (int i = 0; i < nn; i++)
			nodes[i] = num(argv[i + first]);
		int r = ve ? bproc_vexecmove(nn, nodes, pids, argv[2], argv + 2, NULL) : bproc_vrfork(nn, nodes, pids);
		if (r < 0)
			return failed(c);
		if (r < nn)
			_exit(on_node(nodes[r]) ? r : 100 + r);
		printf("%s: %d\n", c, r);
		for (int i = 0; i < nn; i++) {
			char what[32];
			snprintf(what, sizeof what, "index %d", i);
			if (pids[i] < 0) {
				errno = -pids[i];
				printf("%s: %s\n", what, ename(errno));
			} else if (child_status(pids[i], what)) {
				return 1;
			}
		}
	} else if (!strcmp(c, "threaded")) {
		/* threaded NODE: a second thread, then rfork and move. */
		pthread_t t;
		if (pthread_create(&t, NULL, idle, NULL))
			return failed("pthread_create");
		if (bproc_rfork(a) < 0)
			failed("rfork");
		if (bproc_move(a) < 0)
			failed("move");
		printf("alive on %s\n", host());
	} else if (!strcmp(c, "bigmove")) {
		/* bigmove NODE MB: MB of dirty heap, moved; then waits to be
		 * killed (the ghost's size is measured meanwhile). */
		size_t n = (size_t)num(argv[3]) << 20;
		unsigned char *p = malloc(n);
		if (!p)
			return failed("malloc");
		memset(p, 0x5a, n);
		if (bproc_move(a) < 0)
			return failed(c);
		printf("moved to %s\n", host());
		for (;;)
			pause();
	} else if (!strcmp(c, "rfork-flags")) {
		/* rfork-flags NODE FLAGS: _bproc_rfork with the flags given. */
		pid_t p = _bproc_rfork(a, num(argv[3]));
		if (p == 0)
			_exit(on_node(a) ? 7 : 8);
		if (p < 0)
			return failed(c);
		return child_status(p, "child");
	} else if (!strcmp(c, "rfork-port")) {
		/* rfork-port NODE PORT: BProc 3's _bproc_rfork_io. The parent
		 * listens on PORT; the child's stdout, stderr and stdin connect
		 * back in that order; the child echoes a line from stdin to
		 * stdout and says where it is on stderr. */
		int port = num(argv[3]);
		int l = listen_on(port, 3);
		if (l < 0)
			return failed("listen");
		pid_t p = _bproc_rfork_io(a, BPROC_DUMP_EXEC | BPROC_DUMP_OTHER, port);
		if (p == 0) {
			char line[64];
			if (!fgets(line, sizeof line, stdin))
				_exit(9);
			printf("child read %s", line);
			fprintf(stderr, "child on %s\n", host());
			fflush(NULL);
			_exit(0);
		}
		if (p < 0)
			return failed(c);
		int fds[3];
		for (int i = 0; i < 3; i++)
			if ((fds[i] = accept(l, NULL, NULL)) < 0)
				return failed("accept");
		if (write(fds[2], "ping\n", 5) != 5)
			return failed("write");
		for (int i = 0; i < 2; i++) {
			char b[256];
			ssize_t r, n = 0;
			while ((r = read(fds[i], b + n, sizeof b - 1 - (size_t)n)) > 0)
				n += r;
			b[n] = 0;
			printf("%s: %s", i ? "stderr" : "stdout", b);
		}
		return child_status(p, "child");
	} else if (!strcmp(c, "time-rfork") || !strcmp(c, "time-fork")) {
		/* time-rfork NODE RUNS: microseconds of rfork + child exit +
		 * waitpid, one line per run; time-fork - RUNS: the same with a
		 * plain fork(), the peer. */
		int runs = num(argv[3]), local = !strcmp(c, "time-fork");
		for (int i = 0; i < runs; i++) {
			double t0 = now_us();
			pid_t p = local ? fork() : bproc_rfork(a);
			if (p == 0)
				_exit(0);
			if (p < 0)
				return failed("rfork");
			int st;
			if (waitpid(p, &st, 0) != p || !WIFEXITED(st))
				return failed("waitpid");
			printf("%.0f\n", now_us() - t0);
		}
	} else if (!strcmp(c, "tcp-sink")) {
		/* tcp-sink PORT: the raw-TCP peer of bench-migrate: takes one
		 * connection, reads it to its end, closes. Prints "ready" once
		 * listening. */
		int l = listen_on(a, 1);
		if (l < 0)
			return failed("listen");
		printf("ready\n");
		int s = accept(l, NULL, NULL);
		if (s < 0)
			return failed("accept");
		static char b[1 << 20];
		while (read(s, b, sizeof b) > 0)
			;
		close(s);
	} else if (!strcmp(c, "tcp-send")) {
		/* tcp-send ADDR PORT MB: microseconds to send MB MiB until the
		 * sink has read them all (it closes after the end). */
		size_t n = (size_t)num(argv[4]) << 20;
		struct sockaddr_in sa;
		memset(&sa, 0, sizeof sa);
		sa.sin_family = AF_INET;
		sa.sin_port = htons((uint16_t)num(argv[3]));
		int s = socket(AF_INET, SOCK_STREAM, 0);
		if (s < 0 || inet_pton(AF_INET, argv[2], &sa.sin_addr) != 1 ||
		    connect(s, (struct sockaddr *)&sa, sizeof sa) < 0)
			return failed("connect");
		static char b[1 << 20];
		memset(b, 1, sizeof b);
		double t0 = now_us();
		for (size_t off = 0; off < n;) {
			ssize_t w = write(s, b, n - off < sizeof b ? n - off : sizeof b);
			if (w < 0)
				return failed("write");
			off += (size_t)w;
		}
		shutdown(s, SHUT_WR);
		while (read(s, b, sizeof b) > 0)
			;
		printf("%.0f\n", now_us() - t0);
	} else if (!strcmp(c, "time-move")) {
		/* time-move NODE MB: microseconds of bproc_move of a process
		 * with MB of dirty memory; the memory is checked after. */
		size_t n = (size_t)num(argv[3]) << 20;
		unsigned char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return failed("mmap");
		for (size_t k = 0; k < n; k += 4096)
			p[k] = (unsigned char)(k >> 12);
		double t0 = now_us();
		if (bproc_move(a) < 0)
			return failed("move");
		double dt = now_us() - t0;
		for (size_t k = 0; k < n; k += 4096)
			if (p[k] != (unsigned char)(k >> 12))
				return printf("memory differs at %zu\n", k), 1;
		if (!on_node(a))
			return printf("not on node %d: %s\n", a, host()), 1;
		printf("%.0f\n", dt);
	} else {
		fprintf(stderr, "mig: unknown call %s\n", c);
		return 2;
	}
	return 0;
}
