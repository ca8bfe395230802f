package job

import (
	"io"
	"sync"
)

// prefetcher reads a file front to back with several reads in flight, so
// that a migration's image (read from the master piece by piece, each
// piece one 9P round trip) keeps both ends busy: while the node restores
// one piece, the master sends the next ones. The file must hand out each
// piece at its offset (slave/mig/MIG/image does) and a short read means
// its end.
type prefetcher struct {
	ra    io.ReaderAt
	block int
	queue chan chan piece // in file order
	stop  chan struct{}
	once  sync.Once
	cur   []byte
	err   error
}

type piece struct {
	b   []byte
	err error
}

func newPrefetcher(ra io.ReaderAt, block, depth int) *prefetcher {
	p := &prefetcher{ra: ra, block: block, queue: make(chan chan piece, depth-1), stop: make(chan struct{})}
	go p.issue()
	return p
}

// issue starts the reads, depth at a time (the queue's room bounds them).
func (p *prefetcher) issue() {
	defer close(p.queue)
	for off := int64(0); ; off += int64(p.block) {
		ch := make(chan piece, 1)
		select {
		case p.queue <- ch:
		case <-p.stop:
			return
		}
		go func(off int64) {
			b := make([]byte, p.block)
			n, err := p.ra.ReadAt(b, off)
			if err == nil && n < p.block {
				err = io.EOF // the end: nothing follows a short piece
			}
			ch <- piece{b[:n], err}
		}(off)
	}
}

func (p *prefetcher) Read(b []byte) (int, error) {
	for len(p.cur) == 0 {
		if p.err != nil {
			return 0, p.err
		}
		ch, ok := <-p.queue
		if !ok {
			return 0, io.ErrUnexpectedEOF
		}
		pc := <-ch
		p.cur = pc.b
		if pc.err != nil {
			p.err = pc.err
			p.Close() // later pieces are past the end or failed too
		}
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

// Close stops issuing reads (those in flight end on their own).
func (p *prefetcher) Close() error {
	p.once.Do(func() { close(p.stop) })
	return nil
}

var _ io.ReadCloser = (*prefetcher)(nil)
