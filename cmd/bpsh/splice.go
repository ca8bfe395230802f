package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"bproc/client"
)

// A plain (`seal no`) direct stream goes from the socket to bpsh's stdout
// or stderr by splice(2), never through bpsh's memory, when nothing stands
// between: no -p or -L line processing, no -s or -g holding back and no
// -d dividers, and the file a pipe, a regular file or /dev/null. The
// tree's bytes before the switch are written as ever.

// spliceDest is where stream fd may be spliced to; nil: it is written.
func (o *output) spliceDest(fd int) *client.SpliceDest {
	if o.gather || o.seq || o.divider || spliceOff {
		return nil
	}
	f, ok := o.w[fd].(*os.File)
	if !ok {
		return nil
	}
	d, err := client.NewSpliceDest(f)
	if err != nil {
		return nil
	}
	return d
}

// spliceOff: $BPSH_SPLICE=0 writes direct streams as the tree's (to
// compare).
var spliceOff = os.Getenv("BPSH_SPLICE") == "0"

func (o *output) isBroken(fd int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.broken[fd]
}

// spliceFailed records a failed splice to fd as put does a failed write.
func (o *output) spliceFailed(fd int, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.broken[fd] = true
	if o.first == nil {
		o.first = err
	}
}

// spliceTo moves the stream's next bytes to d once it reads from the node
// over a plain session; ok false: read it instead.
func (r *switchReader) spliceTo(d *client.SpliceDest) (n int, err error, ok bool) {
	s, can := r.cur.(interface {
		SpliceTo(*client.SpliceDest) (int, error)
	})
	if !r.onNode || !can {
		return 0, nil, false
	}
	n, err = s.SpliceTo(d)
	if errors.Is(err, client.ErrNoSplice) || errors.Is(err, client.ErrMoved) {
		// Moved: Read takes the stream back to the tree.
		return 0, nil, false
	}
	return n, err, true
}

// splice is copyStream's step on a spliced stream: done once the stream
// ended (or failed, reported); ok false when it is to be read instead.
func (j *job) splice(sr *switchReader, d *client.SpliceDest, sk *sink) (done, ok bool) {
	if sk.broken || sk.out.isBroken(sk.fd) {
		return false, false
	}
	_, err, ok := sr.spliceTo(d)
	if !ok {
		return false, false
	}
	var we *client.WriteError
	switch {
	case err == nil:
	case err == io.EOF:
		return true, true
	case errors.As(err, &we):
		// As sink.write on a failed write: the rest is read and dropped,
		// the process told.
		sk.out.spliceFailed(sk.fd, we.Err)
		sk.broken = true
		j.k.mark(syscall.SIGPIPE)
		j.proc.Kill(syscall.SIGPIPE)
	default:
		sk.out.fail(fmt.Errorf("node %d: reading %s: %s", j.node, [3]string{"", "stdout", "stderr"}[sk.fd], client.ErrText(err)))
		return true, true
	}
	return false, true
}
