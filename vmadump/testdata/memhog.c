/*
 * memhog MB: dirties MB megabytes of anonymous memory with a non-zero
 * pattern, prints "READY pid addr", spins until its pid changes (it was
 * restored), then checks every byte and prints a verdict. For the bench.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
	size_t n = (size_t)atol(argc > 1 ? argv[1] : "1") << 20;
	uint64_t *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) { perror("mmap"); return 2; }
	for (size_t i = 0; i < n / 8; i++) p[i] = i * 0x9e3779b97f4a7c15ULL + 1;
	long pid0 = syscall(SYS_getpid);
	printf("READY %ld %p\n", pid0, (void *)p);
	fflush(stdout);
	while (syscall(SYS_getpid) == pid0)
		;
	for (size_t i = 0; i < n / 8; i++)
		if (p[i] != i * 0x9e3779b97f4a7c15ULL + 1) { printf("VERDICT FAIL at %zu\n", i); return 1; }
	printf("VERDICT PASS\n");
	return 0;
}
