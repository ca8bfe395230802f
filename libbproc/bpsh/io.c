/*
 * The C front's running job. Its output and end come as frames on the
 * exec's ctl (exec -o), read by the main thread; stdin and signals have
 * a thread each (the mount's files cannot be polled). Threads run with
 * every signal blocked but INTR, whose no-op handler (no SA_RESTART)
 * interrupts a blocked read or write: the tree then answers EINTR having
 * taken nothing (a stream read, a ctl end, a stream write's untaken
 * rest), which is what makes a hand-off to the Go bpsh lossless: the
 * frames are detached (the rest of the output stays in proc/PID/stdout
 * and stderr) and the stdin thread is parked. Forwarded signals come to
 * the signal thread only.
 */
#define _GNU_SOURCE

#include "bpsh.h"
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define INTR (SIGRTMIN)

static void nothing(int sig) { (void)sig; }

/* unblock_intr leaves INTR, and only INTR, open on the calling thread. */
static void unblock_intr(void)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, INTR);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
}

static void block_intr(int on)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, INTR);
	pthread_sigmask(on ? SIG_BLOCK : SIG_UNBLOCK, &s, NULL);
}


static pthread_mutex_t sigmu = PTHREAD_MUTEX_INITIALIZER; /* one kill at a time; none across the hand-off */

/* bp_fe_kill writes "kill SIG" on proc/PID/ctl, with INTR blocked: an
 * interrupted ctl write is retried whole, and the process would get it
 * twice. */
void bp_fe_kill(struct job *j, const char *sig)
{
	block_intr(1);
	char line[32];
	int n = snprintf(line, sizeof line, "kill %s\n", sig);
	char p[sizeof j->proc + 8];
	snprintf(p, sizeof p, "%s/ctl", j->proc);
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, line, (size_t)n) < 0) {
			/* the process is gone: nothing to tell */
		}
		close(fd);
	}
	block_intr(0);
}

static void forward(struct job *j, int sig)
{
	for (size_t i = 0; i < BP_FE_NFWD; i++)
		if (bp_fe_fwd[i].sig == sig) {
			pthread_mutex_lock(&j->mu);
			j->sent |= 1u << sig;
			pthread_mutex_unlock(&j->mu);
			bp_fe_kill(j, bp_fe_fwd[i].name);
		}
}

static void *sig_thread(void *arg)
{
	struct job *j = arg;
	sigset_t s;
	bp_fe_fwd_set(&s);
	for (;;) {
		int sig;
		if (sigwait(&s, &sig) != 0)
			continue;
		pthread_mutex_lock(&sigmu);
		forward(j, sig);
		pthread_mutex_unlock(&sigmu);
	}
	return NULL;
}

/* park holds a thread at a hand-off until it is called off; 1: it was
 * called off, go on. Called with mu held. */
static void park(struct job *j, int *parked)
{
	*parked = 1;
	pthread_cond_broadcast(&j->cond);
	while (j->stop)
		pthread_cond_wait(&j->cond, &j->mu);
	*parked = 0;
}

static int stopping(struct job *j, int *parked)
{
	pthread_mutex_lock(&j->mu);
	if (j->stop)
		park(j, parked);
	pthread_mutex_unlock(&j->mu);
	return 0;
}

/* fail records the first output error, as Go's output.fail and put do. */
static void fail(struct job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct job *j, const char *fmt, ...)
{
	pthread_mutex_lock(&j->mu);
	if (!j->err[0]) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(j->err, sizeof j->err, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&j->mu);
}

/* Strerror is Go's client.Strerror: the C library's wording. */
#define Strerror(e) bp_fe_strerror(e)

/* put writes all of p to the user's file; 0 once it failed (Go's put). */
static int put(struct job *j, struct ostream *s, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(s->to, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			if (errno == EPIPE)
				fail(j, "EPIPE");
			else
				fail(j, "write %s: %s", s->name, Strerror(errno));
			return 0;
		}
		p += w, n -= (size_t)w;
	}
	return 1;
}

static void handoff(struct job *j, struct ostream *self);

