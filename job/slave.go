// Package job runs a node's share of the process space: it reads job
// messages from the master's tree (slave/jobs), starts processes as the
// requesting user, streams their output back and reports how they end. The
// same code serves every compute node (over 9P in bpslave) and the master's
// own node -1 (in-process).
package job

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"bproc/fs/slaveproto"
)

// Opener opens a file of the master's tree by slash-separated path.
type Opener interface {
	Open(name string, flag int) (io.ReadWriteCloser, error)
}

// Slave serves one connection to the master.
type Slave struct {
	Tree     Opener
	CacheDir string // keep shipped binaries here by content; "" keeps them in memory
	Logf     func(format string, args ...any)
	Trace    func(format string, args ...any)
	// OnHello is called once the master has given this slave its node number.
	OnHello func(node int)
	// Reaper, when set, starts this program again as the reaper that ends
	// the jobs' process groups if the slave dies (see RunReaperIfAsked,
	// which the program's main must call first).
	Reaper bool
	// KeepJobs keeps the jobs running when the master is lost, for the
	// grace period its hello gave, until a master adopts them (bpslave
	// -r; see orphan.go). Without it they are killed at once.
	KeepJobs bool

	// DialPeer, when set, connects to other slaves' peer listeners, to
	// fetch binaries from the peers a start message names (peer.go).
	DialPeer PeerDialer
	// PeerPort, when not 0, is announced to the master (slave/peer) as
	// this slave's peer listener, serving PeerTree.
	PeerPort int
	// CorruptPeer makes PeerTree serve every byte flipped: a test's bad
	// peer, which fetching slaves must refuse by the hash.
	CorruptPeer bool

	mu     sync.Mutex
	cache  *binCache
	reaper reaper
	mig    migState    // migrations and ghosts (migrate.go)
	direct directState // the data port (direct.go)
	// masterAhead is how far the master's clock is ahead of this node's
	// (ns, from its hello): tickets expire in the master's time.
	masterAhead atomic.Int64

	jobsState // orphan.go
}

// link is one connection to the master, as the goroutines of its jobs see
// it: they keep it even when the Slave has moved on to a new connection,
// so a late report never lands on a new master whose pids mean other
// processes.
type link struct {
	tree     Opener
	reportMu sync.Mutex
	report   io.Writer // slave/report
	fail     context.CancelCauseFunc
}

// ioBuf is the copy size for job I/O: as large as fits in one 9P message
// of the 1 MiB msize (with room for headers), so each read is one Twrite.
const ioBuf = 1<<20 - 8<<10

// bufs recycles the large copy buffers: allocating (and clearing) them for
// every job costs more than starting the job.
var bufs = sync.Pool{New: func() any { b := make([]byte, ioBuf); return &b }}

func (s *Slave) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

func (s *Slave) trace(format string, args ...any) {
	if s.Trace != nil {
		s.Trace(format, args...)
	}
}

// Close kills the jobs still kept and removes what the slave keeps on the
// node (a temporary binary cache). Call it when the slave is done for good.
func (s *Slave) Close() error {
	s.killAll()
	s.mu.Lock()
	c := s.cache
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.Close()
}

// Run registers with the master and serves jobs until the connection fails
// or ctx ends. When Run returns the jobs are killed, unless KeepJobs keeps
// them for the next Run to hand to a master (orphan.go).
func (s *Slave) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s.binCache()
	s.ensureJobs()

	// This connection's tree: goroutines of its jobs keep using it even if
	// s.Tree is replaced for the next connection.
	tree := s.Tree
	jobs, err := tree.Open("slave/jobs", os.O_RDONLY)
	if errors.Is(err, syscall.EBUSY) {
		// 9P carries only the errno: say what the master means by it.
		return fmt.Errorf("registering with the master: the node already has a connected slave: %w", err)
	}
	if err != nil {
		return fmt.Errorf("registering with the master: %w", err)
	}
	report, err := tree.Open("slave/report", os.O_WRONLY)
	if err != nil {
		jobs.Close()
		return fmt.Errorf("opening report: %w", err)
	}
	defer report.Close()
	l := &link{tree: tree, report: report, fail: cancel}
	s.offerDataPort(tree)
	defer s.linkLost(l)
	go func() {
		<-ctx.Done()
		jobs.Close()
	}()
	jr := &jobReader{r: bufio.NewReaderSize(jobs, 256<<10), l: l, tree: tree, cancel: cancel, end: make(chan error, 1)}
	go s.readJobs(ctx, jr)
	return <-jr.end
}

// jobReader is a link's job stream and what its messages need; one
// goroutine at a time reads it (readJobs), and end takes its last error.
type jobReader struct {
	r      *bufio.Reader
	l      *link
	tree   Opener
	cancel context.CancelCauseFunc
	end    chan error
}

