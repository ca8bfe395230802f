/*
 * bpsh's C front: the common launch, `bpsh N cmd` on one node, done in C
 * on libbproc, without a Go runtime's start-up (7 threads, its futexes),
 * as BProc's bpsh was. Everything else is the Go bpsh's (bpsh-go), which
 * gets the same argv by execv before anything ran: other options, node
 * sets and the master, no mount, any error found before the exec write
 * (it then finds and words it itself), and bulk output: past DIRECT_AFTER
 * bytes the running job is handed to it (io.c), which then goes direct.
 * The fast path's every message and exit status are Go's.
 */
#define _GNU_SOURCE

#include "bpsh.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

#ifndef BPSH_GO
#define BPSH_GO "/usr/local/bin/bpsh-go"
#endif

/* bp_fe_try_go runs the Go bpsh on argv: bpsh-go beside this program,
 * else the one make install put at BPSH_GO; it returns if neither runs. */
void bp_fe_try_go(char **argv)
{
	char self[PATH_MAX], go[PATH_MAX + 16];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0) {
		self[n] = 0;
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = 0;
			snprintf(go, sizeof go, "%s/bpsh-go", self);
			execv(go, argv);
		}
	}
	execv(BPSH_GO, argv);
}

_Noreturn void bp_fe_go(char **argv)
{
	bp_fe_try_go(argv);
	fprintf(stderr, "bpsh: running %s: %s\n", BPSH_GO, strerror(errno));
	exit(255);
}

const struct bp_fe_sig bp_fe_fwd[BP_FE_NFWD] = {
	{SIGINT, "INT"}, {SIGTERM, "TERM"}, {SIGHUP, "HUP"}, {SIGQUIT, "QUIT"}, {SIGUSR1, "USR1"}, {SIGUSR2, "USR2"},
};

void bp_fe_fwd_set(sigset_t *s)
{
	sigemptyset(s);
	for (size_t i = 0; i < BP_FE_NFWD; i++)
		sigaddset(s, bp_fe_fwd[i].sig);
}

const char *bp_fe_strerror(int e) { return strerror(e); }

/* value is an option's argument: "-Ifile", "--stdin=file" or the next word. */
static int value(char **args, int *i, const char *rest, const char **v)
{
	if (rest) {
		*v = rest;
		return **v != '=' && **v != '-';
	}
	if (!args[*i + 1] || args[*i + 1][0] == '-')
		return 0; /* pflag would take it; its errors are Go's to word */
	*v = args[++*i];
	return 1;
}

/* parse_opts reads options from args[*i] on, as pflag does with
 * interspersing off, up to the first word that is not one; 0 when an
 * option is not the fast path's (Go's then). */
int parse_opts(char **args, int *i, struct opts *o)
{
	static const struct {
		const char *s, *l1, *l2;
		int kind; /* 0 null, 1 no-io, 2 in, 3 out, 4 err, 5.. set.c's */
	} tab[] = {
		{"-n", "--null", NULL, 0},	 {"-N", "--no-io", NULL, 1},
		{"-I", "--stdin", "--input", 2}, {"-O", "--stdout", "--output", 3},
		{"-E", "--stderr", "--error", 4}, {"-a", "--all", NULL, 5},
		{"-A", "--all-notdown", NULL, 6}, {"-p", "--prefix", NULL, 7},
		{"-L", "--line", NULL, 8},
	};
	for (; args[*i] && args[*i][0] == '-' && args[*i][1]; ++*i) {
		const char *a = args[*i], *rest = NULL;
		int k = -1;
		for (size_t t = 0; t < sizeof tab / sizeof tab[0] && k < 0; t++) {
			const char *ls[] = {tab[t].l1, tab[t].l2};
			int val = tab[t].kind >= 2 && tab[t].kind <= 4; /* takes a value */
			if (!strncmp(a, tab[t].s, 2) && (a[2] == 0 || val)) {
				k = tab[t].kind;
				rest = a[2] ? a + 2 : NULL;
			}
			for (int m = 0; m < 2 && k < 0; m++) {
				size_t n = ls[m] ? strlen(ls[m]) : 0;
				if (n && !strncmp(a, ls[m], n) && (a[n] == 0 || (a[n] == '=' && val))) {
					k = tab[t].kind;
					rest = a[n] ? a + n + 1 : NULL;
				}
			}
		}
		const char *v = NULL;
		switch (k) {
		case 0:
			o->null_in = 1;
			break;
		case 1:
			o->no_io = 1;
			break;
		case 5: case 6: case 7: case 8:
			*(k == 5 ? &o->all : k == 6 ? &o->notdown : k == 7 ? &o->prefix : &o->line) = 1;
			break;
		case 2: case 3: case 4:
			if (!value(args, i, rest, &v))
				return 0;
			*(k == 2 ? &o->in : k == 3 ? &o->out : &o->err) = *v ? v : NULL;
			break;
		default:
			return 0;
		}
	}
	return 1;
}

