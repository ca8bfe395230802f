/*
 * A node-set launch in the C front, as the Go bpsh's set path does it
 * (cmd/bpsh/fanout.go, client/fanout.go): the node list resolved as Go
 * resolves it, one exec written to node/SET/ctl, answered `group G` and
 * a line per node, then one open of group/G/io whose frames carry every
 * process's output and end; group/G/stdin feeds them all, group/G/ctl
 * takes the forwarded signals. Every message and exit status is Go's.
 * Whatever this file does not do exactly as Go goes to bpsh-go before
 * anything ran: other options (-s -d -g -u -x -l -t -b ...), nodespecs
 * beyond numbers, ranges and all/allup/allnotdown, a list Go would run
 * node by node (one node, not ascending, the master, a name past 255
 * bytes, BPSH_FANOUT=0), and any failure up to the exec's answer.
 *
 * -a, -A (and all, allup, allnotdown alone) are handed to the tree by
 * name (node/allup/ctl), which resolves them as Go does from $BPROC/status
 * (ascending, no master), one read fewer. What differs from Go is only
 * its order of steps: no node is the tree's refusal, then Go's own "no
 * nodes"; one node runs as a set of one, where Go goes node by node, to
 * the same output, messages and status. A list is resolved here, as Go
 * resolves it (from $BPROC/status when it needs the node list).
 */
#define _GNU_SOURCE

#include "bpsh.h"
#include "frames.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

/* maxSetName (fanout.go), and a bound on the nodes a spec may name here
 * (a range to 2^24 is Go's to walk). */
#define MAX_SET_NAME 255
#define MAX_NODES (1 << 16)
/* lineWriter's maxLine (output.go). */
#define MAX_LINE (1 << 20)

/* lw is output.go's lineWriter: one stream's unfinished line. */
struct lw {
	char *p;
	size_t n, cap;
	int mid;
};

/* One node of the set: its process, or why it has none. */
struct member {
	int node;
	long long pid; /* 0: not started (err says why) */
	char *err;     /* j.err: it did not start */
	char *werr;    /* j.werr: its end is unknown */
	int ended;     /* its end frame came (under mu: the kills read it) */
	struct wstatus st;
	int broken[3]; /* sink.broken, per stream */
	struct lw lw[3];
};

static struct {
	const char *mount, *path;
	long long group;
	struct member *m;
	size_t n, live;
	int prefix, line;
	int to[3];	     /* user fds */
	const char *name[3]; /* their names in messages */
	int broken[3];	     /* output.broken */
	struct buf first;    /* output.first: the first output error */
	int has_first, first_epipe;
	struct buf scratch; /* a line-buffered emit */
	pthread_mutex_t mu;
	unsigned sent, quiet; /* signals forwarded / sent by bpsh itself */
	int in;		      /* user stdin, -1: none */
	size_t bufsize;
} S = {.mu = PTHREAD_MUTEX_INITIALIZER, .in = -1};

static _Noreturn void oom(void)
{
	fprintf(stderr, "bpsh: out of memory\n");
	exit(255);
}

static char *dup_buf(struct buf *b)
{
	if (b->err || !b->s)
		oom();
	char *s = b->s;
	*b = (struct buf){0};
	return s;
}

/* ---- the node list, as selectNodes makes it ---- */

struct node_st {
	int num, up, down;
};

/* status_list reads $BPROC/status as client.ListComputeNodes does, for
 * the lines it can be sure Go reads the same (else 0: Go's). */
