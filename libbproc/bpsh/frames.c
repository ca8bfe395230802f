/*
 * The decoders of a node-set launch (set.c), each the C twin of the Go
 * bpsh's: the set exec's answer (client.ParseSetAnswer), the group io's
 * frames (client.FrameReader), a wait line (client.ParseWait), and the
 * Go formatting their errors use (strconv.Atoi, %q). The bytes come from
 * the master: malformed ones are an error worded as Go words it, never
 * a crash or an unbounded allocation.
 */
#define _GNU_SOURCE

#include "frames.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int go_atoi(const char *s, size_t n, long long *v)
{
	size_t i = 0;
	int neg = 0;
	if (n > 0 && (s[0] == '+' || s[0] == '-'))
		neg = s[0] == '-', i = 1;
	if (i == n)
		return 0;
	unsigned long long x = 0, lim = neg ? 9223372036854775808ULL : 9223372036854775807ULL;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		unsigned d = (unsigned)(s[i] - '0');
		if (x > (lim - d) / 10)
			return 0;
		x = x * 10 + d;
	}
	*v = neg ? (long long)(0 - x) : (long long)x;
	return 1;
}

/* canon: s is n's decimal as strconv.Itoa writes it. */
static int canon(const char *s, size_t n, long long v)
{
	char b[32];
	int k = snprintf(b, sizeof b, "%lld", v);
	return (size_t)k == n && !memcmp(b, s, n);
}

/* utf8 decodes one rune at s (n bytes left): its length, 0 if invalid. */
static size_t utf8(const unsigned char *s, size_t n, unsigned *r)
{
	size_t len = s[0] < 0xc2 ? 0 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : s[0] < 0xf5 ? 4 : 0;
	if (!len || len > n)
		return 0;
	unsigned x = s[0] & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		x = x << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (x < 0x800 || (x >= 0xd800 && x < 0xe000))) || (len == 4 && (x < 0x10000 || x > 0x10ffff)))
		return 0;
	*r = x;
	return len;
}

/* printable is strconv.IsPrint for a rune past ASCII: the controls,
 * spaces, format characters and private uses Go escapes (unassigned code
 * points, which Go escapes too, are not told apart here). */
static int printable(unsigned r)
{
	static const unsigned no[][2] = {
	    {0x80, 0xa0},	{0xad, 0xad},	  {0x600, 0x605},   {0x61c, 0x61c},   {0x6dd, 0x6dd},
	    {0x70f, 0x70f},	{0x1680, 0x1680}, {0x180e, 0x180e}, {0x2000, 0x200f}, {0x2028, 0x202f},
	    {0x205f, 0x206f}, {0x3000, 0x3000}, {0xd800, 0xf8ff}, {0xfeff, 0xfeff}, {0xfff0, 0xfffb},
	    {0xfffe, 0xffff}, {0xe0000, 0xe007f}, {0xf0000, 0x10ffff},
	};
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
		if (r >= no[i][0] && r <= no[i][1])
			return 0;
	return 1;
}

void go_quote(struct buf *b, const char *p, size_t n)
{
	const unsigned char *s = (const unsigned char *)p;
	char e[16];
	bp_put(b, "\"", 1);
	for (size_t i = 0; i < n;) {
		unsigned c = s[i], r;
		size_t l = c < 0x80 ? 1 : utf8(s + i, n - i, &r);
		if (c >= 0x80 && l) {
			if (!printable(r))
				snprintf(e, sizeof e, r < 0x10000 ? "\\u%04x" : "\\U%08x", r), bp_puts(b, e);
			else
				bp_put(b, p + i, l);
			i += l;
			continue;
		}
		i++;
		const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\a' ? "\\a" : c == '\b' ? "\\b" :
				  c == '\f' ? "\\f" : c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" :
				  c == '\v' ? "\\v" : NULL;
		if (esc)
			bp_puts(b, esc);
		else if (c < 0x20 || c >= 0x7f)
			snprintf(e, sizeof e, "\\x%02x", c), bp_puts(b, e);
		else
			bp_put(b, (const char *)s + i - 1, 1);
	}
	bp_put(b, "\"", 1);
}

void go_errorf(struct buf *b, const char *before, const char *q, size_t n, const char *after)
{
	bp_puts(b, before);
	go_quote(b, q, n);
	bp_puts(b, after);
}

/* space is the length of the white space (unicode.IsSpace, as
 * strings.Fields splits at) that s starts with, 0 if none. */
