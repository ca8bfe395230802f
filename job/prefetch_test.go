package job

import (
	"bytes"
	"io"
	"math/rand"
	"sync"
	"testing"
	"time"
)

// pieceFile hands out each piece once, at its offset, answering reads in
// a scrambled order (as concurrent 9P replies may come), and counts how
// many are in flight at once.
type pieceFile struct {
	data     []byte
	mu       sync.Mutex
	inflight int
	most     int
}

func (f *pieceFile) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	f.inflight++
	f.most = max(f.most, f.inflight)
	f.mu.Unlock()
	time.Sleep(time.Duration(rand.Intn(3)) * time.Millisecond)
	defer func() { f.mu.Lock(); f.inflight--; f.mu.Unlock() }()
	if off >= int64(len(f.data)) {
		return 0, io.EOF
	}
	return copy(p, f.data[off:]), nil
}

// The prefetcher gives the file's bytes in order, whatever the order the
// reads come back in, with several in flight, and ends at the first short
// piece (also when the size is a whole number of pieces).
func TestPrefetcherInOrder(t *testing.T) {
	for _, size := range []int{0, 1, 4096, 4096*5 + 17, 4096 * 8} {
		data := make([]byte, size)
		rand.Read(data)
		f := &pieceFile{data: data}
		pf := newPrefetcher(f, 4096, 4)
		got, err := io.ReadAll(pf)
		pf.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("size %d: got %d bytes (%v), want the file's %d", size, len(got), err, size)
		}
		f.mu.Lock()
		most := f.most
		f.mu.Unlock()
		if size >= 4096*5 && most < 2 {
			t.Errorf("size %d: at most %d reads in flight, want several", size, most)
		}
	}
}
