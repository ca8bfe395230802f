package srv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"bproc/fs/synth"

	"github.com/hugelgupf/p9/linux"
	"github.com/hugelgupf/p9/p9"
	"golang.org/x/sys/unix"
)

// Client is a 9P connection to a served tree. Its methods may be used
// from several goroutines at once.
type Client struct {
	addr  string
	conn  net.Conn
	pc    *p9.Client
	root  p9.File
	msize uint32

	done     chan struct{}
	doneOnce sync.Once
	watchWg  sync.WaitGroup
	watchMu  sync.Mutex // guards watchFd, so it is never used once closed
	watchFd  int        // dup of the socket, polled for hang-up; -1 when none
}

// clientConn is the transport handed to p9.Client: reads come opened from
// the sealed connection through a buffer, writes are gathered into one
// sealed frame per 9P message, and any failure marks the client done.
//
// Writes never report an error to p9. Its client leaves a request whose
// send failed in its pending table while recycling the request's response
// slot through a process-wide pool; a later receive error then completes
// whatever request (of any client) reuses that slot, and its tag is reused
// while the server still runs it ("no valid tag"), hanging a connection.
// So a failed write closes the socket instead, and the request fails where
// p9 handles failure correctly: in the receive path.
type clientConn struct {
	tc  *net.TCPConn
	br  *bufio.Reader
	cli *Client

	mw     msgWriter
	broken bool
}

// newClientConn speaks on sc, or on tc itself when the session is plain
// (sc nil).
func newClientConn(tc *net.TCPConn, sc *sealedConn, cli *Client) *clientConn {
	var sess net.Conn = tc
	if sc != nil {
		sess = sc
	}
	write := frameWriter(sess)
	cc := &clientConn{tc: tc, br: bufio.NewReaderSize(sess, 64<<10), cli: cli}
	cc.mw.out = func(msg net.Buffers) error {
		if cc.broken {
			return nil
		}
		if err := write(msg); err != nil {
			cc.broken = true
			cc.cli.markDone()
			cc.tc.Close()
		}
		return nil
	}
	return cc
}

func (cc *clientConn) Close() error { return cc.tc.Close() }

// Write hands p9's pieces to the message gatherer; see above for why it
// never fails.
func (cc *clientConn) Write(p []byte) (int, error) {
	cc.mw.Write(p)
	return len(p), nil
}

func (cc *clientConn) Read(p []byte) (int, error) {
	n, err := cc.br.Read(p)
	if err != nil {
		cc.cli.markDone()
	}
	return n, err
}

// Dial connects to addr (host:port, port 2223 when missing), performs the
// handshake claiming h, negotiates 9P with msize 1 MiB and attaches.
// ctx bounds the whole setup; it does not limit the client afterwards.
func Dial(ctx context.Context, addr string, key []byte, h Hello) (*Client, error) {
	return DialFrom(ctx, "", addr, key, h)
}

// DialFrom is Dial with the local end bound to the IP address source ("" for
// any): several slaves on one host use 127.0.0.x this way (bpslave -s).
func DialFrom(ctx context.Context, source, addr string, key []byte, h Hello) (*Client, error) {
	addr = WithPort(addr)
	var d net.Dialer
	if source != "" {
		ip := net.ParseIP(source)
		if ip == nil {
			return nil, fmt.Errorf("bad source address %q", source)
		}
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("dial %s: not a TCP connection", addr)
	}
	tuneTCP(tc)
	// Abort the setup when ctx ends: closing the socket unblocks everything.
	stop := context.AfterFunc(ctx, func() { tc.Close() })
	c, err := setupClient(tc, addr, key, h)
	if !stop() {
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("dial %s: %w", addr, context.Cause(ctx))
	}
	if err != nil {
		tc.Close()
		return nil, err
	}
	return c, nil
}

// WithPort adds DefaultPort to an address without a port ("host",
// "10.0.0.1", "::1", "[::1]").
func WithPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(strings.Trim(addr, "[]"), DefaultPort)
}

