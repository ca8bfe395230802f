/*
 * libbproc: BProc's C library, implemented by file operations on the bproc
 * tree ($BPROC_MOUNT, default /bproc) and nothing else: node state and
 * addresses from node/N/status, permissions from node/N's attributes,
 * processes from proc/, commands written to node/N/ctl.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include "internal.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

const char *bp_state_names[bproc_node_numstates] = {
	[bproc_node_down] = "down",
	[bproc_node_unavailable] = "unavailable",
	[bproc_node_error] = "error",
	[bproc_node_up] = "up",
	[bproc_node_reboot] = "reboot",
	[bproc_node_halt] = "halt",
	[bproc_node_pwroff] = "pwroff",
	[bproc_node_boot] = "boot",
};

const char *bp_mount_point(void)
{
	const char *m = getenv("BPROC_MOUNT");
	return m && *m ? m : "/bproc";
}

/* bp_tree_path writes MOUNT/rel into p; -1 (ENAMETOOLONG) if it does not fit. */
int bp_tree_path(char *p, const char *fmt, ...)
{
	int n = snprintf(p, PATHLEN, "%s/", bp_mount_point());
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(p + n, PATHLEN - n, fmt, ap);
	va_end(ap);
	if (n < 0 || m < 0 || n + m >= PATHLEN) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* bp_mounted: whether the tree is there (its status file); EBUSY if not, as
 * BProc's calls fail without the kernel module. */
int bp_mounted(void)
{
	char p[PATHLEN];
	struct stat st;
	if (bp_tree_path(p, "status") < 0)
		return -1;
	if (stat(p, &st) < 0) {
		errno = EBUSY;
		return -1;
	}
	return 0;
}

/* bp_read_all reads a whole file into a malloc'd, NUL-terminated buffer. */
char *bp_read_all(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t len = 0, cap = 4096;
	char *b = malloc(cap);
	if (!b)
		goto fail;
	for (;;) {
		if (cap - len < 2) {
			char *nb = realloc(b, cap * 2);
			if (!nb)
				goto fail;
			b = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, b + len, cap - len - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	b[len] = 0;
	close(fd);
	return b;
fail:;
	int e = errno;
	free(b);
	close(fd);
	errno = e;
	return NULL;
}

/* bp_read_tree reads the tree's file rel whole: NULL with EBUSY when the
 * tree is not mounted. */
char *bp_read_tree(const char *rel)
{
	char p[PATHLEN];
	if (bp_mounted() < 0 || bp_tree_path(p, "%s", rel) < 0)
		return NULL;
	return bp_read_all(p);
}

int bp_parse_status(const char *line, struct status_line *s)
{
	char mode[16], user[64], group[64];
	if (sscanf(line, "%d %15s %63s %15s %63s %63s %255s", &s->node, s->state, s->addr,
		   mode, user, group, s->host) != 7) {
		errno = EIO;
		return -1;
	}
	return 0;
}

int bp_state_number(const char *name)
{
	for (int i = 0; i < bproc_node_numstates; i++)
		if (strcmp(bp_state_names[i], name) == 0)
			return i;
	return bproc_node_error;
}

/* bp_node_status reads node/N/status; BE_INVALIDNODE for a node the tree
 * does not have. */
int bp_node_status(int node, struct status_line *s)
{
	char p[PATHLEN];
	if (bp_mounted() < 0 || (node = bp_resolve_node(node)) == BPROC_NODE_NONE)
		return -1;
	if (bp_tree_path(p, "node/%d/status", node) < 0)
		return -1;
	char *b = bp_read_all(p);
	if (!b) {
		if (errno == ENOENT)
			errno = BE_INVALIDNODE;
		return -1;
	}
	int r = bp_parse_status(b, s);
	free(b);
	return r;
}

void bp_to_sockaddr(const char *addr, struct sockaddr *sa)
{
	struct sockaddr_in *in = (struct sockaddr_in *)sa;
	memset(sa, 0, sizeof *sa);
	in->sin_family = AF_INET;
	if (inet_pton(AF_INET, addr, &in->sin_addr) != 1)
		in->sin_family = AF_UNSPEC;
}

/* bp_node_attrs fills mode, user and group from node/N's attributes. */
int bp_node_attrs(int node, unsigned int *mode, unsigned int *user, unsigned int *group)
{
	char p[PATHLEN];
	struct stat st;
	if (bp_tree_path(p, "node/%d", node) < 0 || stat(p, &st) < 0)
		return -1;
	*mode = st.st_mode & 07777;
	*user = st.st_uid;
	*group = st.st_gid;
	return 0;
}

/*------------------------------------------------------------ nodes */

int bproc_currnode(void)
{
	char *b = bp_read_tree("node/self");
	if (!b)
		return -1;
	int n = atoi(b);
	free(b);
	return n;
}

/* bp_resolve_node turns BPROC_NODE_SELF into the caller's node. */
int bp_resolve_node(int node)
{
	if (node != BPROC_NODE_SELF)
		return node;
	int n = bproc_currnode();
	if (n == -1 && errno == EBUSY)
		return BPROC_NODE_NONE;
	return n;
}

int bproc_numnodes(void)
{
	char *b = bp_read_tree("status");
	if (!b)
		return -1;
	int max = -1;
	for (char *l = b; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
		int n;
		if (sscanf(l, "%d", &n) == 1 && n > max)
			max = n;
	}
	free(b);
	return max + 1;
}

int bproc3_nodestatus(int node)
{
	struct status_line s;
	if (bp_node_status(node, &s) < 0)
		return -1;
	return bp_state_number(s.state);
}

int bproc4_nodestatus(int node, char *status, int len)
{
	struct status_line s;
	if (len <= 0) {
		errno = EINVAL;
		return -1;
	}
	if (bp_node_status(node, &s) < 0)
		return -1;
	snprintf(status, (size_t)len, "%s", s.state);
	return 0;
}

int bproc_nodeaddr(int node, struct sockaddr *sa, int *size)
{
	struct status_line s;
	if (!size || *size < (int)sizeof(struct sockaddr_in)) {
		errno = EINVAL;
		return -1;
	}
	if (bp_node_status(node, &s) < 0)
		return -1;
	struct sockaddr tmp;
	bp_to_sockaddr(s.addr, &tmp);
	if (tmp.sa_family != AF_INET) {
		errno = EADDRNOTAVAIL;
		return -1;
	}
	memcpy(sa, &tmp, sizeof(struct sockaddr_in));
	*size = sizeof(struct sockaddr_in);
	return 0;
}

/* each_node calls fn for every line of the tree's status file. */
int bp_each_node(int (*fn)(const struct status_line *, void *), void *arg)
{
	char *b = bp_read_tree("status");
	if (!b)
		return -1;
	int r = 0;
	char *save;
	for (char *l = strtok_r(b, "\n", &save); l && r == 0; l = strtok_r(NULL, "\n", &save)) {
		struct status_line s;
		if ((r = bp_parse_status(l, &s)) == 0)
			r = fn(&s, arg);
	}
	free(b);
	return r;
}

struct list3 {
	struct bproc3_node_info *v;
	int n, cap;
};

static int add3(const struct status_line *s, void *arg)
{
	struct list3 *l = arg;
	if (l->n == l->cap) {
		int cap = l->cap ? l->cap * 2 : 16;
		struct bproc3_node_info *v = realloc(l->v, (size_t)cap * sizeof *v);
		if (!v)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	struct bproc3_node_info *ni = &l->v[l->n];
	memset(ni, 0, sizeof *ni);
	unsigned int mode = 0;
	ni->node = s->node;
	ni->status = bp_state_number(s->state);
	bp_to_sockaddr(s->addr, &ni->addr);
	if (bp_node_attrs(s->node, &mode, &ni->user, &ni->group) < 0)
		return -1;
	ni->mode = (int)mode;
	l->n++;
	return 0;
}

int bproc3_nodelist(struct bproc3_node_info **list)
{
	struct list3 l = {0, 0, 0};
	if (bp_each_node(add3, &l) < 0) {
		int e = errno;
		free(l.v);
		errno = e;
		return -1;
	}
	*list = l.v;
	return l.n;
}

int bproc_getnodebyname(const char *name)
{
	if (!name)
		return BPROC_NODE_NONE;
	if (strcmp(name, "master") == 0)
		return BPROC_NODE_MASTER;
	if (strcmp(name, "self") == 0) {
		int n = bproc_currnode();
		return n == -1 && errno == EBUSY ? BPROC_NODE_NONE : n;
	}
	char *end;
	errno = 0;
	long n = strtol(name, &end, 10);
	if (*name && !*end && errno == 0 && n >= -1 && n <= 0x7fffffff)
		return (int)n;
	/* A hostname the node reported ("node3"). */
	char *b = bp_read_tree("status");
	if (!b)
		return BPROC_NODE_NONE;
	int found = BPROC_NODE_NONE;
	char *save;
	for (char *line = strtok_r(b, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct status_line s;
		if (bp_parse_status(line, &s) == 0 && strcmp(s.host, name) == 0) {
			found = s.node;
			break;
		}
	}
	free(b);
	return found;
}

/* bp_node_dir writes MOUNT/node/N (N resolved) into p. */
int bp_node_dir(char *p, int node)
{
	if (bp_mounted() < 0)
		return -1;
	if ((node = bp_resolve_node(node)) == BPROC_NODE_NONE) {
		errno = BE_INVALIDNODE;
		return -1;
	}
	if (bp_tree_path(p, "node/%d", node) < 0)
		return -1;
	struct stat st;
	if (stat(p, &st) < 0) {
		if (errno == ENOENT)
			errno = BE_INVALIDNODE;
		return -1;
	}
	return 0;
}

int bproc_access(int node, int mode)
{
	char p[PATHLEN];
	if (bp_node_dir(p, node) < 0)
		return -1;
	/* The tree's execute bits say who may run work on a node; the
	 * effective ids decide, as BProc's kernel did. */
	return faccessat(AT_FDCWD, p, mode & BPROC_X_OK ? X_OK : F_OK, AT_EACCESS);
}

int bproc_chmod(int node, int mode)
{
	char p[PATHLEN];
	return bp_node_dir(p, node) < 0 ? -1 : chmod(p, (mode_t)mode);
}

int bproc_chown(int node, int user)
{
	char p[PATHLEN];
	return bp_node_dir(p, node) < 0 ? -1 : chown(p, (uid_t)user, (gid_t)-1);
}

int bproc_chgrp(int node, int group)
{
	char p[PATHLEN];
	return bp_node_dir(p, node) < 0 ? -1 : chown(p, (uid_t)-1, (gid_t)group);
}

/* bp_ctl_write writes one command line to node/N/ctl and returns the write's
 * result: the command's errno on failure. When reply is set, what ctl
 * then reads (the new pid after exec) is left there. */
int bp_ctl_write(int node, const char *line, char *reply, size_t rlen)
{
	char p[PATHLEN];
	if (bp_node_dir(p, node) < 0)
		return -1;
	size_t n = strlen(p);
	if (n + 4 >= PATHLEN) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(p + n, "/ctl", 5);
	int fd = open(p, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = strlen(line), off = 0;
	while (off < len) {
		ssize_t w = write(fd, line + off, len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		off += (size_t)w;
	}
	if (reply && rlen) {
		ssize_t r = pread(fd, reply, rlen - 1, 0);
		reply[r > 0 ? r : 0] = 0;
	}
	close(fd);
	return 0;
}

static int set_state(int node, const char *state)
{
	char line[64];
	for (int i = 0; i < bproc_node_numstates; i++)
		if (strcmp(bp_state_names[i], state) == 0) {
			snprintf(line, sizeof line, "state %s\n", state);
			return bp_ctl_write(node, line, NULL, 0);
		}
	errno = EINVAL;
	return -1;
}

int bproc3_nodesetstatus(int node, int status)
{
	if (status < 0 || status >= bproc_node_numstates) {
		errno = EINVAL;
		return -1;
	}
	return set_state(node, bp_state_names[status]);
}

int bproc4_nodesetstatus(int node, char *status)
{
	if (!status) {
		errno = EINVAL;
		return -1;
	}
	return set_state(node, status);
}

int bproc_nodereboot(int node) { return set_state(node, "reboot"); }
int bproc_nodehalt(int node) { return set_state(node, "halt"); }
int bproc_nodepwroff(int node) { return set_state(node, "pwroff"); }
/* The tree's state command returns once the state is set; the slave runs
 * the configured command on its own, so the _async forms are the same. */
int bproc_nodereboot_async(int node) { return bproc_nodereboot(node); }
int bproc_nodehalt_async(int node) { return bproc_nodehalt(node); }
int bproc_nodepwroff_async(int node) { return bproc_nodepwroff(node); }

/*------------------------------------------------------------ processes */

/* proc_status reads proc/PID/status: PID NODE STATE UID GID COMMAND... */
static int proc_status(int pid, int *node, char *state, size_t slen)
{
	char p[PATHLEN];
	if (bp_tree_path(p, "proc/%d/status", pid) < 0)
		return -1;
	char *b = bp_read_all(p);
	if (!b)
		return -1;
	char st[32];
	int pp, n;
	int ok = sscanf(b, "%d %d %31s", &pp, &n, st) == 3;
	free(b);
	if (!ok) {
		errno = EIO;
		return -1;
	}
	*node = n;
	snprintf(state, slen, "%s", st);
	return 0;
}

int bproc_pidnode(int pid)
{
	int node;
	char st[32];
	if (bp_mounted() < 0)
		return -1;
	if (pid <= 0) {
		errno = BE_INVALIDPROC;
		return -1;
	}
	/* A process the tree does not know runs on the master, as every
	 * process outside BProc's space did. */
	if (proc_status(pid, &node, st, sizeof st) < 0) {
		if (errno != ENOENT)
			return -1;
		errno = 0; /* so a caller can tell the master's -1 from failure */
		return BPROC_NODE_MASTER;
	}
	return node;
}

int bproc_proclist(int node, struct bproc_proc_info_t **list)
{
	char p[PATHLEN];
	if (bp_mounted() < 0 || bp_tree_path(p, "proc") < 0)
		return -1;
	DIR *d = opendir(p);
	if (!d)
		return -1;
	struct bproc_proc_info_t *v = NULL;
	int n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		int pn;
		char st[32];
		if (*end || pid <= 0 || proc_status((int)pid, &pn, st, sizeof st) < 0)
			continue; /* gone meanwhile */
		if (strcmp(st, "exited") == 0 || (node != BPROC_NODE_ANY && pn != node))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			struct bproc_proc_info_t *nv = realloc(v, (size_t)cap * sizeof *nv);
			if (!nv) {
				free(v);
				closedir(d);
				errno = ENOMEM;
				return -1;
			}
			v = nv;
		}
		v[n].pid = (int)pid;
		v[n].node = pn;
		n++;
	}
	closedir(d);
	*list = v;
	return n;
}

/*------------------------------------------------------------ misc */

const char *bproc_strerror(int err)
{
	switch (err) {
	case BE_INVALIDNODE:
		return "Invalid node number";
	case BE_NODEDOWN:
		return "Node is down";
	case BE_SAMENODE:
		return "Process is already on that node";
	case BE_SLAVEDIED:
		return "Slave daemon died";
	case BE_INVALIDPROC:
		return "Invalid process ID";
	}
	return strerror(err);
}

int bproc_version(struct bproc_version_t *v)
{
	if (bp_mounted() < 0)
		return -1;
	memset(v, 0, sizeof *v);
	memcpy(v->bproc_magic, "BPr", 3);
#if defined(__x86_64__)
	v->arch = 4;
#elif defined(__i386__)
	v->arch = 1;
#elif defined(__powerpc64__)
	v->arch = 5;
#endif
	v->magic = BPROC_API;
	snprintf(v->version_string, sizeof v->version_string, "bproc-9p-4.0");
	return 0;
}

/* The notifier: a thread polls the tree's status file and writes a byte to
 * a pipe whenever it changes, so the fd turns readable on any node's change
 * of state (and of address or permissions). One per process. */
static pthread_mutex_t notifier_mu = PTHREAD_MUTEX_INITIALIZER;
static int notifier_fd = -1;

static void *notifier_loop(void *arg)
{
	int w = (int)(intptr_t)arg;
	char p[PATHLEN];
	char *last = NULL;
	if (bp_tree_path(p, "status") < 0)
		return NULL;
	last = bp_read_all(p);
	for (;;) {
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
		char *now = bp_read_all(p);
		if (!now)
			continue;
		if (!last || strcmp(now, last) != 0) {
			if (write(w, "", 1) < 0 && errno != EAGAIN)
				break; /* the reader closed its end */
		}
		free(last);
		last = now;
	}
	free(last);
	close(w);
	return NULL;
}

int bproc_notifier(void)
{
	if (bp_mounted() < 0)
		return -1;
	pthread_mutex_lock(&notifier_mu);
	int fd = notifier_fd;
	if (fd < 0) {
		int pfd[2];
		pthread_t t;
		pthread_attr_t a;
		if (pipe(pfd) < 0)
			goto out;
		fcntl(pfd[0], F_SETFD, FD_CLOEXEC);
		fcntl(pfd[1], F_SETFD, FD_CLOEXEC);
		fcntl(pfd[1], F_SETFL, O_NONBLOCK);
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		int e = pthread_create(&t, &a, notifier_loop, (void *)(intptr_t)pfd[1]);
		pthread_attr_destroy(&a);
		if (e) {
			close(pfd[0]);
			close(pfd[1]);
			errno = e;
			goto out;
		}
		fd = notifier_fd = pfd[0];
	}
out:
	pthread_mutex_unlock(&notifier_mu);
	return fd;
}

/* The public names of the BProc 3 forms (BPROC_API=4 maps them to the
 * bproc4_* calls in the header instead). */
int bproc_nodestatus(int node) { return bproc3_nodestatus(node); }
int bproc_nodelist(struct bproc3_node_info **list) { return bproc3_nodelist(list); }
int bproc_nodesetstatus(int node, int status) { return bproc3_nodesetstatus(node, status); }
