/* hello: what execmove and vexecmove run in t7100. Prints where it runs,
 * its BPROC_RANK and arguments; exits with its rank, or its first
 * argument when it has none. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char h[256];
	const char *rank = getenv("BPROC_RANK");
	if (gethostname(h, sizeof h) < 0)
		return 99;
	printf("hello on %s rank %s argv0 %s", h, rank ? rank : "-", argv[0]);
	for (int i = 1; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\n");
	return rank ? atoi(rank) : argc > 1 ? atoi(argv[1]) : 0;
}
