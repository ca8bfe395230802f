package srv

import (
	"context"
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

	// io is the context of the fid's reads and writes, under mu: FSync
	// cancels it, which interrupts a read or write blocked in a stream
	// (p9's Tflush only waits for the request), and the next read gets
	// a fresh one. bpslave's node mount does this on a FUSE interrupt.
	io       context.Context
	ioCancel context.CancelFunc
}

// ioContext is the context for one read or write on the fid.
func (f *p9file) ioContext() context.Context {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.io == nil {
		f.io, f.ioCancel = context.WithCancel(f.s.ctx)
	}
	return f.io
}

// interrupt ends the reads and writes in progress on the fid.
func (f *p9file) interrupt() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ioCancel != nil {
		f.ioCancel()
		f.io, f.ioCancel = nil, nil
	}
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
	u := a.Unix()
	sec, nsec := uint64(0), uint64(0)
	if !u.Time.IsZero() {
		sec, nsec = uint64(u.Time.Unix()), uint64(u.Time.Nanosecond())
	}
	return p9.AttrMask{
			Mode: true, NLink: true, UID: true, GID: true, RDev: true,
			ATime: true, MTime: true, CTime: true, INo: true, Size: true, Blocks: true,
		}, p9.Attr{
			Mode:             p9.FileMode(u.Mode),
			UID:              p9.UID(u.Uid),
			GID:              p9.GID(u.Gid),
			NLink:            p9.NLink(u.Nlink),
			Size:             u.Size,
			BlockSize:        uint64(u.Blksize),
			Blocks:           u.Blocks,
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

// SetAttr translates chmod, chown, truncate and utimes for synth.Setattr,
// which decides them. 9P sends the truncation of an O_TRUNC open in the
// open itself, so a setattr of the size is a truncate(2).
func (f *p9file) SetAttr(valid p9.SetAttrMask, attr p9.SetAttr) error {
	var r synth.SetattrReq
	if valid.Permissions {
		m := synth.FromUnixPerm(uint32(attr.Permissions))
		r.Mode = &m
	}
	if valid.UID && attr.UID.Ok() {
		u := uint32(attr.UID)
		r.Uid = &u
	}
	if valid.GID && attr.GID.Ok() {
		g := uint32(attr.GID)
		r.Gid = &g
	}
	if valid.Size {
		sz := attr.Size
		r.Size = &sz
	}
	r.Times = valid.ATime || valid.MTime
	r.TimesGiven = valid.ATimeNotSystemTime || valid.MTimeNotSystemTime
	return errno(synth.Setattr(f.s.caller, f.node, r))
}

// Open implements p9.File.Open through synth.Open (9P2000.L's open flags
// are Linux's): directories are snapshotted for Readdir, files keep the
// tree's handle.
func (f *p9file) Open(mode p9.OpenFlags) (p9.QID, uint32, error) {
	a := f.node.Attr()
	h, err := synth.Open(f.s.caller, f.node, int(uint32(mode)))
	if err != nil {
		return p9.QID{}, 0, errno(err)
	}
	if d, ok := f.node.(synth.Dir); ok {
		ents, err := d.List(f.s.caller)
		if err != nil {
			return p9.QID{}, 0, errno(err)
		}
		f.mu.Lock()
		f.ents = ents
		f.mu.Unlock()
		return qidOf(a), 0, nil
	}
	f.mu.Lock()
	f.h = h
	f.mu.Unlock()
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
// the connection ends (the session context is cancelled) or the fid is
// fsynced (interrupt).
func (f *p9file) ReadAt(p []byte, off int64) (int, error) {
	return f.transfer(func(h synth.Handle) (int, syscall.Errno) {
		return synth.ReadResult(h.Read(f.ioContext(), p, off))
	})
}

// WriteAt implements p9.File.WriteAt; errors reach the writer as errnos.
// A short count after an error reaches srv.Client as io.ErrShortWrite,
// and the caller decides about the rest.
func (f *p9file) WriteAt(p []byte, off int64) (int, error) {
	return f.transfer(func(h synth.Handle) (int, syscall.Errno) {
		return synth.WriteResult(h.Write(f.ioContext(), p, off))
	})
}

// transfer is a read or write on the open handle: rw's count, or its
// errno (synth's policy decided which) as 9P's error.
func (f *p9file) transfer(rw func(synth.Handle) (int, syscall.Errno)) (int, error) {
	h, err := f.handle()
	if err != nil {
		return 0, err
	}
	n, e := rw(h)
	if e != 0 {
		return 0, linux.Errno(e)
	}
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
	f.interrupt() // nothing is running on the fid any more: frees the context
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

// FSync interrupts the reads and writes blocked on the fid (they return
// EINTR, having consumed nothing); nothing is cached, so there is nothing
// else to sync.
func (f *p9file) FSync() error {
	f.interrupt()
	return nil
}

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
