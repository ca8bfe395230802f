package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// progressMin is the size from which a copy shows a progress line.
const progressMin = 16 << 20

// progress is the line a large copy keeps up to date on a terminal's
// stderr: bytes sent of the total, for local sources (whose size is
// known), times the nodes they go to.
type progress struct {
	done  atomic.Int64
	total int64
	w     io.Writer
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	shown bool
}

func (p *progress) startProgress(stderr io.Writer, srcs []endpoint, copies int) {
	f, ok := stderr.(*os.File)
	if !ok {
		return
	}
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
		return
	}
	var total int64
	for _, s := range srcs {
		if s.remote {
			continue
		}
		if fi, err := os.Stat(s.path); err == nil && fi.Mode().IsRegular() {
			total += fi.Size()
		}
	}
	total *= int64(copies)
	if total < progressMin {
		return
	}
	p.total, p.w, p.stop = total, stderr, make(chan struct{})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tk := time.NewTicker(250 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tk.C:
				p.show()
			}
		}
	}()
}

func (p *progress) show() {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := min(p.done.Load(), p.total)
	fmt.Fprintf(p.w, "\rbpcp: %d of %d MiB (%d%%)", d>>20, p.total>>20, d*100/p.total)
	p.shown = true
}

// clearProgress ends the line before a message is printed.
func (p *progress) clearProgress() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.w, "\n")
		p.shown = false
	}
}

func (p *progress) stopProgress() {
	if p.stop == nil {
		return
	}
	close(p.stop)
	p.wg.Wait()
	p.show()
	p.clearProgress()
}

// counted counts what is read from r when a progress line is shown.
func (p *progress) counted(r io.Reader) io.Reader {
	if p.stop == nil {
		return r
	}
	return &countReader{r: r, n: &p.done}
}

type countReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}
