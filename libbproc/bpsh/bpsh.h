/* bpsh.h: the C front of bpsh (see main.c), shared by its files. */
#ifndef BPSH_H
#define BPSH_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <sys/types.h>

/* directAfter (cmd/bpsh/direct.go): output through the tree before the
 * job is handed to the Go bpsh, which then asks for it straight from the
 * node. */
#define DIRECT_AFTER (1 << 20)
/* firstBuf and -b's default (cmd/bpsh/main.go). */
#define FIRST_BUF (16 << 10)
#define MAX_BUF (1 << 20)

/* One output stream: the tree's file, copied to the user's. */
struct ostream {
	int id;		  /* 1 stdout, 2 stderr */
	int from, to;	  /* tree fd, user fd */
	const char *name; /* the user file's name in messages (Go's os.File name) */
	pthread_t th;
	int started, parked, done;
};

/* The stdin forwarder: the user's stdin (or -I) to proc/PID/stdin. */
struct istream {
	int from;     /* user fd, -1: nothing forwarded */
	int to;	      /* tree fd, -1 until the first byte (or EOF) */
	int finished; /* EOF reached or the process took no more */
	char *left;   /* bytes read but not yet written at a hand-off */
	size_t nleft;
	pthread_t th;
	int started, parked;
};

/* The launch: what the threads share, under mu. */
struct job {
	int node, pid;
	const char *path;  /* the program (messages) */
	char mount[4000];  /* the tree, clean (main.c's clean_mount) */
	int ctl;	   /* node/N/ctl: exec -o's frames, or -w's end */
	char proc[4100];   /* MOUNT/proc/PID: its files opened by path when needed */
	struct ostream out[3];
	struct istream in;
	int no_io, direct;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	long long seen; /* output bytes through the tree */
	int stop;	/* hand-off under way: threads park */
	int tried;	/* a hand-off was tried (once a reader reached DIRECT_AFTER) */
	pthread_t main; /* reads the end */
	char **argv;
	sigset_t sigmask; /* the one bpsh started with, for bpsh-go */
	int broken[3];
	char err[1024]; /* the first output error's text ("" none, "EPIPE") */
	unsigned sent, quiet; /* signals forwarded / sent by bpsh itself (bit per number) */
};

/* The end, from the exec's ctl (Go's Proc.Wait with Early). */
struct end {
	char line[65 << 10];
	int err;	/* errno of a failed read, 0 */
	int state;	/* 0 reading, 1 read, 2 empty, 3 too long, 4 read error */
	int parked;
	size_t len; /* bytes of it read so far */
};
/* The options the C front takes (cmd/bpsh/main.go's of the same names):
 * the one-node path's, and a node set's -a, -A, -p and -L. */
struct opts {
	int null_in, no_io, all, notdown, prefix, line;
	const char *in, *out, *err;
};

/* io.c */
int bp_fe_run(struct job *j, char **argv);
void bp_fe_kill(struct job *j, const char *sig);
/* report.c */
int bp_fe_report(const struct job *j, struct end *e);
/* main.c */
_Noreturn void bp_fe_go(char **argv);
void bp_fe_try_go(char **argv);
const char *bp_fe_strerror(int e);
char **bp_fe_environ(size_t extra, int drop_rank, size_t *n);
/* The forwarded signals (cmd/bpsh's killer), by name for a ctl's kill. */
struct bp_fe_sig {
	int sig;
	const char *name;
};
extern const struct bp_fe_sig bp_fe_fwd[];
#define BP_FE_NFWD 6
/* bp_fe_fwd_set makes s the set of the forwarded signals. */
void bp_fe_fwd_set(sigset_t *s);

struct buf;
int bp_fe_exec_rest(struct buf *b, int null_in, const char *path, char **argv, char **env);
/* main.c, shared with set.c */
int parse_opts(char **args, int *i, struct opts *o);
const char *getwd_go(char *buf, size_t cap);
int resolve(const char *name, char *out, size_t cap);
int clean_mount(const char *m);
int open_io(const struct opts *o, int *in, int *out, int *err);
/* set.c: a node-set launch (it returns only to hand argv to bpsh-go) */
_Noreturn void bp_fe_set(char **argv, int i, struct opts *o);
void bp_fe_std_fds(void);
/* report.c, shared with set.c */
const char *bp_fe_signame(int n, char *buf);
void bp_fe_errno_text(int e, const char *text, char *out, size_t cap);

#endif