static int status_list(const char *mount, struct node_st **out, size_t *n)
{
	char p[PATHLEN];
	if (snprintf(p, sizeof p, "%s/status", mount) >= (int)sizeof p)
		return 0;
	char *s = bp_read_all(p);
	if (!s)
		return 0;
	size_t cap = 64, k = 0;
	struct node_st *v = malloc(cap * sizeof *v);
	int ok = v != NULL;
	for (char *save, *l = strtok_r(s, "\n", &save); l && ok; l = strtok_r(NULL, "\n", &save)) {
		char *f[8], *fs;
		int nf = 0;
		for (char *w = strtok_r(l, " \t", &fs); w && nf < 8; w = strtok_r(NULL, " \t", &fs))
			f[nf++] = w;
		if (nf == 0)
			continue;
		long long num;
		ok = nf == 7 && go_atoi(f[0], strlen(f[0]), &num) && num >= -1 && num <= INT_MAX;
		/* ParseModeString, for the 10-character form the master writes */
		ok = ok && strlen(f[3]) == 10 && (f[3][0] == '-' || f[3][0] == 'd');
		for (size_t i = 1; ok && i < 10; i++)
			ok = strchr((i - 1) % 3 == 0 ? "r-" : (i - 1) % 3 == 1 ? "w-" : "x-sStT", f[3][i]) && f[3][i];
		if (!ok)
			break;
		if (k == cap) {
			struct node_st *nv = realloc(v, (cap *= 2) * sizeof *v);
			if (!nv) {
				ok = 0;
				break;
			}
			v = nv;
		}
		v[k++] = (struct node_st){(int)num, !strcmp(f[1], "up"), !strcmp(f[1], "down")};
	}
	free(s);
	if (!ok) {
		free(v);
		return 0;
	}
	/* ascending, as Go sorts it (the master writes it so: one pass) */
	for (size_t i = 1; i < k; i++)
		for (size_t j = i; j > 0 && v[j - 1].num > v[j].num; j--) {
			struct node_st t = v[j];
			v[j] = v[j - 1], v[j - 1] = t;
		}
	for (size_t i = 1; i < k; i++)
		if (v[i].num == v[i - 1].num) { /* one line a node, or Go's sort's order counts */
			free(v);
			return 0;
		}
	*out = v, *n = k;
	return 1;
}

/* num reads `3` or `n3` (nodeNum). */
static int node_num(const char *s, size_t n, int *v)
{
	if (n && s[0] == 'n')
		s++, n--;
	if (n == 0 || n > 9 || strspn(s, "0123456789") < n)
		return 0;
	long long x;
	if (!go_atoi(s, n, &x) || x > 1 << 24)
		return 0;
	*v = (int)x;
	return 1;
}

struct ints {
	int *v;
	size_t n, cap;
};

static int push(struct ints *a, int x)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		int *nv = realloc(a->v, cap * sizeof *nv);
		if (!nv)
			return 0;
		a->v = nv, a->cap = cap;
	}
	a->v[a->n++] = x;
	return 1;
}

/* resolve_spec is nodespec's Parse and Resolve for the forms kept here:
 * elements NUM, LO-HI, LO- (up to the last node), all, allup and
 * allnotdown, comma-separated; duplicates dropped. 0: Go's to do. */
static int resolve_spec(const char *spec, const char *mount, struct ints *out)
{
	struct node_st *cl = NULL;
	size_t ncl = 0;
	int have = 0, ok = *spec != 0 && !strpbrk(spec, " \t\n\v\f\r&^[]");
	for (const char *p = spec; ok;) {
		const char *e = strchrnul(p, ',');
		size_t n = (size_t)(e - p);
		int all = n == 3 && !memcmp(p, "all", 3), up = n == 5 && !memcmp(p, "allup", 5),
		    notdown = n == 10 && !memcmp(p, "allnotdown", 10);
		const char *dash = memchr(p, '-', n);
		int lo, hi = -1;
		int open = dash && dash == e - 1;
		if (!all && !up && !notdown) {
			ok = n > 0 && node_num(p, dash ? (size_t)(dash - p) : n, &lo);
			if (ok && dash && !open)
				ok = node_num(dash + 1, (size_t)(e - dash - 1), &hi) && hi >= lo;
			if (ok && !dash)
				hi = lo;
		}
		if (ok && (all || up || notdown || open) && !have)
			ok = have = status_list(mount, &cl, &ncl);
		if (ok && (all || up || notdown)) {
			for (size_t i = 0; i < ncl && ok; i++)
				if (cl[i].num >= 0 && (all || (up && cl[i].up) || (notdown && !cl[i].down)))
					ok = push(out, cl[i].num);
		} else if (ok) {
			if (open)
				for (size_t i = 0; i < ncl; i++)
					hi = cl[i].num > hi ? cl[i].num : hi;
			for (long x = lo; x <= hi && ok; x++)
				ok = push(out, (int)x) && out->n <= MAX_NODES;
		}
		if (!*e)
			break;
		p = e + 1;
	}
	free(cl);
	/* dedup, in order, through a bitmap of the numbers seen (nodeNum's
	 * are at most 2^24: 2 MiB at worst, touched where the nodes are) */
	int max = 0;
	for (size_t i = 0; ok && i < out->n; i++)
		max = out->v[i] > max ? out->v[i] : max;
	unsigned char *seen = ok && max <= 1 << 24 ? calloc((size_t)max / 8 + 1, 1) : NULL;
	size_t k = 0;
	for (size_t i = 0; seen && i < out->n; i++) {
		int x = out->v[i];
		if (x >= 0 && (seen[x / 8] & (1u << (x % 8))))
			continue;
		if (x >= 0)
			seen[x / 8] |= (unsigned char)(1u << (x % 8));
		out->v[k++] = x;
	}
	out->n = k;
	ok = seen != NULL;
	free(seen);
	return ok;
}

