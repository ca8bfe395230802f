package pspace

import (
	"context"
	"encoding/hex"
	"fmt"
	iofs "io/fs"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"bproc/fs/synth"
)

// slave/as/SLOT/ is the public tree as seen by a process on the slave's
// node: bpslave's /bproc mount walks from there for every request, so
// the tree decides as that process (its uid, gid, groups, pid, and the
// slave's node). 9P's attach carries no identity per request, and a
// slave is trusted as BProc trusted its slaves: it holds the cluster
// key, and its node's kernel vouches for the FUSE caller. Only the slave
// connection itself may enter; the node number comes from the
// connection, never from the slave's word.
//
// The slave first writes `SLOT ID` to slave/as/set, naming the process
// SLOT stands for (0 <= SLOT < asSlots) until it is set again; ID is
// UID.GID.GROUPS.PID[.CWD]: GROUPS comma-separated (may be empty), CWD
// the working directory in hex (exec resolves relative paths and starts
// jobs there). The slave reuses a slot only when no walk through it is
// in flight; a node found through a slot keeps the identity it was
// found with. Slots, not identities, are the names walked because the
// 9P server keeps a node for every name ever walked on a connection: a
// few hundred slots stay a few hundred names, however many processes
// come and go on the node.

// asSlots is how many identities a slave connection may name at once
// (srv.RemoteTree uses as many).
const asSlots = 256

// asTables are the slot tables of the live slave connections, by
// connection: the table goes with its connection.
var asTables sync.Map // context.Context → *asTable

type asTable struct {
	mu  sync.Mutex
	ids [asSlots]*asID
}

type asID struct {
	c   synth.Caller
	cwd string
}

func tableFor(conn context.Context) *asTable {
	if t, ok := asTables.Load(conn); ok {
		return t.(*asTable)
	}
	t, loaded := asTables.LoadOrStore(conn, &asTable{})
	if !loaded {
		context.AfterFunc(conn, func() { asTables.Delete(conn) })
	}
	return t.(*asTable)
}

// parseAsSet reads one `SLOT ID` line of slave/as/set.
func parseAsSet(line string) (slot int, id *asID, err error) {
	s, name, ok := strings.Cut(line, " ")
	n, nerr := strconv.Atoi(s)
	if !ok || nerr != nil || strconv.Itoa(n) != s || n < 0 || n >= asSlots {
		return 0, nil, fmt.Errorf("slave/as/set: %.60q: want SLOT ID, SLOT below %d: %w", line, asSlots, syscall.EINVAL)
	}
	c, cwd, err := parseAs(name)
	if err != nil {
		return 0, nil, fmt.Errorf("slave/as/set: %w", syscall.EINVAL)
	}
	return n, &asID{c: c, cwd: cwd}, nil
}

// asSetHandle is an open slave/as/set: every write is one `SLOT ID`
// line (a trailing newline allowed).
type asSetHandle struct {
	synth.NoRead
	synth.NoClose
	t *asTable
}

func (h *asSetHandle) Write(_ context.Context, p []byte, _ int64) (int, error) {
	slot, id, err := parseAsSet(strings.TrimSuffix(string(p), "\n"))
	if err != nil {
		return 0, err
	}
	h.t.mu.Lock()
	h.t.ids[slot] = id
	h.t.mu.Unlock()
	return len(p), nil
}

// asName formats an identity for slave/as/set (the slave's side,
// srv.RemoteTree, builds the same string: both packages' tests hold it
// to the same examples).
func asName(uid, gid uint32, groups []uint32, pid int, cwd string) string {
	gs := make([]string, len(groups))
	for i, g := range groups {
		gs[i] = strconv.FormatUint(uint64(g), 10)
	}
	s := fmt.Sprintf("%d.%d.%s.%d", uid, gid, strings.Join(gs, ","), pid)
	if cwd != "" {
		s += "." + hex.EncodeToString([]byte(cwd))
	}
	return s
}

// maxAsGroups bounds the groups one identity may carry (Linux's
// NGROUPS_MAX is 65536; the kernel's FUSE caller has far fewer).
const maxAsGroups = 1024

// maxAsCwd is Linux's PATH_MAX: a working directory is never longer.
const maxAsCwd = 4096

// parseAs reads an identity name; only the canonical form is accepted,
// so one identity has one name.
func parseAs(name string) (c synth.Caller, cwd string, err error) {
	bad := func(why string) error {
		return fmt.Errorf("identity %.40q: %s: %w", name, why, syscall.ENOENT)
	}
	f := strings.Split(name, ".")
	if len(f) != 4 && len(f) != 5 {
		return c, "", bad("want UID.GID.GROUPS.PID[.CWD]")
	}
	num := func(s string, bits int) (uint64, bool) {
		v, err := strconv.ParseUint(s, 10, bits)
		return v, err == nil && strconv.FormatUint(v, 10) == s
	}
	uid, ok1 := num(f[0], 32)
	gid, ok2 := num(f[1], 32)
	pid, ok3 := num(f[3], 31)
	if !ok1 || !ok2 || !ok3 {
		return c, "", bad("bad number")
	}
	var groups []uint32
	if f[2] != "" {
		gs := strings.Split(f[2], ",")
		if len(gs) > maxAsGroups {
			return c, "", bad("too many groups")
		}
		for _, g := range gs {
			v, ok := num(g, 32)
			if !ok {
				return c, "", bad("bad group")
			}
			groups = append(groups, uint32(v))
		}
	}
	if len(f) == 5 {
		if len(f[4]) > 2*maxAsCwd {
			return c, "", bad("working directory longer than PATH_MAX")
		}
		b, err := hex.DecodeString(f[4])
		if err != nil || len(b) == 0 || b[0] != '/' || hex.EncodeToString(b) != f[4] || strings.IndexByte(string(b), 0) >= 0 {
			return c, "", bad("bad working directory")
		}
		cwd = string(b)
	}
	return synth.Caller{Uid: uint32(uid), Gid: uint32(gid), Groups: groups, Pid: int(pid)}, cwd, nil
}

