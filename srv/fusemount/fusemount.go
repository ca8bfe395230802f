// Package fusemount mounts the bproc tree with FUSE on the master. It is a
// package of its own so the command-line tools, which only dial 9P or use
// the mount, do not link (and initialise) go-fuse.
package fusemount

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"weak"

	"bproc/fs/synth"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// fuseMaxIO is the largest read or write the kernel may send in one
// request; big requests are what lets a stream approach memory speed.
const fuseMaxIO = 1 << 20

// MountOptions tune a FUSE mount of the tree.
type MountOptions struct {
	AllowOther bool   // let other users use the mount (needed for /bproc)
	Debug      bool   // log every FUSE request
	Name       string // file system name shown in mount tables (default "bproc")
}

// Mounted is a live FUSE mount.
type Mounted struct {
	dir    string
	server *fuse.Server
	conn   string // fusectl connection id ("" when unknown)
}

// Mount mounts root at dir and serves it until Unmount. The kernel does
// no permission checks (no default_permissions): the tree checks every
// operation against the calling process. Nothing is cached: entries and
// attributes expire at once and files use direct I/O, so what a reader
// sees is always the live state.
func Mount(dir string, root synth.Dir, o MountOptions) (*Mounted, error) {
	if root == nil {
		return nil, errors.New("mount: no root")
	}
	name := o.Name
	if name == "" {
		name = "bproc"
	}
	// A previous bpmaster that died leaves a dead mount ("transport
	// endpoint is not connected"): detach it so we can mount again.
	if _, err := os.Stat(dir); errors.Is(err, syscall.ENOTCONN) {
		syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("mount: %w", err)
	}
	zero := time.Duration(0)
	mnt := &mount{fsType: "fuse." + name, cells: map[gofs.StableAttr]weak.Pointer[cell]{}}
	rn := &fuseNode{mnt: mnt, cell: &cell{node: root}}
	opts := &gofs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther:    o.AllowOther,
			Debug:         o.Debug,
			Name:          name,
			FsName:        name,
			DirectMount:   true, // falls back to fusermount by itself
			MaxWrite:      fuseMaxIO,
			MaxReadAhead:  fuseMaxIO,
			DisableXAttrs: true,
			// Replies come from memory; splicing them through a pipe only
			// adds a copy (and 1 MiB replies exceed the pipe size).
			DisableSplice: true,
			// Blocked stream readers each hold a request; let many wait.
			MaxBackground: 64,
		},
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
		RootStableAttr:  &gofs.StableAttr{Ino: root.Attr().Ino, Mode: syscall.S_IFDIR},
	}
	srv, err := gofs.Mount(dir, rn, opts)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	cloexecFuseFds()
	m := &Mounted{dir: dir, server: srv}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err == nil {
		// fusectl names a connection by the kernel's dev_t of the mount.
		m.conn = strconv.FormatUint(uint64(unix.Major(st.Dev))<<20|uint64(unix.Minor(st.Dev)), 10)
	}
	return m, nil
}

// cloexecFuseFds marks this process's /dev/fuse descriptors close-on-exec.
// go-fuse v2.12.1 leaves the one of a direct mount inheritable, so every
// program the master starts would hold the FUSE connection open, and the
// mount would hang instead of failing once bpmaster is gone.
func cloexecFuseFds() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == "/dev/fuse" {
			unix.CloseOnExec(fd)
		}
	}
}

// unmountGrace is how long Unmount waits for the kernel to end the
// connection before aborting it.
var unmountGrace = time.Second

// Unmount stops serving the tree and unmounts it; lazily (MNT_DETACH) if
// it is busy. A copy of the mount in another mount namespace (ip netns
// exec, unshare -m) keeps the FUSE connection alive after our unmount, so
// when the connection does not end promptly it is aborted through fusectl:
// users of such copies get ENOTCONN instead of keeping us waiting.
func (m *Mounted) Unmount() error {
	done := make(chan error, 1)
	go func() { done <- m.server.Unmount() }()
	select {
	case err := <-done:
		if err == nil {
			return nil
		}
		if derr := syscall.Unmount(m.dir, syscall.MNT_DETACH); derr != nil {
			return fmt.Errorf("unmount %s: %w (lazy unmount: %v)", m.dir, err, derr)
		}
		return m.abort()
	case <-time.After(unmountGrace):
		if err := m.abort(); err != nil {
			return err
		}
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			return fmt.Errorf("unmount %s: FUSE connection still open after abort", m.dir)
		}
	}
}

