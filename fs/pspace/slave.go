package pspace

import (
	"context"
	"fmt"
	iofs "io/fs"
	"strconv"
	"strings"
	"syscall"

	"bproc/fs/slaveproto"
	"bproc/fs/synth"
)

// The slave/ directory: what a bpslave reads and writes (see fs/slaveproto).

func (m *Master) newSlaveDir() synth.Dir {
	jobs := &synth.FuncFile{Ino: synth.NewIno(), Mode: 0o400, OpenFunc: func(c *synth.Caller, flags int) (synth.Handle, error) {
		sc, err := m.register(c)
		if err != nil {
			return nil, err
		}
		return synth.NewStreamReader(sc.jobs), nil
	}}
	ping := &synth.FuncFile{Ino: synth.NewIno(), Mode: 0o200, OpenFunc: func(c *synth.Caller, flags int) (synth.Handle, error) {
		sc, err := m.slaveFor(c)
		if err != nil {
			return nil, err
		}
		return &pingHandle{sc: sc}, nil
	}}
	report := &synth.FuncFile{Ino: synth.NewIno(), Mode: 0o200, OpenFunc: func(c *synth.Caller, flags int) (synth.Handle, error) {
		sc, err := m.slaveFor(c)
		if err != nil {
			return nil, err
		}
		return &reportHandle{m: m, sc: sc}, nil
	}}
	adopt := &synth.FuncFile{Ino: synth.NewIno(), Mode: 0o200, OpenFunc: func(c *synth.Caller, flags int) (synth.Handle, error) {
		sc, err := m.slaveFor(c)
		if err != nil {
			return nil, err
		}
		return &adoptHandle{m: m, sc: sc}, nil
	}}
	bins := &slaveBinDir{unlisted{m: m, ino: synth.NewIno()}}
	procs := &slaveProcDir{unlisted{m: m, ino: synth.NewIno()}}
	migs := &slaveMigDir{unlisted{m: m, ino: synth.NewIno()}}
	ghosts := &slaveGhostDir{unlisted{m: m, ino: synth.NewIno()}}
	as := m.newAsDir()      // the node mount's identities (as.go)
	peer := m.newPeerFile() // spread.go
	return synth.NewDir(synth.StaticEntries("adopt", adopt, "as", as, "bin", bins, "direct", m.slaveDataFile(), "ghost", ghosts, "jobs", jobs, "mig", migs,
		"peer", peer, "ping", ping, "proc", procs, "report", report))
}

type pingHandle struct {
	synth.NoRead
	synth.NoClose
	sc *slaveConn
}

func (h *pingHandle) Write(_ context.Context, p []byte, _ int64) (int, error) {
	if err := h.sc.ping(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// unlisted is a slave directory that lists nothing (mode --x--x--x):
// its entries are found by name only.
type unlisted struct {
	m   *Master
	ino uint64
}

func (d *unlisted) Attr() synth.Attr { return synth.Attr{Ino: d.ino, Mode: iofs.ModeDir | 0o111} }

func (d *unlisted) List(*synth.Caller) ([]synth.Dirent, error) { return nil, nil }

// slaveBinDir serves shipped binaries by hash.
type slaveBinDir struct{ unlisted }

func (d *slaveBinDir) Lookup(c *synth.Caller, name string) (synth.Node, error) {
	sc, err := d.m.slaveFor(c)
	if err != nil {
		return nil, err
	}
	if !d.m.bins.has(name) {
		return nil, fmt.Errorf("binary %s: %w", name, syscall.ENOENT)
	}
	remote := c.Addr != slaveproto.LocalAddr
	return &synth.FuncFile{Ino: synth.NewIno(), Mode: 0o400, OpenFunc: func(*synth.Caller, int) (synth.Handle, error) {
		if d.m.bins.fellBack(name, sc) {
			d.m.Logf("node %d: fetching binary %s from the master: its peers failed it", sc.node.num, name)
		}
		return d.m.bins.open(name, remote) // read from the spool at each offset
	}}, nil
}

// slaveProcDir gives a slave the write side of its own processes.
type slaveProcDir struct{ unlisted }

func (d *slaveProcDir) Lookup(c *synth.Caller, name string) (synth.Node, error) {
	sc, p, err := d.m.slaveProc(c, name)
	if err != nil {
		return nil, err
	}
	_, cur, inc := p.place()
	p.mu.Lock()
	if pm := p.pending; pm != nil && pm.sc == sc {
		cur, inc = sc, pm.inc // the node it moves to: its output comes from there
	}
	p.mu.Unlock()
	if cur != sc {
		return nil, fmt.Errorf("process %s: %w", name, syscall.ENOENT)
	}
	return d.m.slaveProcFiles(p, inc), nil
}

// slaveProc is the calling slave and the process called name (its pid),
// for a slave's Lookup; the caller checks the process is the slave's.
func (m *Master) slaveProc(c *synth.Caller, name string) (*slaveConn, *Proc, error) {
	sc, err := m.slaveFor(c)
	if err != nil {
		return nil, nil, err
	}
	pid, err := strconv.Atoi(name)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, syscall.ENOENT)
	}
	m.mu.Lock()
	p := m.procs[pid]
	m.mu.Unlock()
	if p == nil {
		return nil, nil, fmt.Errorf("process %s: %w", name, syscall.ENOENT)
	}
	return sc, p, nil
}

