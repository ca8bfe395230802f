package srv

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"bproc/fs/synth"

	"github.com/hugelgupf/p9/linux"
	"github.com/hugelgupf/p9/p9"
)

// RemoteTree is the master's public tree, reached over a slave's 9P
// connection, as a synth.Dir whose every operation runs on the master as
// its caller: each request walks from slave/as/SLOT/ (see
// fs/pspace/as.go), SLOT standing for the caller's uid, gid, groups and
// pid (and, for opens, its working directory). bpslave mounts it with
// srv/fusemount, so the FUSE caller the node's kernel reports is who the
// master sees; the master adds the node's number from the connection.
// Only a slave connection (RoleSlave, registered) may do this.
//
// Attributes are those of the last lookup; nothing else is cached.
func (c *Client) RemoteTree() synth.Dir {
	t := &remoteTree{c: c, byID: map[string]*asSlot{}}
	t.cond = sync.NewCond(&t.mu)
	return &remoteDir{remoteNode{t: t, attr: synth.Attr{Mode: iofs.ModeDir | 0o555, Ino: 1}}}
}

// asSlots is how many identities the master keeps per slave connection
// (fs/pspace's asSlots).
const asSlots = 256

type remoteTree struct {
	c *Client

	// The slots: which identity each stands for on the master. A slot is
	// set again (for the least recently used identity) only while no walk
	// through it is in flight.
	mu    sync.Mutex
	cond  *sync.Cond
	byID  map[string]*asSlot
	slots []*asSlot
	tick  uint64

	setMu sync.Mutex
	set   p9.File // slave/as/set, open for writing; nil until needed
}

type asSlot struct {
	n     int
	id    string
	busy  int  // walks in flight, and a set being written
	ready bool // the master has the identity
	last  uint64
}

// acquire returns the slot standing for id, setting one on the master
// if needed; the caller releases it once its walk has returned.
func (t *remoteTree) acquire(id string) (*asSlot, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		if s := t.byID[id]; s != nil {
			if s.ready {
				s.busy++
				return s, nil
			}
			t.cond.Wait() // being set by another request
			continue
		}
		s := t.idleSlot()
		if s == nil {
			t.cond.Wait()
			continue
		}
		if s.id != "" {
			delete(t.byID, s.id)
		}
		s.id, s.ready, s.busy = id, false, 1
		t.byID[id] = s
		t.mu.Unlock()
		err := t.setSlot(s.n, id)
		t.mu.Lock()
		if err != nil {
			delete(t.byID, id)
			s.id, s.busy = "", 0
			t.cond.Broadcast()
			return nil, err
		}
		s.ready = true
		t.cond.Broadcast()
		return s, nil
	}
}

// idleSlot is a new slot while there are fewer than asSlots, else the
// least recently used one nobody walks through; nil when all are busy.
func (t *remoteTree) idleSlot() *asSlot {
	if len(t.slots) < asSlots {
		s := &asSlot{n: len(t.slots)}
		t.slots = append(t.slots, s)
		return s
	}
	var best *asSlot
	for _, s := range t.slots {
		if s.busy == 0 && (best == nil || s.last < best.last) {
			best = s
		}
	}
	return best
}

func (t *remoteTree) release(s *asSlot) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s.busy--
	t.tick++
	s.last = t.tick
	if s.busy == 0 {
		t.cond.Broadcast()
	}
}

// setSlot tells the master whom slot n stands for, on slave/as/set
// (opened once).
func (t *remoteTree) setSlot(n int, id string) error {
	t.setMu.Lock()
	defer t.setMu.Unlock()
	if t.set == nil {
		_, f, err := t.c.root.Walk([]string{"slave", "as", "set"})
		if err != nil {
			return t.err([]string{"slave/as/set"}, err)
		}
		if _, _, err := f.Open(p9.WriteOnly); err != nil {
			go f.Close()
			return t.err([]string{"slave/as/set"}, err)
		}
		t.set = f
	}
	line := []byte(strconv.Itoa(n) + " " + id + "\n")
	if _, err := t.set.WriteAt(line, 0); err != nil {
		return t.err([]string{"slave/as/set"}, err)
	}
	return nil
}

