package synth

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"
)

// Local opens files of a tree in-process, as caller: the master runs its
// own node (-1) through it with the same slave code that bpslave runs over
// 9P, and tests use it to drive the tree without a mount.
type Local struct {
	Root   Dir
	Caller *Caller
}

// Walk resolves a slash-separated path relative to the root.
func (l *Local) Walk(name string) (Node, error) {
	var n Node = l.Root
	for _, part := range strings.Split(strings.Trim(name, "/"), "/") {
		if part == "" {
			continue
		}
		d, ok := n.(Dir)
		if !ok {
			return nil, fmt.Errorf("%s: %w", name, syscall.ENOTDIR)
		}
		next, err := d.Lookup(l.Caller, part)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		n = next
	}
	return n, nil
}

// Open opens a file; the result reads and writes sequentially.
func (l *Local) Open(name string, flag int) (io.ReadWriteCloser, error) {
	n, err := l.Walk(name)
	if err != nil {
		return nil, err
	}
	f, ok := n.(File)
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, syscall.EISDIR)
	}
	h, err := f.Open(l.Caller, flag)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	ctx := context.Background()
	if l.Caller.Conn != nil {
		ctx = l.Caller.Conn
	}
	return &localFile{h: h, ctx: ctx}, nil
}

type localFile struct {
	h    Handle
	ctx  context.Context
	off  int64
	once sync.Once
}

func (f *localFile) Read(p []byte) (int, error) {
	n, err := f.h.Read(f.ctx, p, f.off)
	f.off += int64(n)
	return n, err
}

func (f *localFile) Write(p []byte) (int, error) {
	n, err := f.h.Write(f.ctx, p, f.off)
	f.off += int64(n)
	return n, err
}

func (f *localFile) Close() error {
	var err error
	f.once.Do(func() { err = f.h.Close() })
	return err
}
