/*
 * Remote execution: bproc_rexec through node/N/ctl's exec (as bpsh does),
 * and what it shares with the migration calls (migrate.c): ctl lines with
 * quoted words, the _io redirections, the tree's errno.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

void bp_put(struct buf *b, const char *s, size_t n)
{
	if (b->err)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = (b->cap ? b->cap : 256);
		while (cap < b->n + n + 1)
			cap *= 2;
		char *ns = realloc(b->s, cap);
		if (!ns) {
			b->err = ENOMEM;
			return;
		}
		b->s = ns;
		b->cap = cap;
	}
	memcpy(b->s + b->n, s, n);
	b->n += n;
	b->s[b->n] = 0;
}

void bp_puts(struct buf *b, const char *s) { bp_put(b, s, strlen(s)); }

void bp_exec_args(struct buf *b, const char *cmd, char *const argv[], char *const envp[])
{
	for (char *const *e = envp; e && *e; e++) {
		bp_puts(b, " -e");
		bp_word(b, *e);
	}
	if (argv && argv[0]) {
		bp_puts(b, " -a");
		bp_word(b, argv[0]);
	}
	bp_puts(b, " --");
	bp_word(b, cmd);
	for (char *const *a = argv && argv[0] ? argv + 1 : argv; a && *a; a++)
		bp_word(b, *a);
	bp_put(b, "\n", 1);
}

/* word adds one argument, single-quoted as the tree's splitter reads it
 * back ('\'' for a quote); a newline inside quotes stays in the word. */
void bp_word(struct buf *b, const char *w)
{
	bp_put(b, " '", 2);
	for (const char *q; (q = strchr(w, '\'')); w = q + 1) {
		bp_put(b, w, (size_t)(q - w));
		bp_put(b, "'\\''", 4);
	}
	bp_puts(b, w);
	bp_put(b, "'", 1);
}

/* bp_threads is the caller's thread count, from /proc/self/status. */
int bp_threads(void)
{
	char *s = bp_read_all("/proc/self/status");
	if (!s)
		return -1;
	char *t = strstr(s, "\nThreads:");
	int n = t ? atoi(t + 9) : -1;
	free(s);
	return n;
}

int bp_ctl_errno(void)
{
	/* The tree's "node N is down" is BProc's BE_NODEDOWN. */
	return errno == EHOSTDOWN ? BE_NODEDOWN : errno;
}

/* bp_setup_io opens the redirections of an _io call onto their descriptors. */
int bp_setup_io(const struct bproc_io_t *io, int iolen)
{
	if (iolen < 0 || iolen > BPROC_IO_MAX_LEN || (iolen && !io)) {
		errno = EINVAL;
		return -1;
	}
	for (int i = 0; i < iolen; i++) {
		int fd;
		if (io[i].type == BPROC_IO_FILE) {
			fd = open(io[i].d.file.name, io[i].d.file.flags, io[i].d.file.mode);
			if (fd >= 0 && io[i].d.file.offset && lseek(fd, io[i].d.file.offset, SEEK_SET) < 0) {
				close(fd);
				fd = -1;
			}
		} else if (io[i].type == BPROC_IO_SOCKET) {
			const struct sockaddr *sa = &io[i].d.addr;
			socklen_t len = sa->sa_family == AF_INET6  ? sizeof(struct sockaddr_in6)
					: sa->sa_family == AF_UNIX ? sizeof(struct sockaddr_un)
								   : sizeof(struct sockaddr_in);
			fd = socket(sa->sa_family, SOCK_STREAM, 0);
			if (fd >= 0 && connect(fd, sa, len) < 0) {
				int e = errno;
				close(fd);
				errno = e;
				fd = -1;
			}
		} else {
			errno = EINVAL;
			return -1;
		}
		if (fd < 0)
			return -1;
		if (fd != io[i].fd) {
			if (dup2(fd, io[i].fd) < 0) {
				close(fd);
				return -1;
			}
			close(fd);
		}
	}
	return 0;
}

/*------------------------------------------------------------ rexec */

/* copier copies from to to until EOF, in a child of its own; the child
 * holds no other end of the job's files. */
static pid_t copier(const char *from, int fromfd, const char *to, int tofd)
{
	pid_t p = fork();
	if (p != 0)
		return p;
	int in = from ? open(from, O_RDONLY) : fromfd;
	int out = to ? open(to, O_WRONLY) : tofd;
	if (in < 0 || out < 0)
		_exit(1);
	char b[65536];
	for (;;) {
		ssize_t r = read(in, b, sizeof b);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		for (ssize_t off = 0; off < r;) {
			ssize_t w = write(out, b + off, (size_t)(r - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				_exit(r < 0);
			off += w;
		}
	}
	_exit(0);
}

int bproc_rexec_io(int node, struct bproc_io_t *io, int iolen, const char *cmd,
		   char *const argv[], char *const envp[])
{
	if (!cmd || !*cmd) {
		errno = EINVAL;
		return -1;
	}
	if (bp_mounted() < 0)
		return -1;
	node = bp_resolve_node(node);
	struct buf b = {0};
	bp_puts(&b, "exec -i");
	bp_exec_args(&b, cmd, argv, envp);
	if (b.err) {
		free(b.s);
		errno = b.err;
		return -1;
	}
	char reply[64];
	int r = bp_ctl_write(node, b.s, reply, sizeof reply);
	free(b.s);
	if (r < 0) {
		errno = bp_ctl_errno();
		return -1;
	}
	int pid = atoi(reply);
	if (pid <= 0) {
		errno = EIO;
		return -1;
	}
	/* From here on the caller is the remote program, as BProc's rexec
	 * replaced the process: its stdio relayed, its exit status ours. */
	if (bp_setup_io(io, iolen) < 0)
		perror("bproc_rexec: I/O redirection");
	char out[PATHLEN], err[PATHLEN], in[PATHLEN], wait[PATHLEN];
	if (bp_tree_path(out, "proc/%d/stdout", pid) < 0 || bp_tree_path(err, "proc/%d/stderr", pid) < 0 ||
	    bp_tree_path(in, "proc/%d/stdin", pid) < 0 || bp_tree_path(wait, "proc/%d/wait", pid) < 0)
		_exit(127);
	fflush(NULL);
	pid_t c1 = copier(out, -1, NULL, 1), c2 = copier(err, -1, NULL, 2), c0 = copier(NULL, 0, in, -1);
	char *w = bp_read_all(wait);
	if (c1 > 0)
		waitpid(c1, NULL, 0);
	if (c2 > 0)
		waitpid(c2, NULL, 0);
	if (c0 > 0) {
		kill(c0, SIGKILL);
		waitpid(c0, NULL, 0);
	}
	int code = 255, sig = 0;
	if (w && sscanf(w, "exit %d", &code) != 1 && sscanf(w, "signal %d", &sig) == 1) {
		signal(sig, SIG_DFL);
		raise(sig);
	}
	free(w);
	_exit(code);
}

int bproc_rexec(int node, const char *cmd, char *const argv[], char *const envp[])
{
	return bproc_rexec_io(node, NULL, 0, cmd, argv, envp);
}