// asDir is slave/as/: it lists nothing and finds set and the slots by
// name, for the slave connection only.
type asDir struct {
	unlisted
	set *synth.FuncFile
}

func (m *Master) newAsDir() *asDir {
	return &asDir{unlisted: unlisted{m: m, ino: synth.NewIno()},
		set: &synth.FuncFile{Ino: synth.NewIno(), Mode: 0o200, OpenFunc: func(c *synth.Caller, flags int) (synth.Handle, error) {
			if _, err := m.slaveFor(c); err != nil {
				return nil, fmt.Errorf("slave/as/set: %w", syscall.EPERM)
			}
			return &asSetHandle{t: tableFor(c.Conn)}, nil
		}}}
}

func (d *asDir) Lookup(c *synth.Caller, name string) (synth.Node, error) {
	sc, err := d.m.slaveFor(c)
	if err != nil {
		return nil, fmt.Errorf("slave/as: %w", syscall.EPERM)
	}
	if name == "set" {
		return d.set, nil
	}
	t := tableFor(c.Conn)
	slot, err := strconv.Atoi(name)
	if err != nil || strconv.Itoa(slot) != name || slot < 0 || slot >= asSlots {
		return nil, fmt.Errorf("slave/as/%.20q: no such slot: %w", name, syscall.ENOENT)
	}
	t.mu.Lock()
	set := t.ids[slot]
	t.mu.Unlock()
	if set == nil {
		return nil, fmt.Errorf("slave/as/%d: slot not set: %w", slot, syscall.ENOENT)
	}
	id := set.c // a copy: the slot may be set again, this walk keeps who it was
	d.m.mu.Lock()
	id.Node = sc.node.num
	d.m.mu.Unlock()
	// Not a slave: the process sees the public tree, as a user would.
	id.Addr, id.Host, id.Conn = c.Addr, c.Host, c.Conn
	if cwd := set.cwd; cwd != "" {
		id.Env = func() ([]string, string, bool) { return nil, cwd, true }
	}
	return wrapAs(d.m.root, &id), nil
}

// wrapAs returns n seen by c whoever asks: every method gets c instead of
// its caller, and so does every node reached from it. Handles keep the
// caller they were opened with.
func wrapAs(n synth.Node, c *synth.Caller) synth.Node {
	switch x := n.(type) {
	case nil:
		return nil
	case synth.Dir:
		return &asNodeDir{asNode{n: x, c: c}, x}
	case synth.File:
		return &asNodeFile{asNode{n: x, c: c}, x}
	}
	return &asNode{n: n, c: c}
}

// asNode substitutes its caller in the methods every node may have.
type asNode struct {
	n synth.Node
	c *synth.Caller
}

func (a *asNode) Attr() synth.Attr { return a.n.Attr() }

// Access decides as the wrapped node would for a.c (its Accesser, or its
// mode bits).
func (a *asNode) Access(_ *synth.Caller, mask uint32) error { return synth.Access(a.c, a.n, mask) }

// Setattr passes chmod and chown on as a.c; a node without a Setattrer
// refuses them as synth.Setattr would.
func (a *asNode) Setattr(_ *synth.Caller, mode *iofs.FileMode, uid, gid *uint32) error {
	sa, ok := a.n.(synth.Setattrer)
	if !ok {
		return fmt.Errorf("mode and owner of this node are fixed: %w", syscall.EPERM)
	}
	return sa.Setattr(a.c, mode, uid, gid)
}

type asNodeDir struct {
	asNode
	d synth.Dir
}

func (a *asNodeDir) Lookup(_ *synth.Caller, name string) (synth.Node, error) {
	n, err := a.d.Lookup(a.c, name)
	if err != nil || n == nil {
		return n, err
	}
	return wrapAs(n, a.c), nil
}

func (a *asNodeDir) List(*synth.Caller) ([]synth.Dirent, error) {
	ents, err := a.d.List(a.c)
	if err != nil {
		return nil, err
	}
	out := make([]synth.Dirent, len(ents))
	for i, e := range ents {
		out[i] = synth.Dirent{Name: e.Name, Node: wrapAs(e.Node, a.c)}
	}
	return out, nil
}

type asNodeFile struct {
	asNode
	f synth.File
}

func (a *asNodeFile) Open(_ *synth.Caller, flags int) (synth.Handle, error) {
	return a.f.Open(a.c, flags)
}

var (
	_ synth.Accesser  = (*asNode)(nil)
	_ synth.Setattrer = (*asNode)(nil)
	_ synth.Dir       = (*asNodeDir)(nil)
	_ synth.File      = (*asNodeFile)(nil)
)
