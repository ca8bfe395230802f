package srv

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	iofs "io/fs"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"bproc/fs/synth"
)

// A small tree exercising every kind of node the real tree has:
//
//	/            dir
//	  hello      static text
//	  who        text describing the Caller that opened it
//	  ctl        accepts "ok ..." writes, EINVAL otherwise; reads the last result
//	  stream     blocks until data is pushed or the reader's ctx ends
//	  big        a 64 MiB deterministic stream (for throughput and integrity)
//	  sub/       dir with Setattrer (root only), containing "leaf"
//	  sink       accepts any write, recording sizes and a checksum

type testDir struct {
	ino  uint64
	mu   sync.Mutex
	mode iofs.FileMode
	uid  uint32
	gid  uint32
	ents []synth.Dirent
}

func (d *testDir) Attr() synth.Attr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return synth.Attr{Ino: d.ino, Mode: iofs.ModeDir | d.mode, Uid: d.uid, Gid: d.gid}
}

func (d *testDir) Lookup(c *synth.Caller, name string) (synth.Node, error) {
	for _, e := range d.ents {
		if e.Name == name {
			return e.Node, nil
		}
	}
	return nil, fmt.Errorf("lookup %q: %w", name, syscall.ENOENT)
}

func (d *testDir) List(c *synth.Caller) ([]synth.Dirent, error) {
	return append([]synth.Dirent(nil), d.ents...), nil
}

func (d *testDir) Setattr(c *synth.Caller, mode *iofs.FileMode, uid, gid *uint32) error {
	if !c.Root() {
		return fmt.Errorf("setattr by uid %d: %w", c.Uid, syscall.EPERM)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if mode != nil {
		d.mode = mode.Perm()
	}
	if uid != nil {
		d.uid = *uid
	}
	if gid != nil {
		d.gid = *gid
	}
	return nil
}

// textFile serves fixed bytes; fn, when set, computes them at open.
type textFile struct {
	ino  uint64
	text string
	fn   func(c *synth.Caller) string
}

func (f *textFile) Attr() synth.Attr {
	return synth.Attr{Ino: f.ino, Mode: 0o444, Size: int64(len(f.text))}
}

func (f *textFile) Open(c *synth.Caller, flags int) (synth.Handle, error) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		return nil, fmt.Errorf("open read-only file for writing: %w", syscall.EACCES)
	}
	t := f.text
	if f.fn != nil {
		t = f.fn(c)
	}
	return &textHandle{b: []byte(t)}, nil
}

type textHandle struct{ b []byte }

func (h *textHandle) Read(ctx context.Context, p []byte, off int64) (int, error) {
	if off >= int64(len(h.b)) {
		return 0, io.EOF
	}
	return copy(p, h.b[off:]), nil
}

func (h *textHandle) Write(ctx context.Context, p []byte, off int64) (int, error) {
	return 0, syscall.EBADF
}
func (h *textHandle) Close() error { return nil }

// describe renders a Caller for the "who" file.
func describe(c *synth.Caller) string {
	return fmt.Sprintf("pid=%d uid=%d gid=%d groups=%v slave=%v addr=%s host=%s conn=%v\n",
		c.Pid, c.Uid, c.Gid, c.Groups, c.Slave, c.Addr, c.Host, c.Conn != nil)
}

// ctlFile accepts one command per write.
type ctlFile struct {
	ino    uint64
	mu     sync.Mutex
	writes []string
}

func (f *ctlFile) Attr() synth.Attr { return synth.Attr{Ino: f.ino, Mode: 0o666} }

func (f *ctlFile) Open(c *synth.Caller, flags int) (synth.Handle, error) {
	return &ctlHandle{f: f}, nil
}

type ctlHandle struct {
	f    *ctlFile
	mu   sync.Mutex
	last string
}

func (h *ctlHandle) Write(ctx context.Context, p []byte, off int64) (int, error) {
	cmd := strings.TrimSpace(string(p))
	if !strings.HasPrefix(cmd, "ok") {
		return 0, fmt.Errorf("ctl: bad command %q: %w", cmd, syscall.EINVAL)
	}
	h.f.mu.Lock()
	h.f.writes = append(h.f.writes, cmd)
	h.f.mu.Unlock()
	h.mu.Lock()
	h.last = "done " + cmd + "\n"
	h.mu.Unlock()
	return len(p), nil
}

func (h *ctlHandle) Read(ctx context.Context, p []byte, off int64) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if off >= int64(len(h.last)) {
		return 0, io.EOF
	}
	return copy(p, h.last[off:]), nil
}

func (h *ctlHandle) Close() error { return nil }

// streamFile: reads block until push or until ctx ends (EINTR). It counts
// readers inside Read and handles closed, so tests can see blocked reads
// finish and handles get released.
type streamFile struct {
	ino    uint64
	data   chan []byte
	inRead atomic.Int32
	intr   atomic.Int32 // reads that ended with EINTR
	opened atomic.Int32
	closed atomic.Int32
}

