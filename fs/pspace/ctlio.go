package pspace

import (
	"context"
	"fmt"
	"io"
	"sync"
	"syscall"

	"bproc/fs/synth"
)

// exec -o: the process's output and end on the ctl its exec was written
// on, as frames in group/G/io's format (`NODE out LEN`, `NODE err LEN`
// and the bytes, `NODE end STATUS`), so that a one-node launch is an
// open, a write and reads of one file. `detach` on the same file stops
// the frames at a frame boundary and leaves the rest of the output to
// proc/PID/stdout and stderr: after the frames already queued the file
// reads EOF, and its next read gives the end as exec -w's.

// frames makes the exec command running with ctx give process p's frames
// on its file, with -o.
func (o *execOpts) frames(ctx context.Context, p *Proc, n *node) {
	if o.output {
		synth.ThenStream(ctx, newCtlIO(p, n.num))
	}
}

// ctlIO is exec -o's frames of one process.
type ctlIO struct {
	p      *Proc
	q      *synth.Stream
	stop   context.CancelFunc // the pumps stop reading the streams (detach)
	cancel context.CancelFunc // the reader went away
	once   sync.Once

	mu       sync.Mutex
	detached bool
	atEnd    bool   // detached, and the frames were read to their end
	end      []byte // then: exec -w's line, once the process ended
	endPos   int
}

func newCtlIO(p *Proc, node int) *ctlIO {
	// While the file is open the streams keep a reader besides the pumps:
	// after detach, proc/PID/stdout and stderr take over whenever they
	// are opened, as long as the file is (its last close is the reader
	// going away).
	p.stdout.Attach()
	p.stderr.Attach()
	wctx, cancel := context.WithCancel(context.Background())
	rctx, stop := context.WithCancel(wctx)
	return &ctlIO{p: p, q: pumpAll(rctx, wctx, []member{{node: node, p: p}}), stop: stop, cancel: cancel}
}

func (c *ctlIO) Read(ctx context.Context, b []byte) (int, error) {
	c.mu.Lock()
	atEnd := c.atEnd
	c.mu.Unlock()
	if !atEnd {
		n, err := c.q.Read(ctx, b)
		if err == io.EOF {
			c.mu.Lock()
			c.atEnd = c.detached // from the next read on: the end
			c.mu.Unlock()
		}
		return n, err
	}
	c.mu.Lock()
	end := c.end
	c.mu.Unlock()
	if end == nil {
		line, err := c.p.endLine(ctx)
		if err != nil {
			return 0, err // interrupted: the next read waits again
		}
		c.mu.Lock()
		if c.end == nil {
			c.end = []byte(line)
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.endPos >= len(c.end) {
		return 0, io.EOF
	}
	n := copy(b, c.end[c.endPos:])
	c.endPos += n
	return n, nil
}

// detach stops the pumps where they are: a frame begun is finished, and
// what a pump has not read stays in the process's streams.
func (c *ctlIO) detach() {
	c.mu.Lock()
	c.detached = true
	c.mu.Unlock()
	c.stop()
}

// Close: the reader went away. As for group/G/io's and proc/PID/stdout's
// last reader, the process's streams lose their reader (its next write
// meets EPIPE) unless another has them open.
func (c *ctlIO) Close() error {
	c.once.Do(func() {
		c.cancel()
		c.q.Detach()
		c.p.stdout.Detach()
		c.p.stderr.Detach()
	})
	return nil
}

// detachCommand is node/N/ctl's `detach`, beside the file's result.
func detachCommand(ctx context.Context, args []string) (string, error) {
	c, _ := synth.Aside(ctx).(*ctlIO)
	if len(args) > 0 {
		return "", fmt.Errorf("usage: detach: %w", syscall.EINVAL)
	}
	if c == nil {
		return "", fmt.Errorf("detach: this open file gives no exec -o frames: %w", syscall.EINVAL)
	}
	c.detach()
	return "", nil
}
