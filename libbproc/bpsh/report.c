/*
 * How the job ended, in the Go bpsh's words (cmd/bpsh's report, client's
 * ParseWait, parseFailed and errnoText): its end's message and bpsh's
 * exit status.
 */
#define _GNU_SOURCE

#include "bpsh.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define Strerror(e) bp_fe_strerror(e)

/* signame is client.SignalName: x/sys/unix's name less SIG, else the number. */
const char *bp_fe_signame(int n, char *buf)
{
	static const char *names[] = {NULL,   "HUP",  "INT",  "QUIT", "ILL",  "TRAP",   "ABRT", "BUS",
				      "FPE",  "KILL", "USR1", "SEGV", "USR2", "PIPE",   "ALRM", "TERM",
				      "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
				      "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS"};
	if (n > 0 && n < 32)
		return names[n];
	sprintf(buf, "%d", n);
	return buf;
}

/* num is strconv.Atoi of a whole word. */
static int num(const char *s, long lo, long hi, long *out)
{
	char *e;
	errno = 0;
	*out = strtol(s, &e, 10);
	return *s && !*e && !errno && !isspace((unsigned char)*s) && *out >= lo && *out <= hi;
}

/* errno_text is client.errnoText with quiet: the errno in C wording, with
 * the master's text when it says more. */
void bp_fe_errno_text(int e, const char *text, char *out, size_t cap)
{
	const char *msg = Strerror(e);
	if (e == ENOENT || e == EACCES || e == EPERM || e == ENOEXEC || e == ENOTDIR) {
		snprintf(out, cap, "%s", msg);
		return;
	}
	while (isspace((unsigned char)*text))
		text++;
	size_t n = strlen(text);
	while (n && isspace((unsigned char)text[n - 1]))
		n--;
	if (n >= 7 && !strncmp(text, "error: ", 7))
		text += 7, n -= 7;
	char es[256], low[4096];
	snprintf(es, sizeof es, "%s", msg);
	es[0] = (char)tolower((unsigned char)es[0]);
	size_t el = strlen(es);
	for (size_t i = 0; i < n && i < sizeof low - 1; i++)
		low[i] = (char)tolower((unsigned char)text[i]);
	low[n < sizeof low ? n : sizeof low - 1] = 0;
	if (n == 0 || !strcmp(low, es))
		snprintf(out, cap, "%s", msg);
	else if (n >= el + 2 && !strcmp(low + n - el, es) && !strncmp(low + n - el - 2, ": ", 2))
		snprintf(out, cap, "%.*s%s", (int)(n - el), text, msg);
	else
		snprintf(out, cap, "%s (%.*s)", msg, (int)n, text);
}

/* quote is Go's %q for the printable ASCII a wait line has. */
static void quote(const char *s, char *out, size_t cap)
{
	size_t k = 0;
	out[k++] = '"';
	for (; *s && k + 6 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			k += (size_t)sprintf(out + k, "\\%c", c);
		else if (c == '\t')
			k += (size_t)sprintf(out + k, "\\t");
		else if (c < 0x20 || c >= 0x7f)
			k += (size_t)sprintf(out + k, "\\x%02x", c);
		else
			out[k++] = (char)c;
	}
	out[k++] = '"';
	out[k] = 0;
}

/* report is cmd/bpsh's report for one job: its end's message and bpsh's
 * exit status. */
int bp_fe_report(const struct job *j, struct end *e)
{
	int code = 0;
	char msg[8192], buf[16];
	char *f[5] = {0};
	int nf = 0;
	long a, b;
	char line[sizeof e->line];
	switch (e->state) {
	case 2:
		fprintf(stderr, "bpsh: node %d: waiting: node/%d/ctl: empty\n", j->node, j->node);
		return 255;
	case 3:
		fprintf(stderr, "bpsh: node %d: waiting: node/%d/ctl: answer too long\n", j->node, j->node);
		return 255;
	case 4:
		fprintf(stderr, "bpsh: node %d: waiting: read node/%d/ctl: %s\n", j->node, j->node, Strerror(e->err));
		return 255;
	}
	if (!strncmp(e->line, "failed ", 7)) {
		char *rest = e->line + 7, *sp = strchr(rest, ' ');
		if (sp)
			*sp = 0;
		if (num(rest, 1, 4095, &a)) {
			char text[sizeof e->line];
			size_t k = 0;
			for (const char *t = sp ? sp + 1 : ""; *t; t++)
				text[k++] = t[0] == '\\' && t[1] == 'n' ? (t++, '\n') : *t;
			text[k] = 0;
			bp_fe_errno_text((int)a, text, msg, sizeof msg);
			fprintf(stderr, "bpsh: node %d: exec %s: %s\n", j->node, j->path, msg);
			return 255;
		}
		if (sp)
			*sp = ' ';
	}
	strcpy(line, e->line);
	for (char *save, *w = strtok_r(line, " \t\n\v\f\r", &save); w && nf < 5; w = strtok_r(NULL, " \t\n\v\f\r", &save))
		f[nf++] = w;
	if (nf == 2 && !strcmp(f[0], "exit") && num(f[1], 0, 255, &a))
		code = (int)a;
	else if ((nf == 2 || nf == 3) && !strcmp(f[0], "signal") && num(f[1], 1, 128, &a)) {
		const char *name = nf == 3 ? (strncmp(f[2], "SIG", 3) ? f[2] : f[2] + 3) : bp_fe_signame((int)a, buf);
		if (a >= 32 || !((j->sent | j->quiet) & (1u << a)))
			fprintf(stderr, "bpsh: node %d: killed by signal %ld (%s)\n", j->node, a, name);
		code = 255;
	} else if (nf == 4 && !strcmp(f[0], "lost") && !strcmp(f[1], "node") && !strcmp(f[3], "down") &&
		   num(f[2], -1, 1L << 31, &b)) {
		fprintf(stderr, "bpsh: node %d: lost: node %ld went down\n", j->node, b);
		code = 255;
	} else {
		quote(e->line, msg, sizeof msg);
		fprintf(stderr,
			"bpsh: node %d: waiting: bad wait status %s (want exit N, signal N NAME or lost node N down)\n",
			j->node, msg);
		code = 255;
	}
	return code;
}