/* grow doubles a read buffer that a read filled (up to MAX_BUF), as Go's
 * reads do: a quiet stream costs little, a busy one few reads. */
static void grow(char **buf, size_t *size, size_t n)
{
	if (n == *size && *size < MAX_BUF) {
		char *nb = malloc(*size * 2);
		if (nb) {
			free(*buf);
			*buf = nb, *size *= 2;
		}
	}
}

/* pass gives bytes of stream s (read from it, or a frame's) to the
 * user's file; after a failed write the stream's rest is dropped and the
 * process told (Go's put and its SIGPIPE). */
static void pass(struct job *j, struct ostream *s, const char *p, size_t n)
{
	if (!j->broken[s->id] && !put(j, s, p, n)) {
		pthread_mutex_lock(&j->mu);
		j->broken[s->id] = 1;
		j->quiet |= 1u << SIGPIPE;
		pthread_mutex_unlock(&j->mu);
		bp_fe_kill(j, "PIPE");
	}
	pthread_mutex_lock(&j->mu);
	j->seen += (long long)n;
	pthread_mutex_unlock(&j->mu);
}

static void *out_thread(void *arg)
{
	struct ostream *s = arg;
	struct job *j = (struct job *)((char *)(s - s->id) - offsetof(struct job, out));
	unblock_intr();
	size_t size = FIRST_BUF;
	char *buf = malloc(size);
	while (buf) {
		stopping(j, &s->parked);
		ssize_t n = read(s->from, buf, size);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fail(j, "node %d: reading %s: read %s/proc/%d/%s: %s", j->node, s->id == 1 ? "stdout" : "stderr",
			     j->mount, j->pid, s->id == 1 ? "stdout" : "stderr", Strerror(errno));
			break;
		}
		if (n == 0)
			break;
		pass(j, s, buf, (size_t)n);
		pthread_mutex_lock(&j->mu);
		int try = j->direct && !j->tried && j->seen >= DIRECT_AFTER;
		j->tried |= try;
		pthread_mutex_unlock(&j->mu);
		if (try) /* this thread has nothing in hand: it hands over */
			handoff(j, s);
		grow(&buf, &size, (size_t)n);
	}
	free(buf);
	pthread_mutex_lock(&j->mu);
	s->done = 1;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

/* in_thread forwards stdin, opening proc/PID/stdin on the first byte (or
 * EOF) so that a run that never reads costs nothing, as Go's stdinDest. */
static void *in_thread(void *arg)
{
	struct job *j = arg;
	struct istream *in = &j->in;
	unblock_intr();
	size_t size = FIRST_BUF;
	char *buf = malloc(size), p[sizeof j->proc + 8];
	snprintf(p, sizeof p, "%s/stdin", j->proc);
	while (buf) {
		stopping(j, &in->parked);
		ssize_t n = read(in->from, buf, size), off = 0;
		if (n < 0 && errno == EINTR)
			continue;
		/* n <= 0: EOF (or a failed read, the same to Go): the
		 * process's stdin is closed. */
		for (;;) {
			if (in->to < 0 && (in->to = open(p, O_WRONLY | O_CLOEXEC)) < 0 &&
			    errno != EINTR)
				goto done; /* Go's stdinDest: dead, no more read */
			if (in->to >= 0) {
				if (n <= 0) {
					close(in->to);
					goto done;
				}
				ssize_t w = write(in->to, buf + off, (size_t)(n - off));
				if (w < 0 && errno != EINTR) {
					close(in->to); /* the process closed its stdin or ended */
					goto done;
				}
				if (w > 0)
					off += w;
				if (off == n)
					break;
			}
			pthread_mutex_lock(&j->mu);
			if (j->stop) {
				/* Interrupted with bytes in hand: the hand-off
				 * passes them on. */
				in->left = buf + off, in->nleft = n > 0 ? (size_t)(n - off) : 0;
				park(j, &in->parked);
				in->left = NULL, in->nleft = 0;
			}
			pthread_mutex_unlock(&j->mu);
		}
		grow(&buf, &size, (size_t)n);
	}
done:
	free(buf);
	pthread_mutex_lock(&j->mu);
	in->finished = 1;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

static struct end end;

static void end_thread(struct job *j)
{
	size_t n = 0;
	int state = 0;
	while (!state) {
		stopping(j, &end.parked);
		ssize_t r = read(j->ctl, end.line + n, 256);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			end.err = errno, state = 4;
			break;
		}
		n += (size_t)r;
		end.line[n] = 0;
		pthread_mutex_lock(&j->mu);
		end.len = n;
		pthread_mutex_unlock(&j->mu);
		char *nl = memchr(end.line, '\n', n);
		if (nl) {
			*nl = 0;
			state = 1;
		} else if (r == 0)
			state = n ? 1 : 2;
		else if (n > 64 << 10)
			state = 3;
	}
	pthread_mutex_lock(&j->mu);
	end.state = state;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->mu);
}

