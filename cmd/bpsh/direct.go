package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"

	"bproc/client"
)

// directOff: $BPROC_DIRECT=0 keeps the output on the tree (to compare).
var directOff = client.DirectOff(os.Getenv("BPROC_DIRECT"))

// directAfter is how much output comes through the tree before bpsh asks
// for it straight from the node: a short job never pays for the attempt.
const directAfter = 1 << 20

// switcher moves a single node's job's output from the tree to its node's
// data port once it is bulk. The slave goes on from exactly what the
// tree's readers took, which then meet EOF; each stream's reader carries
// on with the direct stream there. Any failure leaves the tree's streams
// as they were, silently.
type switcher struct {
	j    *job
	mu   sync.Mutex
	cond *sync.Cond
	seen int64 // bytes through the tree, both streams
	// state: 0 not tried, 1 trying, 2 attached (ds), 3 failed
	state int
	ds    *client.DirectStreams
}

// directSwitch is the job's switcher, nil when its output stays on the
// tree.
func (j *job) directSwitch() *switcher {
	if !j.direct || directOff {
		return nil
	}
	sw := &switcher{j: j, seen: j.seen}
	sw.cond = sync.NewCond(&sw.mu)
	if sw.seen >= directAfter { // handed over bulk (attach.go): try at once
		sw.took(0)
	}
	return sw
}

// wrap reads stream id (1 stdout, 2 stderr) from the tree r, then from
// the node.
func (sw *switcher) wrap(r io.ReadCloser, id int) io.ReadCloser {
	if sw == nil {
		return r
	}
	return &switchReader{sw: sw, cur: r, id: id}
}

// lost ends a direct connection of a process lost with its node (nothing
// else would).
func (sw *switcher) lost(j *job) {
	if sw == nil || (j.werr == nil && j.st.Kind != client.Lost) {
		return
	}
	sw.mu.Lock()
	ds := sw.ds
	sw.mu.Unlock()
	if ds != nil {
		ds.Close()
	}
}

// took counts n bytes through the tree and starts the attempt once there
// were enough.
func (sw *switcher) took(n int) {
	sw.mu.Lock()
	sw.seen += int64(n)
	try := sw.state == 0 && sw.seen >= directAfter
	if try {
		sw.state = 1
	}
	sw.mu.Unlock()
	if !try {
		return
	}
	go func() {
		ds, err := client.OpenDirect(sw.j.proc.T, sw.j.proc.Pid)
		sw.mu.Lock()
		switch {
		case errors.Is(err, syscall.EBUSY): // moving: try again later
			tracef("node %d: no direct stream yet: %v", sw.j.node, err)
			sw.state, sw.seen = 0, 0
		case err != nil:
			tracef("node %d: no direct stream: %v", sw.j.node, err)
			sw.state = 3
		default:
			tracef("node %d: output goes direct", sw.j.node)
			sw.state, sw.ds = 2, ds
		}
		sw.cond.Broadcast()
		sw.mu.Unlock()
	}()
}

// direct waits for an attempt under way; nil: the tree's EOF is the end.
func (sw *switcher) direct() *client.DirectStreams {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	for sw.state == 1 {
		sw.cond.Wait()
	}
	if sw.state != 2 {
		return nil
	}
	return sw.ds
}

// moved: ds's stream ended "moved" (the process went to another node),
// so the output is on the tree again, and may go direct again (from the
// new node) after another directAfter.
func (sw *switcher) moved(ds *client.DirectStreams) {
	sw.mu.Lock()
	if sw.state == 2 && sw.ds == ds {
		sw.state, sw.seen = 0, 0
	}
	sw.mu.Unlock()
}

// switchReader reads one stream from the tree, then from the node, and
// from the tree again after a move.
type switchReader struct {
	sw     *switcher
	cur    io.ReadCloser
	id     int
	onNode bool
	last   *client.DirectStreams // the direct streams read last: not again
}

func (r *switchReader) Read(p []byte) (int, error) {
	for {
		n, err := r.cur.Read(p)
		if r.onNode {
			if !errors.Is(err, client.ErrMoved) {
				return n, err
			}
			// The tree has the stream from the byte after the last
			// one read here.
			tracef("node %d: direct stream %d moved: back to the tree", r.sw.j.node, r.id)
			r.cur.Close()
			r.sw.moved(r.last)
			if r.id == 2 {
				r.cur, err = r.sw.j.proc.Stderr()
			} else {
				r.cur, err = r.sw.j.proc.Stdout()
			}
			if err != nil {
				r.cur = io.NopCloser(strings.NewReader(""))
				return n, fmt.Errorf("reopening stream %d after a move: %w", r.id, err)
			}
			r.onNode = false
			if n > 0 {
				return n, nil
			}
			continue
		}
		if n > 0 {
			r.sw.took(n)
		}
		if err != io.EOF {
			return n, err
		}
		ds := r.sw.direct()
		if ds == nil || ds == r.last {
			return n, err
		}
		r.cur.Close()
		r.cur, _ = ds.Stdout()
		if r.id == 2 {
			r.cur, _ = ds.Stderr()
		}
		r.onNode, r.last = true, ds
		if n > 0 {
			return n, nil
		}
	}
}

func (r *switchReader) Close() error { return r.cur.Close() }
