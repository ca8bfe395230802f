package synth

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
)

// Stream is a bounded byte pipe between one writer side and readers on the
// other: process output on its way to proc/PID/stdout, or user input on its
// way to a process. While Lossy is set and no reader has ever opened it, a
// full buffer drops its oldest bytes so an unattended writer never blocks;
// while a reader has it open, a full buffer makes the writer wait, so
// nothing is lost while somebody drains it. When the last reader closes, a
// lossy stream drops again, and any other breaks (as a pipe does), so a
// writer never waits for a reader that is gone.
type Stream struct {
	mu       sync.Mutex
	chunks   []chunk // queued data, oldest first
	size     int     // bytes queued
	limit    int
	lossy    bool
	readers  int           // open reader handles
	everRead bool          // some reader has opened it
	eof      bool          // writer closed: readers get EOF after the queue
	broken   error         // readers gone for good: writers get this error
	changed  chan struct{} // made by the first waiter (wait), closed and cleared by signal
	// waiting is a reader parked on an empty stream: a writer copies
	// straight into its buffer, saving the queue's copy (half the master's
	// work on a busy output stream).
	waiting *parked
	// out counts the bytes that left the queue (read, dropped, discarded)
	// since the stream's first byte; onOut, set before first use, hears
	// of it (how a slave learns which output it may forget, pspace's
	// adopt.go).
	out   int64
	onOut func(out int64, empty bool)
}

type parked struct {
	buf  []byte
	n    int
	done chan struct{}
}

// NewStream returns a stream holding at most limit bytes.
func NewStream(limit int, lossy bool) *Stream {
	return &Stream{limit: limit, lossy: lossy}
}

// StartAt makes the count of bytes that left the stream start at off (an
// adopted job's output goes on from where its slave stands); call it
// before first use.
func (s *Stream) StartAt(off int64) { s.out = off }

// Out is the count of bytes that have left the stream (read, dropped or
// discarded) since its first byte.
func (s *Stream) Out() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out
}

// In is the count of bytes written to the stream since its first: those
// that left it and those queued.
func (s *Stream) In() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out + int64(s.size)
}

// OnOut makes f hear, after every change, that count and whether the
// stream is empty; set it before first use.
func (s *Stream) OnOut(f func(out int64, empty bool)) { s.onOut = f }

// signal wakes every waiter; called with mu held. Most changes have
// none (a quiet process's streams), so the channel is made only when
// somebody waits: a new one per change was most of a set launch's
// allocations per process.
func (s *Stream) signal() {
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

// wait is the channel the next change closes; called with mu held.
func (s *Stream) wait() <-chan struct{} {
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}

// Attach counts a reader in: while it is there, writers wait instead of
// dropping data.
func (s *Stream) Attach() {
	s.mu.Lock()
	s.readers++
	s.everRead = true
	s.signal()
	s.mu.Unlock()
}

// Detach counts a reader out. After the last one, a lossy stream drops its
// oldest bytes again; any other breaks with EPIPE.
func (s *Stream) Detach() {
	s.mu.Lock()
	s.readers--
	last := s.readers == 0
	diverted := s.broken == errDiverted
	s.signal()
	s.mu.Unlock()
	// A diverted stream's readers leave it (they met its EOF): it is not
	// broken, as it may be taken back (TakeBack).
	if last && !s.lossy && !diverted {
		s.Break(errNoReader)
	}
}

// Write queues all of p, waiting for room unless the stream is lossy and
// unattended. It fails with EPIPE once the stream is broken and with EINTR
// when ctx ends.
func (s *Stream) Write(ctx context.Context, p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		s.mu.Lock()
		if s.broken != nil {
			err := s.broken
			s.mu.Unlock()
			return n, err
		}
		if s.eof {
			s.mu.Unlock()
			return n, fmt.Errorf("stream closed: %w", syscall.EPIPE)
		}
		room := s.limit - s.size
		if s.lossy && s.readers == 0 {
			room = len(p)
		}
		if room <= 0 {
			ch := s.wait()
			s.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				if n > 0 {
					// A short write, not an error: the caller retries the
					// rest, and no byte is sent twice.
					return n, nil
				}
				return 0, fmt.Errorf("write interrupted: %w", syscall.EINTR)
			}
		}
		if w := s.waiting; w != nil && s.size == 0 {
			k := copy(w.buf, p)
			w.n = k
			s.waiting = nil
			close(w.done)
			p = p[k:]
			n += k
			s.out += int64(k)
			s.mu.Unlock()
			s.outChanged()
			continue
		}
		k := min(room, len(p))
		trimmed := false
		if s.lossy && s.readers == 0 {
			// Unattended: a chunk holds just its bytes, not a pooled
			// megabyte, since it may stay for as long as nobody comes.
			s.chunks = append(s.chunks, chunk{b: append([]byte(nil), p[:k]...)})
			s.size += k
			if s.size > s.limit {
				s.trimLocked(s.limit)
				trimmed = true
			}
		} else {
			s.chunks = append(s.chunks, newChunk(p[:k]))
			s.size += k
		}
		p = p[k:]
		n += k
		s.signal()
		s.mu.Unlock()
		if trimmed {
			s.outChanged()
		}
	}
	return n, nil
}

