// Package pspace is bpmaster's cluster-wide process space: the Master
// with its nodes, their slaves and the processes running on them, the
// /bproc tree it serves (node/N, proc/PID, status and the slaves' slave/),
// its configuration file, the pid state that survives a restart, and the
// adoption of jobs a slave kept across a lost master. The tree is built
// with fs/synth; the slaves' messages are fs/slaveproto.
package pspace

import (
	"context"
	"fmt"
	iofs "io/fs"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"bproc/fs/slaveproto"
	"bproc/fs/synth"

	"golang.org/x/sys/unix"
)

// NodeStates are the node states, as BProc names them, in its order.
var NodeStates = slaveproto.NodeStates

const (
	ioRingSize    = 256 << 10
	streamSize    = 1 << 20
	jobsQueueSize = 64 << 20
	exitedKeep    = 10 * time.Minute
	exitedMax     = 4096
	// exitedKeepBytes of output stay for an exited process whose stdout
	// or stderr nobody has opened.
	exitedKeepBytes = 64 << 10
	// exitedKeepTotal bounds what all exited processes keep together.
	exitedKeepTotal = 64 << 20
	startTimeout    = 30 * time.Second
)

// Master is bpmaster's state: the nodes, the processes running on them and
// the slaves connected for them. Its tree (Root) is served over 9P and FUSE.
type Master struct {
	Logf  func(format string, args ...any)
	Trace func(format string, args ...any) // every command and slave message, when tracing
	// Stats, when set, renders node/N/stats/NAME (NAME one of StatsFiles)
	// from the node statistics that recvstats collects.
	Stats      func(node int, name string) ([]byte, error)
	StatsFiles []string

	mu      sync.Mutex
	cfg     *Config
	nodes   map[int]*node
	dyn     map[string]int // addresses given numbers in order of first connection
	procs   map[int]*Proc
	live    liveCount // procs' live ones per uid, for maxprocs (limit.go)
	nextPid int
	pids    pidState // the pid high-water mark on disk (state.go)
	slaves  map[context.Context]*slaveConn
	bins    binCache
	ctr     counters // monitoring: job events, bytes streamed (snapshot.go)
	ev      events   // process events for subscribers (events.go)
	migs    map[int]*migration
	nextMig int
	fan     fanout     // node-set launches (fanout.go)
	direct  directKeys // signs proc/PID/direct tickets (direct.go)

	root synth.Dir
}

type node struct {
	num        int
	state      string
	addr, host string
	mode       iofs.FileMode
	uid, gid   uint32
	conn       *slaveConn
	ring       *synth.Ring
	dir        *nodeDir
}

type slaveConn struct {
	key      context.Context
	node     *node
	jobs     *synth.Stream
	mu       sync.Mutex
	lastPing time.Time
	dead     bool
	peer     string // its peer listener, host:port, once announced (spread.go)
	dataAddr string // the slave's data port for direct streams, "": none (direct.go)
}

// NewMaster returns a master serving cfg.
func NewMaster(cfg *Config) *Master {
	m := &Master{
		Logf:    func(string, ...any) {},
		Trace:   func(string, ...any) {},
		nodes:   map[int]*node{},
		dyn:     map[string]int{},
		procs:   map[int]*Proc{},
		nextPid: 1,
		slaves:  map[context.Context]*slaveConn{},
	}
	m.SetConfig(cfg)
	m.nodeLocked(-1) // the master itself
	m.root = m.newRoot()
	return m
}

// Root is the tree.
func (m *Master) Root() synth.Dir { return m.root }

// PingTimeout is the configured ping timeout.
func (m *Master) PingTimeout() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg.PingTimeout
}

// SetConfig installs a (re-read) configuration: configured nodes appear,
// pingtimeout and node commands change at once.
func (m *Master) SetConfig(cfg *Config) {
	m.bins.setLimit(cfg.BinCache)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cfg = cfg
	for num, addr := range cfg.Nodes {
		n := m.nodeLocked(num)
		if n.conn == nil {
			n.addr = addr
		}
	}
}

// nodeLocked returns node num, creating it down with BProc's default
// permissions (everyone may run work: ---x--x--x root root).
func (m *Master) nodeLocked(num int) *node {
	n := m.nodes[num]
	if n == nil {
		n = &node{num: num, state: "down", mode: 0o111, ring: synth.NewRing(ioRingSize)}
		if num == -1 {
			n.addr = "-"
		}
		n.dir = m.newNodeDir(n)
		m.nodes[num] = n
	}
	return n
}

