package srv

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"

	"bproc/fs/synth"

	"github.com/hugelgupf/p9/fsimpl/templatefs"
	"github.com/hugelgupf/p9/linux"
	"github.com/hugelgupf/p9/p9"
)

// session is what every file of one 9P connection shares.
type session struct {
	caller *synth.Caller   // read-only after the handshake
	ctx    context.Context // done when the connection ends
}

// attacher hands out the root of the tree to one connection.
type attacher struct {
	s    *session
	root synth.Dir
}

func (a *attacher) Attach() (p9.File, error) {
	return &p9file{s: a.s, node: a.root}, nil
}

// p9file adapts one synth.Node, reached through one fid, to p9.File.
type p9file struct {
	templatefs.XattrUnimplemented
	templatefs.NotLockable
	templatefs.NoopRenamed

	s    *session
	node synth.Node

	mu   sync.Mutex
	h    synth.Handle   // set by Open on files
	ents []synth.Dirent // directory snapshot for Readdir
}

var _ p9.File = (*p9file)(nil)

// errno converts a tree error for the wire.
func errno(err error) error {
	if err == nil {
		return nil
	}
	return linux.Errno(synth.Errno(err))
}

func qidOf(a synth.Attr) p9.QID {
	return p9.QID{Type: p9Mode(a.Mode).QIDType(), Path: a.Ino}
}

func attrOf(a synth.Attr) (p9.AttrMask, p9.Attr) {
	nlink := p9.NLink(1)
	if a.Mode.IsDir() {
		nlink = 2
	}
	sec, nsec := uint64(0), uint64(0)
	if !a.Mtime.IsZero() {
		sec, nsec = uint64(a.Mtime.Unix()), uint64(a.Mtime.Nanosecond())
	}
	size := uint64(0)
	if a.Size > 0 {
		size = uint64(a.Size)
	}
	return p9.AttrMask{
			Mode: true, NLink: true, UID: true, GID: true, RDev: true,
			ATime: true, MTime: true, CTime: true, INo: true, Size: true, Blocks: true,
		}, p9.Attr{
			Mode:             p9Mode(a.Mode),
			UID:              p9.UID(a.Uid),
			GID:              p9.GID(a.Gid),
			NLink:            nlink,
			Size:             size,
			BlockSize:        4096,
			Blocks:           (size + 511) / 512,
			ATimeSeconds:     sec,
			ATimeNanoSeconds: nsec,
			MTimeSeconds:     sec,
			MTimeNanoSeconds: nsec,
			CTimeSeconds:     sec,
			CTimeNanoSeconds: nsec,
		}
}

func (f *p9file) walk(names []string) (synth.Node, error) {
	switch len(names) {
	case 0:
		return f.node, nil
	case 1:
		d, ok := f.node.(synth.Dir)
		if !ok {
			return nil, linux.ENOTDIR
		}
		n, err := d.Lookup(f.s.caller, names[0])
		if err != nil {
			return nil, errno(err)
		}
		if n == nil {
			return nil, linux.ENOENT
		}
		return n, nil
	}
	// The p9 server always walks one element at a time.
	return nil, linux.EINVAL
}

// Walk implements p9.File.Walk through synth.Dir.Lookup.
func (f *p9file) Walk(names []string) ([]p9.QID, p9.File, error) {
	n, err := f.walk(names)
	if err != nil {
		return nil, nil, err
	}
	nf := &p9file{s: f.s, node: n}
	if len(names) == 0 {
		return nil, nf, nil
	}
	return []p9.QID{qidOf(n.Attr())}, nf, nil
}

// WalkGetAttr implements p9.File.WalkGetAttr, computing Attr once.
func (f *p9file) WalkGetAttr(names []string) ([]p9.QID, p9.File, p9.AttrMask, p9.Attr, error) {
	n, err := f.walk(names)
	if err != nil {
		return nil, nil, p9.AttrMask{}, p9.Attr{}, err
	}
	a := n.Attr()
	mask, attr := attrOf(a)
	var qids []p9.QID
	if len(names) > 0 {
		qids = []p9.QID{qidOf(a)}
	}
	return qids, &p9file{s: f.s, node: n}, mask, attr, nil
}

// GetAttr implements p9.File.GetAttr.
func (f *p9file) GetAttr(req p9.AttrMask) (p9.QID, p9.AttrMask, p9.Attr, error) {
	a := f.node.Attr()
	mask, attr := attrOf(a)
	return qidOf(a), mask, attr, nil
}

// SetAttr implements chmod/chown/chgrp through synth.Setattrer. Truncation
// to zero is accepted and ignored (an O_TRUNC open of a synthetic file);
// anything else is refused.
func (f *p9file) SetAttr(valid p9.SetAttrMask, attr p9.SetAttr) error {
	if valid.ATime || valid.MTime || valid.ATimeNotSystemTime || valid.MTimeNotSystemTime {
		return linux.EPERM
	}
	if valid.Size && attr.Size != 0 {
		return linux.EPERM
	}
	if !valid.Permissions && !valid.UID && !valid.GID {
		return nil
	}
	sa, ok := f.node.(synth.Setattrer)
	if !ok {
		return linux.EPERM
	}
	var mode *os.FileMode
	var uid, gid *uint32
	if valid.Permissions {
		m := synth.FromUnixPerm(uint32(attr.Permissions))
		mode = &m
	}
	if valid.UID && attr.UID.Ok() {
		u := uint32(attr.UID)
		uid = &u
	}
	if valid.GID && attr.GID.Ok() {
		g := uint32(attr.GID)
		gid = &g
	}
	if mode == nil && uid == nil && gid == nil {
		return nil
	}
	return errno(sa.Setattr(f.s.caller, mode, uid, gid))
}