// Read returns queued bytes, waiting while there are none; io.EOF after
// CloseWrite once the queue is drained.
func (s *Stream) Read(ctx context.Context, p []byte) (int, error) {
	for {
		s.mu.Lock()
		if s.size > 0 {
			n := 0
			for n < len(p) && len(s.chunks) > 0 {
				c := &s.chunks[0]
				k := copy(p[n:], c.b[c.off:])
				n += k
				c.off += k
				if c.off == len(c.b) {
					c.free()
					s.chunks[0] = chunk{}
					s.chunks = s.chunks[1:]
				}
			}
			s.size -= n
			s.out += int64(n)
			s.signal()
			s.mu.Unlock()
			s.outChanged()
			return n, nil
		}
		if s.eof {
			s.mu.Unlock()
			return 0, io.EOF
		}
		ch := s.wait()
		var w *parked
		if s.waiting == nil && len(p) > 0 {
			w = &parked{buf: p, done: make(chan struct{})}
			s.waiting = w
		}
		s.mu.Unlock()
		if w == nil { // another reader is parked: wait for a change
			select {
			case <-ch:
			case <-ctx.Done():
				return 0, fmt.Errorf("read interrupted: %w", syscall.EINTR)
			}
			continue
		}
		select {
		case <-w.done:
			return w.n, nil
		case <-ch: // EOF or a state change: look again
		case <-ctx.Done():
		}
		s.mu.Lock()
		if s.waiting == w {
			s.waiting = nil
			s.mu.Unlock()
			if ctx.Err() != nil {
				return 0, fmt.Errorf("read interrupted: %w", syscall.EINTR)
			}
			continue
		}
		s.mu.Unlock()
		<-w.done // a writer filled it after all
		return w.n, nil
	}
}

// Trim keeps only the newest max bytes of a stream nobody reads (a lossy
// one without readers, or one no reader ever opened): what an exited
// process leaves for a reader who may never come.
func (s *Stream) Trim(max int) {
	s.mu.Lock()
	if s.readers == 0 && (s.lossy || !s.everRead) {
		s.trimLocked(max)
		s.compactLocked()
	}
	s.mu.Unlock()
	s.outChanged()
}

// compactLocked copies what is queued into one buffer of its exact size
// and gives the chunks back: a trimmed chunk keeps its whole allocation
// otherwise, a megabyte for the 64 KiB an exited process keeps.
func (s *Stream) compactLocked() {
	if len(s.chunks) == 0 {
		s.chunks = nil
		return
	}
	if len(s.chunks) == 1 && s.chunks[0].off == 0 && cap(s.chunks[0].b) == len(s.chunks[0].b) {
		return
	}
	b := make([]byte, 0, s.size)
	held := 0
	for _, c := range s.chunks {
		b = append(b, c.b[c.off:]...)
		held += cap(c.b)
		c.free()
	}
	s.chunks = []chunk{{b: b}}
	released.Add(int64(held - len(b)))
}