func setupClient(tc *net.TCPConn, addr string, key []byte, h Hello) (*Client, error) {
	sc, err := clientSession(tc, key, h)
	if err != nil {
		return nil, err
	}
	c := &Client{addr: addr, conn: tc, msize: DefaultMaxMessage, done: make(chan struct{}), watchFd: -1}
	cc := newClientConn(tc, sc, c)
	// Version negotiation has no timeout of its own in p9.
	tc.SetDeadline(time.Now().Add(handshakeTimeout))
	pc, err := p9.NewClient(cc, p9.WithMessageSize(c.msize))
	if err != nil {
		return nil, fmt.Errorf("9p version with %s: %w", addr, err)
	}
	root, err := pc.Attach("")
	if err != nil {
		return nil, fmt.Errorf("9p attach to %s: %w", addr, err)
	}
	tc.SetDeadline(time.Time{})
	c.pc, c.root = pc, root
	c.startWatch()
	return c, nil
}

// startWatch notices the server hanging up while no request is in flight
// (nobody reads the socket then): a goroutine polls a duplicate of the
// socket for POLLRDHUP, which reports hang-up without consuming data.
func (c *Client) startWatch() {
	_, rc, ok := RawTCP(c.conn)
	if !ok {
		return
	}
	fd := -1
	rc.Control(func(s uintptr) {
		// Close-on-exec: a job started by bpslave must not inherit it
		// (it would keep the connection open after bpslave died).
		if d, err := unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0); err == nil {
			fd = d
		}
	})
	if fd < 0 {
		return
	}
	c.watchFd = fd
	c.watchWg.Add(1)
	go func() {
		defer c.watchWg.Done()
		defer c.closeWatchFd()
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		for {
			_, err := unix.Poll(pfd, -1)
			if err == unix.EINTR {
				continue
			}
			if err != nil || pfd[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
				c.markDone()
				return
			}
		}
	}()
}

func (c *Client) closeWatchFd() {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	if c.watchFd >= 0 {
		unix.Close(c.watchFd)
		c.watchFd = -1
	}
}

func (c *Client) markDone() { c.doneOnce.Do(func() { close(c.done) }) }

// Done is closed when the connection is gone.
func (c *Client) Done() <-chan struct{} { return c.done }

