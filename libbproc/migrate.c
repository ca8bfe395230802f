/*
 * Migration: the rfork/move/execmove family over the commands of the
 * target node's ctl, which act on the process that writes them:
 *
 *   move FLAGS       the writer carries on on the node, from the write's return
 *   rfork FLAGS      fork with the child on the node; reading the same open
 *                    file then gives the child's pid in the parent, 0 in the child
 *   execmove [-c DIR] [-e NAME=VALUE]... [-a ARGV0] -- PATH [ARG...]
 *                    PATH, read on the master, runs on the node in place of
 *                    the writer; the write does not return on success
 *
 * FLAGS is BProc's number (BPROC_DUMP_*). Everything the tree would refuse
 * and the library can know first (no tree, no such node, not permitted,
 * down, threads) is refused before anything is written.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

extern char **environ;

#define DEFAULT_FLAGS (-1) /* BProc's, from the target's state */

/* A migration's target, decided before anything is written. */
struct target {
	int node; /* resolved: never BPROC_NODE_SELF */
	int from; /* the node the caller is on */
	int here; /* node == from: no migration */
	int up;   /* the master or an up node (else unavailable, for root) */
};

/* here_node is the caller's node (node/self), -1 with errno on failure. */
static int here_node(int *node)
{
	char *b = bp_read_tree("node/self");
	if (!b)
		return -1;
	char *end;
	long n = strtol(b, &end, 10);
	int ok = end != b && (*end == '\n' || *end == 0);
	free(b);
	if (!ok) {
		errno = EIO;
		return -1;
	}
	*node = (int)n;
	return 0;
}

/* check_target: EBUSY without a tree, BE_INVALIDNODE for a node it does
 * not have, EACCES for one the caller may not use, BE_NODEDOWN for one
 * that takes no work (the tree lets root use an unavailable node). */
static int check_target(int node, struct target *t)
{
	if (bp_mounted() < 0 || here_node(&t->from) < 0)
		return -1;
	t->node = node == BPROC_NODE_SELF ? t->from : node;
	t->here = t->node == t->from;
	t->up = 1;
	if (t->here || t->node == BPROC_NODE_MASTER)
		return 0; /* the master takes its own processes back: the tree decides */
	struct status_line s;
	if (bp_node_status(t->node, &s) < 0 || bproc_access(t->node, BPROC_X_OK) < 0)
		return -1;
	if (strcmp(s.state, "up") == 0)
		return 0;
	if (strcmp(s.state, "unavailable") == 0 && geteuid() == 0) {
		t->up = t->node == BPROC_NODE_MASTER;
		return 0;
	}
	errno = BE_NODEDOWN;
	return -1;
}

/* BProc's default: the executable and the rest of the address space; the
 * libraries too for a node that is not up (it may lack them). */
static int flags_for(const struct target *t, int flags)
{
	if (flags != DEFAULT_FLAGS)
		return flags;
	return BPROC_DUMP_EXEC | BPROC_DUMP_OTHER | (t->up ? 0 : BPROC_DUMP_LIBS);
}

static int single_threaded(void)
{
	if (bp_threads() > 1) {
		errno = ENOTSUP; /* vmadump dumps single-threaded processes */
		return -1;
	}
	return 0;
}

/* port_io fills io[3] with BProc 3's port connections: stdout, stderr,
 * stdin, in that order, to the node from's address (the master's may be
 * absent from the tree: loopback then). */
static int port_io(int from, int port, struct bproc_io_t io[3])
{
	if (port <= 0 || port > 65535) {
		errno = EINVAL;
		return -1;
	}
	struct sockaddr_in sa;
	int size = sizeof sa;
	memset(&sa, 0, sizeof sa);
	if (bproc_nodeaddr(from, (struct sockaddr *)&sa, &size) < 0) {
		if (from != BPROC_NODE_MASTER)
			return -1;
		sa.sin_family = AF_INET;
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	}
	sa.sin_port = htons((uint16_t)port);
	static const int fds[3] = {1, 2, 0};
	for (int i = 0; i < 3; i++) {
		memset(&io[i], 0, sizeof io[i]);
		io[i].fd = fds[i];
		io[i].type = BPROC_IO_SOCKET;
		memcpy(&io[i].d.addr, &sa, sizeof sa);
	}
	return 0;
}

