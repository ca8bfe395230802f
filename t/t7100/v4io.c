/* v4io NODE FILE: a LANL BProc 4 program (-DBPROC_API=4): _bproc_rfork_io
 * with a struct bproc_io_t putting the child's stdout in FILE, opened in
 * the child where it runs. The parent prints the child's exit status. */
#define _POSIX_C_SOURCE 200809L
#include <sys/bproc.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if BPROC_API_VERSION < 4
#error "BPROC_API=4 gives BProc 4's API"
#endif

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	struct bproc_io_t io;
	memset(&io, 0, sizeof io);
	io.fd = 1;
	io.type = BPROC_IO_FILE;
	io.d.file.flags = O_WRONLY | O_CREAT | O_TRUNC;
	io.d.file.mode = 0644;
	snprintf(io.d.file.name, sizeof io.d.file.name, "%s", argv[2]);
	int p = _bproc_rfork_io(atoi(argv[1]), &io, 1, BPROC_DUMP_EXEC | BPROC_DUMP_OTHER);
	if (p == 0) {
		char h[256];
		gethostname(h, sizeof h);
		printf("child on %s\n", h);
		fflush(stdout);
		_exit(0);
	}
	if (p < 0) {
		printf("_bproc_rfork_io: -1 %s\n", bproc_strerror(errno));
		return 1;
	}
	int st;
	if (waitpid(p, &st, 0) != p)
		return 1;
	printf("child exit %d\n", WEXITSTATUS(st));
	return 0;
}
