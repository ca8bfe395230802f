package fs

import (
	"context"
	"fmt"
	"io"
	iofs "io/fs"
	"sort"
	"strconv"
	"syscall"
	"time"
)

// Small building blocks for the tree, in the spirit of p9's templatefs: each
// node kind is a small type; handles embed the refusals they share.

var startTime = time.Now()

// noRead and noWrite refuse the operation with the right errno.
type noRead struct{}

func (noRead) Read(context.Context, []byte, int64) (int, error) {
	return 0, fmt.Errorf("file is write-only: %w", syscall.EBADF)
}

type noWrite struct{}

func (noWrite) Write(context.Context, []byte, int64) (int, error) {
	return 0, fmt.Errorf("file is read-only: %w", syscall.EBADF)
}

type noClose struct{}

func (noClose) Close() error { return nil }

// bytesHandle serves a snapshot taken at open.
type bytesHandle struct {
	noWrite
	noClose
	data []byte
}

func (h *bytesHandle) Read(_ context.Context, p []byte, off int64) (int, error) {
	if off >= int64(len(h.data)) {
		return 0, io.EOF
	}
	return copy(p, h.data[off:]), nil
}

// textFile is a read-only file whose text is computed when it is opened.
type textFile struct {
	ino  uint64
	attr func() Attr // owner and mode; nil means root, 0444
	gen  func(c *Caller) ([]byte, error)
}

func newText(gen func(c *Caller) ([]byte, error)) *textFile {
	return &textFile{ino: NewIno(), gen: gen}
}

func (f *textFile) Attr() Attr {
	a := Attr{Mode: 0o444, Mtime: startTime}
	if f.attr != nil {
		a = f.attr()
	}
	a.Ino = f.ino
	return a
}

func (f *textFile) Open(c *Caller, flags int) (Handle, error) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0 {
		return nil, fmt.Errorf("file is read-only: %w", syscall.EACCES)
	}
	data, err := f.gen(c)
	if err != nil {
		return nil, err
	}
	return &bytesHandle{data: data}, nil
}

// dir is a directory whose entries come from a function of live state.
type dir struct {
	ino    uint64
	attr   func() Attr // nil: root-owned 0555
	list   func(c *Caller) []Dirent
	lookup func(c *Caller, name string) Node // optional: faster than scanning list; nil result = missing
}

func newDir(list func(c *Caller) []Dirent) *dir { return &dir{ino: NewIno(), list: list} }

func (d *dir) Attr() Attr {
	a := Attr{Mode: iofs.ModeDir | 0o555, Mtime: startTime}
	if d.attr != nil {
		a = d.attr()
	}
	a.Ino = d.ino
	return a
}

func (d *dir) List(c *Caller) ([]Dirent, error) { return d.list(c), nil }

func (d *dir) Lookup(c *Caller, name string) (Node, error) {
	if d.lookup != nil {
		if n := d.lookup(c, name); n != nil {
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

// staticEntries builds a fixed list of entries.
func staticEntries(kv ...any) func(*Caller) []Dirent {
	var ents []Dirent
	for i := 0; i < len(kv); i += 2 {
		ents = append(ents, Dirent{Name: kv[i].(string), Node: kv[i+1].(Node)})
	}
	return func(*Caller) []Dirent { return ents }
}

// sortedInts returns the keys of m in ascending order.
func sortedInts[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	return keys
}

func itoa(i int) string { return strconv.Itoa(i) }

// modeString renders permission bits as ls does ("---x--x--x").
func modeString(m iofs.FileMode) string {
	return m.Perm().String()
}