/* check_args refuses what no node would take: flags that are not
 * BProc's, a bad redirection array. */
static int check_args(int flags, const struct bproc_io_t *io, int iolen)
{
	if ((flags != DEFAULT_FLAGS && (flags & ~BPROC_DUMP_ALL)) || iolen < 0 || iolen > BPROC_IO_MAX_LEN ||
	    (iolen && !io)) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

/*------------------------------------------------------------ move, rfork */

/* migrate writes `CMD FLAGS` on the node's ctl; for rfork, *pid is then
 * what the same open file reads: the child's pid, or 0 in the child. */
static int migrate(const struct target *t, const char *cmd, int flags, int *pid)
{
	char line[32], reply[32];
	snprintf(line, sizeof line, "%s %d\n", cmd, flags);
	if (bp_ctl_write(t->node, line, pid ? reply : NULL, sizeof reply) < 0) {
		errno = bp_ctl_errno();
		return -1;
	}
	if (pid) {
		char *end;
		long p = strtol(reply, &end, 10);
		if (end == reply || (*end != '\n' && *end != 0) || p < 0) {
			errno = EIO;
			return -1;
		}
		*pid = (int)p;
	}
	return 0;
}

static int move_(int node, int flags, const struct bproc_io_t *io, int iolen)
{
	struct target t;
	if (check_args(flags, io, iolen) < 0 || check_target(node, &t) < 0)
		return -1;
	if (!t.here && (single_threaded() < 0 || migrate(&t, "move", flags_for(&t, flags), NULL) < 0))
		return -1;
	/* Now on the node: the redirections are opened there. */
	return bp_setup_io(io, iolen);
}

/* rfork_ forks with the child on node; port (BProc 3) or io (BProc 4)
 * are set up in the child, on its node. */
static int rfork_(int node, int flags, const struct bproc_io_t *io, int iolen, int port)
{
	struct target t;
	struct bproc_io_t pio[3];
	if (check_args(flags, io, iolen) < 0 || check_target(node, &t) < 0)
		return -1;
	if (port) {
		if (port_io(t.from, port, pio) < 0)
			return -1;
		io = pio;
		iolen = 3;
	}
	int pid;
	if (t.here) {
		pid = fork(); /* to the node the caller is on: a plain fork */
	} else {
		if (single_threaded() < 0 || migrate(&t, "rfork", flags_for(&t, flags), &pid) < 0)
			return -1;
	}
	if (pid == 0 && bp_setup_io(io, iolen) < 0) {
		perror("bproc_rfork: I/O redirection");
		_exit(127);
	}
	return pid;
}

int bproc_rfork(int node) { return rfork_(node, DEFAULT_FLAGS, NULL, 0, 0); }
int _bproc_rfork(int node, int flags) { return rfork_(node, flags, NULL, 0, 0); }
int _bproc_rfork_io(int node, int flags, int port) { return rfork_(node, flags, NULL, 0, port); }
int bproc4__rfork_io(int node, struct bproc_io_t *io, int iolen, int flags)
{
	return rfork_(node, flags, io, iolen, 0);
}
int bproc_rfork_io(int node, struct bproc_io_t *io, int iolen)
{
	return rfork_(node, DEFAULT_FLAGS, io, iolen, 0);
}

int bproc_move(int node) { return move_(node, DEFAULT_FLAGS, NULL, 0); }
int _bproc_move(int node, int flags) { return move_(node, flags, NULL, 0); }
int bproc_move_io(int node, struct bproc_io_t *io, int iolen) { return move_(node, DEFAULT_FLAGS, io, iolen); }
int _bproc_move_io(int node, struct bproc_io_t *io, int iolen, int flags)
{
	return move_(node, flags, io, iolen);
}

/* Each child returns its index, the parent nnodes; pids[i] is the child's
 * pid or -errno for a node where it could not start. */
static int vrfork_(int nnodes, int *nodes, int *pids, const struct bproc_io_t *io, int iolen, int flags)
{
	if (nnodes < 0 || (nnodes && (!nodes || !pids)) || check_args(flags, io, iolen) < 0) {
		errno = EINVAL;
		return -1;
	}
	if (bp_mounted() < 0 || single_threaded() < 0)
		return -1;
	for (int i = 0; i < nnodes; i++) {
		int p = rfork_(nodes[i], flags, io, iolen, 0);
		if (p == 0)
			return i;
		pids[i] = p < 0 ? -errno : p;
	}
	return nnodes;
}

int bproc_vrfork(int nnodes, int *nodes, int *pids) { return vrfork_(nnodes, nodes, pids, NULL, 0, DEFAULT_FLAGS); }
int _bproc_vrfork(int nnodes, int *nodes, int *pids, int flags) { return vrfork_(nnodes, nodes, pids, NULL, 0, flags); }
int bproc_vrfork_io(int nnodes, int *nodes, int *pids, struct bproc_io_t *io, int iolen)
{
	return vrfork_(nnodes, nodes, pids, io, iolen, DEFAULT_FLAGS);
}
int _bproc_vrfork_io(int nnodes, int *nodes, int *pids, struct bproc_io_t *io, int iolen, int flags)
{
	return vrfork_(nnodes, nodes, pids, io, iolen, flags);
}

/*------------------------------------------------------------ execmove */

/* The descriptors a redirection replaces, kept so that a failed execmove
 * gives the caller back its own. */
struct saved {
	int fd, copy;
};

static void restore(struct saved *sv, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		if (sv[i].copy >= 0) {
			dup2(sv[i].copy, sv[i].fd);
			close(sv[i].copy);
		} else {
			close(sv[i].fd);
		}
	}
}