/* set_name is setName: the list folded ("0-3,5"), when it is a set
 * launch's (more than one node, ascending, no master, short enough). */
static int set_name(const struct ints *a, struct buf *b)
{
	const char *f = getenv("BPSH_FANOUT");
	if (a->n < 2 || (f && !strcmp(f, "0")) || a->v[0] < 0)
		return 0;
	for (size_t i = 1; i < a->n; i++)
		if (a->v[i] < a->v[i - 1])
			return 0; /* BPROC_RANK is the set's order: Go's, node by node */
	char w[32];
	for (size_t i = 0; i < a->n;) {
		size_t j = i;
		while (j + 1 < a->n && a->v[j + 1] == a->v[j] + 1)
			j++;
		if (j > i)
			snprintf(w, sizeof w, "%s%d-%d", b->n ? "," : "", a->v[i], a->v[j]);
		else
			snprintf(w, sizeof w, "%s%d", b->n ? "," : "", a->v[i]);
		bp_puts(b, w);
		i = j + 1;
	}
	return !b->err && b->n <= MAX_SET_NAME;
}

/* ---- the output: output.go's put and sink, lineWriter ---- */

/* record is output.fail: the first output error. */
static void record(int epipe, const char *msg)
{
	if (S.has_first)
		return;
	S.has_first = 1, S.first_epipe = epipe;
	bp_puts(&S.first, msg);
}

/* emit is output.put: 0 once fd's reader is gone (or its write failed). */
static int emit(int fd, const char *p, size_t n)
{
	if (S.broken[fd])
		return 0;
	while (n > 0) {
		ssize_t w = write(S.to[fd], p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			S.broken[fd] = 1;
			char msg[PATHLEN + 128];
			snprintf(msg, sizeof msg, "write %s: %s", S.name[fd], bp_fe_strerror(errno));
			record(errno == EPIPE, msg);
			return 0;
		}
		p += w, n -= (size_t)w;
	}
	return 1;
}

static void lw_add(struct lw *l, const char *p, size_t n)
{
	if (!n)
		return;
	if (l->n + n > l->cap) {
		size_t cap = l->cap ? l->cap : 256;
		while (cap < l->n + n)
			cap *= 2;
		char *np = realloc(l->p, cap);
		if (!np)
			oom();
		l->p = np, l->cap = cap;
	}
	memcpy(l->p + l->n, p, n);
	l->n += n;
}

static void prefix(struct buf *b, const struct member *m, int mid)
{
	char pf[32];
	if (S.prefix && !mid) {
		snprintf(pf, sizeof pf, "%3d: ", m->node);
		bp_puts(b, pf);
	}
}

/* lw_write is lineWriter.write: every complete line as one emit. */
static int lw_write(struct member *m, int fd, const char *p, size_t n)
{
	struct lw *l = &m->lw[fd];
	struct buf *b = &S.scratch;
	const char *last = memrchr(p, '\n', n);
	b->n = 0;
	if (!last) {
		lw_add(l, p, n);
		if (l->n < MAX_LINE)
			return 1;
		prefix(b, m, l->mid);
		bp_put(b, l->p, l->n);
		l->n = 0, l->mid = 1;
		if (b->err)
			oom();
		return emit(fd, b->s, b->n);
	}
	size_t dn = (size_t)(last - p) + 1;
	const char *chunk = p;
	size_t cn = dn;
	if (S.prefix || l->n) {
		prefix(b, m, l->mid);
		if (l->n)
			bp_put(b, l->p, l->n);
		l->n = 0;
		for (const char *d = p, *end = p + dn; d < end;) {
			const char *nl = memchr(d, '\n', (size_t)(end - d));
			bp_put(b, d, (size_t)(nl - d) + 1);
			d = nl + 1;
			if (d < end)
				prefix(b, m, 0);
		}
		if (b->err)
			oom();
		chunk = b->s, cn = b->n;
	}
	l->mid = 0;
	int ok = emit(fd, chunk, cn);
	lw_add(l, last + 1, n - dn);
	return ok;
}