static size_t space(const char *s, size_t n)
{
	unsigned char c = (unsigned char)s[0];
	if (c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r')
		return 1;
	unsigned r;
	size_t l = c >= 0x80 ? utf8((const unsigned char *)s, n, &r) : 0;
	if (l && (r == 0x85 || r == 0xa0 || r == 0x1680 || (r >= 0x2000 && r <= 0x200a) || r == 0x2028 ||
		  r == 0x2029 || r == 0x202f || r == 0x205f || r == 0x3000))
		return l;
	return 0;
}

int parse_wait(const char *line, size_t n, struct wstatus *st, struct buf *err)
{
	const char *f[5];
	size_t fl[5], nf = 0;
	for (size_t i = 0, sp; i < n && nf < 5;) {
		while (i < n && (sp = space(line + i, n - i)))
			i += sp;
		if (i == n)
			break;
		f[nf] = line + i;
		while (i < n && !space(line + i, n - i))
			i++;
		fl[nf] = (size_t)(line + i - f[nf]);
		nf++;
	}
	/* nf == 5: more fields than any form has */
#define IS(k, w) (fl[k] == strlen(w) && !memcmp(f[k], w, fl[k]))
	long long v;
	memset(st, 0, sizeof *st);
	if (nf == 2 && IS(0, "exit") && go_atoi(f[1], fl[1], &v) && v >= 0 && v <= 255) {
		st->kind = ST_EXIT, st->code = (int)v;
		return 1;
	}
	if ((nf == 2 || nf == 3) && IS(0, "signal") && go_atoi(f[1], fl[1], &v) && v > 0 && v <= 128) {
		st->kind = ST_SIGNAL, st->sig = (int)v;
		char nb[16];
		const char *name = bp_fe_signame((int)v, nb);
		size_t l = strlen(name);
		if (nf == 3) {
			name = f[2], l = fl[2];
			if (l >= 3 && !memcmp(name, "SIG", 3))
				name += 3, l -= 3;
		}
		if (l >= sizeof st->name)
			l = sizeof st->name - 1; /* a header's, < 256 */
		memcpy(st->name, name, l);
		st->name[l] = 0;
		return 1;
	}
	if (nf == 4 && IS(0, "lost") && IS(1, "node") && IS(3, "down") && go_atoi(f[2], fl[2], &v) && v >= -1) {
		st->kind = ST_LOST, st->node = v;
		return 1;
	}
#undef IS
	go_errorf(err, "bad wait status ", line, n, " (want exit N, signal N NAME or lost node N down)");
	return 0;
}

void describe(struct buf *b, const struct wstatus *st)
{
	char s[64];
	if (st->kind == ST_EXIT)
		snprintf(s, sizeof s, "exited with status %d", st->code), bp_puts(b, s);
	else if (st->kind == ST_SIGNAL) {
		snprintf(s, sizeof s, "killed by signal %d (", st->sig), bp_puts(b, s);
		bp_puts(b, st->name), bp_puts(b, ")");
	} else
		snprintf(s, sizeof s, "lost: node %lld went down", st->node), bp_puts(b, s);
}

/* ---- the set exec's answer ---- */

/* field cuts s (n bytes) at its first space, as strings.Cut. */
static int cut(const char *s, size_t n, size_t *at)
{
	const char *sp = memchr(s, ' ', n);
	*at = sp ? (size_t)(sp - s) : n;
	return sp != NULL;
}

int parse_answer(const char *s, size_t n, struct answer *a, struct buf *err)
{
	memset(a, 0, sizeof *a);
	if (n > 0 && s[n - 1] == '\n')
		n--;
	const char *nl = memchr(s, '\n', n);
	size_t l0 = nl ? (size_t)(nl - s) : n;
	long long v;
	if (l0 < 6 || memcmp(s, "group ", 6) || !go_atoi(s + 6, l0 - 6, &v) || v <= 0) {
		go_errorf(err, "answer ", s, l0, " does not start with a group");
		return 0;
	}
	a->group = v;
	size_t lines = 0;
	for (size_t i = 0; i < n; i++)
		lines += s[i] == '\n';
	a->m = calloc(lines ? lines : 1, sizeof *a->m);
	if (!a->m) {
		bp_puts(err, "out of memory");
		return 0;
	}
	for (const char *l = nl ? nl + 1 : NULL; l; ) {
		const char *e = memchr(l, '\n', (size_t)(s + n - l));
		size_t ln = e ? (size_t)(e - l) : (size_t)(s + n - l);
		/* strings.SplitN(l, " ", 4) */
		const char *f[4];
		size_t fl[4], nf = 0, at;
		for (const char *p = l, *end = l + ln;; ) {
			f[nf] = p;
			if (nf == 3 || !cut(p, (size_t)(end - p), &at)) {
				fl[nf++] = (size_t)(end - p);
				break;
			}
			fl[nf++] = at;
			p += at + 1;
		}
		struct member_answer *m = &a->m[a->n];
		long long node, x;
		int ok = go_atoi(f[0], fl[0], &node) && node >= -1;
		if (ok && nf == 2 && go_atoi(f[1], fl[1], &x) && x > 0) {
			m->node = node, m->pid = x;
		} else if (ok && nf >= 3 && fl[1] == 5 && !memcmp(f[1], "error", 5) && go_atoi(f[2], fl[2], &x) && x > 0) {
			m->node = node, m->errno_ = x;
			if (nf == 4)
				m->text = f[3], m->ntext = fl[3];
		} else {
			go_errorf(err, "bad answer line ", l, ln, "");
			free(a->m);
			a->m = NULL;
			return 0;
		}
		a->n++;
		l = e ? e + 1 : NULL;
	}
	return 1;
}

/* ---- the group's io ---- */

#define MAX_FRAME (1 << 20)
#define MAX_HEADER 256
#define READ_BUF (64 << 10)

int frames_init(struct frames *f, int fd, const char *path)
{
	memset(f, 0, sizeof *f);
	f->fd = fd, f->path = path;
	f->buf = malloc(READ_BUF);
	return f->buf != NULL;
}

void frames_free(struct frames *f)
{
	free(f->buf);
	free(f->data);
	f->buf = f->data = NULL;
}

/* readerr words a failed read of the io as Go's ErrText does. */
static int readerr(struct frames *f, struct buf *err, int e)
{
	bp_puts(err, "read ");
	bp_puts(err, f->path);
	bp_puts(err, ": ");
	bp_puts(err, bp_fe_strerror(e));
	return -1;
}

static ssize_t rd(int fd, char *p, size_t n)
{
	ssize_t r;
	while ((r = read(fd, p, n)) < 0 && errno == EINTR)
		;
	return r;
}

int frames_next(struct frames *f, struct frame *fm, struct buf *err)
{
	char *nl;
	while (!(nl = memchr(f->buf + f->r, '\n', f->w - f->r))) {
		if (f->w - f->r > MAX_HEADER) {
			bp_puts(err, "group io: frame header longer than 256 bytes");
			return -1;
		}
		if (f->eof) {
			if (f->w == f->r)
				return 0;
			bp_puts(err, "group io: stream ends inside a frame header: unexpected EOF");
			return -1;
		}
		memmove(f->buf, f->buf + f->r, f->w - f->r);
		f->w -= f->r, f->r = 0;
		ssize_t n = rd(f->fd, f->buf + f->w, READ_BUF - f->w);
		if (n < 0)
			return readerr(f, err, errno);
		f->w += (size_t)n;
		f->eof = n == 0;
	}
	const char *h = f->buf + f->r;
	size_t hn = (size_t)(nl - h);
	if (hn + 1 > MAX_HEADER) {
		bp_puts(err, "group io: frame header longer than 256 bytes");
		return -1;
	}
	f->r += hn + 1;
	size_t a1, a2;
	long long node = 0, v;
	int ok = cut(h, hn, &a1);
	const char *rest = h + a1 + (ok ? 1 : 0);
	size_t rn = ok ? hn - a1 - 1 : 0;
	int ok2 = ok && cut(rest, rn, &a2);
	if (!ok || !ok2 || !go_atoi(h, a1, &node) || node < -1 || !canon(h, a1, node)) {
		go_errorf(err, "group io: bad frame header ", h, hn, "");
		return -1;
	}
	const char *arg = rest + a2 + 1;
	size_t an = rn - a2 - 1;
	memset(fm, 0, sizeof *fm);
	fm->node = node;
	if ((a2 == 3 && !memcmp(rest, "out", 3)) || (a2 == 3 && !memcmp(rest, "err", 3))) {
		fm->kind = rest[0] == 'o' ? FRAME_OUT : FRAME_ERR;
		if (!go_atoi(arg, an, &v) || v <= 0 || v > MAX_FRAME || !canon(arg, an, v)) {
			go_errorf(err, "group io: bad frame length in ", h, hn, "");
			return -1;
		}
		size_t n = (size_t)v, have = f->w - f->r;
		if (have >= n) { /* the common case: whole in the buffer */
			fm->data = f->buf + f->r, fm->len = n;
			f->r += n;
			return 1;
		}
		if (f->dcap < n) {
			free(f->data);
			f->dcap = 0;
			if (!(f->data = malloc(n))) {
				bp_puts(err, "group io: out of memory");
				return -1;
			}
			f->dcap = n;
		}
		memcpy(f->data, f->buf + f->r, have);
		f->r = f->w = 0;
		for (size_t got = have; got < n;) {
			ssize_t r = f->eof ? 0 : rd(f->fd, f->data + got, n - got);
			if (r < 0)
				return readerr(f, err, errno);
			if (r == 0) {
				/* h points into buf, still unchanged */
				go_errorf(err, "group io: frame ", h, hn, ": unexpected EOF");
				f->eof = 1;
				return -1;
			}
			got += (size_t)r;
		}
		fm->data = f->data, fm->len = n;
		return 1;
	}
	if (a2 == 3 && !memcmp(rest, "end", 3)) {
		fm->kind = FRAME_END;
		struct buf we = {0};
		if (!parse_wait(arg, an, &fm->st, &we)) {
			bp_puts(err, "group io: ");
			bp_puts(err, we.s ? we.s : "out of memory");
			free(we.s);
			return -1;
		}
		return 1;
	}
	go_errorf(err, "group io: unknown frame kind in ", h, hn, "");
	return -1;
}
