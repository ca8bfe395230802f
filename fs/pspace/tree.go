package pspace

import (
	"bytes"
	"context"
	"fmt"
	"io"
	iofs "io/fs"
	"os/user"
	"strconv"
	"sync"
	"syscall"

	"bproc/fs/slaveproto"
	"bproc/fs/synth"
)

// The master's tree. One type per kind of node; directories list live state.

func (m *Master) newRoot() synth.Dir {
	status := synth.NewText(func(*synth.Caller) ([]byte, error) { return m.statusText(false), nil })
	nodes := numberedDir(m, m.nodes, func(n *node) synth.Node { return n.dir })
	procs := numberedDir(m, m.procs, func(p *Proc) synth.Node { return p.procDirOf() })
	// node/self is the caller's node (Caller.Node), for libbproc's
	// bproc_currnode. It is found by name but not listed, so node/*
	// stays the nodes.
	self := synth.NewText(func(c *synth.Caller) ([]byte, error) { return []byte(itoa(c.Node) + "\n"), nil })
	byNumber := nodes.LookupFunc
	nodes.LookupFunc = func(c *synth.Caller, name string) synth.Node {
		if name == "self" {
			return self
		}
		if n := byNumber(c, name); n != nil {
			return n
		}
		return m.lookupSet(name) // node/0-63, node/allup (fanout.go)
	}
	slave := m.newSlaveDir()
	public := []synth.Dirent{{Name: "node", Node: stableDir{nodes}}, {Name: "proc", Node: procs}, {Name: "status", Node: status}}
	withSlave := append(append([]synth.Dirent(nil), public...), synth.Dirent{Name: "slave", Node: slave})
	list := func(c *synth.Caller) []synth.Dirent {
		if c.Slave {
			return withSlave
		}
		return public
	}
	root := synth.NewDir(list)
	// group/ holds node-set launches (fanout.go); found by name, not
	// listed, as node/self, so the root stays node, proc and status.
	groups := m.groupsDir()
	root.LookupFunc = func(c *synth.Caller, name string) synth.Node {
		if name == "group" {
			return groups
		}
		for _, e := range list(c) {
			if e.Name == name {
				return e.Node
			}
		}
		return nil
	}
	return root
}