// readJobs reads and dispatches jr's messages until the stream fails.
// A start runs on this goroutine, which hands the stream to a new one
// first: the start goes on at once rather than after the next read is
// sent and a new goroutine is scheduled (a hop of about 100 µs on a
// virtual machine, on the path of every launch).
func (s *Slave) readJobs(ctx context.Context, jr *jobReader) {
	r, l, tree, cancel := jr.r, jr.l, jr.tree, jr.cancel
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			if cause := context.Cause(ctx); cause != nil {
				jr.end <- cause
			} else if errors.Is(err, io.EOF) {
				jr.end <- fmt.Errorf("master closed the job stream: %w", syscall.ENOTCONN)
			} else {
				jr.end <- fmt.Errorf("reading jobs: %w", err)
			}
			return
		}
		s.trace("<- %s", line)
		var m slaveproto.Msg
		if err := slaveproto.DecodeMsg(line, &m); err != nil {
			s.logf("bad job message %q: %v", line, err)
			continue
		}
		switch m.Op {
		case "hello":
			s.logf("registered as node %d", m.Node)
			if m.Now != 0 {
				s.masterAhead.Store(m.Now - time.Now().UnixNano())
			}
			go s.pinger(ctx, tree, cancel, time.Duration(m.PingTimeout)*time.Millisecond)
			s.handOver(l, time.Duration(m.Grace)*time.Millisecond)
			s.announcePeer(tree)
			if s.OnHello != nil {
				s.OnHello(m.Node)
			}
		case "start":
			if m.Mig != 0 && m.Hash == "" {
				go s.restoreJob(ctx, l, &m)
			} else {
				go s.readJobs(ctx, jr)
				s.start(ctx, l, &m)
				return
			}
		case "seize":
			s.seize(l, &m)
		case "migrated":
			go s.migrated(l, &m)
		case "ghost":
			s.ghostNews(&m)
		case "signal":
			s.signal(m.Pid, syscall.Signal(m.Sig))
		case "ack":
			s.ack(m.Pid, m.Stream, m.Off)
		case "forget":
			if j := s.job(m.Pid); j != nil {
				s.drop(j)
			}
		case "state":
			go s.runStateCommand(&m)
		default:
			s.logf("unknown job message %q", m.Op)
		}
	}
}

