package synth

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"syscall"
	"time"
)

// The one policy both adapters apply: who may open, access and change a
// node, which open flags reach the tree, how attributes look as Unix
// attributes, and how a read's or write's result is reported. srv (9P)
// and srv/fusemount (FUSE) only translate their protocol to these calls,
// so a user sees the same errno through either.

// Access bits, as access(2) has them.
const (
	MayRead  = 4
	MayWrite = 2
	MayExec  = 1
)

// Accesser is implemented by nodes whose access is decided by more than
// their mode bits.
type Accesser interface {
	Access(c *Caller, mask uint32) error
}

// Access reports whether c may read, write or execute (mask, MayRead|...)
// n: through the node's Accesser when it has one, else from its mode bits
// with the caller's groups. Root may read and write anything, and execute
// directories and what anyone may execute.
func Access(c *Caller, n Node, mask uint32) error {
	mask &= 7
	if mask == 0 {
		return nil
	}
	if ac, ok := n.(Accesser); ok {
		return ac.Access(c, mask)
	}
	a := n.Attr()
	perm := uint32(a.Mode.Perm())
	if c.Root() {
		if mask&MayExec == 0 || perm&0o111 != 0 || a.Mode.IsDir() {
			return nil
		}
		return fmt.Errorf("not executable: %w", syscall.EACCES)
	}
	bits := perm
	switch {
	case c.Uid == a.Uid:
		bits = perm >> 6
	case c.InGroup(a.Gid):
		bits = perm >> 3
	}
	if bits&mask != mask {
		return fmt.Errorf("mode %v denies uid %d: %w", a.Mode.Perm(), c.Uid, syscall.EACCES)
	}
	return nil
}

// openFlagMask keeps the open(2) flags the tree may care about; the rest
// (O_CREAT, O_NOCTTY, O_CLOEXEC, ...) mean nothing for a synthetic node.
// 9P2000.L's open flags are Linux's, so both adapters pass theirs here.
const openFlagMask = syscall.O_ACCMODE | syscall.O_TRUNC | syscall.O_APPEND | syscall.O_NONBLOCK

// OpenFlags is what of flags reaches a File's Open.
func OpenFlags(flags int) int { return flags & openFlagMask }

// Open opens n for c with the open(2) flags flags. A directory opens only
// for reading and returns a nil Handle (the adapter lists it itself); a
// file opens through its Open, which checks permission.
func Open(c *Caller, n Node, flags int) (Handle, error) {
	flags = OpenFlags(flags)
	switch f := n.(type) {
	case Dir:
		if flags&syscall.O_ACCMODE != syscall.O_RDONLY {
			return nil, fmt.Errorf("a directory opens only for reading: %w", syscall.EISDIR)
		}
		return nil, nil
	case File:
		h, err := f.Open(c, flags)
		if err != nil {
			return nil, err
		}
		if h == nil {
			return nil, fmt.Errorf("open returned no handle: %w", syscall.EIO)
		}
		return h, nil
	}
	return nil, fmt.Errorf("neither file nor directory: %w", syscall.EINVAL)
}

// SetattrReq is one setattr (chmod, chown, truncate, utimes) as either
// protocol carries it. A nil pointer means "unchanged".
type SetattrReq struct {
	Mode     *iofs.FileMode
	Uid, Gid *uint32
	Size     *uint64
	// Times is set when atime or mtime is to change; TimesGiven when to
	// values the caller gives (utimes, touch -d) rather than to now (touch).
	Times, TimesGiven bool
	// Open is set when the request comes through an open file (ftruncate,
	// the truncation of an O_TRUNC open): the open checked access already.
	Open bool
}

// Setattr applies r to n for c. Synthetic files have no size and no
// stored times, so:
//   - truncating to 0 (`echo x > file`, O_TRUNC) is a no-op for whoever
//     may write the file; other sizes are refused (EPERM), directories
//     are not truncated (EISDIR);
//   - changing times (touch) is a no-op, allowed as utimensat(2) allows
//     it: to given times for the owner and root, to now also for whoever
//     may write; others get EPERM or EACCES;
//   - chmod, chown and chgrp go to the node's Setattrer, and are refused
//     (EPERM) on nodes without one.
func Setattr(c *Caller, n Node, r SetattrReq) error {
	a := n.Attr()
	owner := c.Root() || c.Uid == a.Uid
	if r.Size != nil {
		switch {
		case a.Mode.IsDir():
			return fmt.Errorf("truncate a directory: %w", syscall.EISDIR)
		case *r.Size != 0:
			return fmt.Errorf("synthetic files have no size to set: %w", syscall.EPERM)
		case !r.Open:
			if err := Access(c, n, MayWrite); err != nil {
				return fmt.Errorf("truncate: %w", err)
			}
		}
	}
	if r.Times && !owner {
		if r.TimesGiven {
			return fmt.Errorf("only the owner may set times: %w", syscall.EPERM)
		}
		if err := Access(c, n, MayWrite); err != nil {
			return fmt.Errorf("touch: %w", err)
		}
	}
	if r.Mode == nil && r.Uid == nil && r.Gid == nil {
		return nil
	}
	sa, ok := n.(Setattrer)
	if !ok {
		return fmt.Errorf("mode and owner of this node are fixed: %w", syscall.EPERM)
	}
	return sa.Setattr(c, r.Mode, r.Uid, r.Gid)
}

// UnixAttr is a node's attributes as stat(2) reports them.
type UnixAttr struct {
	Ino     uint64
	Mode    uint32 // st_mode, type and permission bits
	Nlink   uint32
	Uid     uint32
	Gid     uint32
	Size    uint64
	Blksize uint32
	Blocks  uint64    // 512-byte blocks
	Time    time.Time // atime, mtime and ctime alike; zero when unknown
}

// Unix returns a's stat(2) attributes.
func (a Attr) Unix() UnixAttr {
	u := UnixAttr{Ino: a.Ino, Mode: UnixMode(a.Mode), Nlink: 1, Uid: a.Uid, Gid: a.Gid, Blksize: 4096, Time: a.Mtime}
	if a.Mode.IsDir() {
		u.Nlink = 2
	}
	if a.Size > 0 {
		u.Size = uint64(a.Size)
	}
	u.Blocks = (u.Size + 511) / 512
	return u
}

// ReadResult is the rule for reporting a Handle's Read: data first (a
// lasting error shows up on the next read), end of file as a 0-byte
// read, other errors as their errno.
func ReadResult(n int, err error) (int, syscall.Errno) {
	if n > 0 || err == nil || errors.Is(err, io.EOF) {
		return n, 0
	}
	return 0, Errno(err)
}

// WriteResult is the rule for reporting a Handle's Write: bytes taken are
// reported even if an error followed (an interrupt), so the writer
// retries only the rest and nothing is written twice; an error with
// nothing taken is the write's errno.
func WriteResult(n int, err error) (int, syscall.Errno) {
	if err != nil && n == 0 {
		return 0, Errno(err)
	}
	return n, 0
}