// abort ends the FUSE connection through fusectl, mounting fusectl first
// if needed.
func (m *Mounted) abort() error {
	if m.conn == "" {
		return fmt.Errorf("unmount %s: connection still in use elsewhere, and its fusectl id is unknown", m.dir)
	}
	const ctl = "/sys/fs/fuse/connections"
	p := filepath.Join(ctl, m.conn, "abort")
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		syscall.Mount("fusectl", ctl, "fusectl", 0, "")
	}
	if err := os.WriteFile(p, []byte("1"), 0); err != nil {
		return fmt.Errorf("unmount %s: aborting FUSE connection: %w", m.dir, err)
	}
	return nil
}

// Wait returns when the mount has been unmounted.
func (m *Mounted) Wait() { m.server.Wait() }

// mount is what the inodes of one mount share.
type mount struct {
	fsType string // "fuse." and the mount's name, as mountinfo shows it
	mu     sync.Mutex
	cells  map[gofs.StableAttr]weak.Pointer[cell]
}

// cell holds the tree's current object for one node. The tree may hand
// out a new object for the same node (same Ino) on every lookup, and
// go-fuse keeps one inode per Ino and type, dropping the fuseNode made
// for a lookup that finds the node known already (under another name, or
// in a race): so every fuseNode of a node shares its cell, and a lookup
// puts its object there, whichever fuseNode go-fuse then keeps.
type cell struct {
	mu   sync.Mutex
	node synth.Node
}

// cell returns the cell of st, shared while any inode holds it.
func (m *mount) cell(st gofs.StableAttr) *cell {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.cells[st].Value(); c != nil {
		return c
	}
	c := &cell{}
	m.cells[st] = weak.Make(c)
	runtime.AddCleanup(c, func(st gofs.StableAttr) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.cells[st].Value() == nil {
			delete(m.cells, st)
		}
	}, st)
	return c
}

// StableEntry is implemented by nodes whose name always leads to them,
// whoever asks (the tree's top directories): the kernel may then keep
// the name's entry (not the attributes) for stableEntryTimeout, sparing a
// lookup per path, which counts when every lookup is a round trip to the
// master (bpslave's node mount).
type StableEntry interface {
	StableEntry() bool
}

const stableEntryTimeout = time.Minute

// fuseNode is the go-fuse inode of one tree node.
type fuseNode struct {
	gofs.Inode
	mnt  *mount
	cell *cell
}

func (n *fuseNode) get() synth.Node {
	n.cell.mu.Lock()
	defer n.cell.mu.Unlock()
	return n.cell.node
}

func (c *cell) set(x synth.Node) {
	c.mu.Lock()
	c.node = x
	c.mu.Unlock()
}

var (
	_ gofs.NodeLookuper  = (*fuseNode)(nil)
	_ gofs.NodeReaddirer = (*fuseNode)(nil)
	_ gofs.NodeGetattrer = (*fuseNode)(nil)
	_ gofs.NodeSetattrer = (*fuseNode)(nil)
	_ gofs.NodeOpener    = (*fuseNode)(nil)
	_ gofs.NodeOpendirer = (*fuseNode)(nil)
	_ gofs.NodeStatfser  = (*fuseNode)(nil)
	_ gofs.FileReader    = (*fuseHandle)(nil)
	_ gofs.FileWriter    = (*fuseHandle)(nil)
	_ gofs.FileReleaser  = (*fuseHandle)(nil)
	_ gofs.FileFlusher   = (*fuseHandle)(nil)
	_ gofs.FileFsyncer   = (*fuseHandle)(nil)
	_ gofs.FileGetattrer = (*fuseHandle)(nil)
	_ gofs.FileSetattrer = (*fuseHandle)(nil)
)

