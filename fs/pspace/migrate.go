package pspace

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	iofs "io/fs"
	"strconv"
	"sync"
	"syscall"
	"time"

	"bproc/fs/slaveproto"
	"bproc/fs/synth"
	"bproc/vmadump"
)

// Migration: `move`, `rfork` and `execmove` written to node/N/ctl act on
// the writer (Caller.Node, Caller.Pid). The writer is inside its write(2)
// when the tree hears of it, and a process cannot be stopped there: so
// the source slave (of the writer's node) seizes it first, the write then
// returns, and the process stops on its way out of the kernel, before it
// runs on. The source dumps it into slave/mig/MIG/image, the destination
// restores it from there as a job, and the master tells the source the
// outcome: it lets the process run on with the errno as its write's
// result, or keeps it as the ghost of the moved process (its pid, parent
// and stdio stay), or ends it (a job that moves on from a node that is
// not its origin). The ctl result (rfork: the child's pid) is set Later,
// before the process runs again.

const (
	// migPerUser bounds the migrations one user (not root) has in flight:
	// each holds up to migImageBuffer of the master's memory.
	migPerUser      = 16
	migSeizeTimeout = 5 * time.Second
	migStepTimeout  = 30 * time.Second
	migImageBuffer  = 8 << 20
)

type migration struct {
	id      int
	uid     uint32
	kind    string
	src     *slaveConn
	dst     *slaveConn
	image   *synth.Stream
	reports chan slaveproto.MigReport
}

// migCommand is the ctl row of a migration kind.
func migCommand(kind, usage string, minArgs, maxArgs int) synth.Command[*nodeDir] {
	return synth.Command[*nodeDir]{Name: kind, MinArgs: minArgs, MaxArgs: maxArgs, Usage: usage,
		Run: func(ctx context.Context, c *synth.Caller, nd *nodeDir, args []string) (string, error) {
			return "", nd.m.migrate(ctx, c, nd.n, kind, args)
		}}
}

// dumpFlags reads a move or rfork's FLAGS: BProc's bits as a number
// (BPROC_DUMP_LIBS 1, _EXEC 2, _OTHER 4) or vmadump's names.
func dumpFlags(args []string) (vmadump.Flags, error) {
	if len(args) == 0 {
		return vmadump.DumpExec | vmadump.DumpOther, nil
	}
	if n, err := strconv.Atoi(args[0]); err == nil {
		if n < 0 || vmadump.Flags(n)&^vmadump.DumpAll != 0 {
			return 0, fmt.Errorf("dump flags %d: only libs (1), exec (2) and other (4) exist: %w", n, syscall.EINVAL)
		}
		return vmadump.Flags(n), nil
	}
	f, err := vmadump.ParseFlags(args[0])
	if err != nil {
		return 0, fmt.Errorf("%v: %w", err, syscall.EINVAL)
	}
	return f, nil
}

