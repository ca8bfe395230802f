/*
 * decode MODE <input: what the C front's decoders (libbproc/bpsh/frames.c) make of
 * input, printed in the form ../decode_test.go prints the Go bpsh's, which
 * compares the two (a differential fuzz target). MODE: frames, answer,
 * wait.
 */
#define _GNU_SOURCE

#include "frames.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

const char *bp_fe_strerror(int e) { return strerror(e); }

static void status(const struct wstatus *st)
{
	if (st->kind == ST_EXIT)
		printf("exit %d", st->code);
	else if (st->kind == ST_SIGNAL)
		printf("signal %d %s", st->sig, st->name);
	else
		printf("lost node %lld down", st->node);
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	struct buf in = {0}, err = {0};
	char chunk[65536];
	for (ssize_t n; (n = read(0, chunk, sizeof chunk)) > 0;)
		bp_put(&in, chunk, (size_t)n);
	if (in.err)
		return 3;
	const char *s = in.s ? in.s : "";
	if (!strcmp(argv[1], "frames")) {
		int fd = memfd_create("frames", 0);
		if (fd < 0 || write(fd, s, in.n) != (ssize_t)in.n || lseek(fd, 0, SEEK_SET) != 0)
			return 3;
		struct frames f;
		if (!frames_init(&f, fd, "io"))
			return 3;
		for (;;) {
			struct frame fm;
			int r = frames_next(&f, &fm, &err);
			if (r <= 0) {
				printf(r == 0 ? "EOF\n" : "error: %s\n", err.s);
				break;
			}
			if (fm.kind == FRAME_END) {
				printf("%lld end ", fm.node);
				status(&fm.st);
				printf("\n");
			} else {
				printf("%lld %s %zu\n", fm.node, fm.kind == FRAME_OUT ? "out" : "err", fm.len);
				fwrite(fm.data, 1, fm.len, stdout);
				printf("\n");
			}
		}
		frames_free(&f);
	} else if (!strcmp(argv[1], "answer")) {
		struct answer a;
		if (!parse_answer(s, in.n, &a, &err)) {
			printf("error: %s\n", err.s);
		} else {
			printf("group %lld\n", a.group);
			for (size_t i = 0; i < a.n; i++) {
				if (a.m[i].pid)
					printf("%lld %lld\n", a.m[i].node, a.m[i].pid);
				else {
					printf("%lld error %lld ", a.m[i].node, a.m[i].errno_);
					fwrite(a.m[i].text ? a.m[i].text : "", 1, a.m[i].ntext, stdout);
					printf("\n");
				}
			}
			free(a.m);
		}
	} else if (!strcmp(argv[1], "wait")) {
		struct wstatus st;
		if (!parse_wait(s, in.n, &st, &err))
			printf("error: %s\n", err.s);
		else {
			status(&st);
			printf("\n");
		}
	} else
		return 2;
	free(in.s);
	free(err.s);
	return 0;
}