// fuseCaller builds the tree's Caller for a FUSE request. Supplementary
// groups cost a /proc read, so only operations that need them ask.
func fuseCaller(ctx context.Context, groups bool) *synth.Caller {
	c := &synth.Caller{Node: -1, Uid: ^uint32(0), Gid: ^uint32(0)} // the master's mount
	if fc, ok := fuse.FromContext(ctx); ok {
		c.Pid = int(fc.Pid)
		c.Uid = fc.Uid
		c.Gid = fc.Gid
		if groups && fc.Pid != 0 {
			c.Groups = procGroups(int(fc.Pid))
		}
		if fc.Pid != 0 {
			pid, uid := int(fc.Pid), fc.Uid
			c.Env = func() ([]string, string, bool) { return procEnv(pid, uid) }
		}
	}
	return c
}

// procEnv reads the environment and working directory of pid from /proc,
// only while pid is still a process of uid: a pid reused since the
// request by another user would hand that user's environment over.
func procEnv(pid int, uid uint32) (env []string, cwd string, ok bool) {
	proc := "/proc/" + strconv.Itoa(pid)
	var st syscall.Stat_t
	if syscall.Stat(proc, &st) != nil || st.Uid != uid {
		return nil, "", false
	}
	// Either may be missing (a process exiting): the caller falls back
	// to a minimal environment, or to none for the cwd.
	if b, err := os.ReadFile(proc + "/environ"); err == nil {
		for _, kv := range strings.Split(string(b), "\x00") {
			if kv != "" {
				env = append(env, kv)
			}
		}
	}
	cwd, _ = os.Readlink(proc + "/cwd")
	return env, cwd, true
}

// procGroups reads the supplementary groups of pid from /proc: every
// open of the tree asks, so raw calls into one buffer, not an os.File
// and a bufio.Scanner (which cost six calls more, and their garbage).
func procGroups(pid int) []uint32 {
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/status", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	var small [4096]byte
	b := small[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // a long Groups line: grow
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			break
		}
		b = b[:len(b)+n]
	}
	return parseGroups(b)
}

// parseGroups reads the Groups: line of a /proc/PID/status.
func parseGroups(status []byte) []uint32 {
	i := bytes.Index(status, []byte("\nGroups:"))
	if i < 0 {
		return nil
	}
	line := status[i+len("\nGroups:"):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	var gs []uint32
	for _, w := range bytes.Fields(line) {
		if g, err := strconv.ParseUint(string(w), 10, 32); err == nil {
			gs = append(gs, uint32(g))
		}
	}
	return gs
}

func toErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	return synth.Errno(err)
}

func fillAttr(a synth.Attr, out *fuse.Attr) {
	u := a.Unix()
	out.Ino = u.Ino
	out.Mode = u.Mode
	out.Owner = fuse.Owner{Uid: u.Uid, Gid: u.Gid}
	out.Nlink = u.Nlink
	out.Size = u.Size
	out.Blksize = u.Blksize
	out.Blocks = u.Blocks
	if !u.Time.IsZero() {
		out.SetTimes(&u.Time, &u.Time, &u.Time)
	}
}

// Lookup implements gofs.NodeLookuper through synth.Dir.Lookup.
func (n *fuseNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	d, ok := n.get().(synth.Dir)
	if !ok {
		return nil, syscall.ENOTDIR
	}
	child, err := d.Lookup(fuseCaller(ctx, false), name)
	if err != nil {
		return nil, toErrno(err)
	}
	if child == nil {
		return nil, syscall.ENOENT
	}
	a := child.Attr()
	fillAttr(a, &out.Attr)
	out.SetEntryTimeout(0)
	if se, ok := child.(StableEntry); ok && se.StableEntry() {
		out.SetEntryTimeout(stableEntryTimeout)
	}
	out.SetAttrTimeout(0)
	st := gofs.StableAttr{Mode: synth.UnixType(a.Mode), Ino: a.Ino}
	c := n.mnt.cell(st)
	c.set(child)
	if old := n.GetChild(name); old != nil && old.StableAttr() == st {
		if fn, ok := old.Operations().(*fuseNode); ok && fn.cell == c {
			return old, 0
		}
	}
	return n.NewInode(ctx, &fuseNode{mnt: n.mnt, cell: c}, st), 0
}

