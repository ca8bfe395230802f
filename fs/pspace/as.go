package pspace

import (
	"encoding/hex"
	"fmt"
	iofs "io/fs"
	"strconv"
	"strings"
	"syscall"

	"bproc/fs/synth"
)

// slave/as/ID/ is the public tree as seen by a process on the slave's
// node: bpslave's /bproc mount walks from there for every request, so
// the tree decides as that process (its uid, gid, groups, pid, and the
// slave's node). 9P's attach carries no identity per request, and a
// slave is trusted as BProc trusted its slaves: it holds the cluster
// key, and its node's kernel vouches for the FUSE caller. Only the slave
// connection itself may enter; the node number comes from the
// connection, never from the name.
//
// ID is UID.GID.GROUPS.PID[.CWD]: GROUPS comma-separated (may be
// empty), CWD the caller's working directory in hex (exec resolves
// relative paths and starts jobs there).

// asName formats an identity for slave/as/ (the slave's side, in
// srv.RemoteTree, builds the same string; the test checks both agree).
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
		b, err := hex.DecodeString(f[4])
		if err != nil || len(b) == 0 || b[0] != '/' || hex.EncodeToString(b) != f[4] || strings.IndexByte(string(b), 0) >= 0 {
			return c, "", bad("bad working directory")
		}
		cwd = string(b)
	}
	return synth.Caller{Uid: uint32(uid), Gid: uint32(gid), Groups: groups, Pid: int(pid)}, cwd, nil
}

// asDir is slave/as/: it lists nothing and finds identities by name.
type asDir struct{ unlisted }

func (d *asDir) Lookup(c *synth.Caller, name string) (synth.Node, error) {
	sc, err := d.m.slaveFor(c)
	if err != nil {
		return nil, fmt.Errorf("slave/as: %w", syscall.EPERM)
	}
	id, cwd, err := parseAs(name)
	if err != nil {
		return nil, err
	}
	d.m.mu.Lock()
	id.Node = sc.node.num
	d.m.mu.Unlock()
	// Not a slave: the process sees the public tree, as a user would.
	id.Addr, id.Host, id.Conn = c.Addr, c.Host, c.Conn
	if cwd != "" {
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