// released counts buffer bytes compaction let go of: the master hands
// them back to the kernel (ReleaseMemory) once there are many.
var released atomic.Int64

// releaseEvery is how many bytes let go of make ReleaseMemory act.
const releaseEvery = 16 << 20

// ReleaseMemory returns freed buffers to the kernel when streams have let
// go of more than releaseEvery bytes since last time: the Go runtime
// would keep them for reuse, and the master's RSS would stay at its
// highest after a burst of jobs nobody read.
func ReleaseMemory() {
	if released.Load() < releaseEvery {
		return
	}
	released.Store(0)
	debug.FreeOSMemory()
}

// Retained is what the stream holds: the bytes queued and the capacity of
// the buffers holding them.
func (s *Stream) Retained() (size, capacity int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.chunks {
		capacity += cap(c.b)
	}
	return s.size, capacity
}

// trimLocked drops the oldest bytes beyond max; called with s.mu held.
func (s *Stream) trimLocked(max int) {
	for s.size > max {
		c := &s.chunks[0]
		drop := min(s.size-max, len(c.b)-c.off)
		c.off += drop
		s.size -= drop
		s.out += int64(drop)
		if c.off == len(c.b) {
			c.free()
			s.chunks[0] = chunk{}
			s.chunks = s.chunks[1:]
		} else if c.off > cap(c.b)/2 {
			// Mostly dropped: keep the rest in a buffer of its size.
			rest := append([]byte(nil), c.b[c.off:]...)
			c.free()
			*c = chunk{b: rest}
		}
	}
}

// CloseWrite ends the stream: readers drain what is queued, then get EOF.
func (s *Stream) CloseWrite() {
	s.mu.Lock()
	s.eof = true
	s.signal()
	s.mu.Unlock()
}

// Break makes further writes fail with err and discards queued data: the
// consumer is gone for good.
func (s *Stream) Break(err error) {
	s.mu.Lock()
	s.broken = err
	s.out += int64(s.size)
	s.chunks, s.size = nil, 0
	s.eof = true
	s.signal()
	s.mu.Unlock()
	s.outChanged()
}

// Divert takes the stream from its readers for good, for a writer that
// sends the rest elsewhere (a direct stream, pspace's direct.go): what is
// queued is dropped, readers get EOF, writers EPIPE, and OnOut hears
// nothing, so the writer keeps the dropped bytes. It returns the count of
// bytes that had left the stream: where the writer goes on.
func (s *Stream) Divert() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.chunks {
		c.free()
	}
	s.chunks, s.size = nil, 0
	s.broken = errDiverted
	s.eof = true
	s.signal()
	return s.out
}

var errDiverted = fmt.Errorf("stream went direct: %w", syscall.EPIPE)

// errNoReader breaks a stream its last reader left: one value, as
// formatting it anew at every detach was a tenth of a set launch's work
// on the master.
var errNoReader = fmt.Errorf("no reader left: %w", syscall.EPIPE)

// Diverted says the stream went to a writer elsewhere (Divert) and was
// not taken back.
func (s *Stream) Diverted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.broken == errDiverted
}

// TakeBack is Divert's inverse, for a process whose direct stream ended
// "moved": the stream's readers carry on from byte off, where the writer
// elsewhere stopped (off must not be below what had left it at Divert).
// ended: that stream had ended elsewhere, so it stays at its end (writers
// get EPIPE, readers EOF).
func (s *Stream) TakeBack(off int64, ended bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != errDiverted {
		return fmt.Errorf("the stream did not go direct: %w", syscall.EINVAL)
	}
	if off < s.out {
		return fmt.Errorf("taking the stream back at byte %d, below the %d its readers had: %w", off, s.out, syscall.EINVAL)
	}
	s.out = off
	if ended {
		s.broken = fmt.Errorf("stream ended: %w", syscall.EPIPE)
	} else {
		s.broken, s.eof = nil, false
	}
	s.signal()
	return nil
}

