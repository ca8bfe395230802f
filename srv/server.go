package srv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"bproc/fs/slaveproto"
	"bproc/fs/synth"

	"github.com/hugelgupf/p9/p9"
)

// DefaultPort is bpmaster's 9P port, slaveproto.DefaultPort.
var DefaultPort = strconv.Itoa(slaveproto.DefaultPort)

// DefaultMaxMessage is the 9P msize the server allows and Dial asks for.
const DefaultMaxMessage = 1 << 20

// p9MaxMessage is the largest msize hugelgupf/p9 supports.
const p9MaxMessage = 4 << 20

// DefaultMaxPending bounds the connections still in the handshake, so a
// flood of silent strangers cannot pile up goroutines and descriptors.
const DefaultMaxPending = 1024

// Server serves a tree over 9P2000.L to clients that pass the handshake.
type Server struct {
	Key        []byte
	Root       synth.Dir // the tree; the same one FUSE serves
	Logf       func(format string, args ...any)
	MaxMessage uint32 // msize to allow; default 1 MiB (p9 allows up to 4 MiB)
	// Plain turns off sealing after the handshake, for a trusted cluster
	// network where throughput matters more (bpmaster's "seal no").
	Plain bool
	// MaxPending bounds connections still in the handshake; default
	// DefaultMaxPending. When full, a new connection evicts the oldest
	// pending one of the source address with the most (see pool).
	MaxPending int
	Stats      *Stats // monitoring counters (stats.go); nil: none

	rl *rateLog
}

// connSet is the set of live connections of one Serve call.
type connSet struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// add records c; false once the set was closed (c must then be dropped).
func (cs *connSet) add(c net.Conn) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return false
	}
	cs.conns[c] = struct{}{}
	return true
}

func (cs *connSet) remove(c net.Conn) {
	cs.mu.Lock()
	delete(cs.conns, c)
	cs.mu.Unlock()
}

// closeAll closes every live connection and refuses new ones.
func (cs *connSet) closeAll() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.closed = true
	for c := range cs.conns {
		c.Close()
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

// event logs a line a stranger or a misbehaving client can repeat at will:
// bounded per kind and interval, the rest counted (see rateLog).
func (s *Server) event(kind, format string, args ...any) {
	if s.rl == nil {
		s.logf(format, args...)
		return
	}
	s.rl.event(kind, format, args...)
}

func (s *Server) maxMessage() uint32 {
	switch {
	case s.MaxMessage == 0:
		return DefaultMaxMessage
	case s.MaxMessage > p9MaxMessage:
		return p9MaxMessage
	}
	return s.MaxMessage
}

// Serve accepts connections until ctx is done or ln fails. Each connection
// gets the handshake, then its own p9 server with a Caller built from the
// handshake's Hello. When ctx is done the listener and every connection are
// closed and Serve returns once their handlers have finished.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if len(s.Key) == 0 {
		return errors.New("srv: serve: empty cluster key")
	}
	if s.Root == nil {
		return errors.New("srv: serve: no root")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.rl = newRateLog(s.logf)
	defer s.rl.close() // after every connection's last line
	var wg sync.WaitGroup
	defer wg.Wait()

	live := &connSet{conns: make(map[net.Conn]struct{})}
	go func() {
		<-ctx.Done()
		ln.Close()
		live.closeAll()
	}()

	max := s.MaxPending
	if max <= 0 {
		max = DefaultMaxPending
	}
	pool := newPool(max)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if AcceptRetryable(err) {
				s.event("accept errors", "9p: accept: %v (retrying)", err)
				select {
				case <-time.After(100 * time.Millisecond):
				case <-ctx.Done():
				}
				continue
			}
			return fmt.Errorf("srv: accept: %w", err)
		}
		if !live.add(c) {
			c.Close() // raced with shutdown
			continue
		}
		p, evicted := pool.admit(c)
		if evicted != nil {
			evicted.c.Close() // its handshake goroutine logs and cleans up
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer live.remove(c)
			s.serveConn(ctx, c, pool, p)
		}()
	}
}

