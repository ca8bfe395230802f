package pspace

import (
	"context"
	"fmt"
	"sync"
	"syscall"

	"bproc/fs/slaveproto"
	"bproc/fs/synth"
)

// Jobs outlive their master. A slave that lost its master keeps its jobs
// for the grace period the master's hello gave it, and keeps every byte of
// their output the master has not acknowledged. When it registers again it
// writes one slaveproto.Adopt record per job to slave/adopt; the new master gives the
// process back its pid, owner, command and state, and the slave sends the
// output again from the first unacknowledged byte. The master acknowledges
// output once it has left proc/PID/stdout's queue (read, or dropped by a
// stream nobody reads), with "ack" messages giving the stream's offset.

// adoptHandle is slave/adopt: one record per write.
type adoptHandle struct {
	synth.NoRead
	synth.NoClose
	m  *Master
	sc *slaveConn
}

func (h *adoptHandle) Write(_ context.Context, b []byte, _ int64) (int, error) {
	a, err := slaveproto.ParseAdopt(b)
	if err != nil {
		return 0, err
	}
	h.m.Trace("node %d adopt %s", h.sc.node.num, b)
	if err := h.m.adopt(h.sc, a); err != nil {
		h.m.Logf("node %d: not adopting process %d: %v", h.sc.node.num, a.Pid, err)
		return 0, err
	}
	h.m.Logf("node %d: adopted process %d (%s)", h.sc.node.num, a.Pid, a.State)
	return len(b), nil
}

// adopt gives a process a slave kept back its place in the process space.
// Only pids an earlier master issued qualify: a pid of this master's that
// it no longer runs was declared lost when its node went down, and its
// waiters were told so.
func (m *Master) adopt(sc *slaveConn, a *slaveproto.Adopt) error {
	n := sc.node
	p := &Proc{
		pid: a.Pid, inc: a.Inc, node: n.num, uid: a.Uid, gid: a.Gid, argv: a.Argv, attached: a.Attached, conn: sc, ring: n.ring,
		stdout:  synth.NewStream(streamSize, !a.Attached),
		stderr:  synth.NewStream(streamSize, !a.Attached),
		stdin:   synth.NewStream(streamSize, false),
		started: make(chan error, 1),
		running: make(chan struct{}),
		done:    make(chan struct{}),
		state:   a.State,
		ev:      &m.ev,
		m:       m,
	}
	if a.State == "exited" {
		p.state = "running" // until finish, below
	}
	p.stdout.StartAt(a.Stdout.Off)
	p.stderr.StartAt(a.Stderr.Off)
	m.watchOutput(p)
	m.mu.Lock()
	switch {
	case n.conn != sc:
		m.mu.Unlock()
		return fmt.Errorf("slave no longer registered: %w", syscall.ENOTCONN)
	case m.procs[a.Pid] != nil:
		m.mu.Unlock()
		return fmt.Errorf("process %d exists: %w", a.Pid, syscall.EEXIST)
	case a.Pid >= m.pids.first:
		m.mu.Unlock()
		return fmt.Errorf("process %d was this master's and ended when node %d went down: %w", a.Pid, n.num, syscall.ESRCH)
	}
	m.addProcLocked(p)
	if a.Pid >= m.nextPid {
		m.nextPid = a.Pid + 1
		m.pidIssuedLocked()
	}
	m.mu.Unlock()
	p.mu.Lock() // its events begin here, for this master's subscribers
	p.ev.publish(Event{Kind: Started, Pid: p.pid, Node: n.num, Inc: p.inc})
	p.mu.Unlock()
	if a.Stdout.Done {
		p.stdout.CloseWrite()
	}
	if a.Stderr.Done {
		p.stderr.CloseWrite()
	}
	if a.State == "exited" {
		return p.slaveReport(a.Status)
	}
	return nil
}

// ackEvery is how much output the master lets pass between acknowledgements
// (besides one whenever a stream is drained), so that a slave's buffer
// never fills while a reader keeps up.
const ackEvery = 256 << 10

// watchOutput makes p's output streams acknowledge what left them to the
// slave, which may then forget it.
func (m *Master) watchOutput(p *Proc) {
	for _, o := range []struct {
		name string
		s    *synth.Stream
	}{{"stdout", p.stdout}, {"stderr", p.stderr}} {
		var mu sync.Mutex
		acked := o.s.Out()
		name := o.name
		o.s.OnOut(func(out int64, empty bool) {
			mu.Lock()
			send := out > acked && (empty || out-acked >= ackEvery)
			if send {
				acked = out
			}
			mu.Unlock()
			if send {
				_, sc, _ := p.place()
				sc.sendIfAlive(m, &slaveproto.Msg{Op: "ack", Pid: p.pid, Stream: name, Off: out})
			}
		})
	}
}

// sendIfAlive sends msg unless the slave is gone (its output no longer
// matters to anyone) or there never was one.
func (sc *slaveConn) sendIfAlive(m *Master, msg *slaveproto.Msg) {
	if sc == nil {
		return
	}
	sc.mu.Lock()
	dead := sc.dead
	sc.mu.Unlock()
	if !dead {
		sc.send(m, msg)
	}
}