// Opendir lets anyone list; synth.Dir.List decides what they see.
func (n *fuseNode) Opendir(ctx context.Context) syscall.Errno {
	if _, ok := n.get().(synth.Dir); !ok {
		return syscall.ENOTDIR
	}
	return 0
}

// Readdir implements gofs.NodeReaddirer from synth.Dir.List.
func (n *fuseNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	d, ok := n.get().(synth.Dir)
	if !ok {
		return nil, syscall.ENOTDIR
	}
	ents, err := d.List(fuseCaller(ctx, true))
	if err != nil {
		return nil, toErrno(err)
	}
	out := make([]fuse.DirEntry, 0, len(ents))
	for _, e := range ents {
		if e.Node == nil {
			continue
		}
		a := e.Node.Attr()
		out = append(out, fuse.DirEntry{Name: e.Name, Ino: a.Ino, Mode: synth.UnixMode(a.Mode)})
	}
	return gofs.NewListDirStream(out), 0
}

// Getattr implements gofs.NodeGetattrer.
func (n *fuseNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fillAttr(n.get().Attr(), &out.Attr)
	out.SetTimeout(0)
	return 0
}

// Setattr translates chmod, chown, truncate and utimes for synth.Setattr,
// which decides them.
func (n *fuseNode) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	node := n.get()
	var r synth.SetattrReq
	if m, ok := in.GetMode(); ok {
		p := synth.FromUnixPerm(m)
		r.Mode = &p
	}
	if u, ok := in.GetUID(); ok {
		r.Uid = &u
	}
	if g, ok := in.GetGID(); ok {
		r.Gid = &g
	}
	if sz, ok := in.GetSize(); ok {
		r.Size = &sz
	}
	r.Times = in.Valid&(fuse.FATTR_ATIME|fuse.FATTR_MTIME) != 0
	r.TimesGiven = in.Valid&fuse.FATTR_ATIME != 0 && in.Valid&fuse.FATTR_ATIME_NOW == 0 ||
		in.Valid&fuse.FATTR_MTIME != 0 && in.Valid&fuse.FATTR_MTIME_NOW == 0
	r.Open = f != nil
	if err := synth.Setattr(fuseCaller(ctx, true), node, r); err != nil {
		return toErrno(err)
	}
	fillAttr(node.Attr(), &out.Attr)
	out.SetTimeout(0)
	return 0
}

// Access implements access(2) through synth.Access (the kernel does no
// checks of its own on this mount).
func (n *fuseNode) Access(ctx context.Context, mask uint32) syscall.Errno {
	if mask&7 == 0 {
		return 0
	}
	return toErrno(synth.Access(fuseCaller(ctx, true), n.get(), mask))
}

// Statfs reports neutral figures so df and friends work.
func (n *fuseNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	out.Bsize = 4096
	out.NameLen = 255
	out.Frsize = 4096
	return 0
}

// Open implements gofs.NodeOpener through synth.Open, always with
// direct I/O: synthetic files have no meaningful size or page cache.
func (n *fuseNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	node := n.get()
	if _, isDir := node.(synth.Dir); isDir {
		return nil, 0, syscall.EISDIR // the kernel opens directories with Opendir
	}
	h, err := synth.Open(fuseCaller(ctx, true), node, int(flags))
	if err != nil {
		return nil, 0, toErrno(err)
	}
	return &fuseHandle{n: n, h: h, fsType: n.mnt.fsType}, openFlags(h, flags), 0
}

// openFlags are an open's FOPEN flags: direct I/O always, and no FLUSH on
// close(2) for a handle that holds nothing for close to act on (not a
// synth.Flusher, or opened read-only) or whose unfinished line waits for
// a read anyway (opened for reading and writing: a conversation, as
// bpsh's, ends its lines; one left unfinished runs at the last close,
// Close): a close is then no round trip, of which the one at a process's
// exit is waited for (a read of a status file, a stream's end, a launch).
func openFlags(h synth.Handle, flags uint32) uint32 {
	out := uint32(fuse.FOPEN_DIRECT_IO)
	if _, ok := h.(synth.Flusher); !ok || flags&syscall.O_ACCMODE != syscall.O_WRONLY {
		out |= fuse.FOPEN_NOFLUSH
	}
	return out
}