// asName is the identity a slot is set to for c (fs/pspace parses it);
// cwd only when asked for (opens: exec resolves relative paths against it).
func asName(c *synth.Caller, withCwd bool) string {
	var b strings.Builder
	b.WriteString(strconv.FormatUint(uint64(c.Uid), 10))
	b.WriteByte('.')
	b.WriteString(strconv.FormatUint(uint64(c.Gid), 10))
	b.WriteByte('.')
	for i, g := range c.Groups {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(g), 10))
	}
	b.WriteByte('.')
	b.WriteString(strconv.Itoa(max(c.Pid, 0)))
	if withCwd && c.Env != nil {
		if _, cwd, ok := c.Env(); ok && strings.HasPrefix(cwd, "/") && len(cwd) <= 4096 && !strings.ContainsRune(cwd, 0) {
			b.WriteByte('.')
			b.WriteString(hex.EncodeToString([]byte(cwd)))
		}
	}
	return b.String()
}

// walk walks to path as c and returns the fid and its attributes.
func (t *remoteTree) walk(c *synth.Caller, path []string, withCwd bool) (p9.File, synth.Attr, error) {
	slot, err := t.acquire(asName(c, withCwd))
	if err != nil {
		return nil, synth.Attr{}, err
	}
	names := make([]string, 0, 3+len(path))
	names = append(append(names, "slave", "as", strconv.Itoa(slot.n)), path...)
	qids, f, _, a, err := t.c.root.WalkGetAttr(names)
	t.release(slot)
	if err != nil {
		return nil, synth.Attr{}, t.err(path, err)
	}
	if len(qids) != len(names) {
		go f.Close()
		return nil, synth.Attr{}, fmt.Errorf("%s: %w", strings.Join(path, "/"), syscall.ENOENT)
	}
	return f, remoteAttr(qids[len(qids)-1].Path, a), nil
}

// err gives the master's errno; a lost connection is ENOTCONN.
func (t *remoteTree) err(path []string, err error) error {
	var le linux.Errno
	if errors.As(err, &le) {
		return fmt.Errorf("%s: %w", strings.Join(path, "/"), syscall.Errno(le))
	}
	return fmt.Errorf("%s: %w (%w)", strings.Join(path, "/"), syscall.ENOTCONN, err)
}

func remoteAttr(ino uint64, a p9.Attr) synth.Attr {
	return synth.Attr{
		Ino:   ino,
		Mode:  synth.FromUnixMode(uint32(a.Mode)),
		Uid:   uint32(a.UID),
		Gid:   uint32(a.GID),
		Size:  int64(a.Size),
		Mtime: timeOf(a),
	}
}

func timeOf(a p9.Attr) time.Time {
	if a.MTimeSeconds == 0 && a.MTimeNanoSeconds == 0 {
		return time.Time{}
	}
	return time.Unix(int64(a.MTimeSeconds), int64(a.MTimeNanoSeconds))
}

// remoteNode is one node of the master's tree at path.
type remoteNode struct {
	t    *remoteTree
	path []string
	mu   sync.Mutex
	attr synth.Attr
}

func (n *remoteNode) Attr() synth.Attr {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.attr
}

func (n *remoteNode) child(name string, a synth.Attr) synth.Node {
	p := append(append(make([]string, 0, len(n.path)+1), n.path...), name)
	if a.Mode.IsDir() {
		return &remoteDir{remoteNode{t: n.t, path: p, attr: a}}
	}
	return &remoteFile{remoteNode{t: n.t, path: p, attr: a}}
}

// Setattr sends chmod, chown and chgrp to the master, which decides.
func (n *remoteNode) Setattr(c *synth.Caller, mode *iofs.FileMode, uid, gid *uint32) error {
	f, _, err := n.t.walk(c, n.path, false)
	if err != nil {
		return err
	}
	defer f.Close()
	var valid p9.SetAttrMask
	attr := p9.SetAttr{UID: p9.NoUID, GID: p9.NoGID}
	if mode != nil {
		valid.Permissions, attr.Permissions = true, p9.FileMode(synth.UnixPerm(*mode))
	}
	if uid != nil {
		valid.UID, attr.UID = true, p9.UID(*uid)
	}
	if gid != nil {
		valid.GID, attr.GID = true, p9.GID(*gid)
	}
	if err := f.SetAttr(valid, attr); err != nil {
		return n.t.err(n.path, err)
	}
	// The adapter reports the attributes after the change.
	if _, _, a, err := f.GetAttr(p9.AttrMaskAll); err == nil {
		n.mu.Lock()
		n.attr = remoteAttr(n.attr.Ino, a)
		n.mu.Unlock()
	}
	return nil
}

type remoteDir struct{ remoteNode }

// StableEntry: the master's top directories (node/, proc/) are always
// there for everyone, so the node's kernel may keep their entries
// (fusemount.StableEntry); everything below is looked up every time.
func (d *remoteDir) StableEntry() bool { return len(d.path) == 1 }

