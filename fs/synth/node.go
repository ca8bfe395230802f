// Package synth is the toolkit of synthetic file trees, independent of
// the protocol that serves them: nodes and handles computed from live state
// (Node, Dir, File, Handle), small templates for them, bounded byte
// streams and rings, ctl files run from typed command tables, the ctl line
// rules, and an in-process opener (Local). srv adapts such a tree to
// 9P2000.L (for slaves and remote tools) and srv/fusemount to FUSE (the
// /bproc mount on the master); pspace builds bproc's tree from it.
package synth

import (
	"context"
	"errors"
	"io/fs"
	"sync/atomic"
	"syscall"
	"time"
)

// NoNode marks a Caller that does not speak for a compute node.
const NoNode = -2

// Caller is who performs an operation. FUSE fills it from the request
// (pid, uid, gid of the calling process); 9P from the attach (uid, gid; pid 0).
type Caller struct {
	Pid int // 0 when unknown (9P)
	// Node is where the calling process runs, and Pid its pid there: -1
	// (the master) for the master's FUSE mount, N for a request from node
	// N's mount, NodeUnknown for other 9P clients. A zero Caller is on
	// node 0: makers of Callers set it.
	Node   int
	Uid    uint32   // effective uid
	Gid    uint32   // effective gid
	Groups []uint32 // supplementary groups, when known
	// Slave is set on 9P connections whose handshake claimed the bpslave
	// role; Addr is the peer's IP address and Host the hostname it sent.
	Slave bool
	Addr  string
	Host  string
	// LocalAddr is the master's own address on the caller's connection
	// (9P): what the nodes know the master by.
	LocalAddr string
	// Conn is done when the 9P connection ends (nil for FUSE callers), so
	// the tree can notice a slave going away at once.
	Conn context.Context
	// Env, when set, returns the calling process's environment and
	// working directory; ok is false when they are unknown. The FUSE
	// adapter fills it (read from /proc only when called: most requests
	// never need them); 9P callers have none.
	Env func() (env []string, cwd string, ok bool)
}

// NodeUnknown is Caller.Node for a caller whose process is not known to
// run anywhere in the cluster (BProc's BPROC_NODE_NONE).
const NodeUnknown = -3

// Root reports whether the caller is the superuser.
func (c *Caller) Root() bool { return c.Uid == 0 }

// InGroup reports whether gid is the caller's primary or a supplementary group.
func (c *Caller) InGroup(gid uint32) bool {
	if c.Gid == gid {
		return true
	}
	for _, g := range c.Groups {
		if g == gid {
			return true
		}
	}
	return false
}

// Attr describes a node. Mode carries both type bits (fs.ModeDir) and
// permission bits, as io/fs does.
type Attr struct {
	Ino   uint64 // stable for the node's lifetime; used for QIDs and inode numbers
	Mode  fs.FileMode
	Uid   uint32
	Gid   uint32
	Size  int64 // 0 for streams and synthetic files of unknown size
	Mtime time.Time
}

// Node is anything in the tree.
type Node interface {
	Attr() Attr
}

// Dirent is one directory entry.
type Dirent struct {
	Name string
	Node Node
}

// Dir is a directory whose entries may be computed from live state on every
// call. Lookup returns an error wrapping syscall.ENOENT for missing names.
type Dir interface {
	Node
	Lookup(c *Caller, name string) (Node, error)
	List(c *Caller) ([]Dirent, error)
}

// File is a leaf that can be opened. flags are os.O_* flags. Open checks
// permission for c and returns a Handle carrying per-open state (a ctl
// file remembers the last result there; a stream keeps its cursor).
type File interface {
	Node
	Open(c *Caller, flags int) (Handle, error)
}

// Handle is one open file. Reads and writes may block (streams); they must
// return when ctx is done (FUSE interrupt, 9P connection closed) with an
// error wrapping syscall.EINTR. A Read returning (0, io.EOF) means end of file.
// Synthetic files are served with direct I/O, so off may be ignored by
// streams. Close is called once, when the last reference goes away.
type Handle interface {
	Read(ctx context.Context, p []byte, off int64) (int, error)
	Write(ctx context.Context, p []byte, off int64) (int, error)
	Close() error
}

// Flusher is implemented by handles that buffer writes: FUSE calls Flush,
// while Unfinished, when the process that wrote closes its last
// descriptor, and the error is what its close(2) returns.
type Flusher interface {
	Unfinished() bool
	Flush(ctx context.Context) error
}

// Setattrer is implemented by nodes that accept chmod/chown/chgrp.
// A nil pointer means "unchanged". Adapters call it through Setattr,
// which decides truncation and times.
type Setattrer interface {
	Setattr(c *Caller, mode *fs.FileMode, uid, gid *uint32) error
}

// Errno extracts the errno to report to a client: the first syscall.Errno
// wrapped in err, EIO for other errors, 0 for nil.
func Errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}

var inoCounter atomic.Uint64

// NewIno returns a fresh inode number for a new node.
func NewIno() uint64 { return inoCounter.Add(1) + 1 }
