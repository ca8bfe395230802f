/* frames.h: the decoders of a node-set launch (frames.c). */
#ifndef BPSH_FRAMES_H
#define BPSH_FRAMES_H

#include "bpsh.h"
#include "internal.h"

#include <stddef.h>

/* go_atoi is strconv.Atoi of s's n bytes: 0 when Go would refuse it. */
int go_atoi(const char *s, size_t n, long long *v);
/* go_quote adds Go's %q of p's n bytes to b. */
void go_quote(struct buf *b, const char *p, size_t n);
/* go_errorf adds before, %q of q, after. */
void go_errorf(struct buf *b, const char *before, const char *q, size_t n, const char *after);

/* A process's end: client.Status. */
enum { ST_EXIT, ST_SIGNAL, ST_LOST };
struct wstatus {
	int kind, code, sig;
	long long node;
	char name[260];
};
/* parse_wait is client.ParseWait: 0 with Go's error text in err. */
int parse_wait(const char *line, size_t n, struct wstatus *st, struct buf *err);
/* describe is Status.Describe. */
void describe(struct buf *b, const struct wstatus *st);

/* The set exec's answer: `group G`, then a line per node in rank order. */
struct member_answer {
	long long node, pid, errno_; /* pid 0: errno_ and text say why not */
	const char *text;	     /* into the answer */
	size_t ntext;
};
struct answer {
	long long group;
	struct member_answer *m;
	size_t n;
};
/* parse_answer is client.ParseSetAnswer: 0 with Go's error text in err. */
int parse_answer(const char *s, size_t n, struct answer *a, struct buf *err);

/* The group's io: client.FrameReader. */
enum { FRAME_OUT = 1, FRAME_ERR, FRAME_END };
struct frame {
	long long node;
	int kind;
	const char *data; /* out, err: valid until the next frames_next */
	size_t len;
	struct wstatus st; /* end */
};
struct frames {
	int fd;
	const char *path; /* the io file's, for read errors */
	char *buf, *data;
	size_t r, w, dcap;
	int eof;
};
int frames_init(struct frames *f, int fd, const char *path);
void frames_free(struct frames *f);
/* frames_next: 1 a frame, 0 the io ended between frames, -1 an error,
 * worded in err as the Go bpsh's ErrText words it. */
int frames_next(struct frames *f, struct frame *fm, struct buf *err);

#endif
