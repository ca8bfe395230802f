/*
 * Remote execution and migration: bproc_rexec through node/N/ctl's exec
 * (as bpsh does), the rfork/move family exact where no migration is
 * needed (to the node the caller is on) and written to the node's ctl as
 * `rfork FLAGS` / `move FLAGS` otherwise, so they work the day the tree
 * learns those commands (today it answers EINVAL: unknown command).
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

/* A growing string for ctl lines. */
struct buf {
	char *s;
	size_t n, cap;
	int err;
};

static void put(struct buf *b, const char *s, size_t n)
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

static void puts_(struct buf *b, const char *s) { put(b, s, strlen(s)); }

/* word adds one argument, single-quoted as the tree's splitter reads it
 * back ('\'' for a quote); a newline inside quotes stays in the word. */
static void word(struct buf *b, const char *w)
{
	put(b, " '", 2);
	for (const char *q; (q = strchr(w, '\'')); w = q + 1) {
		put(b, w, (size_t)(q - w));
		put(b, "'\\''", 4);
	}
	puts_(b, w);
	put(b, "'", 1);
}

/* threads is the caller's thread count, from /proc/self/status. */
static int threads(void)
{
	char *s = bp_read_all("/proc/self/status");
	if (!s)
		return -1;
	char *t = strstr(s, "\nThreads:");
	int n = t ? atoi(t + 9) : -1;
	free(s);
	return n;
}

/* check_target decides a migration's target before anything is asked of
 * the tree: BE_INVALIDNODE for a node it does not have, EACCES for one the
 * caller may not use, BE_NODEDOWN for one that is not up. *here is set
 * when the target is the node the caller is on. */
static int check_target(int *node, int *here)
{
	if (bp_mounted() < 0)
		return -1;
	int cur = bproc_currnode();
	if (cur == -1 && errno == EBUSY)
		return -1;
	if (*node == BPROC_NODE_SELF)
		*node = cur;
	*here = *node == cur;
	if (*here)
		return 0;
	struct status_line s;
	if (bp_node_status(*node, &s) < 0)
		return -1;
	if (bproc_access(*node, BPROC_X_OK) < 0)
		return -1;
	if (strcmp(s.state, "up") != 0) {
		errno = BE_NODEDOWN;
		return -1;
	}
	return 0;
}

static int ctl_errno(void)
{
	/* The tree's "node N is down" is BProc's BE_NODEDOWN. */
	return errno == EHOSTDOWN ? BE_NODEDOWN : errno;
}

/* migrate writes `CMD FLAGS` to the node's ctl, for a process of more than
 * one thread refusing first (vmadump dumps single-threaded processes). */
static int migrate(int node, const char *cmd, int flags, char *reply, size_t rlen)
{
	int n = threads();
	if (n > 1) {
		errno = ENOTSUP;
		return -1;
	}
	char line[64];
	snprintf(line, sizeof line, "%s %d\n", cmd, flags);
	if (bp_ctl_write(node, line, reply, rlen) < 0) {
		errno = ctl_errno();
		return -1;
	}
	return 0;
}

/* setup_io opens the redirections of an _io call onto their descriptors. */
static int setup_io(const struct bproc_io_t *io, int iolen)
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
	puts_(&b, "exec -i");
	if (argv && argv[0]) {
		puts_(&b, " -a");
		word(&b, argv[0]);
	}
	for (char *const *e = envp; e && *e; e++) {
		puts_(&b, " -e");
		word(&b, *e);
	}
	puts_(&b, " --");
	word(&b, cmd);
	for (char *const *a = argv && argv[0] ? argv + 1 : argv; a && *a; a++)
		word(&b, *a);
	put(&b, "\n", 1);
	if (b.err) {
		free(b.s);
		errno = b.err;
		return -1;
	}
	char reply[64];
	int r = bp_ctl_write(node, b.s, reply, sizeof reply);
	free(b.s);
	if (r < 0) {
		errno = ctl_errno();
		return -1;
	}
	int pid = atoi(reply);
	if (pid <= 0) {
		errno = EIO;
		return -1;
	}
	/* From here on the caller is the remote program, as BProc's rexec
	 * replaced the process: its stdio relayed, its exit status ours. */
	if (setup_io(io, iolen) < 0)
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

/*------------------------------------------------------------ rfork, move */

int _bproc_rfork_io(int node, struct bproc_io_t *io, int iolen, int flags)
{
	int here;
	if (check_target(&node, &here) < 0)
		return -1;
	if (here) {
		/* To the node the caller is on: a plain fork. */
		pid_t p = fork();
		if (p == 0 && setup_io(io, iolen) < 0) {
			perror("bproc_rfork: I/O redirection");
			_exit(127);
		}
		return p;
	}
	if (iolen) {
		errno = EINVAL; /* the tree has no redirections for rfork yet */
		return -1;
	}
	char reply[64];
	if (migrate(node, "rfork", flags, reply, sizeof reply) < 0)
		return -1;
	return atoi(reply);
}