static void lw_flush(struct member *m, int fd)
{
	struct lw *l = &m->lw[fd];
	if (!l->n)
		return;
	struct buf *b = &S.scratch;
	b->n = 0;
	prefix(b, m, l->mid);
	bp_put(b, l->p, l->n);
	if (b->err)
		oom();
	l->n = 0, l->mid = 0;
	emit(fd, b->s, b->n);
}

/* kill_file writes "kill SIG" on one of the tree's ctl files: 0 and its
 * errno when that failed (WriteFile). */
static int kill_file(const char *rel, const char *sig)
{
	char p[PATHLEN + 64], line[32];
	snprintf(p, sizeof p, "%s/%s", S.mount, rel);
	int n = snprintf(line, sizeof line, "kill %s\n", sig);
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t w = write(fd, line, (size_t)n);
	int e = errno;
	if (close(fd) < 0 && w >= 0)
		return 0;
	errno = e;
	return w >= 0;
}

static void proc_kill(long long pid, const char *sig)
{
	char rel[64];
	snprintf(rel, sizeof rel, "proc/%lld/ctl", pid);
	kill_file(rel, sig);
}

/* sink_write is sink.write: once the output is gone the process is
 * stopped as a pipeline's would be, and the rest is dropped. */
static void sink_write(struct member *m, int fd, const char *p, size_t n)
{
	if (n == 0 || m->broken[fd])
		return;
	if (S.prefix || S.line ? lw_write(m, fd, p, n) : emit(fd, p, n))
		return;
	m->broken[fd] = 1;
	pthread_mutex_lock(&S.mu);
	S.quiet |= 1u << SIGPIPE;
	pthread_mutex_unlock(&S.mu);
	proc_kill(m->pid, "PIPE");
}

static void sink_flush(struct member *m, int fd)
{
	if ((S.prefix || S.line) && !m->broken[fd])
		lw_flush(m, fd);
}

/* ---- the threads: forwarded signals, stdin ---- */


/* group_kill is groupKill: one write on the group's ctl; should it fail
 * other than for a group gone, each process still running on its own. */
static void group_kill(const char *sig)
{
	char rel[64];
	snprintf(rel, sizeof rel, "group/%lld/ctl", S.group);
	if (kill_file(rel, sig) || errno == ENOENT)
		return;
	for (size_t i = 0; i < S.n; i++) {
		struct member *m = &S.m[i];
		pthread_mutex_lock(&S.mu);
		int run = m->pid && !m->err && !m->ended;
		pthread_mutex_unlock(&S.mu);
		if (run)
			proc_kill(m->pid, sig);
	}
}

/* The forwarder: every thread has every signal blocked (a ctl write
 * interrupted would be retried whole, and reach the processes twice). */
static void *sig_thread(void *arg)
{
	(void)arg;
	sigset_t s;
	/* Job control stops bpsh as it stops Go's (which leaves TSTP, TTIN
	 * and TTOU at their default); the other signals Go ignores, as
	 * they are here, held. */
	sigemptyset(&s);
	sigaddset(&s, SIGTSTP);
	sigaddset(&s, SIGTTIN);
	sigaddset(&s, SIGTTOU);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	bp_fe_fwd_set(&s);
	for (;;) {
		int sig;
		if (sigwait(&s, &sig) != 0)
			continue;
		for (size_t i = 0; i < BP_FE_NFWD; i++)
			if (bp_fe_fwd[i].sig == sig) {
				pthread_mutex_lock(&S.mu);
				S.sent |= 1u << sig;
				pthread_mutex_unlock(&S.mu);
				if (S.live)
					group_kill(bp_fe_fwd[i].name);
			}
	}
	return NULL;
}

/* stdin_thread is forwardGroupStdin: the group's stdin opened on the
 * first read's result (a run that never reads costs nothing). */
