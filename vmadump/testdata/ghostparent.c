/*
 * ghostparent: the parent of a ghost. Counts SIGCHLD (SA_NOCLDSTOP: only
 * for children that end), prints READY, then obeys lines on stdin:
 *   wait PID  waitpid(PID, WUNTRACED|WCONTINUED) until it ends, printing
 *             "STOPPED sig", "CONTINUED", then "EXITED code" or
 *             "SIGNALED sig"
 *   check     waitpid(-1, WNOHANG): prints "CHECK ret errno sigchld N"
 *   quit      exits 0
 * The test seizes it while it reads stdin and forks the ghost in it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t nchld;
static void on_chld(int sig) { (void)sig; nchld++; }

int main(void) {
	struct sigaction sa = {0};
	sa.sa_handler = on_chld;
	sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
	sigaction(SIGCHLD, &sa, NULL);
	printf("READY %d\n", (int)getpid());
	fflush(stdout);
	char line[128];
	for (;;) {
		ssize_t n = read(0, line, sizeof line - 1);
		if (n <= 0) return 2;
		line[n] = 0;
		if (strncmp(line, "wait ", 5) == 0) {
			pid_t pid = atoi(line + 5);
			for (;;) {
				int st;
				pid_t r = waitpid(pid, &st, WUNTRACED | WCONTINUED);
				if (r < 0) { printf("WAITERR %s\n", strerror(errno)); break; }
				if (WIFSTOPPED(st)) printf("STOPPED %d\n", WSTOPSIG(st));
				else if (WIFCONTINUED(st)) printf("CONTINUED\n");
				else if (WIFEXITED(st)) { printf("EXITED %d\n", WEXITSTATUS(st)); fflush(stdout); break; }
				else if (WIFSIGNALED(st)) { printf("SIGNALED %d core %d\n", WTERMSIG(st), WCOREDUMP(st) != 0); fflush(stdout); break; }
				fflush(stdout);
			}
		} else if (strncmp(line, "check", 5) == 0) {
			int st;
			errno = 0;
			pid_t r = waitpid(-1, &st, WNOHANG);
			printf("CHECK %d %d sigchld %d\n", (int)r, errno, (int)nchld);
		} else if (strncmp(line, "quit", 4) == 0) {
			return 0;
		}
		fflush(stdout);
	}
}