/* handoff passes the running job to the Go bpsh (cmd/bpsh/attach.go)
 * once its output is bulk: every thread parked with nothing in hand but
 * stdin's rest (a memfd), every tree file open where it stood. Returns
 * when it cannot (the job ended, an error) and the job goes on here.
 * Called by an output thread (self) or by the main thread, the frames'
 * reader, once they are detached (self NULL). */
static void handoff(struct job *j, struct ostream *self)
{
	int main_thread = pthread_equal(pthread_self(), j->main);
	pthread_mutex_lock(&j->mu);
	j->stop = 1;
	for (;;) {
		int busy = 0;
		for (int i = 1; i <= 2; i++)
			if (&j->out[i] != self && j->out[i].started && !j->out[i].done && !j->out[i].parked)
				busy = 1, pthread_kill(j->out[i].th, INTR);
		if (j->in.started && !j->in.finished && !j->in.parked)
			busy = 1, pthread_kill(j->in.th, INTR);
		if (!main_thread && !end.state && !end.parked)
			busy = 1, pthread_kill(j->main, INTR);
		if (!busy)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 2000000;
		if (ts.tv_nsec >= 1000000000)
			ts.tv_sec++, ts.tv_nsec -= 1000000000;
		pthread_cond_timedwait(&j->cond, &j->mu, &ts);
	}
	/* An end (even part of its line) already read stays here. */
	if (end.state || end.len || j->err[0] || j->broken[1] || j->broken[2])
		goto off;
	pthread_mutex_lock(&sigmu);
	/* Signals that came meanwhile are forwarded here. */
	sigset_t s;
	bp_fe_fwd_set(&s);
	struct timespec zero = {0, 0};
	for (int sig; (sig = sigtimedwait(&s, NULL, &zero)) > 0;)
		forward(j, sig);
	int left = -1;
	if (j->in.nleft) {
		left = memfd_create("bpsh-stdin", 0);
		if (left < 0 || write(left, j->in.left, j->in.nleft) != (ssize_t)j->in.nleft || lseek(left, 0, SEEK_SET) < 0)
			goto unlock;
	}
	int fds[] = {j->ctl, j->out[1].from, j->out[2].from, j->in.from, j->in.to, left, j->out[1].to, j->out[2].to};
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		if (fds[i] >= 0)
			fcntl(fds[i], F_SETFD, 0);
	int in = j->in.from >= 0 && !j->in.finished ? j->in.from : -1;
	char v[PATHLEN + 256];
	snprintf(v, sizeof v, "%d %d %d %d %d %d %d %d %d %d %lld %u %s", j->node, j->pid, j->ctl,
		 j->out[1].done ? -1 : j->out[1].from, j->out[2].done ? -1 : j->out[2].from, in, in < 0 ? -1 : j->in.to,
		 in < 0 ? -1 : left, j->out[1].to, j->out[2].to, j->seen, j->sent | j->quiet, j->path);
	setenv("BPSH_ATTACH", v, 1);
	/* Go's runtime unblocks INT, TERM, HUP and QUIT at its start and
	 * dies of one pending: they are ignored until bpsh-go takes them
	 * (lost meanwhile). USR1 and USR2 stay blocked and pending for its
	 * signal.Notify; every other signal as bpsh found it. */
	struct sigaction ign = {.sa_handler = SIG_IGN}, dfl = {.sa_handler = SIG_DFL};
	for (size_t i = 0; i < 4; i++)
		sigaction(bp_fe_fwd[i].sig, &ign, NULL);
	sigset_t m = j->sigmask;
	sigaddset(&m, SIGUSR1);
	sigaddset(&m, SIGUSR2);
	pthread_sigmask(SIG_SETMASK, &m, NULL);
	bp_fe_try_go(j->argv);
	/* Not run: the job goes on here. */
	sigset_t all;
	sigfillset(&all);
	sigdelset(&all, INTR);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	for (size_t i = 0; i < 4; i++)
		sigaction(bp_fe_fwd[i].sig, &dfl, NULL);
unlock:
	if (left >= 0)
		close(left);
	pthread_mutex_unlock(&sigmu);
off:
	j->stop = 0;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->mu);
}

