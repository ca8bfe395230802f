package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"bproc/fs/slaveproto"
)

// Jobs outlive a lost master. The jobs belong to the Slave, not to one
// connection: each keeps the output the master has not acknowledged (up to
// outLimit per stream; then the job blocks, as on a full pipe). When the
// link to the master ends, a KeepJobs slave keeps them for the grace period
// the master's hello gave; the next master it registers with gets an
// slaveproto.Adopt record per job on slave/adopt, and the slave sends each stream
// again from its first unacknowledged byte, reports what ended meanwhile
// and reads stdin anew. Jobs the master refuses, or still without a master
// when the grace ends, are killed.

// outLimit bounds what a stream keeps unacknowledged: more than the
// master's own stream buffer, so that acknowledgements (which come as the
// master's queue drains) keep the job going while a reader keeps up.
const outLimit = 4 << 20

// jobsState is the Slave's table of jobs and the link they report on.
type jobsState struct {
	jmu    sync.Mutex
	jobs   map[int]*running // by the master's pid
	cur    *link            // the link jobs use; nil while there is none
	curCh  chan struct{}    // closed when cur changes
	graceT *time.Timer      // kills the jobs unless a master comes back
	grace  time.Duration    // from the last hello: how long jobs outlive their master
}

type running struct {
	pid      int
	inc      int // the incarnation its start message gave, echoed in reports
	pgid     int
	uid, gid uint32
	argv     []string
	attached bool
	out      [2]*outBuf // stdout, stderr
	gone     chan struct{}
	goneOnce sync.Once
	moving   atomic.Bool // seized to move: its streams do not go direct (direct.go)

	// under Slave.jmu
	stopped  bool
	status   string // "exit N" or "signal N" once ended
	reported *link  // the link whose master has the status
}

func newRunning(m *slaveproto.Msg) *running {
	j := &running{pid: m.Pid, inc: m.Inc, uid: m.Uid, gid: m.Gid, argv: m.Argv, attached: m.Attached, gone: make(chan struct{})}
	for i, name := range []string{"stdout", "stderr"} {
		j.out[i] = &outBuf{name: name, path: fmt.Sprintf("slave/proc/%d/%s", m.Pid, name), changed: make(chan struct{})}
	}
	// A moved process's streams go on from what it wrote before.
	j.out[0].acked, j.out[0].base = max(m.StdoutOff, 0), max(m.StdoutOff, 0)
	j.out[1].acked, j.out[1].base = max(m.StderrOff, 0), max(m.StderrOff, 0)
	return j
}

// outBuf is one output stream of a job: the bytes from the first the
// master has not acknowledged to the last read from the job.
type outBuf struct {
	name, path string
	r          *os.File // the job's pipe

	mu      sync.Mutex
	changed chan struct{} // closed on any change
	// chunks hold bytes [acked, acked+size): chunks[0][skip:] onwards.
	// Large reads keep their pooled buffer as a chunk (no copy), which
	// goes back to the pool once acknowledged and not being sent.
	chunks   [][]byte
	skip     int
	size     int
	acked    int64
	inflight []byte // the chunk sendOut is writing
	orphan   []byte // acknowledged during the write: sendOut recycles it
	eof      bool   // the job's end is closed
	broken   bool   // the master wants no more (its reader left): dropped
	gone     bool   // the job was dropped
	on       *link
	sent     int64 // sent on `on`
	closed   bool  // EOF sent on `on` (or to the direct client)
	// diverting: a direct client is taking the stream over (sendOut
	// pauses); direct: it has, and sendOut is done (direct.go).
	diverting, direct bool
	spliceTo          *spliceDest // set: fill sends the pipe to the direct client itself (splice.go)
	// moving: the job is seized to move, and its direct stream goes
	// back to the master (handBack, direct.go): fill pauses (paused)
	// while handBack drains the pipe, and once the master took the
	// stream back (back) sendDirect sends the moved end.
	moving, paused, back bool
	base                 int64 // the stream's first offset here (a moved process's: what it wrote before)
	// sentDirect, splicedDirect: bytes sent to direct clients, and of
	// them spliced from the pipe (logged as the stream ends there).
	sentDirect, splicedDirect int64
}

func (ob *outBuf) signalLocked() {
	close(ob.changed)
	ob.changed = make(chan struct{})
}

func (ob *outBuf) end() int64 { return ob.acked + int64(ob.size) }

