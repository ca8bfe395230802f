package srv

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hugelgupf/p9/p9"

	"bproc/fs"
)

// DefaultPort is bpmaster's 9P port, fs.DefaultPort.
var DefaultPort = strconv.Itoa(fs.DefaultPort)

// DefaultMaxMessage is the 9P msize the server allows and Dial asks for.
const DefaultMaxMessage = 1 << 20

// p9MaxMessage is the largest msize hugelgupf/p9 supports.
const p9MaxMessage = 4 << 20

// maxHandshakes bounds connections still in the handshake, so a flood of
// silent strangers cannot pile up goroutines and descriptors.
const maxHandshakes = 128

// Server serves a tree over 9P2000.L to clients that pass the handshake.
type Server struct {
	Key        []byte
	Root       fs.Dir // the tree; the same one FUSE serves
	Logf       func(format string, args ...any)
	MaxMessage uint32 // msize to allow; default 1 MiB (p9 allows up to 4 MiB)
	// Plain turns off sealing after the handshake, for a trusted cluster
	// network where throughput matters more (bpmaster's "seal no").
	Plain bool
	Stats *Stats // monitoring counters (stats.go); nil: none
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
	var wg sync.WaitGroup
	defer wg.Wait()

	live := &connSet{conns: make(map[net.Conn]struct{})}
	go func() {
		<-ctx.Done()
		ln.Close()
		live.closeAll()
	}()

	hsSlots := make(chan struct{}, maxHandshakes)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
				errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) {
				s.logf("9p: accept: %v (retrying)", err)
				select {
				case <-time.After(100 * time.Millisecond):
				case <-ctx.Done():
				}
				continue
			}
			return fmt.Errorf("srv: accept: %w", err)
		}
		select {
		case hsSlots <- struct{}{}:
		default:
			s.logf("9p: %v: too many handshakes in progress, dropping", c.RemoteAddr())
			s.Stats.refuse(RefusedBusy)
			c.Close()
			continue
		}
		if !live.add(c) {
			c.Close() // raced with shutdown
			<-hsSlots
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer live.remove(c)
			s.serveConn(ctx, c, hsSlots)
		}()
	}
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

func (s *Server) serveConn(ctx context.Context, c net.Conn, hsSlots chan struct{}) {
	defer c.Close()
	tuneTCP(c)
	h, sess, err := ServerHandshake(c, s.Key, s.Plain)
	<-hsSlots
	if err != nil {
		s.logf("9p: %v", err)
		s.Stats.refuse(refusalCause(err))
		return
	}
	defer s.Stats.connect(h.Role)()
	addr := c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	caller := &fs.Caller{
		Uid:    h.Uid,
		Gid:    h.Gid,
		Groups: h.Groups,
		Slave:  h.Role == RoleSlave,
		Addr:   addr,
		Host:   h.Host,
		Conn:   cctx,
	}
	s.logf("9p: %s connected: %s uid %d gid %d host %s", addr, h.Role, h.Uid, h.Gid, h.Host)
	start := time.Now()

	br := bufio.NewReaderSize(sess, 64<<10)
	first, err := clampVersion(br, s.maxMessage())
	if err != nil {
		s.logf("9p: %s: %v", addr, err)
		return
	}
	t := &transport{r: io.MultiReader(first, br), c: c, cancel: cancel}
	// Each reply goes out in one write (one sealed frame), however p9
	// splits it.
	w := &replyWriter{msgWriter{out: frameWriter(sess)}, c}
	ps := p9.NewServer(&attacher{s: &session{caller: caller, ctx: cctx}, root: s.Root},
		p9.WithServerLogger(p9log{s: s, prefix: "9p: " + addr + ": "}))
	ps.Handle(t, w)
	s.logf("9p: %s disconnected: %s host %s after %v", addr, h.Role, h.Host, time.Since(start).Round(time.Millisecond))
}

// Tversion layout: size[4] type[1] tag[2] msize[4] version[s].
const (
	msgTversion    = 100
	tversionMsize  = 7
	tversionPrefix = 11
)

// clampVersion reads the first 9P message header and, if it is a Tversion
// asking for more than max, lowers the msize in it: p9's server would
// otherwise grant up to 4 MiB per connection.
func clampVersion(br *bufio.Reader, max uint32) (io.Reader, error) {
	hdr := make([]byte, tversionPrefix)
	if _, err := io.ReadFull(br, hdr); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("closed before 9P version")
		}
		return nil, fmt.Errorf("reading 9P version: %w", err)
	}
	if hdr[4] == msgTversion {
		if m := binary.LittleEndian.Uint32(hdr[tversionMsize:]); m > max {
			binary.LittleEndian.PutUint32(hdr[tversionMsize:], max)
		}
	}
	return bytesReader(hdr), nil
}

func bytesReader(b []byte) io.Reader { return &sliceReader{b: b} }

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
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
	l.s.logf(l.prefix+format, v...)
}
func (l p9log) Print(v ...any) { l.s.logf("%s%s", l.prefix, fmt.Sprint(v...)) }
