/*
 * sys/bproc.h: libbproc, BProc's C library, over the bproc tree.
 *
 * Every call is file operations on the tree mounted at $BPROC_MOUNT
 * (default /bproc). The default API is BProc 3.x's (Scyld); build with
 * -DBPROC_API=4 for LANL BProc 4's signatures. One library serves both:
 * the calls whose signatures differ have BProc 4 forms under bproc4_*
 * names that this header maps the public names to.
 */
#ifndef _SYS_BPROC_H
#define _SYS_BPROC_H

#include <stdint.h>
#include <sys/socket.h>

#ifndef BPROC_API
#define BPROC_API 3
#endif
#define BPROC_API_VERSION BPROC_API

/* What a move or rfork carries (vmadump's dump flags). */
#define BPROC_DUMP_LIBS  1
#define BPROC_DUMP_EXEC  2
#define BPROC_DUMP_OTHER 4
#define BPROC_DUMP_ALL   7

/* Special node numbers. */
#define BPROC_NODE_MASTER (-1)
#define BPROC_NODE_SELF   (-2)
#define BPROC_NODE_NONE   (-3)
#define BPROC_NODE_ANY    (-4)

#define BPROC_STATUS_NONE (-2)
#define BPROC_X_OK        1

/* BProc's own errno values (bproc_strerror knows them). */
#define BE_BASE        300
#define BE_INVALIDNODE (BE_BASE + 0)
#define BE_NODEDOWN    (BE_BASE + 1)
#define BE_SAMENODE    (BE_BASE + 2)
#define BE_SLAVEDIED   (BE_BASE + 3)
#define BE_INVALIDPROC (BE_BASE + 4)

/* Node states, in BProc 3's order; the tree's names are these without
 * the prefix. */
enum bproc_node_status_t {
	bproc_node_down = 0,
	bproc_node_unavailable,
	bproc_node_error,
	bproc_node_up,
	bproc_node_reboot,
	bproc_node_halt,
	bproc_node_pwroff,
	bproc_node_boot,
	bproc_node_numstates
};

#define BPROC_STATE_LEN 15

struct bproc3_node_info {
	int node;
	int status; /* enum bproc_node_status_t */
	int mode;
	unsigned int user;
	unsigned int group;
	struct sockaddr addr;
};

struct bproc4_node_info {
	int node;
	char status[BPROC_STATE_LEN + 1];
	unsigned int mode;
	unsigned int user;
	unsigned int group;
	struct sockaddr addr;
};

struct bproc4_node_set {
	int size, alloc;
	struct bproc4_node_info *node;
};

struct bproc_proc_info_t {
	int pid;
	int node;
};

struct bproc_version_t {
	char bproc_magic[3];
	uint8_t arch;
	uint32_t magic;
	char version_string[24];
};

/* I/O redirections of the _io calls. */
#define BPROC_IO_MAX_LEN   16
#define BPROC_IO_FILE      0x000
#define BPROC_IO_SOCKET    0x001
#define BPROC_IO_SEND_INFO 0x001
#define BPROC_IO_DELAY     0x002

struct bproc_io_t {
	int fd;
	short type;
	short flags;
	union {
		struct sockaddr addr;
		struct {
			int flags;
			int mode;
			long offset;
			char name[256];
		} file;
		struct {
			void *base;
			long size;
		} mem;
	} d;
};

#if BPROC_API == 4
#define bproc_node_info_t   bproc4_node_info
#define bproc_node_set_t    bproc4_node_set
#define bproc_nodestatus    bproc4_nodestatus
#define bproc_nodelist      bproc4_nodelist
#define bproc_nodesetstatus bproc4_nodesetstatus
#define _bproc_rfork_io     bproc4__rfork_io
#define _bproc_execmove_io  bproc4__execmove_io
#define BPROC_EMPTY_NODESET {0, 0, 0}
#define bproc_node_set_node(ns, nn) (&(ns)->node[(nn)])
#else
#define bproc_node_info_t bproc3_node_info
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Node information. */
int bproc_numnodes(void);
int bproc_currnode(void);
int bproc_nodeaddr(int node, struct sockaddr *s, int *size);
int bproc_getnodebyname(const char *name);
int bproc_access(int node, int mode);
int bproc_chmod(int node, int mode);
int bproc_chown(int node, int user);
int bproc_chgrp(int node, int group);