// bigRead is the read size from which a pooled buffer becomes a chunk
// as it is; smaller reads are copied so that lines do not pin megabytes.
const bigRead = 256 << 10

func (ob *outBuf) push(b []byte) {
	ob.chunks = append(ob.chunks, b)
	ob.size += len(b)
}

// at returns the kept bytes from offset off (acked <= off < end) to the
// end of their chunk, and that chunk.
func (ob *outBuf) at(off int64) (rest, chunk []byte) {
	k := int(off-ob.acked) + ob.skip
	for _, c := range ob.chunks {
		if k < len(c) {
			return c[k:], c
		}
		k -= len(c)
	}
	return nil, nil
}

// dropTo forgets the bytes below off (acked < off <= end).
func (ob *outBuf) dropTo(off int64) {
	k := int(off - ob.acked)
	ob.acked, ob.size = off, ob.size-k
	for k > 0 {
		c := ob.chunks[0]
		if rem := len(c) - ob.skip; k < rem {
			ob.skip += k
			break
		} else {
			k -= rem
		}
		ob.chunks[0] = nil
		ob.chunks = ob.chunks[1:]
		ob.skip = 0
		if sameChunk(c, ob.inflight) {
			ob.orphan = c
		} else {
			recycle(c)
		}
	}
	if len(ob.chunks) == 0 {
		ob.chunks = nil
	}
}

// clear forgets everything kept (not recycled: a write may use it).
func (ob *outBuf) clear() {
	ob.acked += int64(ob.size)
	ob.chunks, ob.skip, ob.size = nil, 0, 0
}

func sameChunk(a, b []byte) bool {
	return len(a) > 0 && len(b) > 0 && &a[0] == &b[0]
}

func recycle(c []byte) {
	if cap(c) == ioBuf {
		c = c[:cap(c)]
		bufs.Put(&c)
	}
}

// settled: nothing more to send for it (the job's end closed and all of it
// sent and closed on the master l, or nothing ever written).
func (ob *outBuf) settled(l *link) bool {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return ob.eof && (ob.broken || (ob.end() == ob.base && !ob.diverting) || ((ob.on == l || ob.direct) && ob.closed))
}

func (s *Slave) ensureJobs() {
	s.jmu.Lock()
	if s.jobs == nil {
		s.jobs = map[int]*running{}
		s.curCh = make(chan struct{})
	}
	s.jmu.Unlock()
}

// link returns the current link (nil: none) and a channel closed when it
// changes.
func (s *Slave) link() (*link, <-chan struct{}) {
	s.jmu.Lock()
	defer s.jmu.Unlock()
	return s.cur, s.curCh
}

func (s *Slave) setLinkLocked(l *link) {
	s.cur = l
	close(s.curCh)
	s.curCh = make(chan struct{})
}

func (s *Slave) job(pid int) *running {
	s.jmu.Lock()
	defer s.jmu.Unlock()
	return s.jobs[pid]
}

