package job

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"bproc/fs/slaveproto"
	"bproc/srv"

	"golang.org/x/sys/unix"
)

// A direct stream in the clear (`seal no`) moves the job's pipe to the
// client's socket with splice(2): the slave then neither reads nor copies
// the bytes. Once a stream's kept bytes are sent, its fill hands over to
// spliceOut, which frames what the pipe holds (FIONREAD) and splices
// exactly that. Sealed streams need the bytes in hand: their fill reads
// the pipe into one buffer and sends each read as a sealed frame itself
// (sealOut).

// spliceDest is a direct client's session, shared by both streams'
// frames (mu keeps a frame's header and bytes together): a plain socket,
// which fill splices its pipe to, or a sealed session (sealed set), which
// fill reads its pipe into one buffer for and writes each read to as one
// frame, sealed from where it lies. Either way no goroutine hands the
// bytes to another and no buffer is allocated per read.
type spliceDest struct {
	mu     sync.Mutex
	conn   *net.TCPConn
	raw    syscall.RawConn
	sealed func(net.Buffers) error
}

// newSealedDest sends frames through write, a sealed session's.
func newSealedDest(write func(net.Buffers) error) *spliceDest {
	return &spliceDest{sealed: write}
}

func newSpliceDest(c net.Conn) *spliceDest {
	tc, raw, ok := srv.RawTCP(c)
	if !ok {
		return nil
	}
	return &spliceDest{conn: tc, raw: raw}
}

// write sends pieces as one frame, under mu.
func (d *spliceDest) write(b net.Buffers) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sealed != nil {
		return d.sealed(b)
	}
	_, err := b.WriteTo(d.conn)
	return err
}

// spliceOut sends ob's pipe to d until the job closes it (ob.eof, and
// sendDirect sends the end) or the client goes (the stream breaks); again
// when handBack interrupted it (the pipe's read deadline): fill goes on.
func (s *Slave) spliceOut(j *running, ob *outBuf, d *spliceDest) (again bool) {
	if d.sealed != nil {
		return s.sealOut(j, ob, d)
	}
	pipe, err := ob.r.SyscallConn()
	if err != nil {
		s.logf("job %d: %s: %v", j.pid, ob.name, err)
		s.directBroken(j, []*outBuf{ob})
		return false
	}
	id := byte(1 << indexOf(j, ob))
	for {
		n, eof, err := d.frame(pipe, id)
		if n > 0 {
			// Counted as sent, as sendDirect's frames are: where the
			// stream stands if it goes back to the master (handBack).
			ob.mu.Lock()
			ob.acked += int64(n)
			ob.sentDirect += int64(n)
			ob.splicedDirect += int64(n)
			ob.mu.Unlock()
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return true
		}
		if err != nil {
			s.logf("job %d: direct stream: %v", j.pid, err)
			s.directBroken(j, j.directStreams(3))
			return false
		}
		if eof {
			ob.mu.Lock()
			ob.eof = true
			ob.signalLocked()
			ob.mu.Unlock()
			return false
		}
	}
}

// sealOut is spliceOut on a sealed session: each read of the pipe, into
// one buffer, is written as a frame.
func (s *Slave) sealOut(j *running, ob *outBuf, d *spliceDest) (again bool) {
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	buf := *bp
	id := byte(1 << indexOf(j, ob))
	for {
		n, err := ob.r.Read(buf[:min(len(buf), slaveproto.MaxDirectFrame)])
		if n > 0 {
			hdr := slaveproto.DirectFrameHeader(id, n)
			if werr := d.write(net.Buffers{hdr[:], buf[:n]}); werr != nil {
				s.logf("job %d: direct stream: %v", j.pid, werr)
				s.directBroken(j, j.directStreams(3))
				return false
			}
			ob.mu.Lock()
			ob.acked += int64(n) // as spliceOut counts
			ob.sentDirect += int64(n)
			ob.mu.Unlock()
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			return true
		case err != nil: // the job's end closed, or the pipe (the stream broke)
			ob.mu.Lock()
			ob.eof = true
			ob.signalLocked()
			ob.mu.Unlock()
			return false
		}
	}
}

// frame waits for bytes in the pipe and splices what it holds as one
// frame of sent bytes; eof once the pipe is empty and its writers gone.
func (d *spliceDest) frame(pipe syscall.RawConn, id byte) (sent int, eof bool, err error) {
	var werr error
	rerr := pipe.Read(func(pfd uintptr) bool {
		n, e := unix.IoctlGetInt(int(pfd), unix.TIOCINQ) // FIONREAD
		if e != nil {
			werr = fmt.Errorf("FIONREAD: %w", e)
			return true
		}
		if n == 0 {
			fds := []unix.PollFd{{Fd: int32(pfd), Events: unix.POLLIN}}
			unix.Poll(fds, 0)
			eof = fds[0].Revents&unix.POLLHUP != 0
			return eof // else wait until readable
		}
		n = min(n, slaveproto.MaxDirectFrame)
		d.mu.Lock()
		defer d.mu.Unlock()
		hdr := slaveproto.DirectFrameHeader(id, n)
		if werr = d.sendMore(hdr[:]); werr != nil {
			return true
		}
		for left := n; left > 0 && werr == nil; {
			e := d.raw.Write(func(sfd uintptr) bool {
				m, e := unix.Splice(int(pfd), nil, int(sfd), nil, left, unix.SPLICE_F_MOVE|unix.SPLICE_F_MORE|unix.SPLICE_F_NONBLOCK)
				if e == unix.EAGAIN {
					return false // the socket is full: wait (the pipe has the bytes)
				}
				if e != nil {
					werr = fmt.Errorf("splice: %w", e)
				} else if m == 0 {
					werr = fmt.Errorf("splice: the pipe ended %d bytes short", left)
				}
				left -= int(m)
				sent += int(m)
				return true
			})
			if e != nil && werr == nil {
				werr = e
			}
		}
		return true
	})
	if werr != nil {
		return sent, false, werr
	}
	return sent, eof, rerr
}

// sendMore writes a frame's header with MSG_MORE: it leaves in one
// segment with the frame's first bytes, not as a packet of its own.
func (d *spliceDest) sendMore(b []byte) error {
	var serr error
	err := d.raw.Write(func(sfd uintptr) bool {
		for len(b) > 0 {
			n, e := unix.SendmsgN(int(sfd), b, nil, nil, unix.MSG_MORE)
			if e == unix.EAGAIN {
				return false
			}
			if e != nil {
				serr = fmt.Errorf("sending a frame header: %w", e)
				return true
			}
			b = b[n:]
		}
		return true
	})
	if serr != nil {
		return serr
	}
	return err
}
