package client

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"bproc/srv"

	"golang.org/x/sys/unix"
)

// A direct stream in the clear (`seal no`) can move its frames' bytes from
// the socket to the reader's file with splice(2), never through the
// program's memory: straight into a pipe, through a pipe of its own into
// a regular file or /dev/null. Only the frame headers are read.

// ErrNoSplice says a stream or a file cannot be spliced: read and write
// instead.
var ErrNoSplice = errors.New("not spliceable")

// spliceMax bounds one move: the size of a pipe's buffer as bpslave sets
// it (and of the kernel's default maximum).
const spliceMax = 1 << 20

// spliceSrc is a plain session's socket and what was read ahead of it.
type spliceSrc struct {
	br  *bufio.Reader
	raw syscall.RawConn
}

func newSpliceSrc(c net.Conn, br *bufio.Reader) *spliceSrc {
	_, raw, ok := srv.RawTCP(c)
	if !ok {
		return nil
	}
	return &spliceSrc{br: br, raw: raw}
}

// SpliceDest is a file direct bytes are spliced to.
type SpliceDest struct {
	f    *os.File
	fd   int
	pipe []int // [read, write] of its own pipe; nil when f is a pipe
	sent int64 // bytes spliced from the socket
}

// Spliced is how many bytes went to d by splice (not the read-ahead).
func (d *SpliceDest) Spliced() int64 { return d.sent }

// NewSpliceDest checks that f takes spliced bytes: a pipe, a regular file
// not in append mode (splice refuses those), or /dev/null; blocking (a
// full non-blocking pipe says EAGAIN as an empty socket does, and the
// mover would wait for the socket). Close it after.
func NewSpliceDest(f *os.File) (*SpliceDest, error) {
	var st unix.Stat_t
	// Not f.Fd(): that would make a non-blocking file blocking, for
	// everyone sharing it.
	fd := -1
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(u uintptr) { fd = int(u) })
	}
	if fd < 0 {
		return nil, ErrNoSplice
	}
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("splice to %s: %w", f.Name(), err)
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return nil, fmt.Errorf("splice to %s: %w", f.Name(), err)
	}
	if fl&(unix.O_APPEND|unix.O_NONBLOCK) != 0 {
		return nil, ErrNoSplice
	}
	d := &SpliceDest{f: f, fd: fd}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return d, nil
	case unix.S_IFREG:
	case unix.S_IFCHR:
		if st.Rdev != unix.Mkdev(1, 3) { // /dev/null; ttys and the rest are written
			return nil, ErrNoSplice
		}
	default:
		return nil, ErrNoSplice
	}
	p := make([]int, 2)
	if err := unix.Pipe2(p, unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("splice to %s: a pipe: %w", f.Name(), err)
	}
	unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, spliceMax) // best effort
	d.pipe = p
	return d, nil
}

// Close frees d's own pipe (not its file).
func (d *SpliceDest) Close() {
	if d != nil && d.pipe != nil {
		unix.Close(d.pipe[0])
		unix.Close(d.pipe[1])
		d.pipe = nil
	}
}

// A WriteError is the file's failure, not the stream's: the bytes moved
// were taken from the stream (and lost), the stream goes on.
type WriteError struct{ Err error }

func (e *WriteError) Error() string { return "writing spliced output: " + e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// move takes up to left bytes of the stream to d: first what was read
// ahead, then by splice. It returns the bytes taken from the stream;
// err is a *WriteError when d failed.
func (s *spliceSrc) move(d *SpliceDest, left int) (int, error) {
	if k := min(s.br.Buffered(), left); k > 0 {
		b, _ := s.br.Peek(k)
		n, err := d.f.Write(b)
		s.br.Discard(k)
		if err != nil {
			return k, &WriteError{err}
		}
		return n, nil
	}
	to := d.fd
	if d.pipe != nil {
		to = d.pipe[1]
	}
	var m int
	var serr error
	err := s.raw.Read(func(sfd uintptr) bool {
		n, e := unix.Splice(int(sfd), nil, to, nil, min(left, spliceMax), unix.SPLICE_F_MOVE)
		for e == unix.EINTR { // at once: the socket's readiness may not come again
			n, e = unix.Splice(int(sfd), nil, to, nil, min(left, spliceMax), unix.SPLICE_F_MOVE)
		}
		switch {
		case e == unix.EAGAIN:
			return false // nothing on the socket yet (a blocking pipe waits in splice): wait
		case e != nil:
			serr = e
		case n == 0:
			serr = fmt.Errorf("direct stream cut short: %w", io.ErrUnexpectedEOF)
		}
		m = int(n)
		return true
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		if d.pipe == nil && errors.Is(err, syscall.EPIPE) {
			return 0, &WriteError{err}
		}
		return 0, fmt.Errorf("splicing the direct stream: %w", err)
	}
	if d.pipe != nil {
		for left := m; left > 0; {
			n, e := unix.Splice(d.pipe[0], nil, d.fd, nil, left, unix.SPLICE_F_MOVE)
			if e == unix.EINTR {
				continue
			}
			if e != nil || n == 0 {
				if e == nil {
					e = syscall.EIO
				}
				drain(d.pipe[0], left)
				return m, &WriteError{e}
			}
			left -= int(n)
		}
	}
	d.sent += int64(m)
	return m, nil
}

// drain empties the own pipe of n bytes its file did not take.
func drain(fd, n int) {
	buf := make([]byte, min(n, 64<<10))
	for n > 0 {
		k, err := unix.Read(fd, buf[:min(n, len(buf))])
		if err != nil || k <= 0 {
			return
		}
		n -= k
	}
}