// fill reads the job's output into its buffer, waiting while it is full.
func (s *Slave) fill(j *running, ob *outBuf) {
	defer ob.r.Close()
	bp := bufs.Get().(*[]byte)
	defer func() { bufs.Put(bp) }()
	for {
		buf := *bp
		ob.mu.Lock()
		// Full, or about to splice (direct.go): the kept bytes go first;
		// moving: handBack reads the pipe meanwhile.
		for !ob.gone && !ob.broken {
			if ob.moving {
				if !ob.paused {
					ob.paused = true
					ob.signalLocked()
				}
			} else if ob.size < outLimit && (ob.spliceTo == nil || ob.size == 0 && ob.inflight == nil) {
				break
			}
			ch := ob.changed
			ob.mu.Unlock()
			<-ch
			ob.mu.Lock()
		}
		ob.paused = false
		stop, room := ob.gone || ob.broken, outLimit-ob.size
		sp := ob.spliceTo
		ob.mu.Unlock()
		if stop {
			return
		}
		if sp != nil {
			if !s.spliceOut(j, ob, sp) { // splice.go
				// Ended, or broken: either way nothing more is read,
				// and the job may be forgotten once it is over.
				ob.mu.Lock()
				ob.eof = true
				ob.signalLocked()
				ob.mu.Unlock()
				s.maybeRetire(j)
				return
			}
			continue // paused for handBack
		}
		n, err := ob.r.Read(buf[:min(room, len(buf))])
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = nil // handBack wants the pipe: pause
		}
		ob.mu.Lock()
		if n > 0 && !ob.broken && !ob.gone {
			if n >= bigRead {
				ob.push(buf[:n])
				bp = bufs.Get().(*[]byte)
			} else {
				ob.push(append([]byte(nil), buf[:n]...))
			}
		}
		if err != nil {
			ob.eof = true
		}
		ob.signalLocked()
		ob.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// sendOut sends a stream's unsent bytes to the current master, from the
// first unacknowledged one after a new link, and closes it there once the
// job's end is closed.
func (s *Slave) sendOut(j *running, ob *outBuf) {
	var f io.WriteCloser // the stream's file on fOn
	var fOn *link
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for {
		l, lch := s.link()
		st := ob.next(l)
		if st.gone {
			return
		}
		if f != nil && fOn != l {
			f.Close()
			f = nil
		}
		if st.chunk == nil && !st.finish {
			select {
			case <-st.changed:
			case <-lch:
			}
			continue
		}
		if f == nil {
			nf, err := l.tree.Open(ob.path, os.O_WRONLY)
			if err != nil {
				s.logf("job %d: opening %s: %v", j.pid, ob.name, err)
				s.waitLink(j, l)
				continue
			}
			f, fOn = nf, l
		}
		if st.chunk != nil {
			err := ob.write(l, f, st.start, st.chunk)
			if err == nil {
				continue
			}
			s.logf("job %d: %s: %v", j.pid, ob.name, err)
			f.Close()
			f = nil
			if !refused(err) {
				s.waitLink(j, l)
			}
		} else {
			err := ob.finish(l, f)
			f = nil
			if err != nil {
				s.waitLink(j, l)
			}
		}
		s.maybeRetire(j)
	}
}

// sendStep is what sendOut does next on a link: write chunk (the kept
// bytes from offset start), or finish (close the stream there), or else
// wait for changed; gone: the job was dropped.
type sendStep struct {
	chunk   []byte
	start   int64
	finish  bool
	changed chan struct{}
	gone    bool
}

// next is sendOut's next step on link l (nil: none); a chunk it returns is
// in flight until write.
func (ob *outBuf) next(l *link) sendStep {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.gone || ob.direct {
		return sendStep{gone: true}
	}
	if ob.diverting {
		return sendStep{changed: ob.changed}
	}
	if l != ob.on {
		ob.on, ob.sent, ob.closed = l, ob.acked, false
	}
	end := ob.end()
	st := sendStep{start: max(ob.sent, ob.acked), changed: ob.changed}
	if l != nil && st.start < end && !ob.broken {
		st.chunk, ob.inflight = ob.at(st.start)
	}
	st.finish = l != nil && st.chunk == nil && ob.eof && !ob.closed && end > ob.base && !ob.broken
	return st
}

// write sends chunk, the bytes from offset start, on f, the stream's file
// on l.
func (ob *outBuf) write(l *link, f io.Writer, start int64, chunk []byte) error {
	n, err := f.Write(chunk)
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.on == l && start+int64(n) > ob.sent {
		ob.sent = start + int64(n)
	}
	ob.inflight = nil
	if ob.orphan != nil {
		recycle(ob.orphan)
		ob.orphan = nil
	}
	if err != nil && refused(err) && !ob.diverting {
		// The master refuses more (the reader is gone: EPIPE): the pipe
		// closes here, and the job meets EPIPE or SIGPIPE on its next
		// write, as with a local pipe whose reader went away.
		ob.broken = true
		ob.clear()
		ob.r.Close()
	}
	ob.signalLocked()
	return err
}

// finish closes f, the stream's file on l: its end, there.
func (ob *outBuf) finish(l *link, f io.Closer) error {
	err := f.Close()
	ob.mu.Lock()
	if ob.on == l && err == nil {
		ob.closed = true
	}
	ob.signalLocked()
	ob.mu.Unlock()
	return err
}

// waitLink waits for another link than l (or the job's end), after a
// failure on l.
func (s *Slave) waitLink(j *running, l *link) {
	for {
		cur, ch := s.link()
		if cur != l {
			return
		}
		select {
		case <-ch:
		case <-j.gone:
			return
		}
	}
}

// ack forgets what the master has taken of a job's stream.
func (s *Slave) ack(pid int, stream string, off int64) {
	j := s.job(pid)
	if j == nil {
		return
	}
	for _, ob := range j.out {
		if ob.name != stream {
			continue
		}
		ob.mu.Lock()
		if off > ob.acked && off <= ob.end() {
			ob.dropTo(off)
			ob.signalLocked()
		}
		ob.mu.Unlock()
	}
	s.maybeRetire(j)
}

// ended reports a job's end: after its output (for at most 2 s: a daemon
// may keep the pipes open), on the current link, or on the next one.
func (s *Slave) ended(ctx context.Context, j *running, status string) {
	s.jmu.Lock()
	j.status = status
	s.jmu.Unlock()
	deadline := time.After(2 * time.Second)
	for drained := false; !drained; {
		l, lch := s.link()
		drained = l != nil && j.out[0].settled(l) && j.out[1].settled(l)
		if drained {
			break
		}
		j.out[0].mu.Lock()
		ch0 := j.out[0].changed
		j.out[0].mu.Unlock()
		j.out[1].mu.Lock()
		ch1 := j.out[1].changed
		j.out[1].mu.Unlock()
		select {
		case <-ch0:
		case <-ch1:
		case <-lch:
		case <-deadline:
			drained = true
		case <-j.gone:
			return
		}
	}
	for {
		l, lch := s.link()
		s.jmu.Lock()
		done := j.reported != nil && j.reported == l
		s.jmu.Unlock()
		if done {
			break
		}
		if l != nil {
			// Streams that ended empty are closed in the same write as
			// the exit.
			var lines []string
			for _, ob := range j.out {
				ob.mu.Lock()
				if ob.eof && ob.end() == ob.base {
					lines = append(lines, "eof "+ob.name)
				}
				ob.mu.Unlock()
			}
			err := s.report(l, j.pid, j.inc, append(lines, status)...)
			if err == nil {
				s.jmu.Lock()
				j.reported = l
				s.jmu.Unlock()
				break
			}
			if errors.Is(err, syscall.ESRCH) || errors.Is(err, syscall.ESTALE) {
				// The master gave up on it (a start it abandoned), or
				// it moved on to another node: no master will ever ask
				// for it here.
				s.drop(j)
				return
			}
		}
		select {
		case <-lch:
		case <-j.gone:
			return
		}
	}
	s.maybeRetire(j)
}

// maybeRetire drops a job that has nothing left for any master: it ended,
// its status is reported, and all its output is acknowledged.
func (s *Slave) maybeRetire(j *running) {
	s.jmu.Lock()
	reported := j.status != "" && j.reported != nil && j.reported == s.cur
	s.jmu.Unlock()
	if !reported {
		return
	}
	for _, ob := range j.out {
		ob.mu.Lock()
		done := ob.done()
		ob.mu.Unlock()
		if !done {
			return
		}
	}
	s.drop(j)
}

// done (ob.mu held): nothing more to send for the stream, anywhere. Not
// while a direct client takes it over (diverting, not yet direct): its
// end goes to that client then, even if the master had it all.
func (ob *outBuf) done() bool {
	taking := ob.diverting && !ob.direct
	return ob.eof && !taking && (ob.broken || ob.end() == ob.base || (ob.size == 0 && ob.closed))
}

// drop forgets a job (it must have ended or be killed): its goroutines end.
func (s *Slave) drop(j *running) {
	s.jmu.Lock()
	if s.jobs[j.pid] == j {
		delete(s.jobs, j.pid)
	}
	s.jmu.Unlock()
	j.goneOnce.Do(func() { close(j.gone) })
	for _, ob := range j.out {
		ob.mu.Lock()
		// A direct stream goes on to its end: its client, not the
		// master, takes it (direct.go).
		if !ob.diverting || ob.closed || ob.broken {
			ob.gone = true
			ob.clear()
		}
		ob.signalLocked()
		ob.mu.Unlock()
	}
}

// kill ends a job and drops it.
func (s *Slave) kill(j *running) {
	s.jmu.Lock()
	live := j.status == ""
	s.jmu.Unlock()
	if live {
		syscall.Kill(-j.pgid, syscall.SIGKILL)
	}
	s.drop(j)
}

func (s *Slave) killAll() {
	s.jmu.Lock()
	var all []*running
	for _, j := range s.jobs {
		all = append(all, j)
	}
	if s.graceT != nil {
		s.graceT.Stop()
		s.graceT = nil
	}
	s.jmu.Unlock()
	for _, j := range all {
		s.kill(j)
	}
}

// linkLost is the end of link l: the jobs wait for the next master, for
// the grace period, or die now.
func (s *Slave) linkLost(l *link) {
	s.jmu.Lock()
	if s.cur == l {
		s.setLinkLocked(nil)
	}
	keep := s.KeepJobs && s.grace > 0
	n, grace := len(s.jobs), s.grace
	if keep && n > 0 && s.graceT == nil && s.cur == nil {
		s.graceT = time.AfterFunc(grace, s.graceOver)
	}
	s.jmu.Unlock()
	if !keep {
		s.killAll()
	} else if n > 0 {
		s.logf("lost the master: keeping %d jobs for %v", n, grace)
	}
}

func (s *Slave) graceOver() {
	s.jmu.Lock()
	s.graceT = nil
	back := s.cur != nil
	n := len(s.jobs)
	s.jmu.Unlock()
	if back {
		return
	}
	s.logf("no master for the grace period: killing %d jobs", n)
	s.killAll()
}

// handOver gives the master of the new link l the jobs kept without one,
// then makes l the jobs' link; grace is how long they may outlive it.
func (s *Slave) handOver(l *link, grace time.Duration) {
	s.jmu.Lock()
	s.grace = grace
	var kept []*running
	for _, j := range s.jobs {
		kept = append(kept, j)
	}
	s.jmu.Unlock()
	sort.Slice(kept, func(a, b int) bool { return kept[a].pid < kept[b].pid })
	var f io.WriteCloser
	if len(kept) > 0 {
		var err error
		if f, err = l.tree.Open("slave/adopt", os.O_WRONLY); err != nil {
			s.logf("the master takes no jobs back (%v): killing %d", err, len(kept))
		}
	}
	for _, j := range kept {
		rec := s.record(j)
		b, err := json.Marshal(rec)
		if err == nil && f != nil {
			s.trace("-> adopt %s", b)
			_, err = f.Write(b)
		}
		if f == nil || err != nil {
			if f != nil {
				s.logf("job %d: the master refused it (%v): killing it", j.pid, err)
			}
			s.kill(j)
			continue
		}
		s.logf("job %d: adopted by the master (%s)", j.pid, rec.State)
		if rec.Status != "" {
			s.jmu.Lock()
			j.reported = l
			s.jmu.Unlock()
		}
	}
	if f != nil {
		f.Close()
	}
	s.jmu.Lock()
	if s.graceT != nil {
		s.graceT.Stop()
		s.graceT = nil
	}
	s.setLinkLocked(l)
	s.jmu.Unlock()
	for _, j := range kept {
		s.maybeRetire(j)
	}
}

// record is job j as a new master is told of it.
func (s *Slave) record(j *running) *slaveproto.Adopt {
	s.jmu.Lock()
	a := &slaveproto.Adopt{Pid: j.pid, Inc: j.inc, Uid: j.uid, Gid: j.gid, Argv: j.argv, Attached: j.attached, State: "running", Status: j.status}
	if j.stopped {
		a.State = "stopped"
	}
	if j.status != "" {
		a.State = "exited"
	}
	s.jmu.Unlock()
	for i, ob := range j.out {
		ob.mu.Lock()
		st := slaveproto.AdoptedAhead{Off: ob.acked, Done: ob.eof && (ob.broken || ob.size == 0)}
		ob.mu.Unlock()
		if i == 0 {
			a.Stdout = st
		} else {
			a.Stderr = st
		}
	}
	return a
}

// feedStdin copies what users write to proc/PID/stdin into the job, from
// each new master in turn (what the old one held is lost with it), until
// a master closes it.
func (s *Slave) feedStdin(j *running, w *os.File) {
	defer w.Close()
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	path := fmt.Sprintf("slave/proc/%d/stdin", j.pid)
	var last *link
	for {
		l, lch := s.link()
		if l == nil || l == last {
			select {
			case <-lch:
				continue
			case <-j.gone:
				return
			}
		}
		last = l
		src, err := l.tree.Open(path, os.O_RDONLY)
		if err != nil {
			s.logf("job %d: opening stdin: %v", j.pid, err)
			continue
		}
		_, err = io.CopyBuffer(onlyWriter{w}, onlyReader{src}, *bp)
		src.Close()
		if err == nil || refused(err) {
			return // EOF from the master, or the job's end
		}
	}
}

// refused tells the master's answer (an errno it sent, as EPIPE when a
// stream's reader left) from a broken link (ENOTCONN, or no errno at all),
// after which the next master gets the data.
func refused(err error) bool {
	var errno syscall.Errno
	return errors.As(err, &errno) && errno != syscall.ENOTCONN && errno != syscall.ECONNRESET && errno != syscall.EINTR
}