// openFlags translates 9P2000.L open flags (Linux values) to os.O_* flags.
func openFlags(o p9.OpenFlags) int {
	const pass = syscall.O_ACCMODE | syscall.O_TRUNC | syscall.O_APPEND | syscall.O_NONBLOCK
	return int(uint32(o)) & pass
}

// Open implements p9.File.Open: directories are snapshotted for Readdir,
// files are opened through synth.File.Open with the connection's Caller.
func (f *p9file) Open(mode p9.OpenFlags) (p9.QID, uint32, error) {
	a := f.node.Attr()
	switch n := f.node.(type) {
	case synth.Dir:
		ents, err := n.List(f.s.caller)
		if err != nil {
			return p9.QID{}, 0, errno(err)
		}
		f.mu.Lock()
		f.ents = ents
		f.mu.Unlock()
	case synth.File:
		h, err := n.Open(f.s.caller, openFlags(mode))
		if err != nil {
			return p9.QID{}, 0, errno(err)
		}
		if h == nil {
			return p9.QID{}, 0, linux.EIO
		}
		f.mu.Lock()
		f.h = h
		f.mu.Unlock()
	default:
		return p9.QID{}, 0, linux.EINVAL
	}
	return qidOf(a), 0, nil
}

func (f *p9file) handle() (synth.Handle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.h == nil {
		if _, ok := f.node.(synth.Dir); ok {
			return nil, linux.EISDIR
		}
		return nil, linux.EBADF
	}
	return f.h, nil
}

// ReadAt implements p9.File.ReadAt. A read blocked in a stream returns when
// the connection ends (the session context is cancelled).
func (f *p9file) ReadAt(p []byte, off int64) (int, error) {
	h, err := f.handle()
	if err != nil {
		return 0, err
	}
	n, err := h.Read(f.s.ctx, p, off)
	if n > 0 || err == nil || errors.Is(err, io.EOF) {
		// Data first; a lasting error shows up on the next read.
		return n, nil
	}
	return 0, errno(err)
}

// WriteAt implements p9.File.WriteAt; errors reach the writer as errnos.
func (f *p9file) WriteAt(p []byte, off int64) (int, error) {
	h, err := f.handle()
	if err != nil {
		return 0, err
	}
	n, err := h.Write(f.s.ctx, p, off)
	if err != nil && n == 0 {
		return 0, errno(err)
	}
	// Bytes taken are reported even if an error followed, so nothing is
	// written twice: srv.Client returns the short count with
	// io.ErrShortWrite, and the caller decides about the rest.
	return n, nil
}

// Readdir implements p9.File.Readdir from the snapshot taken at Open,
// refreshed whenever a listing restarts at offset 0. Entries beyond what
// fits in count are dropped by the encoder; the client resumes from the
// last offset it received.
func (f *p9file) Readdir(offset uint64, count uint32) (p9.Dirents, error) {
	d, ok := f.node.(synth.Dir)
	if !ok {
		return nil, linux.ENOTDIR
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if offset == 0 || f.ents == nil {
		ents, err := d.List(f.s.caller)
		if err != nil {
			return nil, errno(err)
		}
		f.ents = ents
	}
	var out p9.Dirents
	budget := int(count)
	for i := offset; i < uint64(len(f.ents)) && budget > 0; i++ {
		e := f.ents[i]
		if e.Node == nil {
			continue
		}
		q := qidOf(e.Node.Attr())
		out = append(out, p9.Dirent{QID: q, Offset: i + 1, Type: q.Type, Name: e.Name})
		budget -= 24 + len(e.Name) // encoded size of one entry
	}
	return out, nil
}

// Close implements p9.File.Close: it runs once the fid is clunked and no
// request uses it any more.
func (f *p9file) Close() error {
	f.mu.Lock()
	h := f.h
	f.h = nil
	f.ents = nil
	f.mu.Unlock()
	if h != nil {
		return errno(h.Close())
	}
	return nil
}

// StatFS implements p9.File.StatFS with neutral figures.
func (f *p9file) StatFS() (p9.FSStat, error) {
	return p9.FSStat{Type: 0x01021997, BlockSize: 4096, NameLength: 255}, nil
}

// FSync is a no-op: nothing is cached.
func (f *p9file) FSync() error { return nil }

// Readlink: there are no symlinks in the tree.
func (f *p9file) Readlink() (string, error) { return "", linux.EINVAL }

// The tree's shape is decided by the server: nothing can be created,
// linked, renamed or removed by clients.

func (f *p9file) Create(string, p9.OpenFlags, p9.FileMode, p9.UID, p9.GID) (p9.File, p9.QID, uint32, error) {
	return nil, p9.QID{}, 0, linux.EPERM
}
func (f *p9file) Mkdir(string, p9.FileMode, p9.UID, p9.GID) (p9.QID, error) {
	return p9.QID{}, linux.EPERM
}
func (f *p9file) Symlink(string, string, p9.UID, p9.GID) (p9.QID, error) {
	return p9.QID{}, linux.EPERM
}
func (f *p9file) Link(p9.File, string) error { return linux.EPERM }
func (f *p9file) Mknod(string, p9.FileMode, uint32, uint32, p9.UID, p9.GID) (p9.QID, error) {
	return p9.QID{}, linux.EPERM
}
func (f *p9file) Rename(p9.File, string) error           { return linux.EPERM }
func (f *p9file) RenameAt(string, p9.File, string) error { return linux.EPERM }
func (f *p9file) UnlinkAt(string, uint32) error          { return linux.EPERM }