static int redirect(const struct bproc_io_t *io, int iolen, struct saved *sv)
{
	for (int i = 0; i < iolen; i++) {
		sv[i].fd = io[i].fd;
		sv[i].copy = fcntl(io[i].fd, F_DUPFD_CLOEXEC, 10);
		if (sv[i].copy < 0 && errno != EBADF) {
			restore(sv, i);
			return -1;
		}
	}
	if (bp_setup_io(io, iolen) < 0) {
		int e = errno;
		restore(sv, iolen);
		errno = e;
		return -1;
	}
	return 0;
}

/* execmove_line: `execmove [-c CWD] [-e NAME=VALUE]... [-a ARGV0] -- CMD ARG...`. */
static char *execmove_line(const char *cmd, char *const argv[], char *const envp[])
{
	struct buf b = {0};
	char cwd[PATHLEN];
	bp_puts(&b, "execmove");
	if (getcwd(cwd, sizeof cwd)) {
		bp_puts(&b, " -c");
		bp_word(&b, cwd);
	}
	bp_exec_args(&b, cmd, argv, envp);
	if (b.err) {
		free(b.s);
		errno = b.err;
		return NULL;
	}
	return b.s;
}

/* execmove_ runs cmd on node in place of the caller; returns only on
 * failure. The redirections are made where the caller is, before: the
 * caller becomes the process's ghost, whose stdio the process keeps. */
static int execmove_(int node, const struct bproc_io_t *io, int iolen, int port,
		     const char *cmd, char *const argv[], char *const envp[])
{
	struct target t;
	struct bproc_io_t pio[3];
	struct saved sv[BPROC_IO_MAX_LEN];
	if (!cmd || !*cmd || check_args(DEFAULT_FLAGS, io, iolen) < 0) {
		errno = EINVAL;
		return -1;
	}
	if (check_target(node, &t) < 0)
		return -1;
	if (!envp)
		envp = environ;
	if (port) {
		if (port_io(t.from, port, pio) < 0)
			return -1;
		io = pio;
		iolen = 3;
	}
	char *line = NULL;
	if (!t.here && (single_threaded() < 0 || !(line = execmove_line(cmd, argv, envp))))
		return -1;
	if (redirect(io, iolen, sv) < 0) {
		free(line);
		return -1;
	}
	int e;
	if (t.here) {
		execve(cmd, argv, envp);
		e = errno;
	} else {
		/* Success never returns: the writer ends with the remote's status. */
		e = bp_ctl_write(t.node, line, NULL, 0) < 0 ? bp_ctl_errno() : EIO;
		free(line);
	}
	restore(sv, iolen);
	errno = e;
	return -1;
}

