package client

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
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
	"bproc/srv"
)

// ErrMoved is a direct stream's moved end: the process went to another
// node, and the stream carries on in the tree's proc/PID/stdout (or
// stderr) from the byte after the last one read here.
var ErrMoved = errors.New("direct stream moved: the process went to another node, its output goes on in the tree")

// directDial bounds the connect and handshake with the node: past it the
// caller falls back to the tree, which always works.
const directDial = 2 * time.Second

// DirectStreams is a process's stdout and stderr taken straight from its
// node's data port (README's "Direct streams"), the master out of the
// path. The two streams share one connection: a frame of one waits until
// the other's reader has taken the frame before it.
type DirectStreams struct {
	conn net.Conn // raw: Close ends everything
	mu   sync.Mutex
	cond *sync.Cond
	r    io.Reader // the session: sealed or plain
	cur  byte      // the stream of the frame being read; 0: a header is next
	left int       // bytes of it still to read
	busy bool      // somebody reads from r
	eof  [3]bool   // its end came: EOF, or moved
	// moved: its end was the moved end (ErrMoved), not EOF
	moved [3]bool
	shut  [3]bool // its reader closed: its frames are skipped
	err   error

	sp *spliceSrc // a plain session's socket, for SpliceTo
}

// OpenDirect attaches to process pid's output through proc/PID/direct.
// Any error (ENOENT from an older master, ENXIO for a node without a data
// port, a node the client cannot reach) means: read the tree's
// proc/PID/stdout and stderr instead.
func OpenDirect(t Tree, pid int) (*DirectStreams, error) {
	b, err := ReadFile(t, "proc/"+strconv.Itoa(pid)+"/direct")
	if err != nil {
		return nil, err
	}
	d, err := slaveproto.ParseDirect(string(b))
	if err != nil {
		return nil, err
	}
	return DialDirect(d)
}

// DialDirect connects to a node's data port with a ticket read from
// proc/PID/direct.
func DialDirect(d slaveproto.Direct) (*DirectStreams, error) {
	c, err := net.DialTimeout("tcp", d.Addr, directDial)
	if err != nil {
		return nil, fmt.Errorf("direct stream: %w", err)
	}
	sess, err := directHandshake(c, d)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("direct stream from %s: %w", d.Addr, err)
	}
	return newDirectStreams(c, sess), nil
}

// newDirectStreams reads the streams from sess, the session on c.
func newDirectStreams(c net.Conn, sess io.Reader) *DirectStreams {
	ds := &DirectStreams{conn: c, r: sess}
	if pr, ok := sess.(plainReader); ok {
		ds.sp = newSpliceSrc(c, pr.br)
	}
	ds.cond = sync.NewCond(&ds.mu)
	return ds
}

func directHandshake(c net.Conn, d slaveproto.Direct) (io.Reader, error) {
	c.SetDeadline(time.Now().Add(directDial))
	nc := make([]byte, slaveproto.DirectNonceLen)
	rand.Read(nc)
	hello := append([]byte(slaveproto.DirectMagic), d.Ticket...)
	hello = append(hello, nc...)
	hello = append(hello, slaveproto.ClientProof(d.Secret, nc)...)
	if _, err := c.Write(hello); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(c, 64<<10)
	code, err := br.ReadByte()
	if err != nil {
		return nil, fmt.Errorf("no answer: %w", err)
	}
	if code != 0 {
		n, _ := br.ReadByte()
		msg := make([]byte, n)
		io.ReadFull(br, msg)
		return nil, fmt.Errorf("%s: %w", msg, syscall.EACCES)
	}
	reply := make([]byte, slaveproto.DirectNonceLen+32)
	if _, err := io.ReadFull(br, reply); err != nil {
		return nil, fmt.Errorf("short answer: %w", err)
	}
	ns, proof := reply[:slaveproto.DirectNonceLen], reply[slaveproto.DirectNonceLen:]
	if !hmac.Equal(proof, slaveproto.SlaveProof(d.Secret, nc, ns)) {
		return nil, fmt.Errorf("the node does not prove the ticket's secret: %w", slaveproto.ErrBadTicket)
	}
	c.SetDeadline(time.Time{})
	if d.Ticket[1]&slaveproto.TicketFlagPlain != 0 {
		return plainReader{br, c}, nil
	}
	// The first frames may be in br already.
	return srv.SealStream(bufConn{c, br}, d.Secret, nc, ns, true)
}

// plainReader reads a plain session: what the handshake's reader holds
// first, then the socket itself, never reading ahead again. A frame
// header read through a buffer would take up to its size of the frame's
// bytes along, which then cannot be spliced: they would cross the
// program's memory twice (a sixth of bpsh's CPU with 64 KiB).
type plainReader struct {
	br *bufio.Reader
	c  net.Conn
}