// slaveProcFiles are the files of incarnation inc of p for its slave.
func (m *Master) slaveProcFiles(p *Proc, inc int) synth.Dir {
	out := func(s *synth.Stream) *synth.FuncFile {
		return &synth.FuncFile{Ino: synth.NewIno(), Mode: 0o200, OpenFunc: func(*synth.Caller, int) (synth.Handle, error) {
			var tee func([]byte)
			if !p.attached {
				tee = func(b []byte) { p.outRing().Write(p.uid, b) }
			}
			w := &incWriter{StreamWriter: synth.NewStreamWriter(s, tee), p: p, inc: inc}
			return m.ctr.counted(streamName(p, s), w), nil
		}}
	}
	stdin := &synth.FuncFile{Ino: synth.NewIno(), Mode: 0o400, OpenFunc: func(*synth.Caller, int) (synth.Handle, error) {
		return m.ctr.counted("stdin", synth.NewStreamReader(p.stdin)), nil
	}}
	return synth.NewDir(synth.StaticEntries("direct", m.divertFile(p), "stderr", out(p.stderr), "stdin", stdin, "stdout", out(p.stdout)))
}

// incWriter is an output stream's writer for one incarnation: when the
// node a process has left closes it, the stream goes on for the next.
type incWriter struct {
	*synth.StreamWriter
	p   *Proc
	inc int
}

func (w *incWriter) Close() error {
	p := w.p
	// Under the reports lock, as commitMove: the close of the incarnation
	// the process moves to is kept until the move counts (a short job
	// ends before it does), not dropped as a left node's is.
	p.reports.Lock()
	defer p.reports.Unlock()
	if _, _, cur := p.place(); cur == w.inc {
		return w.StreamWriter.Close()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if pm := p.pending; pm != nil && pm.inc == w.inc && len(pm.closed) < maxEarly {
		pm.closed = append(pm.closed, w.StreamWriter)
	}
	return nil
}

// reportHandle takes a slave's reports, one per line: "PID started OSPID",
// "PID failed ERRNO TEXT", "PID exit N", "PID signal N", PID being
// "PID.INC" for a moved process (slaveproto.FormatRef). A report from an
// incarnation the process has left is refused (ESTALE). One file per
// connection keeps a job's start to a single round trip.
type reportHandle struct {
	synth.NoRead
	synth.NoClose
	m  *Master
	sc *slaveConn
}

func (h *reportHandle) Write(_ context.Context, b []byte, _ int64) (int, error) {
	// One string for the whole write, its lines cut from it in place.
	for rest, more := strings.TrimSpace(string(b)), true; more; {
		var line string
		line, rest, more = strings.Cut(rest, "\n")
		h.m.Trace("node %d -> %s", h.sc.node.num, line)
		ref, report, _ := strings.Cut(line, " ")
		pid, inc, err := slaveproto.ParseRef(ref)
		if err != nil {
			return 0, fmt.Errorf("bad report %q: %w", line, err)
		}
		h.m.mu.Lock()
		p := h.m.procs[pid]
		h.m.mu.Unlock()
		if p == nil {
			return 0, fmt.Errorf("report for unknown process %d: %w", pid, syscall.ESRCH)
		}
		if err := p.fromSlave(h.sc, inc, report); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}
