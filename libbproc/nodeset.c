/*
 * BProc 4's node sets: bproc_nodelist into a set, the set helpers, and
 * bproc_nodefilter / bproc_nodespec over the words BProc 4 reads: comma
 * separated N, A-B, "all", a state ("up", "allup", "!up", "notup").
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int bproc_nodeset_init(struct bproc4_node_set *ns, int size)
{
	if (size < 0) {
		errno = EINVAL;
		return -1;
	}
	ns->size = ns->alloc = 0;
	ns->node = NULL;
	return bproc_nodeset_grow(ns, size);
}

int bproc_nodeset_grow(struct bproc4_node_set *ns, int size)
{
	if (size < 0) {
		errno = EINVAL;
		return -1;
	}
	if (size > ns->alloc) {
		struct bproc4_node_info *v = realloc(ns->node, (size_t)size * sizeof *v);
		if (!v) {
			errno = ENOMEM;
			return -1;
		}
		ns->node = v;
		ns->alloc = size;
	}
	return 0;
}

void bproc_nodeset_free(struct bproc4_node_set *ns)
{
	free(ns->node);
	ns->node = NULL;
	ns->size = ns->alloc = 0;
}

int bproc_nodeset_add(struct bproc4_node_set *ns, struct bproc4_node_info *n)
{
	if (ns->size == ns->alloc && bproc_nodeset_grow(ns, ns->alloc ? ns->alloc * 2 : 16) < 0)
		return -1;
	ns->node[ns->size++] = *n;
	return 0;
}

int bproc_nodeset_append(struct bproc4_node_set *a, struct bproc4_node_set *b)
{
	if (bproc_nodeset_grow(a, a->size + b->size) < 0)
		return -1;
	memcpy(a->node + a->size, b->node, (size_t)b->size * sizeof *b->node);
	a->size += b->size;
	return 0;
}

static int fill4(const struct status_line *s, struct bproc4_node_info *ni)
{
	memset(ni, 0, sizeof *ni);
	ni->node = s->node;
	memcpy(ni->status, s->state, sizeof ni->status);
	bp_to_sockaddr(s->addr, &ni->addr);
	return bp_node_attrs(s->node, &ni->mode, &ni->user, &ni->group);
}

static int add4(const struct status_line *s, void *arg)
{
	struct bproc4_node_info ni;
	if (fill4(s, &ni) < 0)
		return -1;
	return bproc_nodeset_add(arg, &ni);
}

int bproc4_nodelist(struct bproc4_node_set *ns)
{
	if (bproc_nodeset_init(ns, 0) < 0)
		return -1;
	if (bp_each_node(add4, ns) < 0) {
		int e = errno;
		bproc_nodeset_free(ns);
		errno = e;
		return -1;
	}
	return ns->size;
}

int bproc_nodeinfo(int node, struct bproc4_node_info *info)
{
	struct status_line s;
	if (bp_node_status(node, &s) < 0)
		return -1;
	return fill4(&s, info);
}

/* state_word: whether w (length n) names a state, with BProc 4's "all"
 * prefix and "!" or "not" for the other nodes. */
static int state_word(const char *w, size_t n, const char **state, size_t *len, int *invert)
{
	*invert = 0;
	if (n > 3 && strncmp(w, "all", 3) == 0)
		w += 3, n -= 3;
	if (n > 1 && *w == '!')
		*invert = 1, w++, n--;
	else if (n > 3 && strncmp(w, "not", 3) == 0)
		*invert = 1, w += 3, n -= 3;
	for (int i = 0; i < bproc_node_numstates; i++)
		if (strlen(bp_state_names[i]) == n && strncmp(bp_state_names[i], w, n) == 0) {
			*state = w;
			*len = n;
			return 1;
		}
	return 0;
}

static int number(const char *w, size_t n, int *v)
{
	if (n == 0 || n > 10)
		return 0;
	long x = 0;
	for (size_t i = 0; i < n; i++) {
		if (w[i] < '0' || w[i] > '9')
			return 0;
		x = x * 10 + (w[i] - '0');
	}
	if (x > 0x7fffffff)
		return 0;
	*v = (int)x;
	return 1;
}

static int add_range(struct bproc4_node_set *out, struct bproc4_node_set *in, int lo, int hi)
{
	for (int i = 0; i < in->size; i++)
		if (in->node[i].node >= lo && in->node[i].node <= hi && bproc_nodeset_add(out, &in->node[i]) < 0)
			return -1;
	return 0;
}

int bproc_nodefilter(struct bproc4_node_set *out, struct bproc4_node_set *in, const char *str)
{
	if (!out || !in || !str || bproc_nodeset_init(out, 0) < 0) {
		errno = EINVAL;
		return -1;
	}
	while (*str) {
		while (*str == ',')
			str++;
		size_t n = strcspn(str, ",");
		if (n == 0)
			break;
		const char *dash = memchr(str, '-', n), *st;
		size_t sl;
		int a, b, inv;
		int r = 0;
		if (n == 3 && strncmp(str, "all", 3) == 0) {
			r = add_range(out, in, -1, 0x7fffffff);
		} else if (number(str, n, &a)) {
			r = add_range(out, in, a, a);
		} else if (n == 2 && strncmp(str, "-1", 2) == 0) {
			r = add_range(out, in, -1, -1);
		} else if (dash && number(str, (size_t)(dash - str), &a) &&
			   number(dash + 1, n - (size_t)(dash - str) - 1, &b) && a <= b) {
			r = add_range(out, in, a, b);
		} else if (state_word(str, n, &st, &sl, &inv)) {
			for (int i = 0; i < in->size && r == 0; i++) {
				int match = strlen(in->node[i].status) == sl && strncmp(in->node[i].status, st, sl) == 0;
				if (match != inv)
					r = bproc_nodeset_add(out, &in->node[i]);
			}
		} else {
			bproc_nodeset_free(out);
			errno = EINVAL;
			return -1;
		}
		if (r < 0) {
			int e = errno;
			bproc_nodeset_free(out);
			errno = e;
			return -1;
		}
		str += n;
	}
	return 0;
}

int bproc_nodespec(struct bproc4_node_set *ns, const char *str)
{
	struct bproc4_node_set all;
	if (bproc4_nodelist(&all) < 0)
		return -1;
	int r = bproc_nodefilter(ns, &all, str);
	int e = errno;
	bproc_nodeset_free(&all);
	errno = e;
	return r;
}