static void *stdin_thread(void *arg)
{
	(void)arg;
	char p[PATHLEN + 64];
	snprintf(p, sizeof p, "%s/group/%lld/stdin", S.mount, S.group);
	char *buf = malloc(S.bufsize);
	int to = -1;
	while (buf) {
		ssize_t n = read(S.in, buf, S.bufsize);
		if (n < 0 && errno == EINTR)
			continue;
		if (to < 0 && (to = open(p, O_WRONLY | O_CLOEXEC)) < 0)
			break;
		ssize_t off = 0;
		while (off < n) {
			ssize_t w = write(to, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				break;
			off += w;
		}
		if (n <= 0 || off < n)
			break;
	}
	if (to >= 0)
		close(to);
	free(buf);
	return NULL;
}

static int spawn(void *(*fn)(void *))
{
	pthread_attr_t a;
	pthread_t t;
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, 256 << 10);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	int r = pthread_create(&t, &a, fn, NULL);
	pthread_attr_destroy(&a);
	return r;
}

/* ---- the launch ---- */

/* exec_line is client.ExecSet's command: the caller's environment as
 * Go's os.Environ has it (duplicates dropped, the first kept; BPROC_RANK
 * and its kin too, which the tree sets per rank). */
static int exec_line(struct buf *b, int attached, int null_in, const char *path, char **argv)
{
	size_t k;
	char **env = bp_fe_environ(0, 0, &k);
	if (!env)
		return 0;
	bp_puts(b, "exec");
	if (attached)
		bp_puts(b, " -i");
	return bp_fe_exec_rest(b, null_in, path, argv, env);
}

/* answer reads the exec's whole answer (readAnswer), bounded: a line a
 * node of a few hundred bytes at most. */
static int read_answer(int fd, struct buf *b, int *err)
{
	size_t max = (64 << 10) + ((S.n ? S.n : MAX_NODES) << 12);
	char chunk[64 << 10];
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof chunk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*err = errno;
			return 0;
		}
		if (r == 0)
			return !b->err;
		bp_put(b, chunk, (size_t)r);
		if (b->n > max) {
			*err = E2BIG;
			return 0;
		}
	}
}

/* members makes the set's nodes, in rank order; nodes is used up. */
static void members(struct ints *nodes)
{
	S.n = nodes->n;
	S.m = calloc(S.n ? S.n : 1, sizeof *S.m);
	if (!S.m)
		oom();
	for (size_t k = 0; k < S.n; k++)
		S.m[k].node = nodes->v[k];
	free(nodes->v);
	*nodes = (struct ints){0};
	S.bufsize = S.n > 8 ? 128 << 10 : 1 << 20; /* -b's default (main.go) */
}

/* all_fail gives every node the same start error (Go's j.err for each). */
static void all_fail(const char *msg)
{
	for (size_t i = 0; i < S.n; i++) {
		S.m[i].err = strdup(msg);
		if (!S.m[i].err)
			oom();
	}
}

static struct member *by_node(long long node)
{
	size_t lo = 0, hi = S.n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (S.m[mid].node < node)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < S.n && S.m[lo].node == node ? &S.m[lo] : NULL;
}

/* read_group is readGroup: the frames to the outputs, each end recorded,
 * until the io ends. */
static void read_group(void)
{
	char p[PATHLEN + 64];
	snprintf(p, sizeof p, "%s/group/%lld/io", S.mount, S.group);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		struct buf b = {0};
		bp_puts(&b, "open "), bp_puts(&b, p), bp_puts(&b, ": "), bp_puts(&b, bp_fe_strerror(errno));
		char *msg = dup_buf(&b);
		for (size_t i = 0; i < S.n; i++)
			if (S.m[i].pid && !S.m[i].err && !(S.m[i].werr = strdup(msg)))
				oom();
		free(msg);
		return;
	}
	struct frames fr;
	if (!frames_init(&fr, fd, p))
		oom();
	for (;;) {
		struct frame fm;
		struct buf err = {0};
		int r = frames_next(&fr, &fm, &err);
		char head[96];
		if (r < 0) {
			snprintf(head, sizeof head, "reading group %lld's io: ", S.group);
			struct buf b = {0};
			bp_puts(&b, head), bp_puts(&b, err.s ? err.s : "");
			free(err.s);
			record(0, b.s ? b.s : "");
			free(b.s);
			break;
		}
		if (r == 0)
			break;
		struct member *m = by_node(fm.node);
		if (!m || !m->pid || m->err || m->ended) {
			snprintf(head, sizeof head, "group %lld's io names node %lld, which it has not running", S.group, fm.node);
			record(0, head);
			break;
		}
		if (fm.kind == FRAME_END) {
			sink_flush(m, 1);
			sink_flush(m, 2);
			pthread_mutex_lock(&S.mu);
			m->st = fm.st, m->ended = 1;
			pthread_mutex_unlock(&S.mu);
		} else
			sink_write(m, fm.kind == FRAME_OUT ? 1 : 2, fm.data, fm.len);
	}
	frames_free(&fr);
	close(fd);
	for (size_t i = 0; i < S.n; i++) {
		struct member *m = &S.m[i];
		if (m->pid && !m->err && !m->ended && !m->werr) {
			char msg[96];
			snprintf(msg, sizeof msg, "group %lld's io ended before the process did", S.group);
			if (!(m->werr = strdup(msg)))
				oom();
		}
	}
}