// Chunk buffers of the big streams are recycled: allocating and clearing
// a fresh megabyte per write costs as much as copying it.
const pooledChunk = 1 << 20

var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, pooledChunk); return &b }}

// chunk is queued data; b[off:] is still unread.
type chunk struct {
	b   []byte
	off int
}

func newChunk(p []byte) chunk {
	// Only writes that fill most of a pooled buffer take one: queued
	// bytes then never hold more than twice their size.
	if len(p) < pooledChunk/2 || len(p) > pooledChunk {
		return chunk{b: append([]byte(nil), p...)}
	}
	bp := chunkPool.Get().(*[]byte)
	return chunk{b: append((*bp)[:0], p...)}
}

func (c chunk) free() {
	if cap(c.b) == pooledChunk {
		b := c.b[:0]
		chunkPool.Put(&b)
	}
}

// Ring is a node's console: the newest bytes of every process's output,
// each chunk tagged with its owner so a reader sees only what it may.
// Writers never wait; readers keep a cursor and wait for new chunks.
type Ring struct {
	mu      sync.Mutex
	closed  bool // the master is shutting down: readers get EOF
	chunks  []ringChunk
	first   uint64 // sequence number of chunks[0]
	size    int
	limit   int
	changed chan struct{}
}

type ringChunk struct {
	uid  uint32
	data []byte
}

// NewRing returns a ring that keeps about limit bytes.
func NewRing(limit int) *Ring {
	return &Ring{limit: limit, changed: make(chan struct{})}
}

// Write appends p as output of a process owned by uid, dropping the oldest
// chunks beyond the limit.
func (r *Ring) Write(uid uint32, p []byte) {
	if len(p) == 0 {
		return
	}
	if len(p) > r.limit {
		p = p[len(p)-r.limit:]
	}
	r.mu.Lock()
	r.chunks = append(r.chunks, ringChunk{uid, append([]byte(nil), p...)})
	r.size += len(p)
	for r.size > r.limit {
		r.size -= len(r.chunks[0].data)
		r.chunks[0] = ringChunk{}
		r.chunks = r.chunks[1:]
		r.first++
	}
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// Close wakes every reader with EOF once it has read what is there.
func (r *Ring) Close() {
	r.mu.Lock()
	r.closed = true
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// RingReader is one reader's cursor.
type RingReader struct {
	r   *Ring
	uid uint32
	all bool
	seq uint64 // next chunk to read
	off int    // offset inside that chunk
}

// Reader starts at the oldest retained byte. all lets the reader see every
// owner's output (root).
func (r *Ring) Reader(uid uint32, all bool) *RingReader {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &RingReader{r: r, uid: uid, all: all, seq: r.first}
}

// Read blocks until output the reader may see arrives.
func (rr *RingReader) Read(ctx context.Context, p []byte) (int, error) {
	r := rr.r
	for {
		r.mu.Lock()
		if rr.seq < r.first { // overrun: skip what was dropped
			rr.seq, rr.off = r.first, 0
		}
		n := 0
		for n < len(p) && rr.seq < r.first+uint64(len(r.chunks)) {
			c := r.chunks[rr.seq-r.first]
			if rr.all || c.uid == rr.uid {
				k := copy(p[n:], c.data[rr.off:])
				n += k
				rr.off += k
				if rr.off < len(c.data) {
					break
				}
			}
			rr.seq++
			rr.off = 0
		}
		ch, closed := r.changed, r.closed
		r.mu.Unlock()
		if n > 0 {
			return n, nil
		}
		if closed {
			return 0, io.EOF
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, fmt.Errorf("read interrupted: %w", syscall.EINTR)
		}
	}
}

// outChanged tells onOut where the stream stands; called without s.mu.
func (s *Stream) outChanged() {
	if s.onOut == nil {
		return
	}
	s.mu.Lock()
	out, empty := s.out, s.size == 0
	s.mu.Unlock()
	s.onOut(out, empty)
}