// migrate starts a migration of the writer to node n and returns once the
// writer is seized: the rest goes on in the background (run).
func (m *Master) migrate(ctx context.Context, c *synth.Caller, n *node, kind string, args []string) error {
	var flags vmadump.Flags
	var job *execJob
	var err error
	if kind == slaveproto.MigExecmove {
		job, err = m.prepareExec(ctx, c, n, args)
	} else {
		flags, err = dumpFlags(args)
	}
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if job != nil && !ok {
			job.release()
		}
	}()
	if c.Node == synth.NodeUnknown || c.Pid <= 0 {
		return fmt.Errorf("%s acts on the writing process, which this connection does not name (write it through a mount): %w", kind, syscall.EINVAL)
	}
	if n.num == c.Node {
		if kind == slaveproto.MigMove {
			return nil // already there
		}
		if kind == slaveproto.MigRfork {
			return fmt.Errorf("rfork to the node the process is on: use fork: %w", syscall.EINVAL)
		}
	}
	dst, err := m.runnable(c, n)
	if err != nil {
		return err
	}
	m.mu.Lock()
	srcNode := m.nodes[c.Node]
	var src *slaveConn
	if srcNode != nil {
		src = srcNode.conn
	}
	p := m.procOnLocked(c.Node, c.Pid)
	m.mu.Unlock()
	if src == nil || !src.alive() {
		return fmt.Errorf("node %d, where the process runs, has no slave: %w", c.Node, syscall.EHOSTDOWN)
	}
	if p != nil && !c.Root() && p.uid != c.Uid {
		return fmt.Errorf("process %d belongs to uid %d: %w", p.pid, p.uid, syscall.EPERM)
	}
	if kind == slaveproto.MigRfork || p == nil {
		if err := m.underLimit(c); err != nil { // a new process of the space
			return err
		}
	}
	mig, err := m.newMigration(c, kind, src, dst)
	if err != nil {
		return err
	}
	if err := src.send(m, &slaveproto.Msg{Op: "seize", Mig: mig.id, OSPid: c.Pid, Kind: kind, Flags: uint32(flags)}); err != nil {
		m.endMigration(mig)
		return err
	}
	// Not the write's ctx: seizing the writer interrupts its FUSE request
	// (the kernel's FUSE_INTERRUPT cancels it), yet the write goes on.
	if _, err := mig.await(context.Background(), "seized", migSeizeTimeout); err != nil {
		// It may be seized all the same: the source lets it go on.
		src.sendIfAlive(m, &slaveproto.Msg{Op: "migrated", Mig: mig.id, Errno: int(synth.Errno(err)), Text: err.Error()})
		m.endMigration(mig)
		return fmt.Errorf("%s: %w", kind, err)
	}
	later := synth.Later(ctx)
	ok = true // the job is runMigration's now
	go func() {
		err := m.runMigration(mig, c, n, p, job, later)
		if err != nil {
			m.Logf("%s of process %d (node %d) to node %d: %v", kind, c.Pid, c.Node, n.num, err)
		}
	}()
	return nil
}

// runnable is the slave of node n, if c may run work there now.
func (m *Master) runnable(c *synth.Caller, n *node) (*slaveConn, error) {
	m.mu.Lock()
	state, sc := n.state, n.conn
	permitted := mayRun(c, n.mode, n.uid, n.gid)
	m.mu.Unlock()
	if !permitted {
		return nil, fmt.Errorf("node %d: %w", n.num, syscall.EACCES)
	}
	if sc == nil || !(state == "up" || (state == "unavailable" && c.Root())) {
		return nil, fmt.Errorf("node %d is %s: %w", n.num, state, syscall.EHOSTDOWN)
	}
	return sc, nil
}

// procOnLocked is the live process running as ospid on node num, if it is
// one of the process space's.
func (m *Master) procOnLocked(num, ospid int) *Proc {
	for _, p := range m.procs {
		p.mu.Lock()
		hit := p.node == num && p.ospid == ospid && p.status == "" && p.state != "starting"
		p.mu.Unlock()
		if hit {
			return p
		}
	}
	return nil
}

func (m *Master) newMigration(c *synth.Caller, kind string, src, dst *slaveConn) (*migration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.migs == nil {
		m.migs = map[int]*migration{}
	}
	if !c.Root() {
		n := 0
		for _, mig := range m.migs {
			if mig.uid == c.Uid {
				n++
			}
		}
		if n >= migPerUser {
			return nil, fmt.Errorf("uid %d has %d migrations in flight, the most there may be: %w", c.Uid, n, syscall.EAGAIN)
		}
	}
	m.nextMig++
	mig := &migration{id: m.nextMig, uid: c.Uid, kind: kind, src: src, dst: dst,
		image: synth.NewStream(migImageBuffer, false), reports: make(chan slaveproto.MigReport, 8)}
	m.migs[mig.id] = mig
	return mig, nil
}

