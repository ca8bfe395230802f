/*
 * state: sets up every kind of state vmadump must keep, prints READY, spins
 * in spin_regs() until its pid changes (it was restored), then checks the
 * state from inside and prints "ok NAME" / "FAIL NAME: why" lines and a
 * final "VERDICT PASS" or "VERDICT FAIL".
 *
 * usage: state WORKDIR   (an empty directory; the program chdirs there)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <asm/prctl.h>

void spin_regs(const uint64_t *gin, const uint8_t *vin, uint64_t *gout, uint8_t *vout, long pid, long avx512);

static int failed;
#define CHECK(name, cond, ...) do { \
	if (cond) printf("ok %s\n", name); \
	else { failed = 1; printf("FAIL %s: ", name); printf(__VA_ARGS__); printf("\n"); } \
} while (0)

static __thread uint64_t tlsv = 0x1122334455667788ULL;
static volatile sig_atomic_t got_usr1;
static volatile int usr1_signo;

static void on_usr1(int sig, siginfo_t *si, void *uc) {
	(void)uc;
	got_usr1++;
	usr1_signo = si->si_signo;
}

static ssize_t slurp(const char *path, char *buf, size_t n) {
	int fd = open(path, O_RDONLY);
	if (fd < 0) return -1;
	ssize_t got = 0, r;
	while (got < (ssize_t)n && (r = read(fd, buf + got, n - got)) > 0) got += r;
	close(fd);
	return got;
}

static uint64_t arch_fs(void) {
	uint64_t fs = 0;
	syscall(SYS_arch_prctl, ARCH_GET_FS, &fs);
	return fs;
}

static uintptr_t vdso_in_maps(void) {
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	uintptr_t a = 0;
	while (f && fgets(line, sizeof line, f))
		if (strstr(line, "[vdso]")) sscanf(line, "%lx", &a);
	if (f) fclose(f);
	return a;
}

extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));

int main(int argc, char **argv) {
	if (argc < 2 || chdir(argv[1]) != 0) { fprintf(stderr, "usage: state WORKDIR\n"); return 2; }
	char cwd0[4096]; getcwd(cwd0, sizeof cwd0);
	umask(027);
	long pid0 = getpid();
	const long PG = 4096;

	/* heap */
	size_t hn = 1 << 20;
	unsigned char *heap = malloc(hn);
	for (size_t i = 0; i < hn; i++) heap[i] = (unsigned char)(i * 7 + 3);
	void *brk0 = sbrk(0);

	/* anonymous mapping: pages 0 and 2 written, page 1 left zero */
	unsigned char *anon = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(anon, 0xa5, PG);
	memset(anon + 2 * PG, 0x5a, PG);
	unsigned char *ro = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(ro, 0x3c, PG);
	mprotect(ro, PG, PROT_READ);
	unsigned char *none = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(none, 0x6e, PG);
	mprotect(none, PG, PROT_NONE);
	unsigned char *shared = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	memset(shared + PG, 0x53, PG);

	/* a file, mapped privately: page 1 dirtied, 0 and 2 as in the file */
	int mf = open("mapped", O_RDWR | O_CREAT | O_TRUNC, 0644);
	static char fbuf[3 * 4096];
	for (int i = 0; i < 3 * PG; i++) fbuf[i] = (char)('a' + i % 26);
	write(mf, fbuf, sizeof fbuf);
	unsigned char *fm = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, mf, 0);
	unsigned char *fro = mmap(NULL, 3 * PG, PROT_READ, MAP_PRIVATE, mf, 0);
	close(mf);
	memset(fm + PG, 'Z', PG);
	volatile unsigned char touch = fro[0] + fm[0];
	(void)touch;

	/* open files: fd 7 at offset 123, an O_APPEND one */
	int df = open("data", O_RDWR | O_CREAT | O_TRUNC, 0644);
	write(df, fbuf, 1000);
	dup2(df, 7); close(df);
	lseek(7, 123, SEEK_SET);
	int af = open("log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	write(af, "before\n", 7);
	int pp[2];
	pipe(pp);
	dup2(pp[0], 9); close(pp[0]); close(pp[1]);

	/* signals */
	struct sigaction sa = {0};
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGHUP);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigset_t block; sigemptyset(&block); sigaddset(&block, SIGUSR2); sigaddset(&block, SIGWINCH);
	sigprocmask(SIG_BLOCK, &block, NULL);

	/* per-thread kernel state glibc and programs set up */
	static char altstack[65536];
	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0 };
	sigaltstack(&ss, NULL);
	void *robust0 = 0, *tidaddr0 = 0; size_t rlen0 = 0;
	syscall(SYS_get_robust_list, 0, &robust0, &rlen0);
	prctl(PR_GET_TID_ADDRESS, &tidaddr0);
	personality(PER_LINUX | ADDR_NO_RANDOMIZE);

	/* names */
	prctl(PR_SET_NAME, "vmadt-comm");
	static char cmd0[8192], env0[65536], exe0[4096];
	ssize_t cmdn = slurp("/proc/self/cmdline", cmd0, sizeof cmd0);
	ssize_t envn = slurp("/proc/self/environ", env0, sizeof env0);
	ssize_t exen = readlink("/proc/self/exe", exe0, sizeof exe0);

	/* TLS, stack */
	tlsv = 0xfeedfacecafebeefULL;
	uint64_t fs0 = arch_fs();
	volatile unsigned char stackbuf[8192];
	for (int i = 0; i < 8192; i++) stackbuf[i] = (unsigned char)(i * 13 + 1);

	/* registers */
	uint64_t gin[12], gout[12];
	static uint8_t vin[1616], vout[1616];
	for (int i = 0; i < 12; i++) gin[i] = 0x0101010101010101ULL * (i + 1) ^ 0x8000000000000000ULL;
	for (int i = 0; i < 1592; i++) vin[i] = (uint8_t)(i * 31 + 17);
	memset(vout, 0, sizeof vout);
	__builtin_cpu_init();
	long avx = __builtin_cpu_supports("avx");
	long avx512 = avx && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");

	printf("READY %ld\n", pid0);
	fflush(stdout);
	spin_regs(gin, vin, gout, vout, pid0, avx512 ? 2 : avx ? 1 : 0);

	/* ---- restored ---- */
	printf("restored: pid %ld -> %d\n", pid0, getpid());
	int gok = memcmp(gin, gout, sizeof gin) == 0;
	CHECK("gpr", gok, "general registers differ");
	if (avx)
		CHECK("ymm", memcmp(vin, vout, 512) == 0, "ymm0-15 differ");
	int xok = 1;
	for (int i = 0; i < 16; i++) if (memcmp(vin + 32 * i, vout + 32 * i, 16) != 0) xok = 0;
	CHECK("xmm", xok, "xmm0-15 differ");
	if (avx512) {
		CHECK("zmm", memcmp(vin + 512, vout + 512, 1024) == 0, "zmm16-31 differ");
		int kok = 1;
		for (int i = 0; i < 7; i++) {
			uint64_t a, b, m = 0xffffffffffffffffULL;
			memcpy(&a, vin + 1536 + 8 * i, 8); memcpy(&b, vout + 1536 + 8 * i, 8);
			if ((a & m) != b) kok = 0;
		}
		CHECK("k", kok, "mask registers differ");
	}
	long double one, pi;
	memcpy(&one, vout + 1592, 10); memcpy(&pi, vout + 1602, 10);
	uint32_t mx; memcpy(&mx, vout + 1612, 4);
	CHECK("x87", one == 1.0L && pi > 3.14159L && pi < 3.1416L, "st0=%Lg st1=%Lg", one, pi);
	CHECK("mxcsr", (mx & 0xffc0) == 0x7f80, "mxcsr=%#x", mx);

	CHECK("tls", tlsv == 0xfeedfacecafebeefULL, "tlsv=%#lx", (unsigned long)tlsv);
	CHECK("fs_base", arch_fs() == fs0, "fs=%#lx want %#lx", (unsigned long)arch_fs(), (unsigned long)fs0);

	int hok = 1;
	for (size_t i = 0; i < hn; i++) if (heap[i] != (unsigned char)(i * 7 + 3)) { hok = 0; break; }
	CHECK("heap", hok, "heap contents differ");
	CHECK("brk", sbrk(0) == brk0, "brk %p want %p", sbrk(0), brk0);
	unsigned char *more = sbrk(1 << 20);
	int grow = more != (void *)-1;
	if (grow) { memset(more, 0x77, 1 << 20); grow = sbrk(0) == (char *)brk0 + (1 << 20) && more[12345] == 0x77; }
	CHECK("brk-grow", grow, "sbrk could not grow the heap: %s", strerror(errno));
	void *big = malloc(8 << 20);
	CHECK("malloc", big != NULL, "malloc after restore failed");
	if (big) { memset(big, 1, 8 << 20); free(big); }

	int aok = 1;
	for (long i = 0; i < PG; i++) if (anon[i] != 0xa5 || anon[PG + i] != 0 || anon[2 * PG + i] != 0x5a) aok = 0;
	CHECK("anon", aok, "anonymous mapping differs");
	int rok = 1;
	for (long i = 0; i < PG; i++) if (ro[i] != 0x3c) rok = 0;
	CHECK("anon-ro", rok, "read-only anonymous page differs");
	mprotect(none, PG, PROT_READ);
	int nok = 1;
	for (long i = 0; i < PG; i++) if (none[i] != 0x6e) nok = 0;
	CHECK("anon-prot-none", nok, "a PROT_NONE page lost its contents");
	int shok = 1;
	for (long i = 0; i < PG; i++) if (shared[i] != 0 || shared[PG + i] != 0x53) shok = 0;
	shared[0] = 1;
	CHECK("shared-anon", shok && shared[0] == 1, "shared anonymous mapping differs");
	int fok = 1;
	for (long i = 0; i < 3 * PG; i++) {
		char want = (i >= PG && i < 2 * PG) ? 'Z' : fbuf[i];
		if (fm[i] != (unsigned char)want || fro[i] != (unsigned char)fbuf[i]) { fok = 0; break; }
	}
	CHECK("file-map", fok, "private file mapping differs");

	int sok = 1;
	for (int i = 0; i < 8192; i++) if (stackbuf[i] != (unsigned char)(i * 13 + 1)) sok = 0;
	CHECK("stack", sok, "stack contents differ");

	char cwd1[4096]; getcwd(cwd1, sizeof cwd1);
	CHECK("cwd", strcmp(cwd0, cwd1) == 0, "cwd %s want %s", cwd1, cwd0);

	off_t pos = lseek(7, 0, SEEK_CUR);
	char c = 0;
	read(7, &c, 1);
	CHECK("fd-offset", pos == 123 && c == fbuf[123], "fd 7 at %ld, read %c", (long)pos, c);
	CHECK("fd-closed", fcntl(9, F_GETFD) == -1 && errno == EBADF, "the pipe at fd 9 should be closed");
	int fl = fcntl(af, F_GETFL), fdfl = fcntl(af, F_GETFD);
	CHECK("fd-flags", (fl & O_APPEND) && (fdfl & FD_CLOEXEC) && write(af, "after\n", 6) == 6, "flags %#x fdflags %#x", fl, fdfl);

	sigset_t cur; sigprocmask(SIG_BLOCK, NULL, &cur);
	CHECK("sigmask", sigismember(&cur, SIGUSR2) && sigismember(&cur, SIGWINCH) && !sigismember(&cur, SIGUSR1), "mask differs");
	struct sigaction old;
	sigaction(SIGPIPE, NULL, &old);
	CHECK("sig-ign", old.sa_handler == SIG_IGN, "SIGPIPE not ignored");
	sigaction(SIGUSR1, NULL, &old);
	CHECK("sigaction", old.sa_sigaction == on_usr1 && (old.sa_flags & SA_RESTART) && sigismember(&old.sa_mask, SIGHUP), "handler or flags differ");
	sigaction(SIGHUP, NULL, &old);
	CHECK("sig-default", old.sa_handler == SIG_DFL, "SIGHUP is not at its default disposition");
	mode_t um = umask(0); umask(um);
	CHECK("umask", um == 027, "umask %o", (unsigned)um);
	stack_t ss1;
	sigaltstack(NULL, &ss1);
	CHECK("sigaltstack", ss1.ss_sp == altstack && ss1.ss_size == sizeof altstack && ss1.ss_flags == 0, "sp %p size %zu flags %d", ss1.ss_sp, ss1.ss_size, ss1.ss_flags);
	void *robust1 = 0, *tidaddr1 = 0; size_t rlen1 = 0;
	syscall(SYS_get_robust_list, 0, &robust1, &rlen1);
	prctl(PR_GET_TID_ADDRESS, &tidaddr1);
	CHECK("robust-list", robust1 == robust0 && rlen1 == rlen0 && robust0 != 0, "robust list %p/%zu, was %p/%zu", robust1, rlen1, robust0, rlen0);
	CHECK("tid-address", tidaddr1 == tidaddr0 && tidaddr0 != 0, "tid address %p, was %p", tidaddr1, tidaddr0);
	CHECK("personality", personality(0xffffffff) == (PER_LINUX | ADDR_NO_RANDOMIZE), "personality %#x", personality(0xffffffff));
	raise(SIGUSR1);
	CHECK("handler", got_usr1 == 1 && usr1_signo == SIGUSR1, "handler ran %d times", (int)got_usr1);

	static char cmd1[8192], env1[65536], exe1[4096], comm[64];
	ssize_t cmdn1 = slurp("/proc/self/cmdline", cmd1, sizeof cmd1);
	ssize_t envn1 = slurp("/proc/self/environ", env1, sizeof env1);
	ssize_t exen1 = readlink("/proc/self/exe", exe1, sizeof exe1);
	CHECK("cmdline", cmdn > 0 && cmdn == cmdn1 && memcmp(cmd0, cmd1, cmdn) == 0 && strcmp(argv[1], cwd0) == 0, "cmdline differs (%zd vs %zd)", cmdn, cmdn1);
	CHECK("environ", envn == envn1 && memcmp(env0, env1, envn) == 0 && getenv("VMADT_ENV") && strcmp(getenv("VMADT_ENV"), "hello") == 0, "environ differs");
	if (getenv("VMADT_SKIP_EXE")) printf("skip exe (%.*s)\n", (int)exen1, exe1); else
	CHECK("exe", exen == exen1 && memcmp(exe0, exe1, exen) == 0, "exe %.*s want %.*s", (int)exen1, exe1, (int)exen, exe0);
	ssize_t cn = slurp("/proc/self/comm", comm, sizeof comm - 1);
	comm[cn > 0 ? cn : 0] = 0;
	CHECK("comm", strcmp(comm, "vmadt-comm\n") == 0, "comm %s", comm);

	/* rseq: sched_getcpu must follow the CPU we pin ourselves to */
	cpu_set_t all; sched_getaffinity(0, sizeof all, &all);
	int rsok = 1, ncpu = 0;
	char why[256] = "";
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &all)) continue;
		cpu_set_t one; CPU_ZERO(&one); CPU_SET(cpu, &one);
		if (sched_setaffinity(0, sizeof one, &one) != 0) continue;
		ncpu++;
		int got = sched_getcpu();
		if (got != cpu) { rsok = 0; snprintf(why, sizeof why, "pinned to %d, sched_getcpu says %d", cpu, got); }
		if (&__rseq_size && __rseq_size > 0) {
			int32_t *area = (int32_t *)((char *)__builtin_thread_pointer() + __rseq_offset);
			if (area[1] != cpu) { rsok = 0; snprintf(why, sizeof why, "rseq cpu_id %d, pinned to %d", area[1], cpu); }
		}
	}
	sched_setaffinity(0, sizeof all, &all);
	CHECK("rseq", rsok, "%s (%d cpus)", why, ncpu);

	/* vDSO: where glibc expects it, and clock_gettime works */
	CHECK("vdso-addr", getauxval(AT_SYSINFO_EHDR) == vdso_in_maps(), "auxv vdso %#lx, maps %#lx", getauxval(AT_SYSINFO_EHDR), (unsigned long)vdso_in_maps());
	struct timespec a, b;
	int e1 = clock_gettime(CLOCK_MONOTONIC, &a);
	syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &b);
	double d = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	CHECK("vdso-clock", e1 == 0 && d >= 0 && d < 0.5, "clock_gettime off by %f s", d);

	printf("VERDICT %s\n", failed ? "FAIL" : "PASS");
	return failed;
}