// numberFor picks the node number for a slave connecting from addr.
func (m *Master) numberFor(addr string) int {
	if addr == slaveproto.LocalAddr {
		return -1
	}
	for _, num := range sortedInts(m.cfg.Nodes) {
		if m.cfg.Nodes[num] == addr {
			return num
		}
	}
	if num, ok := m.dyn[addr]; ok {
		return num
	}
	next := 0
	for num := range m.nodes {
		next = max(next, num+1)
	}
	for num := range m.cfg.Nodes {
		next = max(next, num+1)
	}
	m.dyn[addr] = next
	return next
}

// register makes c the slave of its node. A node has one slave: while
// its slave is connected and pinging, a second one claiming the node is
// refused (EBUSY) and the first keeps working; a slave that went silent
// loses the node after pingtimeout, and its successor gets it.
func (m *Master) register(c *synth.Caller) (*slaveConn, error) {
	if !c.Slave || c.Conn == nil {
		return nil, fmt.Errorf("only slaves may open jobs: %w", syscall.EPERM)
	}
	m.mu.Lock()
	num := m.numberFor(c.Addr)
	n := m.nodeLocked(num)
	old := n.conn
	if old != nil && old.key != c.Conn && old.alive() {
		m.mu.Unlock()
		m.Logf("node %d: refusing a second slave from %s (%s): the node's slave is connected", num, c.Addr, c.Host)
		return nil, fmt.Errorf("node %d already has a connected slave: %w", num, syscall.EBUSY)
	}
	sc := &slaveConn{key: c.Conn, node: n, jobs: synth.NewStream(jobsQueueSize, false), lastPing: time.Now()}
	m.slaves[c.Conn] = sc
	n.conn = sc
	n.state = "up"
	n.host = c.Host
	if c.Addr != slaveproto.LocalAddr {
		n.addr = c.Addr
		if me := m.nodes[-1]; me != nil && me.addr == "-" && c.LocalAddr != "" {
			// The master's address is what its first slave reached it
			// at: where a process on a node connects back to (BProc 3's
			// _bproc_rfork_io ports).
			me.addr = c.LocalAddr
		}
	}
	ping, grace := m.cfg.PingTimeout, m.cfg.Grace
	m.mu.Unlock()
	if old != nil && old != sc {
		m.dropSlave(old, "replaced by a new connection")
	}
	m.Logf("node %d up: slave %s (%s)", num, c.Addr, c.Host)
	if err := sc.send(m, &slaveproto.Msg{Op: "hello", Node: num, PingTimeout: ping.Milliseconds(), Grace: grace.Milliseconds(), Now: time.Now().UnixNano()}); err != nil {
		m.dropSlave(sc, err.Error()) // a slave without its number cannot serve
		return nil, err
	}
	go func() {
		<-c.Conn.Done()
		m.dropSlave(sc, "connection closed")
	}()
	return sc, nil
}

// dropSlave forgets a slave: its node goes down and its processes end as lost.
func (m *Master) dropSlave(sc *slaveConn, why string) {
	sc.mu.Lock()
	if sc.dead {
		sc.mu.Unlock()
		return
	}
	sc.dead = true
	sc.mu.Unlock()
	m.bins.slaveGone() // after dead: the next route sees it so
	sc.jobs.Break(fmt.Errorf("slave dropped: %w", syscall.ENOTCONN))

	m.mu.Lock()
	if m.slaves[sc.key] == sc {
		delete(m.slaves, sc.key)
	}
	n := sc.node
	if n.conn == sc {
		n.conn = nil
		n.state = "down"
	}
	var lost []*Proc
	for _, p := range m.procs {
		if _, cur, _ := p.place(); cur == sc {
			lost = append(lost, p)
		}
	}
	m.mu.Unlock()
	m.Logf("node %d down: %s", n.num, why)
	for _, p := range lost {
		p.lose(sc, fmt.Sprintf("lost node %d down", n.num)) // unless it moved meanwhile
	}
}