func (m *Master) endMigration(mig *migration) {
	m.mu.Lock()
	delete(m.migs, mig.id)
	m.mu.Unlock()
	mig.image.Break(fmt.Errorf("migration over: %w", syscall.EPIPE))
}

// await waits for the source's report ev; a "failed" report is its error.
func (mig *migration) await(ctx context.Context, ev string, timeout time.Duration) (slaveproto.MigReport, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-mig.reports:
		switch r.Ev {
		case ev:
			return r, nil
		case "failed":
			return r, reported(r.Text, syscall.Errno(r.Errno))
		}
		return r, fmt.Errorf("source reported %q, expected %q: %w", r.Ev, ev, syscall.EPROTO)
	case <-t.C:
		return slaveproto.MigReport{}, fmt.Errorf("source slave did not report %s in %v: %w", ev, timeout, syscall.ETIMEDOUT)
	case <-ctx.Done():
		return slaveproto.MigReport{}, fmt.Errorf("interrupted: %w", syscall.EINTR)
	}
}

// runMigration carries a seized writer to node n: the destination
// restores (or, for execmove, runs) it, and the source learns the outcome.
func (m *Master) runMigration(mig *migration, c *synth.Caller, n *node, p *Proc, job *execJob, later func(string, error)) (err error) {
	defer m.endMigration(mig)
	if job != nil {
		defer job.release() // the destination has fetched the binary by its start
	}
	var child *Proc // the process space's new process, if the migration makes one
	var result string
	defer func() {
		out := &slaveproto.Msg{Op: "migrated", Mig: mig.id}
		if err != nil {
			out.Errno, out.Text = int(synth.Errno(err)), err.Error()
			if child != nil {
				child.mu.Lock()
				child.onEnd = nil // no ghost was made
				child.mu.Unlock()
				m.forget(child)
				child.finish("exit 127")
				mig.dst.sendIfAlive(m, &slaveproto.Msg{Op: "signal", Pid: child.pid, Sig: int(syscall.SIGKILL)})
			}
		} else if child != nil {
			out.Pid, out.Ghost = child.pid, true
		}
		if later != nil {
			later(result, err) // before the writer runs again: it may read it at once
		}
		if sendErr := mig.src.send(m, out); sendErr != nil && err == nil {
			err = sendErr
		}
	}()
	stopped, err := mig.await(context.Background(), "stopped", migStepTimeout)
	if err != nil {
		return err
	}
	ghostPid := c.Pid
	if mig.kind == slaveproto.MigRfork {
		ghostPid = stopped.Child
	}
	if p == nil || mig.kind == slaveproto.MigRfork {
		// A new process of the space, its ghost on the source node: on
		// the master the same pid as the ghost, elsewhere a new one.
		pid := 0
		if c.Node == -1 {
			pid = ghostPid
		}
		argv := stopped.Argv
		if job != nil {
			argv = job.argv
		}
		if child, err = m.newGhostProc(c, n, mig, pid, ghostPid, argv); err != nil {
			return err
		}
		if err := m.startMigrated(mig, child, child.inc, job); err != nil {
			return err
		}
		if err := m.awaitStarted(child.started, child.done, n); err != nil {
			return err
		}
		if job == nil {
			if _, err := mig.await(context.Background(), "dumped", migStepTimeout); err != nil {
				return err
			}
		}
		m.ctr.job(n.num, "started")
		if mig.kind == slaveproto.MigRfork {
			result = fmt.Sprintf("%d\n", ghostPid)
		}
		return nil
	}
	// A process of the space moves on: its next incarnation starts on n.
	pm, err := p.beginMove(n, mig.dst)
	if err != nil {
		return err
	}
	// (With execmove, its next incarnation is the new program, and the
	// node it leaves ends it there.)
	if err := m.startMigrated(mig, p, pm.inc, job); err != nil {
		p.abortMove(pm)
		return err
	}
	if err := m.awaitStarted(pm.started, p.done, n); err != nil {
		p.abortMove(pm)
		mig.dst.sendIfAlive(m, &slaveproto.Msg{Op: "signal", Pid: p.pid, Sig: int(syscall.SIGKILL)})
		return err
	}
	if job != nil {
		return p.commitMove(pm)
	}
	if _, err := mig.await(context.Background(), "dumped", migStepTimeout); err != nil {
		p.abortMove(pm)
		mig.dst.sendIfAlive(m, &slaveproto.Msg{Op: "signal", Pid: p.pid, Sig: int(syscall.SIGKILL)})
		return err
	}
	return p.commitMove(pm)
}