// numberedDir is node/ or proc/: m's table under m.mu, listed in
// order, an entry looked up by its number in canonical form ("7", "-1";
// not "07").
func numberedDir[V any](m *Master, table map[int]V, dir func(V) synth.Node) *synth.FuncDir {
	d := synth.NewDir(func(*synth.Caller) []synth.Dirent {
		m.mu.Lock()
		defer m.mu.Unlock()
		var ents []synth.Dirent
		for _, num := range sortedInts(table) {
			ents = append(ents, synth.Dirent{Name: itoa(num), Node: dir(table[num])})
		}
		return ents
	})
	d.LookupFunc = func(_ *synth.Caller, name string) synth.Node {
		num, err := strconv.Atoi(name)
		if err != nil || itoa(num) != name {
			return nil
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if v, ok := table[num]; ok {
			return dir(v)
		}
		return nil
	}
	return d
}

// statusText is /bproc/status: one line per compute node (all, with -1,
// when withMaster).
func (m *Master) statusText(withMaster bool) []byte {
	m.mu.Lock()
	var shots []node
	for _, num := range sortedInts(m.nodes) {
		if num >= 0 || withMaster {
			shots = append(shots, *m.nodes[num])
		}
	}
	m.mu.Unlock()
	var b bytes.Buffer
	names := &idNames{users: map[uint32]string{}, groups: map[uint32]string{}}
	for i := range shots {
		b.WriteString(shots[i].statusLineNamed(names))
	}
	return b.Bytes()
}

// statusLine is `N STATE ADDR MODE USER GROUP HOST`, from a copy of the
// node taken under m.mu: the user and group lookups read /etc files and
// must not hold the master's lock.
func (n *node) statusLine() string { return n.statusLineNamed(nil) }

func (n *node) statusLineNamed(names *idNames) string {
	addr, host := n.addr, n.host
	if addr == "" {
		addr = "-"
	}
	if host == "" {
		host = "-"
	}
	return fmt.Sprintf("%d %s %s %s %s %s %s\n", n.num, n.state, addr, modeString(n.mode),
		names.user(n.uid), names.group(n.gid), host)
}

// idNames remembers the user and group names of one listing: each lookup
// reads /etc/passwd or /etc/group, and at 4000 nodes two of them per line
// made a read of status take 140 ms. nil looks every name up.
type idNames struct{ users, groups map[uint32]string }

func (c *idNames) user(uid uint32) string {
	if c == nil {
		return userName(uid)
	}
	return remember(c.users, uid, userName)
}

func (c *idNames) group(gid uint32) string {
	if c == nil {
		return groupName(gid)
	}
	return remember(c.groups, gid, groupName)
}

func remember(seen map[uint32]string, id uint32, lookup func(uint32) string) string {
	s, ok := seen[id]
	if !ok {
		s = lookup(id)
		seen[id] = s
	}
	return s
}

// The lookups, replaceable by tests that count them.
var lookupUserID, lookupGroupID = user.LookupId, user.LookupGroupId

func userName(uid uint32) string {
	if u, err := lookupUserID(strconv.Itoa(int(uid))); err == nil {
		return u.Username
	}
	return strconv.Itoa(int(uid))
}

func groupName(gid uint32) string {
	if g, err := lookupGroupID(strconv.Itoa(int(gid))); err == nil {
		return g.Name
	}
	return strconv.Itoa(int(gid))
}

// nodeDir is node/N: its attributes are the node's permissions.
type nodeDir struct {
	*synth.FuncDir
	m *Master
	n *node
}

// The path to a node's ctl, node/N/ctl, always leads to the same files,
// whoever asks (nodes are never forgotten; lookups check no permission):
// the FUSE mount lets the kernel keep those names (srv/fusemount's
// StableEntry), and a launch (open, write, reads of node/N/ctl) makes no
// lookup of them after the first.
func (nd *nodeDir) StableEntry() bool { return true }

// stableDir is node/: see nodeDir's StableEntry.
type stableDir struct{ *synth.FuncDir }

func (stableDir) StableEntry() bool { return true }

// nodeCtl is node/N/ctl: see nodeDir's StableEntry.
type nodeCtl struct{ *synth.CtlFile[*nodeDir] }

func (nodeCtl) StableEntry() bool { return true }

func (m *Master) newNodeDir(n *node) *nodeDir {
	nd := &nodeDir{m: m, n: n}
	status := synth.NewText(func(*synth.Caller) ([]byte, error) {
		m.mu.Lock()
		shot := *n
		m.mu.Unlock()
		return []byte(shot.statusLine()), nil
	})
	ctl := &synth.CtlFile[*nodeDir]{Ino: synth.NewIno(), Owner: nd.owner, Mode: 0o666, Table: nodeCommands, Target: nd}
	io := &ioFile{ino: synth.NewIno(), n: n}
	stats := m.newStatsDir(n)
	base := synth.StaticEntries("ctl", nodeCtl{ctl}, "io", io, "status", status)
	withStats := append(base(nil), synth.Dirent{Name: "stats", Node: stats})
	nd.FuncDir = synth.NewDir(func(c *synth.Caller) []synth.Dirent {
		if m.Stats == nil || n.num < 0 {
			return base(c)
		}
		return withStats
	})
	nd.FuncDir.AttrFunc = func() synth.Attr {
		m.mu.Lock()
		defer m.mu.Unlock()
		return synth.Attr{Mode: iofs.ModeDir | n.mode.Perm(), Uid: n.uid, Gid: n.gid, Mtime: synth.StartTime}
	}
	return nd
}

func (nd *nodeDir) owner() (uint32, uint32) {
	nd.m.mu.Lock()
	defer nd.m.mu.Unlock()
	return nd.n.uid, nd.n.gid
}

// Setattr is chmod/chown/chgrp of a node: root only.
func (nd *nodeDir) Setattr(c *synth.Caller, mode *iofs.FileMode, uid, gid *uint32) error {
	if !c.Root() {
		return fmt.Errorf("only root may change node permissions: %w", syscall.EPERM)
	}
	nd.m.mu.Lock()
	defer nd.m.mu.Unlock()
	if mode != nil {
		nd.n.mode = mode.Perm()
	}
	if uid != nil {
		nd.n.uid = *uid
	}
	if gid != nil {
		nd.n.gid = *gid
	}
	return nil
}

// nodeCommands are node/N/ctl's commands, run on the node's directory.
var nodeCommands = synth.Table[*nodeDir]{
	{Name: "exec", MinArgs: 1, MaxArgs: -1, Usage: "exec [-i] [-n] [-b] [-w|-o] [-c DIR] [-e NAME=VALUE]... [-a ARGV0] PATH [ARG...]",
		Run: func(ctx context.Context, c *synth.Caller, nd *nodeDir, args []string) (string, error) {
			pid, err := nd.m.exec(ctx, c, nd.n, args)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%d\n", pid), nil
		}},
	{Name: "detach", MinArgs: 0, MaxArgs: -1, Usage: "detach", Run: func(ctx context.Context, _ *synth.Caller, _ *nodeDir, args []string) (string, error) {
		return detachCommand(ctx, args)
	}},
	migCommand(slaveproto.MigMove, "move [FLAGS]", 0, 1),
	migCommand(slaveproto.MigRfork, "rfork [FLAGS]", 0, 1),
	migCommand(slaveproto.MigExecmove, "execmove [-c DIR] [-e NAME=VALUE]... [-a ARGV0] PATH [ARG...]", 1, -1),
	{Name: "state", MinArgs: 1, MaxArgs: 1, Usage: "state STATE", Run: func(_ context.Context, c *synth.Caller, nd *nodeDir, args []string) (string, error) {
		return "", nd.m.setState(c, nd.n, args[0])
	}},
	{Name: "kill", MinArgs: 1, MaxArgs: 1, Usage: "kill SIG", Run: func(_ context.Context, c *synth.Caller, nd *nodeDir, args []string) (string, error) {
		sig, err := parseSignal(args[0])
		if err != nil {
			return "", err
		}
		n, err := nd.m.signalNode(c, nd.n, sig)
		return fmt.Sprintf("%d\n", n), err
	}},
}

// procCommands are proc/PID/ctl's commands, run on the process's directory.
var procCommands = signalCommands(func(pd *procDir, sig syscall.Signal) (string, error) {
	return "", pd.p.signal(pd.m, sig)
})

// ioFile is node/N/io: a reader streams the node's console ring.
type ioFile struct {
	ino uint64
	n   *node
}

func (f *ioFile) Attr() synth.Attr {
	return synth.Attr{Ino: f.ino, Mode: 0o444, Mtime: synth.StartTime}
}

func (f *ioFile) Open(c *synth.Caller, flags int) (synth.Handle, error) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0 {
		return nil, fmt.Errorf("io is read-only: %w", syscall.EACCES)
	}
	return synth.NewRingHandle(f.n.ring.Reader(c.Uid, c.Root())), nil
}

