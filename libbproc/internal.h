/* internal.h: what libbproc's files share; hidden from the library's
 * users (visibility) so only the BProc API is exported. */
#ifndef BPROC_INTERNAL_H
#define BPROC_INTERNAL_H

#include <stddef.h>
#include <sys/bproc.h>

#pragma GCC visibility push(hidden)

#define PATHLEN 4096

/* A node's status line: N STATE ADDR MODE USER GROUP HOST. */
struct status_line {
	int node;
	char state[BPROC_STATE_LEN + 1];
	char addr[64];
	char host[256];
};

extern const char *bp_state_names[bproc_node_numstates];
const char *bp_mount_point(void);
int bp_tree_path(char *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int bp_mounted(void);
char *bp_read_all(const char *path);
char *bp_read_tree(const char *rel);
int bp_parse_status(const char *line, struct status_line *s);
int bp_state_number(const char *name);
int bp_resolve_node(int node);
int bp_node_status(int node, struct status_line *s);
void bp_to_sockaddr(const char *addr, struct sockaddr *sa);
int bp_node_attrs(int node, unsigned int *mode, unsigned int *user, unsigned int *group);
int bp_node_dir(char *p, int node);
int bp_ctl_write(int node, const char *line, char *reply, size_t rlen);
int bp_each_node(int (*fn)(const struct status_line *, void *), void *arg);

/* A growing string for ctl lines; err is set (ENOMEM) once a put failed. */
struct buf {
	char *s;
	size_t n, cap;
	int err;
};
void bp_put(struct buf *b, const char *s, size_t n);
void bp_puts(struct buf *b, const char *s);
void bp_word(struct buf *b, const char *w);
/* bp_exec_args ends an exec or execmove line: -e for each of envp, -a
 * argv[0], then -- CMD and the other arguments, and the newline. */
void bp_exec_args(struct buf *b, const char *cmd, char *const argv[], char *const envp[]);
int bp_threads(void);
int bp_ctl_errno(void);
int bp_setup_io(const struct bproc_io_t *io, int iolen);

#pragma GCC visibility pop
#endif
