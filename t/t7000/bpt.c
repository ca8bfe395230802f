/* bpt: libbproc's calls from the shell, for t7000. `bpt CALL ARGS...`
 * prints what the call returned; a failed call prints "-1 ERRNONAME". */
#define _POSIX_C_SOURCE 200809L
#include <sys/bproc.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const struct {
	int e;
	const char *name;
} names[] = {
	{EBUSY, "EBUSY"}, {EACCES, "EACCES"}, {EPERM, "EPERM"}, {EINVAL, "EINVAL"},
	{ENOTSUP, "ENOTSUP"}, {ENOENT, "ENOENT"}, {BE_INVALIDNODE, "BE_INVALIDNODE"},
	{BE_NODEDOWN, "BE_NODEDOWN"}, {BE_INVALIDPROC, "BE_INVALIDPROC"},
};

static int failed(const char *call)
{
	int e = errno;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (names[i].e == e) {
			printf("%s: -1 %s\n", call, names[i].name);
			return 1;
		}
	printf("%s: -1 errno %d\n", call, e);
	return 1;
}

static int num(const char *s) { return (int)strtol(s, NULL, 0); }

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: bpt CALL ARGS...\n");
		return 2;
	}
	const char *c = argv[1];
	int a = argc > 2 ? num(argv[2]) : 0, r;
	if (!strcmp(c, "numnodes")) {
		if ((r = bproc_numnodes()) < 0)
			return failed(c);
		printf("%d\n", r);
	} else if (!strcmp(c, "currnode")) {
		errno = 0;
		if ((r = bproc_currnode()) == -1 && errno)
			return failed(c);
		printf("%d\n", r);
	} else if (!strcmp(c, "nodestatus")) {
		if ((r = bproc_nodestatus(a)) < 0)
			return failed(c);
		printf("%d\n", r);
	} else if (!strcmp(c, "nodeaddr")) {
		struct sockaddr_in in;
		int size = sizeof in;
		char buf[INET_ADDRSTRLEN];
		if (bproc_nodeaddr(a, (struct sockaddr *)&in, &size) < 0)
			return failed(c);
		printf("%s\n", inet_ntop(AF_INET, &in.sin_addr, buf, sizeof buf));
	} else if (!strcmp(c, "nodelist")) {
		struct bproc_node_info_t *l;
		if ((r = bproc_nodelist(&l)) < 0)
			return failed(c);
		for (int i = 0; i < r; i++) {
			char buf[INET_ADDRSTRLEN] = "-";
			if (l[i].addr.sa_family == AF_INET)
				inet_ntop(AF_INET, &((struct sockaddr_in *)&l[i].addr)->sin_addr, buf, sizeof buf);
			printf("%d %d %o %u %u %s\n", l[i].node, l[i].status, l[i].mode, l[i].user, l[i].group, buf);
		}
		free(l);
	} else if (!strcmp(c, "getnodebyname")) {
		printf("%d\n", bproc_getnodebyname(argv[2]));
	} else if (!strcmp(c, "pidnode")) {
		errno = 0;
		r = bproc_pidnode(a);
		if (r == -1 && errno)
			return failed(c);
		printf("%d\n", r);
	} else if (!strcmp(c, "proclist")) {
		struct bproc_proc_info_t *l;
		if ((r = bproc_proclist(a, &l)) < 0)
			return failed(c);
		for (int i = 0; i < r; i++)
			printf("%d %d\n", l[i].pid, l[i].node);
		free(l);
	} else if (!strcmp(c, "access")) {
		if (bproc_access(a, BPROC_X_OK) < 0)
			return failed(c);
		printf("0\n");
	} else if (!strcmp(c, "chmod") || !strcmp(c, "chown") || !strcmp(c, "chgrp")) {
		int v = num(argv[3]);
		r = c[2] == 'm' ? bproc_chmod(a, v) : c[2] == 'o' ? bproc_chown(a, v) : bproc_chgrp(a, v);
		if (r < 0)
			return failed(c);
		printf("0\n");
	} else if (!strcmp(c, "setstatus")) {
		if (bproc_nodesetstatus(a, num(argv[3])) < 0)
			return failed(c);
		printf("0\n");
	} else if (!strcmp(c, "notifier")) {
		/* Prints "ready", then "changed" once the fd is readable (or
		 * "timeout" after 60 s). */
		int fd = bproc_notifier();
		if (fd < 0)
			return failed(c);
		printf("ready\n");
		fflush(stdout);
		struct pollfd p = {fd, POLLIN, 0};
		r = poll(&p, 1, 60000);
		printf(r == 1 && (p.revents & POLLIN) ? "changed\n" : "timeout\n");
	} else if (!strcmp(c, "rexec")) {
		bproc_rexec(a, argv[3], argv + 3, NULL);
		return failed(c);
	} else if (!strcmp(c, "rexec-env")) {
		/* rexec-env NODE NAME=VALUE CMD ARGS...: the job's environment is
		 * exactly NAME=VALUE. */
		char *env[] = {argv[3], NULL};
		bproc_rexec(a, argv[4], argv + 4, env);
		return failed(c);
	} else if (!strcmp(c, "rfork")) {
		/* rfork to node a: the child exits 7, the parent waits for it. */
		pid_t p = bproc_rfork(a);
		if (p == 0)
			_exit(7);
		if (p < 0) {
			failed(c);
			printf("alive\n");
			return 0;
		}
		int st;
		if (waitpid(p, &st, 0) != p)
			return failed("waitpid");
		printf("child exit %d\n", WEXITSTATUS(st));
	} else if (!strcmp(c, "rfork-io")) {
		/* rfork-io NODE FILE: the child's stdout goes to FILE. */
		struct bproc_io_t io;
		memset(&io, 0, sizeof io);
		io.fd = 1;
		io.type = BPROC_IO_FILE;
		io.d.file.flags = O_WRONLY | O_CREAT | O_TRUNC;
		io.d.file.mode = 0644;
		snprintf(io.d.file.name, sizeof io.d.file.name, "%s", argv[3]);
		pid_t p = bproc_rfork_io(a, &io, 1);
		if (p == 0) {
			printf("in the child\n");
			fflush(stdout);
			_exit(0);
		}
		if (p < 0)
			return failed(c);
		int st;
		if (waitpid(p, &st, 0) != p)
			return failed("waitpid");
		printf("child exit %d\n", WEXITSTATUS(st));
	} else if (!strcmp(c, "vrfork")) {
		/* vrfork NODE...: child i exits i; the parent prints each
		 * child's status or errno. */
		int n = argc - 2, nodes[16], pids[16];
		if (n > 16)
			return 2;
		for (int i = 0; i < n; i++)
			nodes[i] = num(argv[i + 2]);
		r = bproc_vrfork(n, nodes, pids);
		if (r < 0)
			return failed(c);
		if (r < n)
			_exit(r);
		for (int i = 0; i < n; i++) {
			int st;
			if (pids[i] < 0) {
				errno = -pids[i];
				failed("vrfork");
			} else if (waitpid(pids[i], &st, 0) != pids[i]) {
				return failed("waitpid");
			} else {
				printf("rank %d exit %d\n", i, WEXITSTATUS(st));
			}
		}
	} else if (!strcmp(c, "rfork-threaded")) {
		if (bproc_notifier() < 0)
			return failed("notifier");
		pid_t p = bproc_rfork(a);
		if (p == 0)
			_exit(7);
		if (p < 0)
			return failed(c);
		printf("%d\n", (int)p);
	} else if (!strcmp(c, "move")) {
		if (bproc_move(a) < 0)
			return failed(c);
		printf("0\n");
	} else if (!strcmp(c, "strerror")) {
		printf("%s\n", bproc_strerror(a));
	} else {
		fprintf(stderr, "bpt: unknown call %s\n", c);
		return 2;
	}
	return 0;
}
