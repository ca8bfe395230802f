package pspace

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"bproc/fs/nodespec"
	"bproc/fs/synth"
)

// Node-set launch: `exec` written to node/SET/ctl (SET any nodespec but a
// plain number: 0-63, all, allup, n[1,3]) starts the command on every node
// of the set with one write. The binary, its libraries, the limit and the
// writer's environment are resolved once for the set; then one start
// message goes to each node's slave and each process is an ordinary
// proc/PID. The launch is a group, group/G/, whose io file carries every
// process's output and end as framed records through one open.

const (
	// groupQueueSize bounds what a group's io holds for its reader:
	// beyond it the pumps, and through them the processes, wait.
	groupQueueSize = 1 << 20
	// pumpBufMin and pumpBufMax bound each stream pump's read buffer: it
	// starts small (a thousand quiet processes cost little) and grows
	// while reads fill it.
	pumpBufMin = 2 << 10
	pumpBufMax = 16 << 10
	// setDirsMax bounds the node/SET directories remembered by name.
	setDirsMax = 256
)

// fanout is the master's node-set state: the groups and the set
// directories looked up by name.
type fanout struct {
	mu      sync.Mutex
	groups  map[int]*group
	nextID  int
	setDirs map[string]*setDir
	dir     *synth.FuncDir // group/
}

// setDir is node/SET: a ctl file whose exec runs on the whole set.
type setDir struct {
	*synth.FuncDir
	m    *Master
	name string
	spec nodespec.Spec
}

// lookupSet is node/NAME for a NAME that is a nodespec and not a plain
// number (node/99 stays "no such node"); nil when it is none.
func (m *Master) lookupSet(name string) synth.Node {
	if _, err := strconv.Atoi(name); err == nil || name == "self" {
		return nil
	}
	spec, err := nodespec.Parse(name)
	if err != nil {
		return nil
	}
	if spec.HasHostnames() {
		// node/anything is not a directory: a name no node has is none.
		if _, err := spec.Resolve(m.specCluster()); err != nil {
			return nil
		}
	}
	f := &m.fan
	f.mu.Lock()
	defer f.mu.Unlock()
	if sd := f.setDirs[name]; sd != nil {
		return sd
	}
	sd := &setDir{m: m, name: name, spec: spec}
	ctl := &synth.CtlFile[*setDir]{Ino: synth.NewIno(), Owner: func() (uint32, uint32) { return 0, 0 }, Mode: 0o666, Table: setCommands, Target: sd}
	sd.FuncDir = synth.NewDir(synth.StaticEntries("ctl", ctl))
	sd.FuncDir.AttrFunc = func() synth.Attr {
		return synth.Attr{Mode: iofs.ModeDir | 0o555, Mtime: synth.StartTime}
	}
	if f.setDirs == nil || len(f.setDirs) >= setDirsMax {
		f.setDirs = map[string]*setDir{} // forget them all: cheap to make again
	}
	f.setDirs[name] = sd
	return sd
}

var setCommands = synth.Table[*setDir]{
	{Name: "exec", MinArgs: 1, MaxArgs: -1, Usage: "exec [-i] [-n] [-c DIR] [-e NAME=VALUE]... [-a ARGV0] PATH [ARG...]",
		Run: func(ctx context.Context, c *synth.Caller, sd *setDir, args []string) (string, error) {
			return sd.m.execSet(ctx, c, sd.spec, args)
		}},
}

// setResult is one node's line of a set exec's answer.
type setResult struct {
	num int
	n   *node
	p   *Proc
	err error
}

