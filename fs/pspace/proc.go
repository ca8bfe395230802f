package pspace

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"bproc/fs/slaveproto"
	"bproc/fs/synth"

	"golang.org/x/sys/unix"
)

// Proc is one process of the cluster-wide process space.
type Proc struct {
	pid      int
	uid, gid uint32
	groups   []uint32
	argv     []string
	attached bool
	// ghost is where the process's ghost is (nil for a process started
	// through exec, whose stand-in is the tree); onEnd (under mu) tells
	// it, once, how the process ended.
	ghost *ghostRef
	onEnd func(status string)
	ctr   *counters // the master's, counting how the process ends
	ev    *events   // the master's, telling subscribers of its life

	stdout, stderr, stdin *synth.Stream
	started               chan error    // the slave's "started" or "failed"
	running               chan struct{} // closed at "started"
	done                  chan struct{}

	// reports serialises what checks where the process is against what
	// changes it (a slave's report, a move, a lost slave), so that a
	// report is applied to the incarnation it was checked against.
	reports sync.Mutex

	mu sync.Mutex
	// Where it runs; a move changes all four (place, move).
	node     int
	conn     *slaveConn
	ring     *synth.Ring // its node's io, for output nobody attached to
	inc      int         // its incarnation: 0, one more each move
	state    string      // starting, running, stopped, exited
	ospid    int
	status   string // the wait line, once done
	startErr error  // why an exec -b's start failed
	exitedAt time.Time
	pending  *pendingMove // its next incarnation while it moves (migrate.go)
	live     *liveCount   // the count of live processes it is in (limit.go)

	// dir is proc/PID, made at its first lookup (procDirOf): most
	// processes of a set launch are never looked at there.
	m       *Master
	dirOnce sync.Once
	dir     *procDir
}

// procDirOf is proc/PID, made once.
func (p *Proc) procDirOf() *procDir {
	p.dirOnce.Do(func() { p.dir = p.m.newProcDir(p) })
	return p.dir
}

func (m *Master) newProc(c *synth.Caller, n *node, sc *slaveConn, argv []string, attached bool) (*Proc, error) {
	p := m.makeProc(c, n, sc, argv, attached)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.underLimitLocked(c); err != nil {
		return nil, err
	}
	m.allocPidLocked(p)
	m.addProcLocked(p)
	return p, nil
}

// allocPidLocked gives p the next free pid: a moved process's ghost may
// have taken one ahead (its pid is the ghost's).
func (m *Master) allocPidLocked(p *Proc) {
	for m.procs[m.nextPid] != nil {
		m.nextPid++
	}
	p.pid = m.nextPid
	m.nextPid++
	m.pidIssuedLocked()
}

// makeProc is a process of caller c on node n, not yet in the table.
func (m *Master) makeProc(c *synth.Caller, n *node, sc *slaveConn, argv []string, attached bool) *Proc {
	p := &Proc{
		node: n.num, uid: c.Uid, gid: c.Gid, groups: c.Groups, argv: argv, attached: attached, conn: sc, ring: n.ring,
		stdout:  synth.NewStream(streamSize, !attached),
		stderr:  synth.NewStream(streamSize, !attached),
		stdin:   synth.NewStream(streamSize, false),
		started: make(chan error, 1),
		running: make(chan struct{}),
		done:    make(chan struct{}),
		state:   "starting",
		ctr:     &m.ctr,
		ev:      &m.ev,
		m:       m,
	}
	m.watchOutput(p)
	return p
}

// errExited breaks an ended process's stdin (one value for all).
var errExited = fmt.Errorf("process has exited: %w", syscall.EPIPE)

