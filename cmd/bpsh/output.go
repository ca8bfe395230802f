package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"

	"bproc/client"
)

// output is where the nodes' stdout (fd 1) and stderr (fd 2) go. Every
// write is whole, so chunks (or lines) of different nodes never mix. In
// sequential mode the current node writes through and later nodes are held
// back until every earlier node is done.
type output struct {
	mu      sync.Mutex
	w       [3]io.Writer
	broken  [3]bool
	first   error
	seq     bool
	divider bool
	gather  bool
	nodes   []int
	cur     int
	held    []heldOut
}

type heldOut struct {
	buf  [3]bytes.Buffer
	done bool
}

func newOutput(n int, stdout, stderr io.Writer, o *options) *output {
	out := &output{w: [3]io.Writer{nil, stdout, stderr}, seq: o.seq, divider: o.divider, gather: o.gather}
	if o.seq || o.gather {
		out.held = make([]heldOut, n)
	}
	return out
}

// setNodes names the jobs' nodes for the dividers and gathering; the
// first node's divider comes before anything it writes, as in BProc.
func (o *output) setNodes(nodes []int) {
	o.nodes = nodes
	if o.divider && len(nodes) > 0 {
		o.mu.Lock()
		o.put(1, []byte(divider(nodes[0])))
		o.mu.Unlock()
	}
}

// write sends p from job idx to fd. It fails once fd's reader is gone.
func (o *output) write(idx, fd int, p []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gather || (o.seq && idx != o.cur) {
		o.held[idx].buf[fd].Write(p)
		return nil
	}
	return o.put(fd, p)
}

func (o *output) put(fd int, p []byte) error {
	if o.broken[fd] {
		return syscall.EPIPE
	}
	if _, err := o.w[fd].Write(p); err != nil {
		o.broken[fd] = true
		if o.first == nil {
			o.first = err
		}
		return err
	}
	return nil
}

// done marks job idx finished; in sequential mode the next unfinished job
// becomes current and what it held back is written.
func (o *output) done(idx int) {
	if !o.seq {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.held[idx].done = true
	for o.cur < len(o.held) && o.held[o.cur].done {
		o.cur++
		if o.cur < len(o.held) {
			o.release(o.cur)
		}
	}
}

// release writes job idx's held output, after a divider when asked.
func (o *output) release(idx int) {
	if o.divider {
		node := idx
		if idx < len(o.nodes) {
			node = o.nodes[idx]
		}
		o.put(1, []byte(divider(node)))
	}
	h := &o.held[idx]
	for fd := 1; fd <= 2; fd++ {
		if h.buf[fd].Len() > 0 {
			o.put(fd, h.buf[fd].Bytes())
			h.buf[fd] = bytes.Buffer{}
		}
	}
}

// divider is the line -d prints between two nodes' output.
func divider(node int) string {
	label := fmt.Sprintf(" node %d ", node)
	return strings.Repeat("-", 10) + label + strings.Repeat("-", 60-len(label)) + "\n"
}

// finish writes anything still held (jobs that never reported done), or
// with -g everything, gathered.
func (o *output) finish() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gather {
		o.writeGathered()
		return
	}
	if !o.seq {
		return
	}
	for o.cur < len(o.held) {
		o.held[o.cur].done = true
		o.cur++
		if o.cur < len(o.held) {
			o.release(o.cur)
		}
	}
}

// writeGathered writes each distinct output once, stdout and stderr
// apart, under the folded set of the nodes that wrote it, as clush -b and
// dshbak -c do; groups come in the order of their first node.
func (o *output) writeGathered() {
	for fd := 1; fd <= 2; fd++ {
		var order []string
		groups := map[string][]int{}
		for idx := range o.held {
			b := o.held[idx].buf[fd].String()
			if b == "" {
				continue
			}
			if groups[b] == nil {
				order = append(order, b)
			}
			node := idx
			if idx < len(o.nodes) {
				node = o.nodes[idx]
			}
			groups[b] = append(groups[b], node)
		}
		for _, b := range order {
			nodes := groups[b]
			rule := strings.Repeat("-", 15) + "\n"
			o.put(fd, []byte(fmt.Sprintf("%s%s (%d)\n%s", rule, client.FoldNodes(nodes), len(nodes), rule)))
			if !strings.HasSuffix(b, "\n") {
				b += "\n"
			}
			o.put(fd, []byte(b))
		}
	}
}

// fail records an error that is not a node's exit.
func (o *output) fail(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.first == nil {
		o.first = err
	}
}

func (o *output) err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.first
}

// lineWriter cuts a stream into whole lines, each with prefix. A line
// longer than maxLine is passed on in pieces (only the first prefixed), so
// output without newlines cannot grow it without bound.
type lineWriter struct {
	prefix  []byte
	pending []byte // the unfinished line, without its prefix
	mid     bool   // part of the current line went out already, with the prefix
	out     []byte
	maxLine int // 0: 1 MiB
}

func (l *lineWriter) lineStart() []byte {
	if l.mid {
		return nil
	}
	return l.prefix
}

// write passes on every complete line in pending+p as one emit.
func (l *lineWriter) write(p []byte, emit func([]byte) error) error {
	last := bytes.LastIndexByte(p, '\n')
	if last < 0 {
		l.pending = append(l.pending, p...)
		max := l.maxLine
		if max <= 0 {
			max = 1 << 20
		}
		if len(l.pending) < max {
			return nil
		}
		l.out = append(append(l.out[:0], l.lineStart()...), l.pending...)
		l.pending = l.pending[:0]
		l.mid = true
		return emit(l.out)
	}
	data := p[:last+1]
	chunk := data
	if len(l.prefix) > 0 || len(l.pending) > 0 {
		l.out = append(l.out[:0], l.lineStart()...)
		l.out = append(l.out, l.pending...)
		l.pending = l.pending[:0]
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			l.out = append(l.out, data[:i+1]...)
			data = data[i+1:]
			if len(data) > 0 {
				l.out = append(l.out, l.prefix...)
			}
		}
		chunk = l.out
	}
	l.mid = false
	err := emit(chunk)
	l.pending = append(l.pending, p[last+1:]...)
	return err
}

// flush passes on a last line without newline.
func (l *lineWriter) flush(emit func([]byte) error) error {
	if len(l.pending) == 0 {
		return nil
	}
	b := append(append([]byte(nil), l.lineStart()...), l.pending...)
	l.pending = l.pending[:0]
	l.mid = false
	return emit(b)
}