// execSet starts args on every node of spec for caller c. The write
// succeeds when at least one process started; the answer is `group G`,
// then one line per node in the set's (BPROC_RANK) order: `NODE PID`, or
// `NODE error ERRNO TEXT` for a node where it did not start.
func (m *Master) execSet(ctx context.Context, c *synth.Caller, spec nodespec.Spec, args []string) (string, error) {
	o, argv, err := parseExec(args)
	if err != nil {
		return "", err
	}
	nums, err := spec.Resolve(m.specCluster())
	if err != nil {
		return "", fmt.Errorf("%v: %w", err, syscall.EINVAL)
	}
	if len(nums) == 0 {
		return "", fmt.Errorf("the node set names no node: %w", syscall.ENOENT)
	}
	res := make([]setResult, len(nums))
	runnable := 0
	for i, num := range nums {
		res[i].num = num
		m.mu.Lock()
		n := m.nodes[num]
		m.mu.Unlock()
		if n == nil {
			res[i].err = fmt.Errorf("node %d: no such node: %w", num, syscall.ENOENT)
			continue
		}
		res[i].n = n
		if _, err := m.runnable(c, n); err != nil {
			res[i].err = err
			continue
		}
		runnable++
	}
	if runnable == 0 {
		return "", res[0].err
	}
	job, err := m.loadJob(ctx, c, o, argv) // once for the whole set
	if err != nil {
		return "", err
	}
	var wg sync.WaitGroup
	for i := range res {
		r := &res[i]
		if r.err != nil {
			continue
		}
		nj := *job
		nj.env = rankEnv(job.env, i, r.num, len(nums))
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.p, r.err = m.startJob(ctx, c, r.n, &nj)
			if r.err != nil {
				r.err = fmt.Errorf("node %d: %w", r.num, r.err)
			}
		}()
	}
	wg.Wait()
	job.release()
	g := m.newGroup(c, res)
	if g == nil {
		for _, r := range res {
			if r.err != nil {
				return "", r.err
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "group %d\n", g.id)
	for _, r := range res {
		if r.p != nil {
			fmt.Fprintf(&b, "%d %d\n", r.num, r.p.pid)
		} else {
			fmt.Fprintf(&b, "%d error %d %s\n", r.num, int(synth.Errno(r.err)), oneLine(r.err.Error()))
		}
	}
	return b.String(), nil
}

// specCluster is the nodes as the nodespec grammar resolves against them.
func (m *Master) specCluster() []nodespec.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	cluster := make([]nodespec.Node, 0, len(m.nodes))
	for _, num := range sortedInts(m.nodes) {
		n := m.nodes[num]
		cluster = append(cluster, nodespec.Node{Num: num, State: n.state, Addr: orDash(n.addr), Host: orDash(n.host)})
	}
	return cluster
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps an error text on its line of the answer.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// rankEnv is env with BProc's BPROC_RANK, BPROC_NODE and BPROC_NPROCS for
// the process of rank rank of nprocs on node.
func rankEnv(env []string, rank, node, nprocs int) []string {
	out := make([]string, 0, len(env)+3)
	for _, e := range env {
		if !strings.HasPrefix(e, "BPROC_RANK=") && !strings.HasPrefix(e, "BPROC_NODE=") && !strings.HasPrefix(e, "BPROC_NPROCS=") {
			out = append(out, e)
		}
	}
	return append(out, "BPROC_RANK="+itoa(rank), "BPROC_NODE="+itoa(node), "BPROC_NPROCS="+itoa(nprocs))
}

// group is one set launch's processes, in rank order.
type group struct {
	m        *Master
	id       int
	uid, gid uint32
	members  []member
	dir      *synth.FuncDir

	mu     sync.Mutex
	opened bool // io was opened: it has one reader, once
}

type member struct {
	node int
	p    *Proc
}

// newGroup records the started processes of res as a group; nil when
// none started.
func (m *Master) newGroup(c *synth.Caller, res []setResult) *group {
	g := &group{m: m, uid: c.Uid, gid: c.Gid}
	for _, r := range res {
		if r.p != nil {
			g.members = append(g.members, member{node: r.num, p: r.p})
		}
	}
	if len(g.members) == 0 {
		return nil
	}
	g.dir = g.newDir()
	f := &m.fan
	f.mu.Lock()
	if f.groups == nil {
		f.groups = map[int]*group{}
	}
	f.nextID++
	g.id = f.nextID
	f.groups[g.id] = g
	f.mu.Unlock()
	go func() {
		// The group goes when its processes would: exitedKeep after the
		// last one ended.
		for _, mb := range g.members {
			<-mb.p.done
		}
		time.AfterFunc(exitedKeep, func() {
			f.mu.Lock()
			delete(f.groups, g.id)
			f.mu.Unlock()
		})
	}()
	return g
}

// groupsDir is group/: the caller's groups (root: all), by number.
func (m *Master) groupsDir() synth.Node {
	f := &m.fan
	visible := func(c *synth.Caller, g *group) bool { return c.Root() || c.Uid == g.uid }
	d := synth.NewDir(func(c *synth.Caller) []synth.Dirent {
		f.mu.Lock()
		defer f.mu.Unlock()
		var ents []synth.Dirent
		for _, id := range sortedInts(f.groups) {
			if g := f.groups[id]; visible(c, g) {
				ents = append(ents, synth.Dirent{Name: itoa(id), Node: g.dir})
			}
		}
		return ents
	})
	d.LookupFunc = func(c *synth.Caller, name string) synth.Node {
		id, err := strconv.Atoi(name)
		if err != nil || itoa(id) != name {
			return nil
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if g := f.groups[id]; g != nil {
			return g.dir
		}
		return nil
	}
	f.dir = d
	return d
}

var groupCommands = synth.Table[*group]{
	{Name: "kill", MinArgs: 0, MaxArgs: 1, Usage: "kill [SIG]", Run: func(_ context.Context, c *synth.Caller, g *group, args []string) (string, error) {
		sig := syscall.SIGTERM
		if len(args) == 1 {
			var err error
			if sig, err = parseSignal(args[0]); err != nil {
				return "", err
			}
		}
		return g.signal(sig)
	}},
	{Name: "stop", MinArgs: 0, MaxArgs: 0, Usage: "stop", Run: func(_ context.Context, c *synth.Caller, g *group, _ []string) (string, error) {
		return g.signal(syscall.SIGSTOP)
	}},
	{Name: "cont", MinArgs: 0, MaxArgs: 0, Usage: "cont", Run: func(_ context.Context, c *synth.Caller, g *group, _ []string) (string, error) {
		return g.signal(syscall.SIGCONT)
	}},
}

// signal sends sig to every live process of the group and answers how
// many it reached.
func (g *group) signal(sig syscall.Signal) (string, error) {
	count := 0
	for _, mb := range g.members {
		if mb.p.signal(g.m, sig) == nil {
			count++
		}
	}
	return fmt.Sprintf("%d\n", count), nil
}

func (g *group) newDir() *synth.FuncDir {
	owner := func() (uint32, uint32) { return g.uid, g.gid }
	own := func(c *synth.Caller) error {
		if c.Root() || c.Uid == g.uid {
			return nil
		}
		return fmt.Errorf("group belongs to uid %d: %w", g.uid, syscall.EACCES)
	}
	ctl := &synth.CtlFile[*group]{Ino: synth.NewIno(), Owner: owner, Mode: 0o200, Table: groupCommands, Target: g, Check: own}
	mk := func(mode iofs.FileMode, open func() (synth.Handle, error)) *synth.FuncFile {
		return &synth.FuncFile{Ino: synth.NewIno(), Mode: mode, Owner: owner, OpenFunc: func(c *synth.Caller, flags int) (synth.Handle, error) {
			if err := own(c); err != nil {
				return nil, err
			}
			return open()
		}}
	}
	io := mk(0o400, g.openIO)
	stdin := mk(0o200, func() (synth.Handle, error) { return &groupStdin{g: g, dead: make([]bool, len(g.members))}, nil })
	d := synth.NewDir(synth.StaticEntries("ctl", ctl, "io", io, "stdin", stdin))
	d.AttrFunc = func() synth.Attr {
		return synth.Attr{Mode: iofs.ModeDir | 0o500, Uid: g.uid, Gid: g.gid, Mtime: synth.StartTime}
	}
	return d
}

// groupIO is group/G/io's one reader: the pumps put every process's
// output (for processes started with -i) and end into q as frames.
type groupIO struct {
	synth.NoWrite
	q      *synth.Stream
	cancel context.CancelFunc
	once   sync.Once
}

// openIO starts the pumps: per process one per attached output stream,
// writing `NODE out LEN` or `NODE err LEN` and the bytes, then `NODE end
// STATUS` once both streams are drained and the process has ended. Once
// every end is in, the stream ends.
func (g *group) openIO() (synth.Handle, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.opened {
		return nil, fmt.Errorf("group %d's io has been opened already: %w", g.id, syscall.EBUSY)
	}
	g.opened = true
	q := synth.NewStream(groupQueueSize, false)
	q.Attach()
	ctx, cancel := context.WithCancel(context.Background())
	var wmu sync.Mutex // one frame at a time: a frame is two writes
	frame := func(hdr string, data []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		if _, err := q.Write(ctx, []byte(hdr)); err != nil {
			return err
		}
		_, err := q.Write(ctx, data)
		return err
	}
	var all sync.WaitGroup
	for _, mb := range g.members {
		all.Add(1)
		go func() {
			defer all.Done()
			pumpMember(ctx, mb, frame)
		}()
	}
	go func() {
		all.Wait()
		q.CloseWrite()
	}()
	return &groupIO{q: q, cancel: cancel}, nil
}

// pumpMember frames one process's output and end.
func pumpMember(ctx context.Context, mb member, frame func(string, []byte) error) {
	p := mb.p
	if p.attached {
		var wg sync.WaitGroup
		for _, s := range []struct {
			kind string
			s    *synth.Stream
		}{{"out", p.stdout}, {"err", p.stderr}} {
			s.s.Attach()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer s.s.Detach()
				pumpStream(ctx, mb.node, s.kind, s.s, frame)
			}()
		}
		wg.Wait()
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return
	}
	p.mu.Lock()
	status := p.status
	p.mu.Unlock()
	frame(fmt.Sprintf("%d end %s\n", mb.node, status), nil)
}

func pumpStream(ctx context.Context, node int, kind string, s *synth.Stream, frame func(string, []byte) error) {
	buf := make([]byte, pumpBufMin)
	for {
		n, err := s.Read(ctx, buf)
		if n > 0 {
			if frame(fmt.Sprintf("%d %s %d\n", node, kind, n), buf[:n]) != nil {
				return // the reader went away
			}
			if n == len(buf) && len(buf) < pumpBufMax {
				buf = make([]byte, 2*len(buf))
			}
		}
		if err != nil {
			return // EOF: the stream is drained; else the reader went away
		}
	}
}

func (h *groupIO) Read(ctx context.Context, b []byte, _ int64) (int, error) {
	return h.q.Read(ctx, b)
}

// Close stops the pumps; the processes' attached streams lose their
// reader, as when a reader of proc/PID/stdout goes.
func (h *groupIO) Close() error {
	h.once.Do(func() {
		h.cancel()
		h.q.Detach()
	})
	return nil
}

// groupStdin is group/G/stdin: what is written goes to every process's
// stdin; closing it gives them all EOF.
type groupStdin struct {
	synth.NoRead
	g    *group
	mu   sync.Mutex
	dead []bool // processes that took no more (ended, closed their stdin)
}

func (h *groupStdin) Write(ctx context.Context, b []byte, _ int64) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, mb := range h.g.members {
		if h.dead[i] {
			continue
		}
		if _, err := mb.p.stdin.Write(ctx, b); err != nil {
			if errors.Is(err, syscall.EINTR) {
				return 0, err
			}
			h.dead[i] = true
		}
	}
	return len(b), nil
}

func (h *groupStdin) Close() error {
	for _, mb := range h.g.members {
		mb.p.stdin.CloseWrite()
	}
	return nil
}
