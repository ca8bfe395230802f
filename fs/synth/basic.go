package synth

import (
	"context"
	"fmt"
	"io"
	iofs "io/fs"
	"sync"
	"syscall"
	"time"
)

// Small building blocks for a tree, in the spirit of p9's templatefs: each
// node kind is a small type; handles embed the refusals they share.

// StartTime is the mtime of synthetic nodes: when the tree was made.
var StartTime = time.Now()

// NoRead and NoWrite refuse the operation with the right errno.
type NoRead struct{}

func (NoRead) Read(context.Context, []byte, int64) (int, error) {
	return 0, fmt.Errorf("file is write-only: %w", syscall.EBADF)
}

type NoWrite struct{}

func (NoWrite) Write(context.Context, []byte, int64) (int, error) {
	return 0, fmt.Errorf("file is read-only: %w", syscall.EBADF)
}

type NoClose struct{}

func (NoClose) Close() error { return nil }

// BytesHandle serves a snapshot taken at open.
type BytesHandle struct {
	NoWrite
	NoClose
	Data []byte
}

func (h *BytesHandle) Read(_ context.Context, p []byte, off int64) (int, error) {
	if off >= int64(len(h.Data)) {
		return 0, io.EOF
	}
	return copy(p, h.Data[off:]), nil
}

// TextFile is a read-only file whose text is computed when it is opened.
type TextFile struct {
	ino      uint64
	AttrFunc func() Attr // owner and mode; nil means root, 0444
	gen      func(c *Caller) ([]byte, error)
}

// NewText returns a TextFile whose text gen makes for the opener.
func NewText(gen func(c *Caller) ([]byte, error)) *TextFile {
	return &TextFile{ino: NewIno(), gen: gen}
}

func (f *TextFile) Attr() Attr {
	a := Attr{Mode: 0o444, Mtime: StartTime}
	if f.AttrFunc != nil {
		a = f.AttrFunc()
	}
	a.Ino = f.ino
	return a
}

func (f *TextFile) Open(c *Caller, flags int) (Handle, error) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0 {
		return nil, fmt.Errorf("file is read-only: %w", syscall.EACCES)
	}
	data, err := f.gen(c)
	if err != nil {
		return nil, err
	}
	return &BytesHandle{Data: data}, nil
}

// FuncDir is a directory whose entries come from a function of live state.
type FuncDir struct {
	ino        uint64
	AttrFunc   func() Attr // nil: root-owned 0555
	list       func(c *Caller) []Dirent
	LookupFunc func(c *Caller, name string) Node // optional: faster than scanning list; nil result = missing
}

// NewDir returns a FuncDir listing what list returns.
func NewDir(list func(c *Caller) []Dirent) *FuncDir { return &FuncDir{ino: NewIno(), list: list} }

func (d *FuncDir) Attr() Attr {
	a := Attr{Mode: iofs.ModeDir | 0o555, Mtime: StartTime}
	if d.AttrFunc != nil {
		a = d.AttrFunc()
	}
	a.Ino = d.ino
	return a
}

func (d *FuncDir) List(c *Caller) ([]Dirent, error) { return d.list(c), nil }

func (d *FuncDir) Lookup(c *Caller, name string) (Node, error) {
	if d.LookupFunc != nil {
		if n := d.LookupFunc(c, name); n != nil {
			return n, nil
		}
		return nil, fmt.Errorf("%s: %w", name, syscall.ENOENT)
	}
	for _, e := range d.list(c) {
		if e.Name == name {
			return e.Node, nil
		}
	}
	return nil, fmt.Errorf("%s: %w", name, syscall.ENOENT)
}

// StaticEntries builds a fixed list of entries from name, node pairs.
func StaticEntries(kv ...any) func(*Caller) []Dirent {
	var ents []Dirent
	for i := 0; i < len(kv); i += 2 {
		ents = append(ents, Dirent{Name: kv[i].(string), Node: kv[i+1].(Node)})
	}
	return func(*Caller) []Dirent { return ents }
}

// FuncFile is a leaf whose Open is a function.
type FuncFile struct {
	Ino      uint64 // from NewIno
	Mode     iofs.FileMode
	Owner    func() (uint32, uint32) // nil: root
	OpenFunc func(c *Caller, flags int) (Handle, error)
}

func (f *FuncFile) Attr() Attr {
	a := Attr{Ino: f.Ino, Mode: f.Mode, Mtime: StartTime}
	if f.Owner != nil {
		a.Uid, a.Gid = f.Owner()
	}
	return a
}

func (f *FuncFile) Open(c *Caller, flags int) (Handle, error) { return f.OpenFunc(c, flags) }

// StreamReader reads a Stream; StreamWriter writes one and ends it on close.
type StreamReader struct {
	NoWrite
	s        *Stream
	attached bool
	once     sync.Once
}

// NewStreamReader is a reader the stream does not count: a writer to a
// lossy stream does not wait for it.
func NewStreamReader(s *Stream) *StreamReader { return &StreamReader{s: s} }

// AttachReader is a reader the stream counts: the writer waits for it.
func AttachReader(s *Stream) *StreamReader {
	s.Attach()
	return &StreamReader{s: s, attached: true}
}

func (h *StreamReader) Close() error {
	if h.attached {
		h.once.Do(h.s.Detach)
	}
	return nil
}

func (h *StreamReader) Read(ctx context.Context, p []byte, _ int64) (int, error) {
	return h.s.Read(ctx, p)
}

// StreamWriter writes to s, and copies what it wrote to tee when that
// is set (the node's io ring).
type StreamWriter struct {
	NoRead
	s   *Stream
	tee func(p []byte)
}

// NewStreamWriter returns a writer of s; tee may be nil.
func NewStreamWriter(s *Stream, tee func(p []byte)) *StreamWriter {
	return &StreamWriter{s: s, tee: tee}
}

func (h *StreamWriter) Write(ctx context.Context, p []byte, _ int64) (int, error) {
	n, err := h.s.Write(ctx, p)
	if h.tee != nil {
		h.tee(p[:n]) // only what was taken: the rest comes again
	}
	return n, err
}

func (h *StreamWriter) Close() error {
	h.s.CloseWrite()
	return nil
}

// RingHandle reads a Ring through one RingReader.
type RingHandle struct {
	NoWrite
	NoClose
	rr *RingReader
}

// NewRingHandle returns a handle reading rr.
func NewRingHandle(rr *RingReader) *RingHandle { return &RingHandle{rr: rr} }

func (h *RingHandle) Read(ctx context.Context, p []byte, _ int64) (int, error) {
	return h.rr.Read(ctx, p)
}