func (sc *slaveConn) send(m *Master, msg *slaveproto.Msg) error {
	m.routeStart(sc, msg) // whom it fetches the binary from (spread.go)
	return sc.sendEncoded(m, msg.Op, msg.AppendJSON(make([]byte, 0, 1024)))
}

// sendEncoded sends the message op encoded as b (a line without its
// newline).
func (sc *slaveConn) sendEncoded(m *Master, op string, b []byte) error {
	m.Trace("node %d <- %s", sc.node.num, b)
	ctx := &lazyTimeout{Context: context.Background(), d: sendTimeout}
	defer ctx.stop()
	if _, err := sc.jobs.Write(ctx, append(b, '\n')); err != nil {
		return fmt.Errorf("node %d: sending %s: %w", sc.node.num, op, err)
	}
	return nil
}

// sendTimeout bounds how long a message waits for room in a slave's
// job stream.
const sendTimeout = 5 * time.Second

// lazyTimeout is a context whose timeout starts when something first
// waits on it (Done): a send almost never waits for room, and a timer and
// a context per message were a tenth of a set launch's allocations.
type lazyTimeout struct {
	context.Context // Background until Done is asked for
	d               time.Duration
	cancel          context.CancelFunc
}

func (l *lazyTimeout) Done() <-chan struct{} {
	if l.cancel == nil {
		l.Context, l.cancel = context.WithTimeout(l.Context, l.d)
	}
	return l.Context.Done()
}

func (l *lazyTimeout) stop() {
	if l.cancel != nil {
		l.cancel()
	}
}

// alive: neither dropped nor silent for long (the sweep drops it soon).
func (sc *slaveConn) alive() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return !sc.dead
}

func (sc *slaveConn) ping() error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.dead {
		return fmt.Errorf("connection was dropped: %w", syscall.ENOTCONN)
	}
	sc.lastPing = time.Now()
	return nil
}

// Shutdown ends every blocking read of the tree (output streams, io, wait,
// the slaves' job streams) so the mount and the 9P connections can close.
// Processes still running end as lost.
func (m *Master) Shutdown() {
	m.mu.Lock()
	var slaves []*slaveConn
	for _, sc := range m.slaves {
		slaves = append(slaves, sc)
	}
	for _, n := range m.nodes {
		n.ring.Close()
	}
	m.mu.Unlock()
	for _, sc := range slaves {
		m.dropSlave(sc, "master shutting down")
	}
	m.bins.close()
}

// Run sweeps for silent slaves and old exited processes until ctx ends:
// for slaves every tick (a node's down is seen within a tick of its
// timeout), for processes every procSweepEvery ticks (a look over every
// kept process, thousands of them, ten times a second was 3–6% of the
// master's CPU under launches; their bounds need no finer time).
func (m *Master) Run(ctx context.Context) {
	t := time.NewTicker(sweepTick)
	defer t.Stop()
	for tick := 1; ; tick++ {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			m.sweepSlaves(now)
			if tick%procSweepEvery == 0 {
				m.sweepProcs(now)
			}
			synth.ReleaseMemory()
		}
	}
}

const (
	sweepTick      = 100 * time.Millisecond
	procSweepEvery = 10 // ticks: once a second
)

// sweep is one tick that looks at both.
func (m *Master) sweep(now time.Time) {
	m.sweepSlaves(now)
	m.sweepProcs(now)
	synth.ReleaseMemory()
}

// sweepSlaves drops the slaves silent for longer than the ping timeout.
func (m *Master) sweepSlaves(now time.Time) {
	m.mu.Lock()
	timeout := m.cfg.PingTimeout
	var silent []*slaveConn
	for _, sc := range m.slaves {
		sc.mu.Lock()
		if sc.node.num != -1 && now.Sub(sc.lastPing) > timeout {
			silent = append(silent, sc)
		}
		sc.mu.Unlock()
	}
	m.mu.Unlock()
	for _, sc := range silent {
		m.dropSlave(sc, fmt.Sprintf("no ping for %v", timeout))
	}
}