// AcceptRetryable tells an accept error a listener outlives (out of
// descriptors or buffers, a connection gone before it was taken) from one
// that ends it.
func AcceptRetryable(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS)
}

// tuneTCP keeps dead peers from lingering and small replies from waiting.
func tuneTCP(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		tc.SetKeepAliveConfig(net.KeepAliveConfig{
			Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 4,
		})
	}
}

func (s *Server) serveConn(ctx context.Context, c net.Conn, pool *pool, p *pendingConn) {
	defer c.Close()
	tuneTCP(c)
	h, sess, err := ServerHandshake(c, s.Key, s.Plain)
	evicted := pool.done(p)
	if err != nil {
		cause := refusalCause(err, evicted)
		if evicted {
			err = fmt.Errorf("handshake with %v: evicted, %d connections in the handshake", c.RemoteAddr(), pool.max)
		}
		s.event(refusalKinds[cause], "9p: %v", err)
		s.Stats.refuse(cause)
		return
	}
	defer s.Stats.connect(h.Role)()
	addr := c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	local := c.LocalAddr().String()
	if host, _, err := net.SplitHostPort(local); err == nil {
		local = host
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	caller := &synth.Caller{
		LocalAddr: local,
		Node:      synth.NodeUnknown,
		Uid:       h.Uid,
		Gid:       h.Gid,
		Groups:    h.Groups,
		Slave:     h.Role == RoleSlave,
		Addr:      addr,
		Host:      h.Host,
		Conn:      cctx,
	}
	s.logf("9p: %s connected: %s uid %d gid %d host %s", addr, h.Role, h.Uid, h.Gid, h.Host)
	start := time.Now()

	t := &transport{r: newP9Reader(bufio.NewReaderSize(sess, 64<<10), s.maxMessage()), c: c, cancel: cancel}
	// Each reply goes out in one write (one sealed frame), however p9
	// splits it.
	w := &replyWriter{msgWriter{out: frameWriter(sess)}, c}
	ps := p9.NewServer(&attacher{s: &session{caller: caller, ctx: cctx}, root: s.Root},
		p9.WithServerLogger(p9log{s: s, prefix: "9p: " + addr + ": "}))
	ps.Handle(t, w)
	s.logf("9p: %s disconnected: %s host %s after %v", addr, h.Role, h.Host, time.Since(start).Round(time.Millisecond))
}

// transport is the p9 server's reader. The moment the socket fails or the
// peer hangs up it cancels the connection context, so reads and writes
// blocked in the tree return EINTR and p9 can finish the connection (it
// waits for every pending request before returning).
type transport struct {
	r      io.Reader
	c      net.Conn
	cancel context.CancelFunc
}

func (t *transport) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil {
		t.cancel()
	}
	return n, err
}

func (t *transport) Close() error {
	t.cancel()
	return t.c.Close()
}

// replyWriter is the p9 server's writer: messages gathered and sealed.
type replyWriter struct {
	msgWriter
	c net.Conn
}

func (w *replyWriter) Close() error { return w.c.Close() }

// p9log passes the p9 server's own complaints (protocol errors, failed
// sends) to the server's log.
type p9log struct {
	s      *Server
	prefix string
}

func (l p9log) Printf(format string, v ...any) {
	// p9 also traces every message it sends and receives; keep only the
	// complaints.
	if strings.HasPrefix(format, "recv [") || strings.HasPrefix(format, "send [") {
		return
	}
	l.s.event(complaintKind(v), l.prefix+format, v...)
}

func (l p9log) Print(v ...any) {
	l.s.event(complaintKind(v), "%s%s", l.prefix, fmt.Sprint(v...))
}

// complaintKind sorts p9's complaints for the rate-limited log by the
// error they carry.
func complaintKind(v []any) string {
	for _, a := range v {
		if err, ok := a.(error); ok {
			switch {
			case errors.Is(err, ErrSealBroken) || errors.Is(err, io.ErrUnexpectedEOF):
				return "broken sealed frames"
			case errors.Is(err, errBad9P):
				return "connections speaking malformed 9P"
			}
		}
	}
	return "9P protocol complaints"
}