// finish records how the process ended, once; its output streams end
// (after what is queued) and its stdin refuses further bytes.
func (p *Proc) finish(status string) {
	p.mu.Lock()
	if p.status != "" {
		p.mu.Unlock()
		return
	}
	p.ctr.ended(p.node, p.state, status)
	if p.state != "starting" { // a start that failed was never news
		p.ev.publish(Event{Kind: Exited, Pid: p.pid, Node: p.node, Inc: p.inc, Status: status})
	}
	p.status = status
	p.state = "exited"
	p.uncountLocked()
	p.exitedAt = time.Now()
	onEnd := p.onEnd
	p.mu.Unlock()
	if strings.HasPrefix(status, "lost") {
		p.stdout.CloseWrite()
		p.stderr.CloseWrite()
	}
	p.stdin.Break(errExited)
	// Nobody has asked for this output yet: keep its tail, not a megabyte
	// per stream for every exited process. An attached process's (-i)
	// reader is on its way (it opens stdout once exec answered the pid,
	// a few round trips from a node): its output stays whole, within
	// trimExited's bound.
	if !p.attached {
		p.stdout.Trim(exitedKeepBytes)
		p.stderr.Trim(exitedKeepBytes)
	}
	close(p.done)
	if onEnd != nil {
		onEnd(status)
	}
}

// startFailed ends a process whose start failed after exec -b answered
// its pid: its streams end empty, its wait says exit 127 (a shell's "could
// not run"), exec -w's line says why (endLine). One that ended already (its
// node went down) keeps that end.
func (p *Proc) startFailed(err error) {
	p.mu.Lock()
	if p.status == "" {
		p.startErr = err
	}
	p.mu.Unlock()
	p.stdout.CloseWrite()
	p.stderr.CloseWrite()
	p.finish("exit 127")
}

// endLine waits for the process's end (or ctx's) and says it as exec -w's
// second answer: the wait line, or for a start that failed `failed ERRNO
// TEXT`, the errno and the text the exec's write would have failed with.
func (p *Proc) endLine(ctx context.Context) (string, error) {
	select {
	case <-p.done:
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for process %d: %w", p.pid, syscall.EINTR)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.startErr != nil {
		return fmt.Sprintf("failed %d %s\n", int(synth.Errno(p.startErr)), strings.ReplaceAll(p.startErr.Error(), "\n", `\n`)), nil
	}
	return p.status + "\n", nil
}

// place is where the process runs now: its node, that node's slave and
// its incarnation there.
func (p *Proc) place() (node int, sc *slaveConn, inc int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.node, p.conn, p.inc
}

// outRing is the io ring of the process's node, now.
func (p *Proc) outRing() *synth.Ring {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ring
}

// move places the process on node n, served by slave sc, as its next
// incarnation: from then on reports naming an earlier incarnation are
// refused, and the slave of the node it left going down does not end
// it. It returns the new incarnation, which n's start message carries
// (commitMove, migrate.go, once the destination has it running).
func (p *Proc) move(n *node, sc *slaveConn) (int, error) {
	p.reports.Lock()
	defer p.reports.Unlock()
	return p.moveLocked(n, sc)
}

// moveLocked is move with p.reports held.
func (p *Proc) moveLocked(n *node, sc *slaveConn) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.status != "" {
		return 0, fmt.Errorf("process %d has exited: %w", p.pid, syscall.ESRCH)
	}
	from := p.node
	p.node, p.conn, p.ring = n.num, sc, n.ring
	p.inc++
	p.ev.publish(Event{Kind: Moved, Pid: p.pid, Node: n.num, From: from, Inc: p.inc})
	return p.inc, nil
}

// lose ends the process as lost, with status, if slave sc still runs it.
func (p *Proc) lose(sc *slaveConn, status string) {
	p.reports.Lock()
	defer p.reports.Unlock()
	if _, cur, _ := p.place(); cur == sc {
		p.finish(status)
	}
}

// fromSlave applies a report line about incarnation inc from slave sc:
// only the current incarnation's slave may change the process.
func (p *Proc) fromSlave(sc *slaveConn, inc int, line string) error {
	p.reports.Lock()
	defer p.reports.Unlock()
	node, cur, curInc := p.place()
	p.mu.Lock()
	pm := p.pending
	p.mu.Unlock()
	switch {
	case pm != nil && inc == pm.inc && sc == pm.sc:
		return p.fromPending(pm, line)
	case inc != curInc:
		return fmt.Errorf("report for process %d incarnation %d, but it is incarnation %d on node %d now: %w",
			p.pid, inc, curInc, node, syscall.ESTALE)
	case cur != sc:
		return fmt.Errorf("report for process %d, which does not run there: %w", p.pid, syscall.ESRCH)
	}
	return p.slaveReport(line)
}

func (p *Proc) exitTime() (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitedAt, p.status != ""
}