/* BProc 3 forms. */
int bproc3_nodestatus(int node);
int bproc3_nodelist(struct bproc3_node_info **list);
int bproc3_nodesetstatus(int node, int status);
/* BProc 4 forms. */
int bproc4_nodestatus(int node, char *status, int len);
int bproc4_nodelist(struct bproc4_node_set *ns);
int bproc4_nodesetstatus(int node, char *status);
int bproc_nodeinfo(int node, struct bproc4_node_info *info);
int bproc_nodeset_init(struct bproc4_node_set *ns, int size);
int bproc_nodeset_grow(struct bproc4_node_set *ns, int size);
void bproc_nodeset_free(struct bproc4_node_set *ns);
int bproc_nodeset_add(struct bproc4_node_set *ns, struct bproc4_node_info *n);
int bproc_nodeset_append(struct bproc4_node_set *a, struct bproc4_node_set *b);
int bproc_nodefilter(struct bproc4_node_set *out, struct bproc4_node_set *in, const char *str);
int bproc_nodespec(struct bproc4_node_set *ns, const char *str);

#if BPROC_API != 4
int bproc_nodestatus(int node);
int bproc_nodelist(struct bproc3_node_info **list);
int bproc_nodesetstatus(int node, int status);
#endif

/* Processes. */
int bproc_pidnode(int pid);
int bproc_proclist(int node, struct bproc_proc_info_t **list);

/* Administration. */
int bproc_nodereboot(int node);
int bproc_nodehalt(int node);
int bproc_nodepwroff(int node);
int bproc_nodereboot_async(int node);
int bproc_nodehalt_async(int node);
int bproc_nodepwroff_async(int node);

const char *bproc_strerror(int err);
int bproc_version(struct bproc_version_t *vers);
int bproc_notifier(void);

/* Remote execution and migration. The caller must be single-threaded
 * (ENOTSUP otherwise); see bproc(3) for what each call writes. */
int bproc_rexec_io(int node, struct bproc_io_t *io, int iolen, const char *cmd,
		   char *const argv[], char *const envp[]);
int bproc_rexec(int node, const char *cmd, char *const argv[], char *const envp[]);
int _bproc_move_io(int node, struct bproc_io_t *io, int iolen, int flags);
int bproc_move_io(int node, struct bproc_io_t *io, int iolen);
int _bproc_move(int node, int flags);
int bproc_move(int node);
int bproc_rfork_io(int node, struct bproc_io_t *io, int iolen);
int _bproc_rfork(int node, int flags);
int bproc_rfork(int node);
int _bproc_vrfork(int nnodes, int *nodes, int *pids, int flags);
int bproc_vrfork(int nnodes, int *nodes, int *pids);
int _bproc_vrfork_io(int nnodes, int *nodes, int *pids, struct bproc_io_t *io, int iolen, int flags);
int bproc_vrfork_io(int nnodes, int *nodes, int *pids, struct bproc_io_t *io, int iolen);
int bproc_execmove_io(int node, struct bproc_io_t *io, int iolen, const char *cmd,
		      char *const argv[], char *const envp[]);
int bproc_execmove(int node, const char *cmd, char *const argv[], char *const envp[]);
int bproc_vexecmove(int nnodes, int *nodes, int *pids, const char *cmd,
		    char *const argv[], char *const envp[]);
int bproc_vexecmove_io(int nnodes, int *nodes, int *pids, struct bproc_io_t *io, int iolen,
		       const char *cmd, char *const argv[], char *const envp[]);
/* BProc 4's _io forms (struct bproc_io_t redirections). */
int bproc4__rfork_io(int node, struct bproc_io_t *io, int iolen, int flags);
int bproc4__execmove_io(int node, struct bproc_io_t *io, int iolen, int flags,
			const char *cmd, char *const argv[], char *const envp[]);
#if BPROC_API != 4
/* BProc 3's (Scyld): port 0 keeps the I/O where it goes; otherwise the
 * process connects back to that TCP port three times for stdout, stderr
 * and stdin. */
int _bproc_rfork_io(int node, int flags, int port);
int _bproc_execmove_io(int node, int port, const char *cmd, char *const argv[], char *const envp[]);
#endif
int bproc_execve(const char *cmd, char *const argv[], char *const envp[]);

#ifdef __cplusplus
}
#endif
#endif