// sweepProcs forgets exited processes kept exitedKeep, and the oldest
// beyond exitedMax, and bounds what output the rest keep.
func (m *Master) sweepProcs(now time.Time) {
	m.mu.Lock()
	var exited, forgotten []*Proc
	for _, p := range m.procs {
		if t, ok := p.exitTime(); ok {
			if now.Sub(t) > exitedKeep {
				delete(m.procs, p.pid)
				forgotten = append(forgotten, p)
			} else {
				exited = append(exited, p)
			}
		}
	}
	slices.SortFunc(exited, func(a, b *Proc) int { return a.pid - b.pid })
	if len(exited) > exitedMax {
		for _, p := range exited[:len(exited)-exitedMax] {
			delete(m.procs, p.pid)
			forgotten = append(forgotten, p)
		}
		exited = exited[len(exited)-exitedMax:]
	}
	m.mu.Unlock()
	trimExited(exited)
	// The slave may drop what it kept for them (unread output).
	for _, p := range forgotten {
		_, sc, _ := p.place()
		sc.sendIfAlive(m, &slaveproto.Msg{Op: "forget", Pid: p.pid})
	}
}

// trimExited holds the output exited processes keep, all together, to
// exitedKeepTotal: beyond it the oldest (exited, lowest pid first) lose
// what nobody came to read. 64 KiB per stream for each of exitedMax
// processes would otherwise be 512 MiB.
func trimExited(exited []*Proc) {
	if len(exited)*2*exitedKeepBytes <= exitedKeepTotal {
		return // cannot be over: no need to look
	}
	total := 0
	for _, p := range exited {
		for _, s := range []*synth.Stream{p.stdout, p.stderr} {
			size, _ := s.Retained()
			total += size
		}
	}
	for _, p := range exited {
		if total <= exitedKeepTotal {
			return
		}
		for _, s := range []*synth.Stream{p.stdout, p.stderr} {
			before, _ := s.Retained()
			s.Trim(0)
			after, _ := s.Retained()
			total -= before - after
		}
	}
}

// slaveFor returns the live slave connection of caller c.
func (m *Master) slaveFor(c *synth.Caller) (*slaveConn, error) {
	if !c.Slave || c.Conn == nil {
		return nil, fmt.Errorf("not a slave: %w", syscall.EPERM)
	}
	m.mu.Lock()
	sc := m.slaves[c.Conn]
	m.mu.Unlock()
	if sc == nil {
		return nil, fmt.Errorf("slave not registered: %w", syscall.ENOTCONN)
	}
	return sc, nil
}

// mayRun applies a node's permission bits: root always; else the owner,
// group or other execute bit.
func mayRun(c *synth.Caller, mode iofs.FileMode, uid, gid uint32) bool {
	return c.Root() || execBit(c, uint32(mode.Perm()), uid, gid)
}

// execBit is the execute bit of the class (owner, group, other) c is in.
func execBit(c *synth.Caller, perm, uid, gid uint32) bool {
	return classPerm(c, perm, uid, gid)&0o1 != 0
}

// readBit is the read bit of the class c is in.
func readBit(c *synth.Caller, perm, uid, gid uint32) bool {
	return classPerm(c, perm, uid, gid)&0o4 != 0
}

// classPerm is the rwx triple (0-7) of perm for the class (owner,
// group, other) c is in: like the kernel, only that one class counts.
func classPerm(c *synth.Caller, perm, uid, gid uint32) uint32 {
	switch {
	case c.Uid == uid:
		return perm >> 6 & 0o7
	case c.InGroup(gid):
		return perm >> 3 & 0o7
	default:
		return perm & 0o7
	}
}

// execOpts are the options of a ctl exec command.
type execOpts struct {
	dir      string
	env      []string
	argv0    string
	attached bool
	null     bool
	early    bool // -b: the pid at once; a start that fails ends the process
	then     bool // -w: the same open file's next read gives the process's end
	output   bool // -o: the same open file's next reads give its output and end as frames (ctlio.go)
}