/* spawn starts a thread on a small stack: a launch makes up to four,
 * and each would otherwise map (and fault in) 8 MiB. */
static int spawn(pthread_t *t, void *(*fn)(void *), void *arg)
{
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, 256 << 10);
	int r = pthread_create(t, &a, fn, arg);
	pthread_attr_destroy(&a);
	return r;
}

/* A frame of exec -o (group/G/io's format, fs/pspace/group.go): a header
 * line `NODE out LEN`, `NODE err LEN` (LEN bytes follow) or `NODE end
 * STATUS`, as read in pieces. */
struct frames {
	char hdr[sizeof end.line]; /* an end's STATUS may be a long failure's text */
	size_t hn;
	struct ostream *to; /* the stream whose bytes these are */
	long long left;	    /* bytes of its frame still to come */
};

/* frame_header takes one header line; 1: it was the end (in end.line),
 * -1: not a frame. */
static int frame_header(struct frames *f, struct job *j)
{
	char *kind = strchr(f->hdr, ' '), *arg = kind ? strchr(kind + 1, ' ') : NULL;
	if (!arg)
		return -1;
	*kind++ = 0, *arg++ = 0;
	if (!strcmp(kind, "end")) {
		snprintf(end.line, sizeof end.line, "%s", arg);
		end.len = strlen(end.line);
		end.state = 1;
		return 1;
	}
	char *e;
	long long n = strtoll(arg, &e, 10);
	if (*e || n <= 0 || (strcmp(kind, "out") && strcmp(kind, "err")))
		return -1;
	f->to = &j->out[kind[0] == 'o' ? 1 : 2];
	f->left = n;
	return 0;
}

/* open_streams opens proc/PID/stdout and stderr for the hand-off; 0 if
 * either fails (the job then stays here, on its frames). */
static int open_streams(struct job *j)
{
	for (int i = 1; i <= 2; i++) {
		char p[sizeof j->proc + 8];
		snprintf(p, sizeof p, "%s/%s", j->proc, i == 1 ? "stdout" : "stderr");
		if ((j->out[i].from = open(p, O_RDONLY | O_CLOEXEC)) < 0) {
			if (i == 2)
				close(j->out[1].from);
			j->out[1].from = j->out[2].from = -1;
			return 0;
		}
	}
	return 1;
}

/* detach asks for the frames to stop (the ctl's `detach`), the streams
 * open to take over where they do; 0 when it cannot. */
static int detach(struct job *j)
{
	pthread_mutex_lock(&j->mu);
	int ok = !j->err[0] && !j->broken[1] && !j->broken[2];
	pthread_mutex_unlock(&j->mu);
	if (!ok || !open_streams(j))
		return 0;
	block_intr(1); /* an interrupted ctl write is not known to have failed */
	ok = write(j->ctl, "detach\n", 7) == 7;
	block_intr(0);
	if (!ok) {
		close(j->out[1].from), close(j->out[2].from);
		j->out[1].from = j->out[2].from = -1;
	}
	return ok;
}