/* plain_node is a nodespec that is one node's canonical number. */
static int plain_node(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 6 || (s[0] == '0' && n > 1) || strspn(s, "0123456789") != n)
		return -1;
	return atoi(s);
}

/* clean_join is filepath.Join(dir, name) for an absolute dir (Go's Clean:
 * no empty or "." elements, ".." taken back); 0 if it does not fit. */
static int clean_join(char *out, size_t cap, const char *dir, const char *name)
{
	char tmp[PATH_MAX * 2];
	if ((size_t)snprintf(tmp, sizeof tmp, "%s/%s", dir, name) >= sizeof tmp)
		return 0;
	size_t n = 0;
	for (char *save, *e = strtok_r(tmp, "/", &save); e; e = strtok_r(NULL, "/", &save)) {
		if (!strcmp(e, "."))
			continue;
		if (!strcmp(e, "..")) {
			while (n > 0 && out[--n] != '/')
				;
			continue;
		}
		size_t l = strlen(e);
		if (n + l + 2 > cap)
			return 0;
		out[n++] = '/';
		memcpy(out + n, e, l);
		n += l;
	}
	if (n == 0)
		out[n++] = '/';
	out[n] = 0;
	return 1;
}

/* getwd is os.Getwd: $PWD when it is absolute and names ".", else the
 * kernel's; NULL when neither works. */
const char *getwd_go(char *buf, size_t cap)
{
	const char *pwd = getenv("PWD");
	struct stat a, b;
	if (pwd && pwd[0] == '/' && stat(pwd, &a) == 0 && stat(".", &b) == 0 && a.st_dev == b.st_dev &&
	    a.st_ino == b.st_ino && strlen(pwd) < cap) {
		strcpy(buf, pwd);
		return buf;
	}
	return getcwd(buf, cap);
}

/* resolve is client.ResolvePath for the cases it succeeds in with an
 * absolute answer: a name with a slash, or one found in an absolute $PATH
 * entry (exec.LookPath); 0 otherwise, for Go to find and word. */
int resolve(const char *name, char *out, size_t cap)
{
	char wd[PATH_MAX];
	if (strchr(name, '/')) {
		if (name[0] == '/')
			return strlen(name) < cap && strcpy(out, name);
		return getwd_go(wd, sizeof wd) && clean_join(out, cap, wd, name);
	}
	const char *path = getenv("PATH");
	if (!path || !*path)
		return 0;
	for (const char *p = path;; p++) {
		const char *e = strchrnul(p, ':');
		char dir[PATH_MAX];
		size_t n = (size_t)(e - p);
		if (n == 0 || p[0] != '/' || n >= sizeof dir)
			return 0; /* "." or relative: exec.ErrDot, Go's to tell */
		memcpy(dir, p, n);
		dir[n] = 0;
		struct stat st;
		if (clean_join(out, cap, dir, name) && stat(out, &st) == 0 && !S_ISDIR(st.st_mode) &&
		    faccessat(AT_FDCWD, out, X_OK, AT_EACCESS) == 0)
			return 1;
		if (!*e)
			return 0;
		p = e;
	}
}

/* usable_stdin is cli.UsableStdin: not /dev/null, nor a terminal whose
 * foreground is another process group. */
static int usable_stdin(int fd)
{
	struct stat st, null;
	if (fstat(fd, &st) < 0)
		return 0;
	if (S_ISCHR(st.st_mode)) {
		if (stat("/dev/null", &null) == 0 && st.st_rdev == null.st_rdev)
			return 0;
		pid_t pg;
		if (ioctl(fd, TIOCGPGRP, &pg) == 0 && pg != getpgrp())
			return 0;
	}
	return 1;
}

