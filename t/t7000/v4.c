/* A program written for LANL BProc 4: bproc_nodestatus into a buffer,
 * node sets, bproc_nodespec and bproc_nodefilter. */
#define _POSIX_C_SOURCE 200809L
#include <sys/bproc.h>

#include <stdio.h>

#if BPROC_API_VERSION < 4
#error "BPROC_API=4 gives BProc 4's API"
#endif

static void show(const char *what, struct bproc_node_set_t *ns)
{
	printf("%s:", what);
	for (int i = 0; i < ns->size; i++)
		printf(" %d", bproc_node_set_node(ns, i)->node);
	printf("\n");
}

int main(void)
{
	char status[BPROC_STATE_LEN + 1];
	struct bproc_node_set_t all = BPROC_EMPTY_NODESET, ns = BPROC_EMPTY_NODESET;
	printf("api %d\n", BPROC_API_VERSION);
	for (int n = 0; n <= 2; n += 2) {
		if (bproc_nodestatus(n, status, sizeof status) < 0)
			return 1;
		printf("%d %s\n", n, status);
	}
	if (bproc_nodespec(&ns, "allup") < 0)
		return 1;
	show("up", &ns);
	bproc_nodeset_free(&ns);
	if (bproc_nodespec(&ns, "!up") < 0)
		return 1;
	show("not up", &ns);
	bproc_nodeset_free(&ns);
	if (bproc_nodelist(&all) < 0 || bproc_nodefilter(&ns, &all, "0-1") < 0)
		return 1;
	show("0-1", &ns);
	bproc_nodeset_free(&ns);
	bproc_nodeset_free(&all);
	printf("bad: %d\n", bproc_nodespec(&ns, "bogus"));
	return 0;
}