// startMigrated sends the destination the start of process p's
// incarnation inc: restored from the migration's image, or job's binary.
func (m *Master) startMigrated(mig *migration, p *Proc, inc int, job *execJob) error {
	msg := &slaveproto.Msg{Op: "start", Uid: p.uid, Gid: p.gid, Groups: p.groups, Argv: p.argv}
	if job != nil {
		msg = job.msg(p)
	}
	msg.Pid, msg.Inc, msg.Mig, msg.Attached = p.pid, inc, mig.id, p.attached
	msg.StdoutOff, msg.StderrOff = p.stdout.In(), p.stderr.In()
	return mig.dst.send(m, msg)
}

func (m *Master) awaitStarted(started <-chan error, done <-chan struct{}, n *node) error {
	t := time.NewTimer(startTimeout)
	defer t.Stop()
	select {
	case err := <-started:
		return err
	case <-done:
		return fmt.Errorf("node %d went down: %w", n.num, syscall.EHOSTDOWN)
	case <-t.C:
		return fmt.Errorf("node %d did not restore the process in time: %w", n.num, syscall.ETIMEDOUT)
	}
}

// newGhostProc is a process of the space that a ghost on the source
// stands for, placed on node n (pid 0: a new pid).
func (m *Master) newGhostProc(c *synth.Caller, n *node, mig *migration, pid, ghostPid int, argv []string) (*Proc, error) {
	p := m.makeProc(c, n, mig.dst, argv, true)
	p.ghost = &ghostRef{sc: mig.src, pid: ghostPid}
	p.onEnd = func(status string) {
		p.ghost.sc.sendIfAlive(m, &slaveproto.Msg{Op: "ghost", Pid: p.pid, State: status})
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.underLimitLocked(c); err != nil {
		return nil, err
	}
	if pid == 0 {
		m.allocPidLocked(p)
	} else {
		if m.procs[pid] != nil {
			return nil, fmt.Errorf("pid %d is a process of the space already: %w", pid, syscall.EBUSY)
		}
		p.pid = pid
	}
	m.addProcLocked(p)
	return p, nil
}

// ghostRef is where a moved process's ghost is: the slave hosting it and
// its pid there.
type ghostRef struct {
	sc  *slaveConn
	pid int
}

// pendingMove is the next incarnation of a process while it is restored
// on its new node: reports naming it come from there before it counts.
type pendingMove struct {
	n       *node
	sc      *slaveConn
	inc     int
	started chan error
	pid     int // its pid on the node, once started (under the process's lock)
	// early are its reports after "started" that came before the move
	// counted (a short job ends before the old node's "dumped" is
	// heard): applied by commitMove, under the process's reports lock.
	early []string
	// closed are its output streams it closed (their ends) before the
	// move counted: closed by commitMove too.
	closed []io.Closer
}

// maxEarly bounds early: a few lines (its streams' ends, its end) are
// all a process sends before its move counts.
const maxEarly = 16

func (p *Proc) beginMove(n *node, sc *slaveConn) (*pendingMove, error) {
	p.reports.Lock()
	defer p.reports.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.status != "" {
		return nil, fmt.Errorf("process %d has exited: %w", p.pid, syscall.ESRCH)
	}
	if p.pending != nil {
		return nil, fmt.Errorf("process %d is moving already: %w", p.pid, syscall.EBUSY)
	}
	if p.stdout.Diverted() || p.stderr.Diverted() {
		// Its node did not give its direct streams back (an older
		// slave): the next node would write to streams nobody reads.
		return nil, fmt.Errorf("process %d's output goes straight to a client from its node: %w", p.pid, syscall.EBUSY)
	}
	p.pending = &pendingMove{n: n, sc: sc, inc: p.inc + 1, started: make(chan error, 1)}
	return p.pending, nil
}

func (p *Proc) abortMove(pm *pendingMove) {
	p.reports.Lock()
	defer p.reports.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending == pm {
		p.pending = nil
	}
}

// commitMove makes the pending incarnation the process's, with no gap
// in which its reports would be refused, and applies those it sent
// before.
func (p *Proc) commitMove(pm *pendingMove) error {
	p.reports.Lock()
	defer p.reports.Unlock()
	p.mu.Lock()
	if p.pending == pm {
		p.pending = nil
	}
	ospid := pm.pid
	p.mu.Unlock()
	inc, err := p.moveLocked(pm.n, pm.sc)
	if err != nil {
		return err
	}
	if inc != pm.inc {
		return fmt.Errorf("process %d: incarnation %d, expected %d: %w", p.pid, inc, pm.inc, syscall.ESTALE)
	}
	p.mu.Lock()
	p.ospid = ospid
	p.mu.Unlock()
	for _, c := range pm.closed {
		c.Close()
	}
	for _, line := range pm.early {
		if err := p.slaveReport(line); err != nil {
			return fmt.Errorf("process %d: its report %q from before the move counted: %w", p.pid, line, err)
		}
	}
	return nil
}

// tell passes the start's outcome on; a repeated report must not block
// the slave's report file (and the process's reports lock) for good.
func (pm *pendingMove) tell(err error) {
	select {
	case pm.started <- err:
	default:
	}
}

// fromPending applies a report from the pending incarnation (started or
// failed); called with p.reports held.
func (p *Proc) fromPending(pm *pendingMove, line string) error {
	r, err := slaveproto.ParseReport(line)
	if err != nil {
		return err
	}
	switch r.Kind {
	case "started":
		p.mu.Lock()
		pm.pid = r.N
		p.mu.Unlock()
		pm.tell(nil)
	case "failed":
		pm.tell(reported(r.What, syscall.Errno(r.N)))
	default:
		p.mu.Lock()
		started := pm.pid != 0
		p.mu.Unlock()
		if !started || len(pm.early) >= maxEarly {
			return fmt.Errorf("report %q before the process has moved: %w", line, syscall.EINVAL)
		}
		pm.early = append(pm.early, line)
	}
	return nil
}

// migFor is the migration id names, if slave sc takes part in it.
func (m *Master) migFor(sc *slaveConn, id string) (*migration, error) {
	n, err := strconv.Atoi(id)
	if err != nil {
		return nil, fmt.Errorf("migration %q: %w", id, syscall.ENOENT)
	}
	m.mu.Lock()
	mig := m.migs[n]
	m.mu.Unlock()
	if mig == nil || (mig.src != sc && mig.dst != sc) {
		return nil, fmt.Errorf("migration %d: %w", n, syscall.ENOENT)
	}
	return mig, nil
}

// slaveMigDir is slave/mig: MIG/ctl and MIG/image for the slaves of a
// migration.
type slaveMigDir struct{ unlisted }

func (d *slaveMigDir) Lookup(c *synth.Caller, name string) (synth.Node, error) {
	sc, err := d.m.slaveFor(c)
	if err != nil {
		return nil, err
	}
	mig, err := d.m.migFor(sc, name)
	if err != nil {
		return nil, err
	}
	src := func(c *synth.Caller) error {
		if s, _ := d.m.slaveFor(c); s != mig.src {
			return fmt.Errorf("only the source slave writes migration %d: %w", mig.id, syscall.EACCES)
		}
		return nil
	}
	ctl := &synth.FuncFile{Ino: synth.NewIno(), Mode: 0o200, OpenFunc: func(c *synth.Caller, _ int) (synth.Handle, error) {
		if err := src(c); err != nil {
			return nil, err
		}
		return &migReportHandle{mig: mig}, nil
	}}
	image := &synth.FuncFile{Ino: synth.NewIno(), Mode: 0o600, OpenFunc: func(c *synth.Caller, flags int) (synth.Handle, error) {
		if flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0 {
			if err := src(c); err != nil {
				return nil, err
			}
			return synth.NewStreamWriter(mig.image, nil), nil
		}
		if s, _ := d.m.slaveFor(c); s != mig.dst {
			return nil, fmt.Errorf("only the destination reads migration %d: %w", mig.id, syscall.EACCES)
		}
		return synth.NewStreamReader(mig.image), nil
	}}
	return synth.NewDir(synth.StaticEntries("ctl", ctl, "image", image)), nil
}

// migReportHandle takes the source's MigReport lines.
type migReportHandle struct {
	synth.NoRead
	synth.NoClose
	mig *migration
	mu  sync.Mutex
}

func (h *migReportHandle) Write(_ context.Context, b []byte, _ int64) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, synth.MaxCommand)
	for sc.Scan() {
		r, err := slaveproto.ParseMigReport(sc.Bytes())
		if err != nil {
			return 0, err
		}
		select {
		case h.mig.reports <- r:
		default:
			return 0, fmt.Errorf("migration %d: too many reports: %w", h.mig.id, syscall.EAGAIN)
		}
	}
	return len(b), nil
}