/* report is cmd/bpsh's report: each node's message, the exit status. */
static int report(void)
{
	int code = 0;
	for (size_t i = 0; i < S.n; i++) {
		struct member *m = &S.m[i];
		if (m->err) {
			fprintf(stderr, "bpsh: node %d: %s\n", m->node, m->err);
			code = 255;
		} else if (m->werr) {
			fprintf(stderr, "bpsh: node %d: waiting: %s\n", m->node, m->werr);
			code = 255;
		} else {
			struct wstatus *st = &m->st;
			int fwded = st->kind == ST_SIGNAL && st->sig < 32 && ((S.sent | S.quiet) & (1u << st->sig));
			if (st->kind != ST_EXIT && !fwded) {
				struct buf b = {0};
				describe(&b, st);
				fprintf(stderr, "bpsh: node %d: %s\n", m->node, b.s ? b.s : "");
				free(b.s);
			}
			if (st->kind != ST_EXIT)
				code = 255;
			else if (st->code > code)
				code = st->code;
		}
	}
	if (S.has_first && !S.first_epipe) {
		fprintf(stderr, "bpsh: writing output: %s\n", S.first.s ? S.first.s : "");
		if (code == 0)
			code = 255;
	}
	return code;
}

/* member_err words a node's start failure as startSet does. */
static char *member_err(const struct member_answer *ma)
{
	if (ma->errno_ == ENOENT)
		return strdup("no such node");
	char *text = strndup(ma->text ? ma->text : "", ma->ntext);
	if (!text)
		oom();
	size_t cap = strlen(text) + 512;
	char *msg = malloc(cap), *out = malloc(cap + strlen(S.path) + 16);
	if (!msg || !out)
		oom();
	bp_fe_errno_text(ma->errno_ > INT_MAX ? INT_MAX : (int)ma->errno_, text, msg, cap);
	sprintf(out, "exec %s: %s", S.path, msg);
	free(text);
	free(msg);
	return out;
}

/* bp_fe_std_fds is the Go runtime's checkfds: a closed stdin, stdout or
 * stderr is /dev/null, not the next file opened. */
void bp_fe_std_fds(void)
{
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF && open("/dev/null", O_RDWR) < 0)
			exit(2);
}

