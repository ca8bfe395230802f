package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"syscall"
	"time"

	"bproc/client"
)

// A launch on more than one node is one write to node/SET/ctl and one
// open of the group's io (client.ExecSet), instead of a ctl write and
// three opens per node. BPSH_FANOUT=0 keeps the per-node path (to
// measure one beside the other).

// maxSetName is the longest path component the tree's names take.
const maxSetName = 255

// setName is the node set naming nodes in their order, when the tree can
// be given one: more than one compute node, ascending (the set's order is
// BPROC_RANK's), folded short enough for a file name.
func setName(nodes []int) (string, bool) {
	if len(nodes) < 2 || os.Getenv("BPSH_FANOUT") == "0" || !slices.IsSorted(nodes) || nodes[0] < 0 {
		return "", false
	}
	name := client.FormatRanges(nodes)
	return name, len(name) <= maxSetName
}

// sink moves one process's stream to the output: whole reads on the
// plain path, whole lines when prefixing or line-buffering; once the
// output's reader is gone, the process is stopped as a pipeline's would
// be and the rest is dropped.
type sink struct {
	j      *job
	out    *output
	fd     int
	lw     *lineWriter
	broken bool
}

func newSink(j *job, out *output, fd int, o *options) *sink {
	s := &sink{j: j, out: out, fd: fd}
	if o.prefix || o.lineBuf {
		s.lw = &lineWriter{}
		if o.prefix {
			s.lw.prefix = []byte(fmt.Sprintf("%3d: ", j.node))
		}
	}
	return s
}

func (s *sink) emit(p []byte) error { return s.out.write(s.j.idx, s.fd, p) }

func (s *sink) write(p []byte) {
	if len(p) == 0 || s.broken {
		return
	}
	var err error
	if s.lw != nil {
		err = s.lw.write(p, s.emit)
	} else {
		err = s.emit(p)
	}
	if err != nil {
		s.broken = true
		s.j.k.mark(syscall.SIGPIPE)
		s.j.proc.Kill(syscall.SIGPIPE)
	}
}

func (s *sink) flush() {
	if s.lw != nil && !s.broken {
		s.lw.flush(s.emit)
	}
}

// startSet runs the jobs as one set launch. It returns false, having
// started nothing, when the tree started the command nowhere (each
// node's own error is then the per-node path's to tell).
func startSet(t client.Tree, set string, jobs []*job, argv []string, o *options, in *os.File, out *output) bool {
	now := time.Now()
	for _, j := range jobs {
		j.start = now
	}
	g, err := client.ExecSet(t, set, argv, client.ExecOptions{NullStdin: in == nil, Detached: o.noIO, Env: os.Environ()})
	var ee *client.ExecError
	if err != nil && errors.As(err, &ee) && ee.Text != "" {
		return false // refused by the tree: per node, it says why
	}
	if err == nil && len(g.Members) != len(jobs) {
		err = fmt.Errorf("the tree answered %d nodes for %d", len(g.Members), len(jobs))
	}
	if err != nil {
		for _, j := range jobs {
			j.err = err
			out.done(j.idx)
		}
		return true
	}
	tracef("set %s: started, group %d", set, g.ID)
	byNode := map[int]*job{}
	var live []*job
	for i, mb := range g.Members {
		j := jobs[i]
		if mb.Node != j.node {
			j.err = fmt.Errorf("the tree answered node %d in its place", mb.Node)
		} else if mb.Err != nil {
			j.err = mb.Err
			if errors.Is(mb.Err, fs.ErrNotExist) {
				j.err = fmt.Errorf("no such node")
			}
		}
		if j.err != nil {
			out.done(j.idx)
			continue
		}
		j.proc = mb.Proc
		byNode[j.node] = j
		live = append(live, j)
	}
	// Signals and -u's kill go to all at once, as one write to the
	// group's ctl (which reaches the processes still running).
	kill := groupKill(g, live)
	if len(live) > 0 {
		jobs[0].k.addKill(kill)
	}
	if o.timeout > 0 && len(live) > 0 {
		tm := time.AfterFunc(time.Duration(o.timeout)*time.Second, func() {
			n := 0
			for _, j := range live {
				if !j.ended.Load() {
					j.timedOut.Store(true)
					n++
				}
			}
			tracef("timeout: killing group %d (%d running)", g.ID, n)
			sendOnce(kill, syscall.SIGKILL)
		})
		defer tm.Stop()
	}
	if in != nil {
		// Not waited for: a process may end without reading, leaving
		// us blocked in read.
		go func() {
			client.BlockInterrupts()
			forwardGroupStdin(g, in, o.bufSize)
		}()
	}
	readGroup(g, byNode, o, out)
	now = time.Now()
	for _, j := range live {
		if j.end.IsZero() {
			j.end = now
			if j.werr == nil {
				j.werr = fmt.Errorf("group %d's io ended before the process did", g.ID)
			}
			out.done(j.idx)
		}
	}
	return true
}

// readGroup copies the group's frames to the jobs' outputs and records
// each end, until the io ends.
func readGroup(g *client.Group, byNode map[int]*job, o *options, out *output) {
	fr, f, err := g.IO()
	if err != nil {
		for _, j := range byNode {
			j.werr = err
		}
		return
	}
	defer f.Close()
	sinks := map[int]*[3]*sink{}
	for node, j := range byNode {
		sinks[node] = &[3]*sink{nil, newSink(j, out, 1, o), newSink(j, out, 2, o)}
	}
	for {
		fm, err := fr.Next()
		if err != nil {
			if err != io.EOF {
				out.fail(fmt.Errorf("reading group %d's io: %s", g.ID, client.ErrText(err)))
			}
			return
		}
		j := byNode[fm.Node]
		if j == nil || !j.end.IsZero() {
			out.fail(fmt.Errorf("group %d's io names node %d, which it has not running", g.ID, fm.Node))
			return
		}
		ss := sinks[fm.Node]
		switch fm.Kind {
		case client.FrameStdout:
			ss[1].write(fm.Data)
		case client.FrameStderr:
			ss[2].write(fm.Data)
		case client.FrameEnd:
			ss[1].flush()
			ss[2].flush()
			j.ended.Store(true)
			j.st, j.end = fm.Status, time.Now()
			tracef("node %d: end: %v", j.node, j.st)
			out.done(j.idx)
		}
	}
}

// forwardGroupStdin copies in to the group's stdin, which gives it to
// every process, opening it on the first byte (or EOF) so that a run
// that never reads costs nothing.
func forwardGroupStdin(g *client.Group, in *os.File, size int) {
	buf := make([]byte, size)
	var w io.WriteCloser
	for {
		n, rerr := in.Read(buf)
		if w == nil {
			var err error
			if w, err = g.Stdin(); err != nil {
				return
			}
			defer w.Close()
		}
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return
			}
		}
		if rerr != nil {
			return
		}
	}
}

// groupKill signals the group's live processes with one write to its
// ctl. Should that write fail other than for a group gone (its processes
// have all ended), each process is signalled on its own, so a signal is
// never lost to the faster path.
func groupKill(g *client.Group, live []*job) func(syscall.Signal) error {
	return func(sig syscall.Signal) error {
		err := g.Kill(sig)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		tracef("group %d: kill %s: %v; per process", g.ID, client.SignalName(sig), err)
		for _, j := range live {
			if !j.ended.Load() {
				j.proc.Kill(sig)
			}
		}
		return err
	}
}