/* clean_mount: the mount is named as Go's filepath.Join would leave it
 * (the messages name files under it). */
int clean_mount(const char *m)
{
	size_t n = strlen(m);
	return m[0] == '/' && n < 4000 && (n == 1 || m[n - 1] != '/') && !strstr(m, "//") && !strstr(m, "/./") &&
	       !strstr(m, "/../") && (n < 2 || strcmp(m + n - 2, "/.")) && (n < 3 || strcmp(m + n - 3, "/.."));
}

/* bp_fe_environ is the caller's environment as Go's os.Environ has it
 * (empty and repeated names dropped, the first kept), less BPROC_RANK,
 * BPROC_NODE and BPROC_NPROCS when drop_rank, with room for extra more
 * entries; *n is its count. NULL when out of memory. */
char **bp_fe_environ(size_t extra, int drop_rank, size_t *n)
{
	size_t ne = 0;
	for (char **e = environ; *e; e++)
		ne++;
	char **env = calloc(ne + extra + 1, sizeof *env);
	if (!env)
		return NULL;
	size_t k = 0;
	for (char **e = environ; *e; e++) {
		const char *eq = strchr(*e, '=');
		size_t kl = eq ? (size_t)(eq - *e) + 1 : 0;
		if (!**e || (drop_rank && (!strncmp(*e, "BPROC_RANK=", 11) || !strncmp(*e, "BPROC_NODE=", 11) ||
					   !strncmp(*e, "BPROC_NPROCS=", 13))))
			continue;
		int dup = 0;
		for (size_t i = 0; kl && i < k && !dup; i++)
			dup = !strncmp(env[i], *e, kl);
		if (!dup)
			env[k++] = *e;
	}
	*n = k;
	return env;
}

/* exec_line is the exec command: for -N Go's client.Exec's with Early
 * (exec -b -w), else exec -b -o, the output and the end as frames on the
 * ctl (one file for the whole launch). The job's environment is Go's
 * jobEnv: the caller's (duplicates dropped, first one kept, as Go's
 * os.Environ) less BPROC_RANK, BPROC_NODE and BPROC_NPROCS, which are
 * then set for rank 0 of 1. */
static int exec_line(struct buf *b, const struct opts *o, int null_in, int node, const char *path, char **argv)
{
	char rank[64];
	size_t k;
	char **env = bp_fe_environ(3, 1, &k);
	if (!env)
		return 0;
	snprintf(rank, sizeof rank, "BPROC_NODE=%d", node);
	env[k++] = "BPROC_RANK=0";
	env[k++] = rank;
	env[k++] = "BPROC_NPROCS=1";
	bp_puts(b, o->no_io ? "exec -b -w" : "exec -b -o");
	return bp_fe_exec_rest(b, null_in, path, argv, env);
}

/* bp_fe_exec_rest ends an exec line begun in b: -n, the cwd (-c), the
 * program, its arguments and env (freed); 0 when it could not be made or
 * is longer than client's maxCommand, whose E2BIG is Go's to word. */
int bp_fe_exec_rest(struct buf *b, int null_in, const char *path, char **argv, char **env)
{
	char wd[PATH_MAX];
	if (null_in)
		bp_puts(b, " -n");
	if (getwd_go(wd, sizeof wd)) {
		bp_puts(b, " -c");
		bp_word(b, wd);
	}
	bp_exec_args(b, path, argv, env);
	free(env);
	return !b->err && b->n - 1 <= (2 << 20) - 1; /* the line less its newline */
}

/* open_ctl opens node/N/ctl, which is also how the front knows the
 * mount is a bproc tree with that node; 0 when it is not (Go words why). */
static int open_ctl(struct job *j)
{
	char p[PATHLEN + 64];
	snprintf(p, sizeof p, "%s/node/%d/ctl", j->mount, j->node);
	j->ctl = open(p, O_RDWR | O_CLOEXEC);
	return j->ctl >= 0;
}

/* launch writes the exec line on the open ctl and reads the pid; 0 when
 * the tree refused it (nothing ran: Go words the refusal). */
