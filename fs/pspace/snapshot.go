package pspace

import (
	"context"
	"sort"
	"strings"
	"sync"

	"bproc/fs/synth"
)

// Snapshot is a consistent read of the master's state for monitoring
// (bpmaster's /metrics and web view): taken under the master's lock, so
// nodes and processes agree with each other.
type Snapshot struct {
	Nodes []NodeInfo // every node in node/, by number (-1, the master, first)
	Procs []ProcInfo // every process in proc/, by pid
	// Jobs counts job events per node: "started", "failed" (never
	// started), "exited" (exit or signal), "lost" (node went down).
	Jobs map[JobKey]uint64
	// Streamed counts bytes of process output and input that went
	// through the master, per stream ("stdout", "stderr", "stdin").
	Streamed map[string]uint64
	// Binaries counts binary shipping (spread.go).
	Binaries BinaryCounters
}

// NodeInfo is one node of a Snapshot.
type NodeInfo struct {
	Num   int
	State string
	Addr  string
	Host  string
}

// ProcInfo is one process of a Snapshot.
type ProcInfo struct {
	Pid   int
	Node  int
	State string // starting, running, stopped, exited
	Uid   uint32
}

// JobKey names a job counter: a node and an event.
type JobKey struct {
	Node  int
	Event string
}

// Snapshot returns the current state and counters.
func (m *Master) Snapshot() *Snapshot {
	s := &Snapshot{}
	m.mu.Lock()
	for _, n := range m.nodes {
		s.Nodes = append(s.Nodes, NodeInfo{Num: n.num, State: n.state, Addr: n.addr, Host: n.host})
	}
	procs := make([]*Proc, 0, len(m.procs))
	for _, p := range m.procs {
		procs = append(procs, p)
	}
	m.mu.Unlock()
	for _, p := range procs {
		p.mu.Lock()
		s.Procs = append(s.Procs, ProcInfo{Pid: p.pid, Node: p.node, State: p.state, Uid: p.uid})
		p.mu.Unlock()
	}
	sort.Slice(s.Nodes, func(i, j int) bool { return s.Nodes[i].Num < s.Nodes[j].Num })
	sort.Slice(s.Procs, func(i, j int) bool { return s.Procs[i].Pid < s.Procs[j].Pid })
	s.Jobs, s.Streamed = m.ctr.read()
	s.Binaries = m.bins.counters()
	return s
}

// counters are the master's monotonic monitoring counters. The zero value
// is ready; a nil *counters counts nothing (a Proc made outside a Master).
type counters struct {
	mu       sync.Mutex
	jobs     map[JobKey]uint64
	streamed map[string]uint64
}

func (c *counters) job(node int, event string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	if c.jobs == nil {
		c.jobs = map[JobKey]uint64{}
	}
	c.jobs[JobKey{node, event}]++
	c.mu.Unlock()
}

// ended counts a process's end: one that never started failed; the rest
// exited or were lost with their node.
func (c *counters) ended(node int, state, status string) {
	switch {
	case state == "starting":
		c.job(node, "failed")
	case strings.HasPrefix(status, "lost"):
		c.job(node, "lost")
	default:
		c.job(node, "exited")
	}
}

func (c *counters) stream(name string, n int) {
	if c == nil || n <= 0 {
		return
	}
	c.mu.Lock()
	if c.streamed == nil {
		c.streamed = map[string]uint64{}
	}
	c.streamed[name] += uint64(n)
	c.mu.Unlock()
}

func (c *counters) read() (map[JobKey]uint64, map[string]uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	jobs := make(map[JobKey]uint64, len(c.jobs))
	for k, v := range c.jobs {
		jobs[k] = v
	}
	streamed := make(map[string]uint64, len(c.streamed))
	for k, v := range c.streamed {
		streamed[k] = v
	}
	return jobs, streamed
}

// counted wraps a slave's handle on a process stream so the bytes that
// pass count toward Snapshot.Streamed under name.
func (c *counters) counted(name string, h synth.Handle) synth.Handle {
	return &countedHandle{Handle: h, c: c, name: name}
}

type countedHandle struct {
	synth.Handle
	c    *counters
	name string
}

func (h *countedHandle) Read(ctx context.Context, p []byte, off int64) (int, error) {
	n, err := h.Handle.Read(ctx, p, off)
	h.c.stream(h.name, n)
	return n, err
}

func (h *countedHandle) Write(ctx context.Context, p []byte, off int64) (int, error) {
	n, err := h.Handle.Write(ctx, p, off)
	h.c.stream(h.name, n)
	return n, err
}

func streamName(p *Proc, s *synth.Stream) string {
	if s == p.stderr {
		return "stderr"
	}
	return "stdout"
}