// slaveGhostDir is slave/ghost: PID/ctl, stdout, stderr and stdin for
// the slave that hosts the ghost of process PID.
type slaveGhostDir struct{ unlisted }

func (d *slaveGhostDir) Lookup(c *synth.Caller, name string) (synth.Node, error) {
	sc, p, err := d.m.slaveProc(c, name)
	if err != nil {
		return nil, err
	}
	if p.ghost == nil || p.ghost.sc != sc {
		return nil, fmt.Errorf("ghost %s: %w", name, syscall.ENOENT)
	}
	mk := func(mode iofs.FileMode, h func() synth.Handle) *synth.FuncFile {
		return &synth.FuncFile{Ino: synth.NewIno(), Mode: mode, OpenFunc: func(*synth.Caller, int) (synth.Handle, error) { return h(), nil }}
	}
	ctl := &synth.CtlFile[*Proc]{Ino: synth.NewIno(), Owner: func() (uint32, uint32) { return 0, 0 }, Mode: 0o200,
		Table: d.m.ghostCommands(), Target: p}
	return synth.NewDir(synth.StaticEntries("ctl", ctl,
		"stderr", mk(0o400, func() synth.Handle { return synth.AttachReader(p.stderr) }),
		"stdin", mk(0o200, func() synth.Handle { return synth.NewStreamWriter(p.stdin, nil) }),
		"stdout", mk(0o400, func() synth.Handle { return synth.AttachReader(p.stdout) }))), nil
}

// ghostCommands are what a ghost's host tells of it: a signal sent to
// the ghost, for the process it stands for.
func (m *Master) ghostCommands() synth.Table[*Proc] {
	return synth.Table[*Proc]{
		{Name: "signal", MinArgs: 1, MaxArgs: 1, Usage: "signal SIG", Run: func(_ context.Context, _ *synth.Caller, p *Proc, args []string) (string, error) {
			sig, err := parseSignal(args[0])
			if err != nil {
				return "", err
			}
			return "", p.signal(m, sig)
		}},
	}
}