func parseExec(args []string) (*execOpts, []string, error) {
	o := &execOpts{}
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		a := args[0]
		args = args[1:]
		if a == "--" {
			break
		}
		needArg := func() (string, error) {
			if len(args) == 0 {
				return "", fmt.Errorf("exec: option %s needs an argument: %w", a, syscall.EINVAL)
			}
			v := args[0]
			args = args[1:]
			return v, nil
		}
		var err error
		switch a {
		case "-i":
			o.attached = true
		case "-n":
			o.null = true
		case "-b":
			o.early = true
		case "-w":
			o.then = true
		case "-o":
			o.output, o.attached = true, true
		case "-c":
			o.dir, err = needArg()
		case "-a":
			o.argv0, err = needArg()
		case "-e":
			var kv string
			if kv, err = needArg(); err == nil {
				if !strings.Contains(kv, "=") {
					return nil, nil, fmt.Errorf("exec: -e %q is not NAME=VALUE: %w", kv, syscall.EINVAL)
				}
				o.env = append(o.env, kv)
			}
		default:
			return nil, nil, fmt.Errorf("exec: unknown option %s: %w", a, syscall.EINVAL)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	if o.output && o.then {
		return nil, nil, fmt.Errorf("exec: -o and -w both say what the file's next read gives (-o's last frame is the end): give one: %w", syscall.EINVAL)
	}
	if len(args) == 0 {
		return nil, nil, fmt.Errorf("exec: missing program path: %w", syscall.EINVAL)
	}
	return o, args, nil
}

// callerEnv is the writer's environment and cwd, as its adapter knows
// them (FUSE: the writing process's); 9P callers get a minimal one.
func callerEnv(c *synth.Caller) (env []string, cwd string) {
	if c.Env != nil {
		if e, d, ok := c.Env(); ok {
			env, cwd = e, d
		}
	}
	if env == nil {
		env = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/"}
	}
	return env, cwd
}

// lookPath finds the binary as the writer would: a name with a slash
// relative to the writer's working directory (none over 9P: refused
// rather than taken against the master's), others in PATH.
func lookPath(name, dir string, env []string, c *synth.Caller) (string, error) {
	if strings.Contains(name, "/") {
		if !strings.HasPrefix(name, "/") {
			if dir == "" {
				return "", fmt.Errorf("%s: a relative path needs a working directory (none known: give -c DIR or an absolute path): %w", name, syscall.EINVAL)
			}
			name = dir + "/" + name
		}
		return name, nil
	}
	path := "/usr/local/bin:/usr/bin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	return searchPath(name, path, dir, c)
}

// execJob is an exec command made ready to send: the binary loaded and
// leased (release lets go once the slave has it), its libraries, argv,
// environment and working directory.
type execJob struct {
	o       *execOpts
	path    string
	bin     *binLease
	libs    []slaveproto.Lib
	argv    []string
	env     []string
	cwd     string
	c       *synth.Caller
	release func()
	// encode, when set, appends to dst the start message of process p
	// (a node set encodes what its nodes share once, fanout.go).
	encode func(dst []byte, p *Proc, fields ...[]byte) []byte
	// late, when set, is closed when the start has taken too long (one
	// timer for a whole node set); else each start has its own.
	late <-chan struct{}
}

// prepareExec parses an exec command of caller c for node n and loads
// what it runs; the caller must call job.release.
func (m *Master) prepareExec(ctx context.Context, c *synth.Caller, n *node, args []string) (*execJob, error) {
	o, argv, err := parseExec(args)
	if err != nil {
		return nil, err
	}
	if _, err := m.runnable(c, n); err != nil {
		return nil, err
	}
	return m.loadJob(ctx, c, o, argv)
}

// loadJob makes exec's parsed command o, argv ready for any node the
// caller may run on: the limit checked, the environment and the binary
// resolved, the binary and its libraries loaded (once for a whole node
// set, fanout.go). The caller must call job.release.
func (m *Master) loadJob(ctx context.Context, c *synth.Caller, o *execOpts, argv []string) (*execJob, error) {
	if err := m.underLimit(c); err != nil {
		return nil, err // before any work: reading and shipping the binary
	}
	// The writer's environment and cwd cost a read of its /proc files:
	// not needed when the command gives both (bpsh does).
	env, cwd := o.env, o.dir
	if env == nil || cwd == "" {
		cenv, ccwd := callerEnv(c)
		if env == nil {
			env = cenv
		}
		if cwd == "" {
			cwd = ccwd
		}
	}
	path, err := lookPath(argv[0], cwd, env, c)
	if err != nil {
		return nil, err
	}
	bin, err := m.bins.load(ctx, path, c)
	if err != nil {
		return nil, err
	}
	job := &execJob{o: o, path: path, bin: bin, argv: argv, env: env, cwd: cwd, c: c, release: func() { m.bins.release(bin) }}
	m.mu.Lock()
	libcache := !m.cfg.NoLibCache
	m.mu.Unlock()
	if libcache {
		libs, leases, err := m.loadLibs(ctx, path, bin, env, c)
		if err != nil {
			job.release()
			return nil, err
		}
		job.libs = libs
		job.release = func() { m.bins.releaseAll(leases); m.bins.release(bin) }
	}
	if o.argv0 != "" {
		argv[0] = o.argv0
	}
	return job, nil
}

// msg is the start message of job as process p.
func (job *execJob) msg(p *Proc) *slaveproto.Msg {
	c, o, bin := job.c, job.o, job.bin
	return &slaveproto.Msg{Op: "start", Pid: p.pid, Inc: p.inc, Hash: bin.hash, Size: bin.size, Path: job.path, Public: bin.public, Libs: job.libs,
		Argv: job.argv, Env: job.env, Dir: job.cwd, Uid: c.Uid, Gid: c.Gid, Groups: c.Groups, Null: o.null, Attached: o.attached}
}

// exec starts args on node n for caller c and returns the new pid once the
// slave reports the process started; with -b at once, the start awaited
// meanwhile (a failure ends the process: its wait says exit 127, -w's
// line the error). With -w the same open file's next read gives the
// process's end.
func (m *Master) exec(ctx context.Context, c *synth.Caller, n *node, args []string) (int, error) {
	job, err := m.prepareExec(ctx, c, n, args)
	if err != nil {
		return 0, err
	}
	p, err := m.startJob(ctx, c, n, job)
	if err != nil {
		return 0, err
	}
	return p.pid, nil
}

// startJob sends the prepared job to node n as a new process and returns
// it once the slave reports it started, or at once with -b (the start
// awaited meanwhile). It lets go of job's binary either way.
func (m *Master) startJob(ctx context.Context, c *synth.Caller, n *node, job *execJob) (*Proc, error) {
	p, sc, err := m.sendJob(c, n, job)
	if err != nil {
		return nil, err
	}
	if job.o.then {
		synth.Then(ctx, p.endLine)
	}
	if job.o.early {
		// The write's context ends with this answer: the start is
		// awaited without it.
		go func() {
			if err := m.awaitStart(context.Background(), p, n, sc, job); err != nil {
				p.startFailed(err)
			}
		}()
		job.o.frames(ctx, p, n)
		return p, nil
	}
	if err := m.settleStart(ctx, p, n, sc, job); err != nil {
		return nil, err
	}
	job.o.frames(ctx, p, n)
	return p, nil
}

// sendJob makes the new process of job on node n and sends its start
// message to the node's slave; on an error it lets go of job's binary.
func (m *Master) sendJob(c *synth.Caller, n *node, job *execJob) (*Proc, *slaveConn, error) {
	m.mu.Lock()
	sc := n.conn
	m.mu.Unlock()
	if sc == nil {
		job.release()
		return nil, nil, fmt.Errorf("node %d is down: %w", n.num, syscall.EHOSTDOWN)
	}
	p, err := m.newProc(c, n, sc, job.argv, job.o.attached)
	if err != nil {
		job.release()
		return nil, nil, err
	}
	if job.encode != nil {
		buf := startBufs.Get().(*[]byte)
		*buf = job.encode((*buf)[:0], p, m.fromField(sc, job.bin.hash)...)
		err = sc.sendEncoded(m, "start", *buf) // copied into the job stream
		if cap(*buf) <= startBufMax {
			startBufs.Put(buf)
		}
	} else {
		err = sc.send(m, job.msg(p))
	}
	if err != nil {
		job.release()
		m.forget(p)
		return nil, nil, err
	}
	return p, sc, nil
}

// settleStart awaits the start of process p sent by sendJob; one that
// did not start is forgotten and ends as exit 127.
func (m *Master) settleStart(ctx context.Context, p *Proc, n *node, sc *slaveConn, job *execJob) error {
	if err := m.awaitStart(ctx, p, n, sc, job); err != nil {
		m.forget(p)
		p.finish("exit 127")
		return err
	}
	return nil
}

// awaitStart waits for the slave's report on process p's start and lets
// go of job's binary (the slave has fetched it once the job starts, or
// failed). A process that did not start in time or whose start was
// interrupted may have started all the same (the report crossed): nobody
// could see or stop it, so it is killed.
func (m *Master) awaitStart(ctx context.Context, p *Proc, n *node, sc *slaveConn, job *execJob) error {
	defer job.release()
	var err error
	started := false
	select { // a report in already wins over a timeout a set's later waits may find passed
	case err = <-p.started:
		started = true
	default:
	}
	if !started {
		var timeout <-chan time.Time
		if job.late == nil {
			timer := time.NewTimer(startTimeout)
			defer timer.Stop()
			timeout = timer.C
		}
		err = m.startReport(ctx, p, n, job, timeout)
	}
	if err != nil {
		sc.send(m, &slaveproto.Msg{Op: "signal", Pid: p.pid, Sig: int(syscall.SIGKILL)})
		return fmt.Errorf("exec %s: %w", job.path, err)
	}
	m.ctr.job(n.num, "started")
	return nil
}

// startReport waits for the slave's report on process p's start, or for
// what ends the wait.
func (m *Master) startReport(ctx context.Context, p *Proc, n *node, job *execJob, timeout <-chan time.Time) error {
	var err error
	select {
	case err = <-p.started:
	case <-p.done:
		// A process that started and ended before this looked has both
		// ready, and select picks either: its start report is applied
		// before its end, so it is in the channel.
		select {
		case err = <-p.started:
		default:
			err = fmt.Errorf("node %d went down: %w", n.num, syscall.EHOSTDOWN)
		}
	case <-timeout:
		err = fmt.Errorf("node %d did not start %s in time: %w", n.num, job.path, syscall.ETIMEDOUT)
	case <-job.late:
		err = fmt.Errorf("node %d did not start %s in time: %w", n.num, job.path, syscall.ETIMEDOUT)
	case <-ctx.Done():
		err = fmt.Errorf("exec interrupted: %w", syscall.EINTR)
	}
	return err
}

// underLimit refuses a new process past the config's maxprocs live
// processes of the caller's uid (root is not limited).
func (m *Master) underLimit(c *synth.Caller) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.underLimitLocked(c)
}