// Lookup is one walk (with its attributes); the fid is clunked in the
// background, off the request's path.
func (d *remoteDir) Lookup(c *synth.Caller, name string) (synth.Node, error) {
	p := append(append(make([]string, 0, len(d.path)+1), d.path...), name)
	f, a, err := d.t.walk(c, p, false)
	if err != nil {
		return nil, err
	}
	go f.Close()
	return d.child(name, a), nil
}

func (d *remoteDir) List(c *synth.Caller) ([]synth.Dirent, error) {
	f, _, err := d.t.walk(c, d.path, false)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, _, err := f.Open(p9.ReadOnly); err != nil {
		return nil, d.t.err(d.path, err)
	}
	var out []synth.Dirent
	off := uint64(0)
	for {
		ents, err := f.Readdir(off, d.t.c.msize-64)
		if err != nil {
			return nil, d.t.err(d.path, err)
		}
		if len(ents) == 0 {
			return out, nil
		}
		for _, e := range ents {
			mode := iofs.FileMode(0o444)
			if e.Type == p9.TypeDir {
				mode = iofs.ModeDir | 0o555
			}
			out = append(out, synth.Dirent{Name: e.Name, Node: d.child(e.Name, synth.Attr{Ino: e.QID.Path, Mode: mode})})
			off = e.Offset
		}
	}
}

type remoteFile struct{ remoteNode }

// Open opens the file on the master as c, with c's working directory
// (an exec written to a ctl file resolves relative paths against it).
func (rf *remoteFile) Open(c *synth.Caller, flags int) (synth.Handle, error) {
	f, _, err := rf.t.walk(c, rf.path, true)
	if err != nil {
		return nil, err
	}
	if _, _, err := f.Open(p9.OpenFlags(synth.OpenFlags(flags))); err != nil {
		go f.Close()
		return nil, rf.t.err(rf.path, err)
	}
	return &remoteHandle{t: rf.t, path: rf.path, f: f}, nil
}

// remoteHandle is a file open on the master.
type remoteHandle struct {
	t    *remoteTree
	path []string
	f    p9.File
}

func (h *remoteHandle) max() int { return int(h.t.c.msize) - 4096 }

// interruptEvery is how often an interrupted request's fid is fsynced
// again until the request returns: the fsync may reach the master before
// the request it is to interrupt does.
const interruptEvery = 20 * time.Millisecond

// interruptible runs op (one read or write on h.f) and returns its
// result. When ctx ends first (a FUSE interrupt: the caller got a
// signal), the master is asked to interrupt it (fsync on the fid, see
// p9file.FSync), and op's result is still what is returned: data read
// or written before the interrupt is never dropped.
func (h *remoteHandle) interruptible(ctx context.Context, op func() (int, error)) (int, error) {
	type result struct {
		n   int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		n, err := op()
		ch <- result{n, err}
	}()
	select {
	case r := <-ch:
		return r.n, r.err
	case <-ctx.Done():
	}
	tick := time.NewTicker(interruptEvery)
	defer tick.Stop()
	for {
		h.f.FSync()
		select {
		case r := <-ch:
			return r.n, r.err
		case <-tick.C:
		}
	}
}

// Read reads one message's worth at most, so that a stream's read returns
// what one reply carried.
func (h *remoteHandle) Read(ctx context.Context, p []byte, off int64) (int, error) {
	p = p[:min(len(p), h.max())]
	n, err := h.interruptible(ctx, func() (int, error) { return h.f.ReadAt(p, off) })
	if err != nil && !errors.Is(err, io.EOF) {
		return n, h.t.err(h.path, err)
	}
	return n, err
}

// Write sends p in messages of at most msize; the master's errno comes
// back to the writer, and a short count after an interrupt.
func (h *remoteHandle) Write(ctx context.Context, p []byte, off int64) (int, error) {
	total := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), h.max())]
		n, err := h.interruptible(ctx, func() (int, error) { return h.f.WriteAt(chunk, off) })
		total += n
		off += int64(n)
		if err != nil {
			return total, h.t.err(h.path, err)
		}
		if n < len(chunk) || ctx.Err() != nil {
			return total, nil
		}
		p = p[n:]
	}
	return total, nil
}

// Close clunks the fid (the master closes its handle then).
func (h *remoteHandle) Close() error {
	if err := h.f.Close(); err != nil {
		return h.t.err(h.path, err)
	}
	return nil
}