// procDir is proc/PID: files owned by the process's user.
type procDir struct {
	*synth.FuncDir
	m *Master
	p *Proc
}

func (m *Master) newProcDir(p *Proc) *procDir {
	pd := &procDir{m: m, p: p}
	owner := func() (uint32, uint32) { return p.uid, p.gid }
	own := func(c *synth.Caller) error {
		if c.Root() || c.Uid == p.uid {
			return nil
		}
		return fmt.Errorf("process %d belongs to uid %d: %w", p.pid, p.uid, syscall.EACCES)
	}
	status := synth.NewText(func(*synth.Caller) ([]byte, error) { return []byte(p.statusLine()), nil })
	status.AttrFunc = func() synth.Attr { return synth.Attr{Mode: 0o444, Uid: p.uid, Gid: p.gid, Mtime: synth.StartTime} }
	ctl := &synth.CtlFile[*procDir]{Ino: synth.NewIno(), Owner: owner, Mode: 0o200, Table: procCommands, Target: pd, Check: own}
	mk := func(mode iofs.FileMode, open func(c *synth.Caller, flags int) (synth.Handle, error)) *synth.FuncFile {
		return &synth.FuncFile{Ino: synth.NewIno(), Mode: mode, Owner: owner, OpenFunc: func(c *synth.Caller, flags int) (synth.Handle, error) {
			if err := own(c); err != nil {
				return nil, err
			}
			return open(c, flags)
		}}
	}
	stdin := mk(0o200, func(c *synth.Caller, flags int) (synth.Handle, error) {
		return synth.NewStreamWriter(p.stdin, nil), nil
	})
	stdout := mk(0o400, func(c *synth.Caller, flags int) (synth.Handle, error) {
		return synth.AttachReader(p.stdout), nil
	})
	stderr := mk(0o400, func(c *synth.Caller, flags int) (synth.Handle, error) {
		return synth.AttachReader(p.stderr), nil
	})
	wait := mk(0o400, func(c *synth.Caller, flags int) (synth.Handle, error) { return &waitHandle{p: p}, nil })
	direct := m.directFile(p, owner, own)
	pd.FuncDir = synth.NewDir(synth.StaticEntries("ctl", ctl, "direct", direct, "status", status, "stderr", stderr, "stdin", stdin, "stdout", stdout, "wait", wait))
	pd.FuncDir.AttrFunc = func() synth.Attr {
		return synth.Attr{Mode: iofs.ModeDir | 0o555, Uid: p.uid, Gid: p.gid, Mtime: synth.StartTime}
	}
	return pd
}

// waitHandle blocks the first read until the process ends.
type waitHandle struct {
	synth.NoWrite
	synth.NoClose
	p *Proc
}

func (h *waitHandle) Read(ctx context.Context, b []byte, off int64) (int, error) {
	select {
	case <-h.p.done:
	case <-ctx.Done():
		return 0, fmt.Errorf("wait interrupted: %w", syscall.EINTR)
	}
	h.p.mu.Lock()
	line := h.p.status + "\n"
	h.p.mu.Unlock()
	if off >= int64(len(line)) {
		return 0, io.EOF
	}
	return copy(b, line[off:]), nil
}

// newStatsDir is node/N/stats: the node's /proc files as recvstats last
// received them, rendered when opened.
func (m *Master) newStatsDir(n *node) synth.Dir {
	var mu sync.Mutex
	files := map[string]*synth.TextFile{}
	return synth.NewDir(func(*synth.Caller) []synth.Dirent {
		mu.Lock()
		defer mu.Unlock()
		var ents []synth.Dirent
		for _, name := range m.StatsFiles {
			f := files[name]
			if f == nil {
				f = synth.NewText(func(*synth.Caller) ([]byte, error) { return m.Stats(n.num, name) })
				files[name] = f
			}
			ents = append(ents, synth.Dirent{Name: name, Node: f})
		}
		return ents
	})
}