_Noreturn void bp_fe_set(char **argv, int i, struct opts *o)
{
	const char *spec = o->all ? "allup" : "allnotdown";
	if (o->all && o->notdown)
		bp_fe_go(argv);
	if (!o->all && !o->notdown) {
		spec = argv[i++];
		/* options after the nodespec are Go's parse's too; -a or -A
		 * there is an oddity left to it */
		if (!parse_opts(argv, &i, o) || o->all || o->notdown)
			bp_fe_go(argv);
	}
	if (!argv[i] || (o->null_in && o->in))
		bp_fe_go(argv);
	char **cmd = argv + i;

	const char *mnt = bp_mount_point();
	char st[PATHLEN];
	struct stat sb;
	if (!clean_mount(mnt) || snprintf(st, sizeof st, "%s/status", mnt) >= (int)sizeof st || stat(st, &sb) < 0)
		bp_fe_go(argv);
	S.mount = mnt;
	/* -a, -A or a state word alone: the tree resolves it, as Go would
	 * (it too has the nodes in ascending order, the master left out);
	 * none is the tree's refusal, and Go's "no nodes"; one node runs as a
	 * set of one, where Go goes node by node, the same to the user. */
	struct ints nodes = {0};
	struct buf name = {0};
	const char *fan = getenv("BPSH_FANOUT");
	int by_tree = !strcmp(spec, "allup") || !strcmp(spec, "allnotdown") || !strcmp(spec, "all");
	if (by_tree && fan && !strcmp(fan, "0"))
		bp_fe_go(argv);
	if (by_tree)
		bp_puts(&name, spec);
	else if (!resolve_spec(spec, mnt, &nodes) || !set_name(&nodes, &name))
		bp_fe_go(argv);

	int uin, uout, uerr;
	char path[PATH_MAX];
	if (!open_io(o, &uin, &uout, &uerr) || !resolve(cmd[0], path, sizeof path))
		bp_fe_go(argv);
	S.path = path;
	S.prefix = o->prefix, S.line = o->line;
	S.in = uin, S.to[1] = uout, S.to[2] = uerr;
	S.name[1] = o->out ? o->out : "/dev/stdout";
	S.name[2] = o->err ? o->err : "/dev/stderr";
	if (!by_tree)
		members(&nodes);

	struct buf line = {0};
	if (!exec_line(&line, !o->no_io, uin < 0, path, cmd))
		bp_fe_go(argv);

	/* From here every signal is the signal thread's: the exec write
	 * and the kills must not be interrupted. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	char ctl[PATHLEN + 300];
	snprintf(ctl, sizeof ctl, "%s/node/%s/ctl", mnt, name.s);
	int fd = open(ctl, O_RDWR | O_CLOEXEC);
	size_t off = 0;
	while (fd >= 0 && off < line.n) {
		ssize_t w = write(fd, line.s + off, line.n - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	if (off < line.n) {
		/* Refused: nothing ran. Go tries again, and words it (or
		 * goes node by node). */
		if (fd >= 0)
			close(fd);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		bp_fe_go(argv);
	}
	free(line.s);

	struct buf ans = {0}, err = {0}, fmsg = {0};
	struct answer a = {0};
	int rerr = 0;
	char msg[3 * PATHLEN];
	if (!read_answer(fd, &ans, &rerr)) {
		if (rerr == E2BIG)
			snprintf(msg, sizeof msg, "exec %s: reading node/%s/ctl: answer too long", path, name.s);
		else
			snprintf(msg, sizeof msg, "exec %s: reading node/%s/ctl: read %s: %s", path, name.s, ctl,
				 bp_fe_strerror(rerr));
		bp_puts(&fmsg, msg);
	} else if (!parse_answer(ans.s ? ans.s : "", ans.n, &a, &err)) {
		snprintf(msg, sizeof msg, "exec %s: node/%s/ctl: ", path, name.s);
		bp_puts(&fmsg, msg), bp_puts(&fmsg, err.s ? err.s : "");
	} else if (by_tree) {
		if (a.n == 0) {
			fprintf(stderr, "bpsh: no nodes in \"%s\"\n", spec);
			exit(255);
		}
		for (size_t k = 0; k < a.n; k++)
			if (!push(&nodes, (int)a.m[k].node))
				oom();
		members(&nodes);
	}
	if (fmsg.n || fmsg.err) {
		/* No answer: every node Go would have named fails so. */
		if (by_tree && !resolve_spec(spec, mnt, &nodes))
			nodes.n = 0;
		if (by_tree)
			members(&nodes);
		char *fm = dup_buf(&fmsg);
		all_fail(fm);
		free(fm);
	} else if (a.n != S.n) {
		snprintf(msg, sizeof msg, "the tree answered %zu nodes for %zu", a.n, S.n);
		all_fail(msg);
	} else {
		S.group = a.group;
		for (size_t k = 0; k < S.n; k++) {
			struct member *m = &S.m[k];
			struct member_answer *ma = &a.m[k];
			if (ma->node != m->node) {
				snprintf(msg, sizeof msg, "the tree answered node %lld in its place", ma->node);
				if (!(m->err = strdup(msg)))
					oom();
			} else if (!ma->pid) {
				if (!(m->err = member_err(ma)))
					oom();
			} else {
				m->pid = ma->pid;
				S.live++;
			}
		}
	}
	close(fd);
	free(a.m);
	free(ans.s);
	free(err.s);
	if (S.group) {
		spawn(sig_thread);
		if (S.in >= 0)
			spawn(stdin_thread);
		read_group();
	}
	int code = report();
	exit(code);
}