// fuseHandle is one open file on the mount.
type fuseHandle struct {
	n    *fuseNode
	h    synth.Handle
	once sync.Once
	// writer is the pid of the last write: only its close flushes, not
	// that of a child that merely inherited the descriptor.
	writer atomic.Uint32
	fsType string // the mount's type in mountinfo ("fuse.bproc")
}

// Read passes the request context, which FUSE_INTERRUPT cancels, so a
// reader blocked on a stream can be interrupted (Ctrl-C, timeout).
func (fh *fuseHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, errno := synth.ReadResult(fh.h.Read(ctx, dest, off))
	if errno != 0 {
		return nil, errno
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// Write returns the tree's error to the writer synchronously (direct I/O).
func (fh *fuseHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if fc, ok := fuse.FromContext(ctx); ok {
		fh.writer.Store(fc.Pid)
	}
	n, errno := synth.WriteResult(fh.h.Write(ctx, data, off))
	return uint32(n), errno
}

// Flush is called on every close(2) of a descriptor: when the process
// that last wrote closes its last descriptor of the file, a handle that
// buffers (ctl's unfinished line) acts on what it holds, and its error is
// what close(2) returns. A close of another process's (a child that
// inherited it) or of one of several (a shell's `printf ... >&3` closes
// a dup) leaves the line to go on.
func (fh *fuseHandle) Flush(ctx context.Context) syscall.Errno {
	fl, ok := fh.h.(synth.Flusher)
	if !ok || !fl.Unfinished() {
		return 0
	}
	fc, ok := fuse.FromContext(ctx)
	if !ok || fc.Pid == 0 || fc.Pid != fh.writer.Load() || holds(int(fc.Pid), fh.fsType, fh.n.StableAttr().Ino) {
		return 0
	}
	return toErrno(fl.Flush(ctx))
}

// holds reports whether process pid has a descriptor open on inode ino
// of a bproc mount (its own view of one, in whatever mount namespace it
// is): the descriptor being closed is already out of its table. A false
// yes (another bproc tree's file of that inode number) only defers an
// unfinished line to the last close.
func holds(pid int, fsType string, ino uint64) bool {
	proc := "/proc/" + strconv.Itoa(pid)
	mounts := bprocMounts(proc+"/mountinfo", fsType)
	if len(mounts) == 0 {
		return false
	}
	ents, err := os.ReadDir(proc + "/fdinfo")
	if err != nil {
		return false
	}
	want := strconv.FormatUint(ino, 10)
	for _, e := range ents {
		b, err := os.ReadFile(proc + "/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		var mnt, fino string
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "mnt_id:"); ok {
				mnt = strings.TrimSpace(v)
			} else if v, ok := strings.CutPrefix(line, "ino:"); ok {
				fino = strings.TrimSpace(v)
			}
		}
		if fino == want && mounts[mnt] {
			return true
		}
	}
	return false
}

// bprocMounts is the set of mount ids of FUSE bproc trees in a mountinfo
// file ("ID PARENT DEV ROOT POINT OPTS... - fuse.bproc SOURCE ...") whose
// type is fsType.
func bprocMounts(mountinfo, fsType string) map[string]bool {
	b, err := os.ReadFile(mountinfo)
	if err != nil {
		return nil
	}
	ids := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		_, after, ok := strings.Cut(line, " - ")
		f := strings.Fields(after)
		if ok && len(f) > 0 && f[0] == fsType {
			ids[strings.Fields(line)[0]] = true
		}
	}
	return ids
}

// Fsync: nothing is buffered.
func (fh *fuseHandle) Fsync(ctx context.Context, flags uint32) syscall.Errno { return 0 }

// Release closes the tree's handle once, when the last descriptor goes.
func (fh *fuseHandle) Release(ctx context.Context) syscall.Errno {
	var err error
	fh.once.Do(func() { err = fh.h.Close() })
	return toErrno(err)
}

// Getattr on an open file (fstat) reports the node's attributes.
func (fh *fuseHandle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return fh.n.Getattr(ctx, fh, out)
}

// Setattr on an open file (ftruncate, fchmod) goes to the node.
func (fh *fuseHandle) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return fh.n.Setattr(ctx, fh, in, out)
}