func (p *Proc) statusLine() string {
	p.mu.Lock()
	node, state := p.node, p.state
	p.mu.Unlock()
	return fmt.Sprintf("%d %d %s %d %d %s\n", p.pid, node, state, p.uid, p.gid, escapeBytes(synth.JoinCommand(p.argv)))
}

// escapeBytes shows control characters and bytes that are not UTF-8 as
// \xHH (and a backslash as \\), so a user's argv can neither add lines
// to a file tools parse line by line nor reach a terminal raw, and every
// byte stays visible rather than turning into U+FFFD.
func escapeBytes(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1, r < ' ', r == 0x7f, r >= 0x80 && r < 0xa0:
			for _, c := range []byte(s[i : i+size]) {
				fmt.Fprintf(&b, "\\x%02x", c)
			}
		case r == '\\':
			b.WriteString(`\\`)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// signal asks the process's slave to deliver sig to its process group.
func (p *Proc) signal(m *Master, sig syscall.Signal) error {
	select {
	case <-p.done:
		return fmt.Errorf("process %d has exited: %w", p.pid, syscall.ESRCH)
	default:
	}
	p.mu.Lock()
	starting := p.state == "starting"
	p.mu.Unlock()
	if starting {
		// Its pid may be known before it runs (exec -b): the slave knows
		// no job of that pid yet, so the signal waits for the start.
		go func() {
			select {
			case <-p.running:
				p.signal(m, sig)
			case <-p.done:
			}
		}()
		return nil
	}
	_, sc, _ := p.place()
	if err := sc.send(m, &slaveproto.Msg{Op: "signal", Pid: p.pid, Sig: int(sig)}); err != nil {
		return err
	}
	p.mu.Lock()
	mirror := ""
	switch sig {
	case syscall.SIGSTOP, syscall.SIGTSTP:
		p.state = "stopped"
		mirror = fmt.Sprintf("stopped %d", sig)
	case syscall.SIGCONT:
		if p.state == "stopped" {
			p.state = "running"
		}
		mirror = "continued"
	}
	p.mu.Unlock()
	if p.ghost != nil && mirror != "" {
		// Its ghost stops and continues with it, for its parent's
		// waitpid(WUNTRACED|WCONTINUED).
		p.ghost.sc.sendIfAlive(m, &slaveproto.Msg{Op: "ghost", Pid: p.pid, State: mirror})
	}
	return nil
}

// slaveReport applies a line a slave wrote to slave/report for this process.
func (p *Proc) slaveReport(line string) error {
	r, err := slaveproto.ParseReport(line)
	if err != nil {
		return err
	}
	switch r.Kind {
	case "eof":
		if r.What == "stdout" {
			p.stdout.CloseWrite()
		} else {
			p.stderr.CloseWrite()
		}
	case "started", "failed":
		p.mu.Lock()
		starting := p.state == "starting"
		if starting && r.Kind == "started" {
			p.ospid, p.state = r.N, "running"
			if p.running != nil { // nil in a Proc made by hand (tests)
				close(p.running)
			}
			p.ev.publish(Event{Kind: Started, Pid: p.pid, Node: p.node, Inc: p.inc})
		}
		p.mu.Unlock()
		if !starting {
			return fmt.Errorf("process %d is not starting: %w", p.pid, syscall.EINVAL)
		}
		var err error
		if r.Kind == "failed" {
			err = reported(r.What, syscall.Errno(r.N))
		}
		select { // a repeated report must not block the slave's report file
		case p.started <- err:
		default:
		}
	case "exit":
		p.finish(exitLines[r.N]) // ParseReport bounds it to 0-255
	case "signal":
		p.finish(fmt.Sprintf("signal %d %s", r.N, unix.SignalName(syscall.Signal(r.N))))
	}
	return nil
}

// exitLines are the wait lines of exits 0-255, made once.
var exitLines = func() (l [256]string) {
	for i := range l {
		l[i] = fmt.Sprintf("exit %d", i)
	}
	return l
}()

// mayExecFile is the kernel's execute check for a regular file: root
// needs some execute bit, others their class's.
func mayExecFile(c *synth.Caller, mode uint32, uid, gid uint32) bool {
	if c.Root() {
		return mode&0o111 != 0
	}
	return execBit(c, mode, uid, gid)
}