// pinger proves the slave alive several times per ping timeout; a failed
// ping means the master dropped us.
func (s *Slave) pinger(ctx context.Context, tree Opener, cancel context.CancelCauseFunc, timeout time.Duration) {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	f, err := tree.Open("slave/ping", os.O_WRONLY)
	if err != nil {
		cancel(fmt.Errorf("opening ping: %w", err))
		return
	}
	defer f.Close()
	t := time.NewTicker(timeout / 4)
	defer t.Stop()
	for {
		// A write that hangs (a cut cable, a frozen master) counts as a
		// failure after the timeout: the master has dropped us by then.
		done := make(chan error, 1)
		go func() {
			_, err := f.Write([]byte("ping\n"))
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				cancel(fmt.Errorf("ping: %w", err))
				return
			}
		case <-time.After(timeout):
			cancel(fmt.Errorf("ping: no answer from the master in %v: %w", timeout, syscall.ETIMEDOUT))
			return
		case <-ctx.Done():
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Slave) signal(pid int, sig syscall.Signal) {
	s.jmu.Lock()
	j := s.jobs[pid]
	live := j != nil && j.status == ""
	if live {
		switch sig {
		case syscall.SIGSTOP, syscall.SIGTSTP:
			j.stopped = true
		case syscall.SIGCONT:
			j.stopped = false
		}
	}
	s.jmu.Unlock()
	if !live {
		return
	}
	if err := syscall.Kill(-j.pgid, sig); err != nil {
		s.logf("signal %d to job %d: %v", sig, pid, err)
	}
}

func (s *Slave) runStateCommand(m *slaveproto.Msg) {
	if m.Command == "" {
		s.logf("state %s: no command configured", m.State)
		return
	}
	s.logf("state %s: running %q", m.State, m.Command)
	out, err := exec.Command("/bin/sh", "-c", m.Command).CombinedOutput()
	if err != nil {
		s.logf("state %s: %q: %v: %s", m.State, m.Command, err, out)
	}
}

// start runs one job: it fetches the binary, then spawns and supervises
// the process (run), reporting each step on slave/report.
func (s *Slave) start(ctx context.Context, l *link, m *slaveproto.Msg) {
	bin, err := s.cache.get(l.tree, s.CacheDir, m)
	if err != nil {
		s.fail(l, m, fmt.Errorf("fetching %s: %w", m.Path, err))
		return
	}
	prog, argv, env, err := s.withLibs(l.tree, m, bin)
	if err != nil {
		s.fail(l, m, fmt.Errorf("the libraries of %s: %w", m.Path, err))
		return
	}
	s.run(ctx, l, m, execSpawn(prog, argv, env, m.Dir))
}

// run prepares job m's I/O, spawns its process with spawn and supervises
// it to its end.
func (s *Slave) run(ctx context.Context, l *link, m *slaveproto.Msg, spawn spawnFunc) {
	j := newRunning(m)
	f, err := openFiles(j, m.Null)
	if err != nil {
		s.fail(l, m, err)
		return
	}
	p, err := s.spawn(l, j, m, f, spawn)
	if err != nil {
		f.close(j)
		s.fail(l, m, err)
		return
	}
	f.closeChild()
	s.supervise(ctx, l, j, p, f.stdinW)
}

var errLinkGone = fmt.Errorf("the connection to the master is gone: %w", syscall.ENOTCONN)

// spawn starts j's process on the job spawner, as m's user, and registers
// it: in the slave's table, unless the link it came on is gone meanwhile
// (then it is killed), and its process group with the reaper.
func (s *Slave) spawn(l *link, j *running, m *slaveproto.Msg, f *jobFiles, spawn spawnFunc) (*proc, error) {
	if cur, _ := s.link(); cur != l {
		return nil, errLinkGone
	}
	// Not under jmu: a restore holds the spawner for a while, and the
	// jobs' I/O and signals need the table meanwhile.
	p, err := spawn(&jobSpawner, &syscall.Credential{Uid: m.Uid, Gid: m.Gid, Groups: m.Groups}, f)
	if err != nil {
		return nil, err
	}
	s.jmu.Lock()
	lost := s.cur != l
	if !lost {
		j.pgid = p.pid
		s.jobs[m.Pid] = j
	}
	s.jmu.Unlock()
	if lost {
		// As if it had started just before the link went: killed with
		// the link's other jobs, and nobody is told.
		syscall.Kill(-p.pid, syscall.SIGKILL)
		p.wait()
		return nil, errLinkGone
	}
	if s.Reaper {
		if err := s.reaper.note('+', p.pid); err != nil {
			s.logf("job %d: %v (its processes may outlive this slave)", m.Pid, err)
		}
	}
	return p, nil
}

// supervise streams j's output, feeds its stdin, reports it started and,
// once it ends, how.
func (s *Slave) supervise(ctx context.Context, l *link, j *running, p *proc, stdinW *os.File) {
	for _, ob := range j.out {
		go s.fill(j, ob)
		go s.sendOut(j, ob)
	}
	if s.report(l, j.pid, j.inc, fmt.Sprintf("started %d", p.pid)) != nil {
		// The master gave up on this start (the writer was interrupted,
		// or it timed out): nobody can see or wait for the process.
		syscall.Kill(-p.pid, syscall.SIGKILL)
	}
	if stdinW != nil {
		go s.feedStdin(j, stdinW)
	}
	st, err := p.wait()
	if s.Reaper {
		s.reaper.note('-', p.pid)
	}
	s.ended(ctx, j, s.exitStatus(j, st, err))
}

// exitStatus is how a job's process ended, as the master reports it.
func (s *Slave) exitStatus(j *running, st *os.ProcessState, err error) string {
	var ws syscall.WaitStatus
	if st != nil {
		ws, _ = st.Sys().(syscall.WaitStatus)
	}
	switch {
	case st != nil && ws.Signaled():
		return fmt.Sprintf("signal %d", int(ws.Signal()))
	case st != nil && ws.Exited():
		return fmt.Sprintf("exit %d", ws.ExitStatus())
	}
	s.logf("job %d: odd wait status: %v", j.pid, err)
	return "exit 255"
}

// fail reports that job m did not start, with err's errno (EIO if none).
func (s *Slave) fail(l *link, m *slaveproto.Msg, err error) {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		errno = syscall.EIO
	}
	// One line: a path in the text may hold a newline.
	s.report(l, m.Pid, m.Inc, fmt.Sprintf("failed %d %s", int(errno), strings.ReplaceAll(err.Error(), "\n", `\n`)))
}

// report sends lines about incarnation inc of job pid on l's report
// file, in one write.
func (s *Slave) report(l *link, pid, inc int, lines ...string) error {
	var b []byte
	for _, line := range lines {
		b = fmt.Appendf(b, "%s %s\n", slaveproto.FormatRef(pid, inc), line)
	}
	s.trace("-> %s", b)
	l.reportMu.Lock()
	_, err := l.report.Write(b)
	l.reportMu.Unlock()
	if err != nil {
		s.logf("job %d: reporting %q: %v", pid, b, err)
		// The master not knowing the process is its answer to a start
		// it gave up on; anything else means the link is broken, and
		// a fresh connection is the way out. A stale incarnation
		// (the process moved on) is no fault of the link either.
		if !errors.Is(err, syscall.ESRCH) && !errors.Is(err, syscall.ESTALE) {
			l.fail(fmt.Errorf("reporting to the master: %w", err))
		}
	}
	return err
}

// onlyReader/onlyWriter hide ReadFrom/WriteTo so io.CopyBuffer uses our
// large buffer instead of a splice path with small chunks.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }
