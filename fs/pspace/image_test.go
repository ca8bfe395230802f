package pspace

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"sync"
	"syscall"
	"testing"
)

// The image is read by offset, pieces in flight at once and answered in
// any order, while the writer is held to the limit; each piece once.
func TestImageBufPieces(t *testing.T) {
	const piece, limit = 1000, 4000
	data := make([]byte, 25*piece+123)
	rand.Read(data)
	b := newImageBuf(limit)
	ctx := context.Background()
	go func() {
		for off := 0; off < len(data); off += 777 {
			end := min(off+777, len(data))
			if _, err := b.Write(ctx, data[off:end]); err != nil {
				t.Errorf("write: %v", err)
				return
			}
			b.mu.Lock()
			over := b.held() > limit
			b.mu.Unlock()
			if over {
				t.Errorf("the writer holds more than %d bytes", limit)
			}
		}
		b.CloseWrite()
	}()
	got := make([]byte, len(data)+piece)
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for i := 0; i < len(data)/piece+1; i += 3 { // three in flight, in reverse order
		for j := min(i+2, len(data)/piece); j >= i; j-- {
			wg.Add(1)
			go func(off int) {
				defer wg.Done()
				n, err := b.ReadAt(ctx, got[off:off+piece], int64(off))
				if err != nil && err != io.EOF {
					t.Errorf("read at %d: %v", off, err)
				}
				mu.Lock()
				total += n
				mu.Unlock()
			}(j * piece)
		}
		wg.Wait()
	}
	if total != len(data) || !bytes.Equal(got[:len(data)], data) {
		t.Fatalf("read %d bytes, want the image's %d, in place", total, len(data))
	}
	if _, err := b.ReadAt(ctx, make([]byte, piece), 0); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("a piece read again: %v, want EINVAL", err)
	}
	if n, err := b.ReadAt(ctx, make([]byte, piece), int64(len(data))); n != 0 || err != io.EOF {
		t.Errorf("past the end: %d, %v, want EOF", n, err)
	}
	b.Break(syscall.EPIPE)
	if _, err := b.Write(ctx, []byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("write after Break: %v", err)
	}
}