// Close closes the connection. Requests still in flight fail.
func (c *Client) Close() error {
	err := c.conn.Close()
	c.watchMu.Lock()
	if c.watchFd >= 0 {
		// The duplicate keeps the socket alive: shut it down so the peer
		// sees the close and the watcher wakes up.
		unix.Shutdown(c.watchFd, unix.SHUT_RDWR)
	}
	c.watchMu.Unlock()
	c.markDone()
	c.watchWg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// pathErr turns a p9 error into an *iofs.PathError whose Err is a
// syscall.Errno for server errors, or wraps syscall.ENOTCONN when the
// connection failed.
func (c *Client) pathErr(op, name string, err error) error {
	var le linux.Errno
	if errors.As(err, &le) {
		return &iofs.PathError{Op: op, Path: name, Err: syscall.Errno(le)}
	}
	select {
	case <-c.done:
		err = fmt.Errorf("connection to %s lost (%w): %w", c.addr, syscall.ENOTCONN, err)
	default:
	}
	return &iofs.PathError{Op: op, Path: name, Err: err}
}

// splitName turns "node/3/ctl" into walk names; "", "." and "/" are the root.
func splitName(name string) []string {
	clean := path.Clean("/" + name)
	if clean == "/" {
		return nil
	}
	return strings.Split(clean[1:], "/")
}

// walk returns a new fid for name; the caller closes it.
func (c *Client) walk(op, name string) (p9.File, error) {
	_, f, err := c.root.Walk(splitName(name))
	if err != nil {
		return nil, c.pathErr(op, name, err)
	}
	return f, nil
}

// Open opens name, slash-separated and relative to the root ("node/3/ctl"),
// with os.O_* flags (O_RDONLY, O_WRONLY, O_RDWR, O_TRUNC, O_APPEND). Files
// cannot be created.
func (c *Client) Open(name string, flag int) (*File, error) {
	f, err := c.walk("open", name)
	if err != nil {
		return nil, err
	}
	if _, _, err := f.Open(p9.OpenFlags(synth.OpenFlags(flag))); err != nil {
		f.Close()
		return nil, c.pathErr("open", name, err)
	}
	return &File{c: c, f: f, name: name, mode: flag & syscall.O_ACCMODE}, nil
}

// Stat describes name. Its Sys() is a *synth.Attr (inode, owner, group).
func (c *Client) Stat(name string) (iofs.FileInfo, error) {
	_, f, _, attr, err := c.root.WalkGetAttr(splitName(name))
	if err != nil {
		return nil, c.pathErr("stat", name, err)
	}
	f.Close()
	base := path.Base(path.Clean("/" + name))
	return fileInfo(base, attr), nil
}

func fileInfo(name string, a p9.Attr) *FileInfo {
	return &FileInfo{name: name, attr: synth.Attr{
		Mode:  synth.FromUnixMode(uint32(a.Mode)),
		Uid:   uint32(a.UID),
		Gid:   uint32(a.GID),
		Size:  int64(a.Size),
		Mtime: time.Unix(int64(a.MTimeSeconds), int64(a.MTimeNanoSeconds)),
	}}
}

// FileInfo describes a file on a Client; Sys returns *synth.Attr.
type FileInfo struct {
	name string
	attr synth.Attr
}

func (fi *FileInfo) Name() string                 { return fi.name }
func (fi *FileInfo) Size() int64                  { return fi.attr.Size }
func (fi *FileInfo) Mode() iofs.FileMode          { return fi.attr.Mode }
func (fi *FileInfo) ModTime() time.Time           { return fi.attr.Mtime }
func (fi *FileInfo) IsDir() bool                  { return fi.attr.Mode.IsDir() }
func (fi *FileInfo) Sys() any                     { return &fi.attr }
func (fi *FileInfo) Type() iofs.FileMode          { return fi.attr.Mode.Type() }
func (fi *FileInfo) Info() (iofs.FileInfo, error) { return fi, nil }
func (fi *FileInfo) String() string               { return iofs.FormatFileInfo(fi) }

// dirEntry is a ReadDir result; Info stats the entry lazily.
type dirEntry struct {
	c    *Client
	dir  string
	name string
	typ  iofs.FileMode
	ino  uint64
}

func (d *dirEntry) Name() string                 { return d.name }
func (d *dirEntry) IsDir() bool                  { return d.typ.IsDir() }
func (d *dirEntry) Type() iofs.FileMode          { return d.typ }
func (d *dirEntry) Info() (iofs.FileInfo, error) { return d.c.Stat(path.Join(d.dir, d.name)) }
func (d *dirEntry) String() string               { return iofs.FormatDirEntry(d) }

// ReadDir lists directory name sorted by file name, as os.ReadDir does on
// the mount, so both ways of reaching the tree give the same listing.
func (c *Client) ReadDir(name string) ([]iofs.DirEntry, error) {
	f, err := c.walk("readdir", name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, _, err := f.Open(p9.ReadOnly); err != nil {
		return nil, c.pathErr("readdir", name, err)
	}
	var out []iofs.DirEntry
	off := uint64(0)
	for {
		ents, err := f.Readdir(off, c.msize-64)
		if err != nil {
			return out, c.pathErr("readdir", name, err)
		}
		if len(ents) == 0 {
			sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
			return out, nil
		}
		for _, e := range ents {
			typ := iofs.FileMode(0)
			if e.Type == p9.TypeDir {
				typ = iofs.ModeDir
			}
			out = append(out, &dirEntry{c: c, dir: name, name: e.Name, typ: typ, ino: e.QID.Path})
			off = e.Offset
		}
	}
}

func (c *Client) setattr(op, name string, valid p9.SetAttrMask, attr p9.SetAttr) error {
	f, err := c.walk(op, name)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.SetAttr(valid, attr); err != nil {
		return c.pathErr(op, name, err)
	}
	return nil
}

// Chmod changes name's permission bits.
func (c *Client) Chmod(name string, mode iofs.FileMode) error {
	return c.setattr("chmod", name, p9.SetAttrMask{Permissions: true}, p9.SetAttr{Permissions: p9.FileMode(synth.UnixPerm(mode))})
}

// Chown changes name's owner and group; -1 leaves one unchanged.
func (c *Client) Chown(name string, uid, gid int) error {
	var valid p9.SetAttrMask
	attr := p9.SetAttr{UID: p9.NoUID, GID: p9.NoGID}
	if uid >= 0 {
		valid.UID, attr.UID = true, p9.UID(uid)
	}
	if gid >= 0 {
		valid.GID, attr.GID = true, p9.GID(gid)
	}
	if !valid.UID && !valid.GID {
		return nil
	}
	return c.setattr("chown", name, valid, attr)
}

// File is an open file on a Client. Read and Write keep an offset (streams
// ignore it). One goroutine per File; different Files of one Client may be
// used concurrently. Close does not interrupt a Read blocked in a stream
// (closing the Client does).
type File struct {
	c    *Client
	f    p9.File
	name string
	off  int64
	mode int // O_RDONLY, O_WRONLY or O_RDWR
}

// maxIO is the largest payload sent in one request: one 9P message. A Read
// never asks for more, so a stream read returns what one reply carried
// instead of waiting to fill a larger buffer.
func (f *File) maxIO() int { return int(f.c.msize) - 4096 }

// Read reads at the file's offset and advances it. It returns io.EOF at
// end of file.
func (f *File) Read(p []byte) (int, error) {
	if f.mode == syscall.O_WRONLY {
		// As a kernel would (the p9 server says EPERM).
		return 0, &iofs.PathError{Op: "read", Path: f.name, Err: syscall.EBADF}
	}
	if len(p) > f.maxIO() {
		p = p[:f.maxIO()]
	}
	n, err := f.f.ReadAt(p, f.off)
	f.off += int64(n)
	if err == io.EOF {
		return n, io.EOF
	}
	if err != nil {
		return n, f.c.pathErr("read", f.name, err)
	}
	return n, nil
}

// Write writes at the file's offset and advances it; writes larger than
// one message are split.
func (f *File) Write(p []byte) (int, error) {
	if f.mode == syscall.O_RDONLY {
		return 0, &iofs.PathError{Op: "write", Path: f.name, Err: syscall.EBADF}
	}
	total := 0
	for len(p) > 0 || total == 0 {
		chunk := p
		if len(chunk) > f.maxIO() {
			chunk = chunk[:f.maxIO()]
		}
		n, err := f.f.WriteAt(chunk, f.off)
		f.off += int64(n)
		total += n
		if err != nil {
			return total, f.c.pathErr("write", f.name, err)
		}
		if n < len(chunk) {
			return total, &iofs.PathError{Op: "write", Path: f.name, Err: io.ErrShortWrite}
		}
		p = p[n:]
		if len(p) == 0 {
			break
		}
	}
	return total, nil
}

// Seek sets the offset for the next Read or Write (io.SeekStart or
// io.SeekCurrent; the end of a synthetic file is unknown).
func (f *File) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.off
	default:
		return f.off, &iofs.PathError{Op: "seek", Path: f.name, Err: syscall.EINVAL}
	}
	if offset < 0 {
		return f.off, &iofs.PathError{Op: "seek", Path: f.name, Err: syscall.EINVAL}
	}
	f.off = offset
	return offset, nil
}

// Close closes the file.
func (f *File) Close() error {
	if err := f.f.Close(); err != nil {
		return f.c.pathErr("close", f.name, err)
	}
	return nil
}

var _ io.ReadWriteCloser = (*File)(nil)
