/* threads: a two-threaded process, which vmadump must refuse to dump. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static void *idle(void *arg) { (void)arg; for (;;) pause(); return NULL; }

int main(void) {
	pthread_t t;
	pthread_create(&t, NULL, idle, NULL);
	printf("READY %d\n", getpid());
	fflush(stdout);
	for (;;) pause();
}