/* read_frames reads exec -o's frames to the end frame (end.state 1) or a
 * failure (end.state 2-4). Once DIRECT_AFTER bytes came it detaches them
 * and, at their end, hands the job to the Go bpsh (unless BPROC_DIRECT=0);
 * when that does not happen the job goes on here on the streams, as
 * before -o, and the ctl's next read is the end. */
static void read_frames(struct job *j)
{
	static struct frames f;
	size_t size = FIRST_BUF;
	char *buf = malloc(size);
	int detached = 0;
	while (buf && !end.state) {
		ssize_t n = read(j->ctl, buf, size);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			end.err = errno, end.state = 4;
			break;
		}
		if (n == 0 && detached) {
			if (j->direct)
				handoff(j, NULL);
			for (int i = 1; i <= 2; i++)
				j->out[i].started = !spawn(&j->out[i].th, out_thread, &j->out[i]);
			free(buf);
			end_thread(j);
			return;
		}
		if (n == 0) {
			end.state = 2; /* no end: the tree's fault */
			break;
		}
		for (char *p = buf, *e = buf + n; p < e && !end.state;) {
			if (f.left > 0) {
				size_t k = (size_t)(e - p) < (unsigned long long)f.left ? (size_t)(e - p) : (size_t)f.left;
				pass(j, f.to, p, k);
				p += k, f.left -= (long long)k;
				continue;
			}
			char *nl = memchr(p, '\n', (size_t)(e - p));
			size_t k = nl ? (size_t)(nl - p) : (size_t)(e - p);
			if (f.hn + k >= sizeof f.hdr) {
				end.state = 3;
				break;
			}
			memcpy(f.hdr + f.hn, p, k);
			f.hn += k;
			p += k;
			if (!nl)
				break;
			p++;
			f.hdr[f.hn] = 0;
			f.hn = 0;
			if (frame_header(&f, j) < 0) {
				snprintf(end.line, sizeof end.line, "%s", f.hdr);
				end.state = 1; /* reported as a bad wait status */
			}
		}
		pthread_mutex_lock(&j->mu);
		/* Bulk output is read from the streams, as before -o (a frame
		 * is a copy more in the master and 16 KiB at most): by bpsh-go,
		 * which goes direct, or with BPROC_DIRECT=0 here. */
		int try = !detached && !j->tried && j->seen >= DIRECT_AFTER;
		j->tried |= try;
		pthread_mutex_unlock(&j->mu);
		if (try && !end.state)
			detached = detach(j);
		grow(&buf, &size, (size_t)n);
	}
	free(buf);
	for (int i = 1; i <= 2; i++)
		if (j->out[i].from >= 0)
			close(j->out[i].from); /* detached, and the end came among the frames */
	pthread_mutex_lock(&j->mu);
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->mu);
}

int bp_fe_run(struct job *j, char **argv)
{
	j->argv = argv;
	j->main = pthread_self();
	mallopt(M_ARENA_MAX, 1); /* no arena per thread for a few buffers */
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cond, NULL);
	j->in.to = -1;
	j->out[1].from = j->out[2].from = -1;
	struct sigaction sa = {.sa_handler = nothing};
	sigaction(INTR, &sa, NULL);
	snprintf(j->proc, sizeof j->proc, "%s/proc/%d", j->mount, j->pid);
	pthread_t st;
	spawn(&st, sig_thread, j);
	pthread_detach(st);
	if (j->in.from >= 0) {
		j->in.started = !spawn(&j->in.th, in_thread, j);
		if (j->in.started)
			pthread_detach(j->in.th);
	}
	/* The main thread reads the frames, or with -N the end. */
	unblock_intr();
	if (j->no_io)
		end_thread(j);
	else
		read_frames(j);
	for (int i = 1; i <= 2; i++)
		if (j->out[i].started)
			pthread_join(j->out[i].th, NULL);
	int code = bp_fe_report(j, &end);
	if (j->err[0] && strcmp(j->err, "EPIPE")) {
		fprintf(stderr, "bpsh: writing output: %s\n", j->err);
		if (code == 0)
			code = 255;
	}
	return code;
}