func newStream(ino uint64) *streamFile {
	return &streamFile{ino: ino, data: make(chan []byte, 16)}
}

func (f *streamFile) Attr() synth.Attr { return synth.Attr{Ino: f.ino, Mode: 0o444} }

func (f *streamFile) Open(c *synth.Caller, flags int) (synth.Handle, error) {
	f.opened.Add(1)
	return &streamHandle{f: f}, nil
}

type streamHandle struct {
	f    *streamFile
	rest []byte
}

func (h *streamHandle) Read(ctx context.Context, p []byte, off int64) (int, error) {
	h.f.inRead.Add(1)
	defer h.f.inRead.Add(-1)
	if len(h.rest) == 0 {
		select {
		case b := <-h.f.data:
			h.rest = b
		case <-ctx.Done():
			h.f.intr.Add(1)
			return 0, fmt.Errorf("stream read: %w", syscall.EINTR)
		}
	}
	n := copy(p, h.rest)
	h.rest = h.rest[n:]
	return n, nil
}

func (h *streamHandle) Write(ctx context.Context, p []byte, off int64) (int, error) {
	return 0, syscall.EBADF
}

func (h *streamHandle) Close() error {
	h.f.closed.Add(1)
	return nil
}

// bigFile streams a deterministic payload, ignoring offsets (as the real
// streams do), then EOF.
type bigFile struct {
	ino     uint64
	payload []byte
}

func (f *bigFile) Attr() synth.Attr { return synth.Attr{Ino: f.ino, Mode: 0o444} }

func (f *bigFile) Open(c *synth.Caller, flags int) (synth.Handle, error) {
	return &bigHandle{rest: f.payload}, nil
}

type bigHandle struct {
	mu   sync.Mutex
	rest []byte
}

func (h *bigHandle) Read(ctx context.Context, p []byte, off int64) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.rest) == 0 {
		return 0, io.EOF
	}
	n := copy(p, h.rest)
	h.rest = h.rest[n:]
	return n, nil
}

func (h *bigHandle) Write(ctx context.Context, p []byte, off int64) (int, error) {
	return 0, syscall.EBADF
}
func (h *bigHandle) Close() error { return nil }

const bigSize = 64 << 20

var (
	bigOnce    sync.Once
	bigPayload []byte
)

func payload() []byte {
	bigOnce.Do(func() {
		r := rand.New(rand.NewPCG(1, 2))
		bigPayload = make([]byte, bigSize)
		for i := 0; i+8 <= len(bigPayload); i += 8 {
			v := r.Uint64()
			for j := 0; j < 8; j++ {
				bigPayload[i+j] = byte(v >> (8 * j))
			}
		}
	})
	return bigPayload
}

type testTree struct {
	root   *testDir
	sub    *testDir
	ctl    *ctlFile
	stream *streamFile
	sink   *sinkFile
}

func newTestTree() *testTree {
	ino := uint64(100)
	next := func() uint64 { ino++; return ino }
	t := &testTree{}
	t.ctl = &ctlFile{ino: next()}
	t.stream = newStream(next())
	t.sink = &sinkFile{ino: next(), sum: sha256.New()}
	t.sub = &testDir{ino: next(), mode: 0o755, ents: []synth.Dirent{
		{Name: "leaf", Node: &textFile{ino: next(), text: "leaf\n"}},
	}}
	t.root = &testDir{ino: next(), mode: 0o755, ents: []synth.Dirent{
		{Name: "hello", Node: &textFile{ino: next(), text: "hello, world\n"}},
		{Name: "who", Node: &textFile{ino: next(), fn: describe}},
		{Name: "ctl", Node: t.ctl},
		{Name: "stream", Node: t.stream},
		{Name: "big", Node: &bigFile{ino: next(), payload: payload()}},
		{Name: "sub", Node: t.sub},
		{Name: "sink", Node: t.sink},
	}}
	return t
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cond()
}

// sinkFile accepts any writes, recording their sizes and a checksum.
type sinkFile struct {
	ino   uint64
	mu    sync.Mutex
	sizes []int
	sum   hash.Hash
}

func (f *sinkFile) Attr() synth.Attr { return synth.Attr{Ino: f.ino, Mode: 0o222} }

func (f *sinkFile) Open(c *synth.Caller, flags int) (synth.Handle, error) {
	return &sinkHandle{f: f}, nil
}

type sinkHandle struct{ f *sinkFile }

func (h *sinkHandle) Write(ctx context.Context, p []byte, off int64) (int, error) {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	h.f.sizes = append(h.f.sizes, len(p))
	h.f.sum.Write(p)
	return len(p), nil
}

func (h *sinkHandle) Read(ctx context.Context, p []byte, off int64) (int, error) {
	return 0, syscall.EBADF
}
func (h *sinkHandle) Close() error { return nil }