func (m *Master) underLimitLocked(c *synth.Caller) error {
	limit := m.cfg.MaxProcs
	if c.Root() || limit <= 0 {
		return nil
	}
	if live := m.live.of(c.Uid); live >= limit {
		return fmt.Errorf("uid %d has %d live processes, the most maxprocs allows: %w", c.Uid, live, syscall.EAGAIN)
	}
	return nil
}

func (m *Master) forget(p *Proc) {
	m.mu.Lock()
	delete(m.procs, p.pid)
	p.mu.Lock()
	p.uncountLocked()
	p.mu.Unlock()
	m.mu.Unlock()
}

// setState is `state STATE` on node n.
func (m *Master) setState(c *synth.Caller, n *node, state string) error {
	if !c.Root() {
		return fmt.Errorf("only root may change node state: %w", syscall.EPERM)
	}
	valid := false
	for _, s := range NodeStates {
		valid = valid || s == state
	}
	if !valid {
		return fmt.Errorf("unknown state %q (one of %s): %w", state, strings.Join(NodeStates, ", "), syscall.EINVAL)
	}
	m.mu.Lock()
	n.state = state
	sc := n.conn
	cmd := m.cfg.Commands[state]
	m.mu.Unlock()
	m.Logf("node %d: state %s", n.num, state)
	if sc != nil && (state == "reboot" || state == "halt" || state == "pwroff") {
		return sc.send(m, &slaveproto.Msg{Op: "state", State: state, Command: cmd})
	}
	return nil
}

// signalNode is `kill SIG` on node n: every process of the caller's there.
func (m *Master) signalNode(c *synth.Caller, n *node, sig syscall.Signal) (int, error) {
	m.mu.Lock()
	var targets []*Proc
	for _, p := range m.procs {
		if node, _, _ := p.place(); node == n.num && (c.Root() || p.uid == c.Uid) {
			targets = append(targets, p)
		}
	}
	m.mu.Unlock()
	count := 0
	for _, p := range targets {
		if err := p.signal(m, sig); err == nil {
			count++
		}
	}
	return count, nil
}

// parseSignal accepts 9, KILL or SIGKILL.
func parseSignal(s string) (syscall.Signal, error) {
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err == nil && fmt.Sprint(n) == s {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("bad signal number %q: %w", s, syscall.EINVAL)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q: %w", s, syscall.EINVAL)
}