static int launch(struct job *j, const char *line, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t w = write(j->ctl, line + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto refused;
		off += (size_t)w;
	}
	char ans[512];
	ssize_t n;
	while ((n = read(j->ctl, ans, sizeof ans - 1)) < 0 && errno == EINTR)
		;
	if (n <= 0)
		goto refused;
	ans[n] = 0;
	char *end;
	long pid = strtol(ans, &end, 10);
	if (pid <= 0 || pid > INT_MAX || (*end && strcmp(end, "\n")))
		goto refused;
	j->pid = (int)pid;
	return 1;
refused:
	close(j->ctl);
	return 0;
}

/* open_io opens -I, -O and -E as Go's openIO (in that order); 0 on a
 * failure, which Go then meets and words. */
int open_io(const struct opts *o, int *in, int *out, int *err)
{
	*in = -1, *out = 1, *err = 2;
	if (!o->no_io && !o->null_in) {
		if (o->in && (*in = open(o->in, O_RDONLY | O_CLOEXEC)) < 0)
			return 0;
		if (!o->in && usable_stdin(0))
			*in = 0;
	}
	if (o->no_io)
		return 1;
	if (o->out && (*out = open(o->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666)) < 0)
		return 0;
	if (o->err && (*err = open(o->err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666)) < 0)
		return 0;
	return 1;
}

int main(int argc, char **argv)
{
	(void)argc;
	struct opts o = {0};
	static struct job j;
	int i = 1;
	bp_fe_std_fds();	 /* before any open (set.c) */
	unsetenv("BPSH_ATTACH"); /* only ever ours to set (io.c) */
	const char *timeout = getenv("BPSH_TIMEOUT"), *trace = getenv("BPSH_TRACE");
	if ((timeout && *timeout && strcmp(timeout, "0")) || (trace && *trace))
		bp_fe_go(argv);
	if (!parse_opts(argv, &i, &o))
		bp_fe_go(argv);
	if (o.all || o.notdown || (argv[i] && plain_node(argv[i]) < 0))
		bp_fe_set(argv, i, &o); /* a node set (set.c), or Go's */
	if (o.prefix || o.line || !argv[i] || (j.node = plain_node(argv[i])) < 0)
		bp_fe_go(argv);
	i++;
	if (!parse_opts(argv, &i, &o) || o.all || o.notdown || o.prefix || o.line || !argv[i] || (o.null_in && o.in))
		bp_fe_go(argv);
	char **cmd = argv + i;

	const char *mnt = bp_mount_point();
	if (!clean_mount(mnt) || strlen(mnt) >= sizeof j.mount)
		bp_fe_go(argv);
	strcpy(j.mount, mnt);
	if (!open_ctl(&j))
		bp_fe_go(argv);

	int uin, uout, uerr;
	char path[PATH_MAX];
	if (!open_io(&o, &uin, &uout, &uerr) || !resolve(cmd[0], path, sizeof path)) {
		close(j.ctl);
		bp_fe_go(argv);
	}
	j.path = path;
	j.no_io = o.no_io;
	j.in.from = uin;
	j.out[1] = (struct ostream){.id = 1, .to = uout, .name = o.out ? o.out : "/dev/stdout"};
	j.out[2] = (struct ostream){.id = 2, .to = uerr, .name = o.err ? o.err : "/dev/stderr"};
	const char *d = getenv("BPROC_DIRECT");
	j.direct = !(d && (!strcasecmp(d, "0") || !strcasecmp(d, "no") || !strcasecmp(d, "off") ||
			   !strcasecmp(d, "false")));

	struct buf b = {0};
	if (!exec_line(&b, &o, uin < 0, j.node, path, cmd)) {
		close(j.ctl);
		bp_fe_go(argv);
	}
	/* From here every signal is the signal thread's (io.c): the exec
	 * write and the kills must not be interrupted (an interrupted ctl
	 * write is not known to have failed). */
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &j.sigmask);
	if (!launch(&j, b.s, b.n)) {
		pthread_sigmask(SIG_SETMASK, &j.sigmask, NULL);
		bp_fe_go(argv);
	}
	free(b.s);
	return bp_fe_run(&j, argv);
}