int bproc_rfork_io(int node, struct bproc_io_t *io, int iolen)
{
	return _bproc_rfork_io(node, io, iolen, BPROC_DUMP_EXEC | BPROC_DUMP_OTHER);
}

int _bproc_rfork(int node, int flags) { return _bproc_rfork_io(node, NULL, 0, flags); }
int bproc_rfork(int node) { return _bproc_rfork(node, BPROC_DUMP_EXEC | BPROC_DUMP_OTHER); }

int _bproc_move_io(int node, struct bproc_io_t *io, int iolen, int flags)
{
	int here;
	if (check_target(&node, &here) < 0)
		return -1;
	if (here)
		return setup_io(io, iolen);
	if (iolen) {
		errno = EINVAL;
		return -1;
	}
	return migrate(node, "move", flags, NULL, 0);
}

int bproc_move_io(int node, struct bproc_io_t *io, int iolen)
{
	return _bproc_move_io(node, io, iolen, BPROC_DUMP_EXEC | BPROC_DUMP_OTHER);
}

int _bproc_move(int node, int flags) { return _bproc_move_io(node, NULL, 0, flags); }
int bproc_move(int node) { return _bproc_move(node, BPROC_DUMP_EXEC | BPROC_DUMP_OTHER); }

/* Each child returns its rank, the parent nnodes; pids[i] is the child's
 * pid or -errno for a node where it could not start. */
int _bproc_vrfork(int nnodes, int *nodes, int *pids, int flags)
{
	return _bproc_vrfork_io(nnodes, nodes, pids, NULL, 0, flags);
}

int bproc_vrfork(int nnodes, int *nodes, int *pids)
{
	return _bproc_vrfork(nnodes, nodes, pids, BPROC_DUMP_EXEC | BPROC_DUMP_OTHER);
}

int _bproc_vrfork_io(int nnodes, int *nodes, int *pids, struct bproc_io_t *io, int iolen, int flags)
{
	if (nnodes < 0 || (nnodes && (!nodes || !pids))) {
		errno = EINVAL;
		return -1;
	}
	for (int i = 0; i < nnodes; i++) {
		int p = _bproc_rfork_io(nodes[i], io, iolen, flags);
		if (p == 0)
			return i;
		pids[i] = p < 0 ? -errno : p;
	}
	return nnodes;
}

int bproc_vrfork_io(int nnodes, int *nodes, int *pids, struct bproc_io_t *io, int iolen)
{
	return _bproc_vrfork_io(nnodes, nodes, pids, io, iolen, BPROC_DUMP_EXEC | BPROC_DUMP_OTHER);
}

/* execmove: move, then exec the program where the process now is. */
int _bproc_execmove_io(int node, struct bproc_io_t *io, int iolen, int flags,
		       const char *cmd, char *const argv[], char *const envp[])
{
	if (_bproc_move_io(node, io, iolen, flags) < 0)
		return -1;
	return execve(cmd, argv, envp);
}

int bproc_execmove_io(int node, struct bproc_io_t *io, int iolen, const char *cmd,
		      char *const argv[], char *const envp[])
{
	return _bproc_execmove_io(node, io, iolen, BPROC_DUMP_EXEC | BPROC_DUMP_OTHER, cmd, argv, envp);
}

int bproc_execmove(int node, const char *cmd, char *const argv[], char *const envp[])
{
	return bproc_execmove_io(node, NULL, 0, cmd, argv, envp);
}

int bproc_vexecmove_io(int nnodes, int *nodes, int *pids, struct bproc_io_t *io, int iolen,
		       const char *cmd, char *const argv[], char *const envp[])
{
	int r = bproc_vrfork_io(nnodes, nodes, pids, io, iolen);
	if (r >= 0 && r < nnodes) {
		/* a child, on its node */
		execve(cmd, argv, envp);
		_exit(127);
	}
	if (r < 0)
		return -1;
	int ok = 0;
	for (int i = 0; i < nnodes; i++)
		ok += pids[i] > 0;
	return ok;
}

int bproc_vexecmove(int nnodes, int *nodes, int *pids, const char *cmd,
		    char *const argv[], char *const envp[])
{
	return bproc_vexecmove_io(nnodes, nodes, pids, NULL, 0, cmd, argv, envp);
}

/* bproc_execve: BProc's exec of a binary from the front end; on the node the
 * process is on, that is execve. */
int bproc_execve(const char *cmd, char *const argv[], char *const envp[])
{
	return execve(cmd, argv, envp);
}