func (r plainReader) Read(p []byte) (int, error) {
	if r.br.Buffered() > 0 {
		return r.br.Read(p)
	}
	return r.c.Read(p)
}

// bufConn reads c through r, which may hold bytes read ahead.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (b bufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// Stdout and Stderr are the two streams; Close on both ends the
// connection.
func (ds *DirectStreams) Stdout() (io.ReadCloser, error) {
	return &directReader{ds: ds, id: slaveproto.StreamStdout}, nil
}

func (ds *DirectStreams) Stderr() (io.ReadCloser, error) {
	return &directReader{ds: ds, id: slaveproto.StreamStderr}, nil
}

// Close ends both streams at once (their readers get EOF, as the tree's
// do): for a process whose node was lost, whose connection may never end
// by itself.
func (ds *DirectStreams) Close() error {
	ds.mu.Lock()
	if ds.err == nil {
		ds.err = io.EOF
	}
	ds.cond.Broadcast()
	ds.mu.Unlock()
	return ds.conn.Close()
}

type directReader struct {
	ds   *DirectStreams
	id   byte
	once sync.Once
}

func (r *directReader) Read(p []byte) (int, error) { return r.ds.read(r.id, p, nil) }

// SpliceTo moves the stream's next bytes to d as Read would return them
// (0 and io.EOF at its end), by splice(2); ErrNoSplice on a sealed
// session. A *WriteError is d's failure: the stream goes on (by Read).
func (r *directReader) SpliceTo(d *SpliceDest) (int, error) {
	if r.ds.sp == nil {
		return 0, ErrNoSplice
	}
	return r.ds.read(r.id, nil, d)
}

func (r *directReader) Close() error {
	r.once.Do(func() {
		ds := r.ds
		ds.mu.Lock()
		ds.shut[r.id] = true
		both := ds.shut[slaveproto.StreamStdout] && ds.shut[slaveproto.StreamStderr]
		ds.cond.Broadcast()
		ds.mu.Unlock()
		if both {
			ds.conn.Close()
		}
	})
	return nil
}

// read returns bytes of stream id, reading frames from the session: its
// own straight into p (or spliced to dst), the other stream's left for
// its reader (or skipped when that reader is closed).
func (ds *DirectStreams) read(id byte, p []byte, dst *SpliceDest) (int, error) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	var skip []byte
	var werr error // dst's failure
	for {
		switch {
		case ds.moved[id]:
			return 0, ErrMoved
		case ds.eof[id]:
			return 0, io.EOF
		case ds.err != nil:
			return 0, ds.err
		case ds.busy, ds.cur != 0 && ds.cur != id && !ds.shut[ds.cur]:
			ds.cond.Wait()
			continue
		}
		ds.busy = true
		ds.mu.Unlock()
		var n int
		var err error
		cur, left := ds.cur, ds.left
		switch {
		case cur == 0:
			var st byte
			st, n, err = slaveproto.ReadDirectFrame(ds.r)
			ds.mu.Lock()
			if err == nil && n > 0 && ds.eof[st] {
				err = fmt.Errorf("direct stream: bytes for stream %d after its end", st)
			} else if err == nil && n <= 0 {
				ds.eof[st] = true
				ds.moved[st] = n == slaveproto.DirectMoved
			} else if err == nil {
				ds.cur, ds.left = st, n
			}
			n = 0
		case cur == id && dst != nil:
			n, err = ds.sp.move(dst, left)
			ds.mu.Lock()
			var we *WriteError
			if errors.As(err, &we) {
				werr, err = err, nil
			}
		case cur == id:
			n, err = ds.r.Read(p[:min(len(p), left)])
			ds.mu.Lock()
		default: // a closed reader's frame
			if skip == nil {
				skip = make([]byte, 64<<10)
			}
			n, err = ds.r.Read(skip[:min(len(skip), left)])
			ds.mu.Lock()
		}
		ds.busy = false
		if cur != 0 {
			ds.left -= n
			if ds.left == 0 {
				ds.cur = 0
			}
		}
		if err != nil && ds.err == nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("direct stream cut short: %w", io.ErrUnexpectedEOF)
			}
			ds.err = err
		}
		ds.cond.Broadcast()
		if cur == id && (n > 0 || werr != nil) {
			return n, werr
		}
	}
}

// DirectOff says whether $BPROC_DIRECT turns direct streams off ("0",
// "no", "off"): to measure or debug the path through the master.
func DirectOff(env string) bool {
	switch strings.ToLower(env) {
	case "0", "no", "off", "false":
		return true
	}
	return false
}