int bproc_execmove(int node, const char *cmd, char *const argv[], char *const envp[])
{
	return execmove_(node, NULL, 0, 0, cmd, argv, envp);
}
int bproc_execmove_io(int node, struct bproc_io_t *io, int iolen, const char *cmd,
		      char *const argv[], char *const envp[])
{
	return execmove_(node, io, iolen, 0, cmd, argv, envp);
}
int _bproc_execmove_io(int node, int port, const char *cmd, char *const argv[], char *const envp[])
{
	return execmove_(node, NULL, 0, port, cmd, argv, envp);
}
/* The flags are vmadump's, for a process image; execmove ships a binary
 * (with the libraries the node lacks, as exec does), so they change nothing. */
int bproc4__execmove_io(int node, struct bproc_io_t *io, int iolen, int flags,
			const char *cmd, char *const argv[], char *const envp[])
{
	(void)flags;
	return execmove_(node, io, iolen, 0, cmd, argv, envp);
}

/* rank_env is envp with BPROC_RANK=rank in place of any BPROC_RANK. */
static char **rank_env(char *const envp[], int rank, char *slot, size_t slen)
{
	size_t n = 0;
	for (char *const *e = envp; e && *e; e++)
		n++;
	char **v = malloc((n + 2) * sizeof *v);
	if (!v)
		return NULL;
	size_t k = 0;
	for (char *const *e = envp; e && *e; e++)
		if (strncmp(*e, "BPROC_RANK=", 11) != 0)
			v[k++] = *e;
	snprintf(slot, slen, "BPROC_RANK=%d", rank);
	v[k++] = slot;
	v[k] = NULL;
	return v;
}

/* vexecmove: a local child per node that execmoves there with BPROC_RANK
 * set to its index, so the binary is shipped (as execmove does) and each
 * child's ghost is the caller's child. The parent gets nnodes, pids[i] the
 * child's pid or -errno where the node was refused; a child whose execmove
 * fails says why on stderr and exits 127. */
static int vexecmove_(int nnodes, int *nodes, int *pids, const struct bproc_io_t *io, int iolen,
		      const char *cmd, char *const argv[], char *const envp[])
{
	if (nnodes < 0 || (nnodes && (!nodes || !pids)) || !cmd || !*cmd || check_args(DEFAULT_FLAGS, io, iolen) < 0) {
		errno = EINVAL;
		return -1;
	}
	if (bp_mounted() < 0)
		return -1;
	if (!envp)
		envp = environ;
	fflush(NULL);
	for (int i = 0; i < nnodes; i++) {
		struct target t;
		if (check_target(nodes[i], &t) < 0) {
			pids[i] = -errno;
			continue;
		}
		pid_t p = fork();
		if (p == 0) {
			char slot[32];
			char **env = rank_env(envp, i, slot, sizeof slot);
			if (env)
				execmove_(nodes[i], io, iolen, 0, cmd, argv, env);
			fprintf(stderr, "bproc_vexecmove: node %d: %s: %s\n", nodes[i], cmd, bproc_strerror(errno));
			_exit(127);
		}
		pids[i] = p < 0 ? -errno : p;
	}
	return nnodes;
}

int bproc_vexecmove(int nnodes, int *nodes, int *pids, const char *cmd, char *const argv[], char *const envp[])
{
	return vexecmove_(nnodes, nodes, pids, NULL, 0, cmd, argv, envp);
}
int bproc_vexecmove_io(int nnodes, int *nodes, int *pids, struct bproc_io_t *io, int iolen,
		       const char *cmd, char *const argv[], char *const envp[])
{
	return vexecmove_(nnodes, nodes, pids, io, iolen, cmd, argv, envp);
}

/* bproc_execve: BProc's exec of a binary from the front end; on the node the
 * process is on, that is execve. */
int bproc_execve(const char *cmd, char *const argv[], char *const envp[])
{
	return execve(cmd, argv, envp);
}
