package mcast

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// FileNames are the per-node stats files, in the order listings show them.
var FileNames = []string{"cpuinfo", "meminfo", "loadavg", "net", "stat", "stamp"}

// File renders one per-node file from the record: the node's /proc file of
// that name in the kernel's format ("net" is /proc/net/dev), or "stamp",
// the freshness stamp:
//
//	node 3
//	state up
//	addr 10.77.0.13
//	updated 1763703600.123456789
//	interval 1.000
//	seq 57
//
// (updated: receiver's clock at the last packet, unix seconds; state: up,
// or stale at now; interval: the node's, in seconds; seq: its packet count).
func (r *Record) File(name string, now time.Time) ([]byte, error) {
	return r.appendFile(nil, name, now, nil)
}

// appendFile appends file name to b; s, when not nil, is r.Sample().
func (r *Record) appendFile(b []byte, name string, now time.Time, s *Sample) ([]byte, error) {
	if r.Flags&RecPresent == 0 {
		return nil, fmt.Errorf("node %d: no stats received: %w", r.Node, syscall.ENOENT)
	}
	if s == nil && (name == "cpuinfo" || name == "net" || name == "stat") {
		s = r.Sample()
	}
	switch name {
	case "cpuinfo":
		if r.Flags&RecStatic == 0 {
			return b, nil // not arrived yet
		}
		return append(b, RenderCPUInfo(&s.CPU)...), nil
	case "meminfo":
		m := MemInfo{V: r.Mem, Have: r.MemHave}
		return AppendMemInfo(b, &m), nil
	case "loadavg":
		return AppendLoadAvg(b, &LoadAvg{Load1: r.Load[0], Load5: r.Load[1], Load15: r.Load[2], Running: r.Running, Total: r.Total, LastPID: r.LastPID}), nil
	case "net":
		return AppendNetDev(b, s.Net), nil
	case "stat":
		return AppendStat(b, &s.Stat), nil
	case "stamp":
		b = fmt.Appendf(b, "node %d\nstate %s\naddr %s\nupdated %s\ninterval %.3f\nseq %d\n",
			r.Node, r.State(now), r.Address(), unixString(r.Updated), float64(r.Interval)/1e9, r.SenderSeq)
		return b, nil
	}
	return nil, fmt.Errorf("stats file %q: %w", name, syscall.ENOENT)
}

func unixString(ns int64) string {
	return strconv.FormatInt(ns/1e9, 10) + "." + fmt.Sprintf("%09d", ns%1e9)
}

// DefaultFilesCPU is the share of one core recvstats may spend rewriting
// the per-node files. Rewriting a node's files costs twenty times more than
// storing its packet in the shm file, so past a few hundred nodes the files
// refresh less often than the shm file (each stamp says when), and
// recvstats stays within its CPU budget. The shm file is always current.
const DefaultFilesCPU = 0.0075

// filesWriter keeps DIR/N/{cpuinfo,...} in step with the shm file. It runs
// in its own goroutine and reads the shm file like any other reader, so a
// slow disk never delays packet handling. Nodes wait in a FIFO; updates of
// a node already waiting coalesce.
type filesWriter struct {
	dir     string
	dirfd   int
	shm     *ShmReader
	share   float64       // of one core; < 0: unlimited
	maxBank time.Duration // CPU time that may be spent in a burst
	mu      sync.Mutex
	dirty   map[int]pending // waiting nodes
	queue   []int           // in order of marking
	urgent  []int
	kick    chan struct{}
	rec     Record
	buf     []byte
	last    map[int]*[6][]byte // what each node's files hold, to skip unchanged ones
	log     *log.Logger
	lastErr error
	done    chan struct{}
}

func newFilesWriter(dir, shmPath string, share float64, logger *log.Logger) (*filesWriter, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating stats directory: %w", err)
	}
	os.Chmod(dir, 0o755)
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening stats directory %s: %w", dir, err)
	}
	shm, err := OpenShm(shmPath)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	if share == 0 {
		share = DefaultFilesCPU
	}
	return &filesWriter{dir: dir, dirfd: fd, shm: shm, share: share, maxBank: 50 * time.Millisecond, log: logger, dirty: map[int]pending{},
		kick: make(chan struct{}, 1), last: map[int]*[6][]byte{}, done: make(chan struct{})}, nil
}

// mark asks for node's files to be rewritten (cpuinfo too when static).
// Urgent ones (a node appearing, going stale, forgotten) do not wait for
// the CPU budget: they are rare and a reader must not miss them.
func (w *filesWriter) mark(node int, static, urgent bool) {
	w.mu.Lock()
	p, waiting := w.dirty[node]
	if !waiting {
		w.queue = append(w.queue, node)
	}
	if urgent && !p.urgent {
		w.urgent = append(w.urgent, node)
	}
	w.dirty[node] = pending{static: p.static || static, urgent: p.urgent || urgent}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// pending is what a waiting node needs.
type pending struct{ static, urgent bool }

// pop returns the next node to refresh: an urgent one when onlyUrgent.
// A node leaves the waiting set when popped from either list; its entry
// left in the other list is skipped.
func (w *filesWriter) pop(onlyUrgent bool) (int, bool, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	take := func(list *[]int) (int, bool, bool) {
		for len(*list) > 0 {
			n := (*list)[0]
			*list = (*list)[1:]
			if p, ok := w.dirty[n]; ok && (p.urgent || !onlyUrgent) {
				delete(w.dirty, n)
				return n, p.static, true
			}
		}
		*list = (*list)[:0:0] // let a burst's backing array go
		return 0, false, false
	}
	if n, static, ok := take(&w.urgent); ok {
		return n, static, true
	}
	if onlyUrgent {
		return 0, false, false
	}
	return take(&w.queue)
}

func (w *filesWriter) run(stop <-chan struct{}) {
	defer close(w.done)
	defer w.shm.Close()
	defer unix.Close(w.dirfd)
	// A budget of time: it grows by share of the time that passes (up
	// to 50 ms banked) and each refresh spends the CPU time it took, so
	// the refresh rate adapts to what a refresh costs on this machine
	// (CPU, not wall time: on a busy machine waiting for a core is free).
	// It is the thread's CPU time; the goroutine is not locked to its
	// thread (every hand-over would cost a context switch), so when it
	// moved to another thread meanwhile the average of the other
	// refreshes counts instead.
	maxBank := w.maxBank
	bank := maxBank
	avg := 100 * time.Microsecond // a refresh's cost, until measured
	last := time.Now()
	for {
		select {
		case <-stop:
			return
		case <-w.kick:
		}
		for {
			onlyUrgent := false
			if w.share > 0 {
				now := time.Now()
				bank = min(maxBank, bank+time.Duration(float64(now.Sub(last))*w.share))
				last = now
				onlyUrgent = bank <= 0
			}
			node, static, ok := w.pop(onlyUrgent)
			if !ok && onlyUrgent {
				w.mu.Lock()
				more := len(w.dirty) > 0
				w.mu.Unlock()
				if !more {
					break
				}
				select {
				case <-stop:
					return
				case <-w.kick: // maybe urgent
				case <-time.After(50 * time.Millisecond):
				}
				continue
			}
			if !ok {
				break
			}
			// The shm file stays authoritative; a full disk must not
			// stop the receiver, so errors only skip this refresh.
			var err error
			d, ok := threadCost(func() { err = w.write(node, static) })
			w.report(err)
			if ok {
				avg += (d - avg) / 8
				bank -= d
			} else {
				bank -= avg
			}
		}
	}
}

// report logs a failed refresh once, until refreshes work again.
func (w *filesWriter) report(err error) {
	switch {
	case err != nil && !sameFailure(err, w.lastErr):
		w.log.Printf("recvstats: per-node files: %v", err)
	case err == nil && w.lastErr != nil:
		w.log.Printf("recvstats: per-node files: writing again")
	}
	w.lastErr = err
}

// sameFailure tells whether err is the failure already reported as last:
// the same errno (whichever file it hit), or the same text.
func sameFailure(err, last error) bool {
	if last == nil {
		return false
	}
	var e1, e2 syscall.Errno
	if errors.As(err, &e1) && errors.As(last, &e2) {
		return e1 == e2
	}
	return err.Error() == last.Error()
}

// threadCost runs fn and returns the CPU time its thread spent, unless
// fn's goroutine changed threads meanwhile (ok false).
func threadCost(fn func()) (time.Duration, bool) {
	tid, cpu := unix.Gettid(), threadCPU()
	fn()
	if unix.Gettid() != tid {
		return 0, false
	}
	return threadCPU() - cpu, true
}

// threadCPU is the CPU time the calling thread has used.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

func (w *filesWriter) write(node int, static bool) error {
	if err := w.shm.Read(node, &w.rec); err != nil {
		return err
	}
	nd := strconv.Itoa(node)
	last := w.last[node]
	if w.rec.Flags&RecPresent == 0 {
		delete(w.last, node)
		return os.RemoveAll(filepath.Join(w.dir, nd)) // forgotten
	}
	if last == nil {
		if err := unix.Mkdirat(w.dirfd, nd, 0o755); err != nil && err != unix.EEXIST {
			return fmt.Errorf("stats directory %s/%s: %w", w.dir, nd, err)
		}
		last = new([6][]byte)
		w.last[node] = last
		static = true
	}
	now := time.Now()
	s := w.rec.Sample()
	for i, name := range FileNames {
		if name == "cpuinfo" && !static {
			continue
		}
		b, err := w.rec.appendFile(w.buf[:0], name, now, s)
		if err != nil {
			return err
		}
		w.buf = b
		if last[i] != nil && bytes.Equal(last[i], b) {
			continue
		}
		if err := replaceFile(w.dirfd, nd, name, b); err != nil {
			last[i] = nil
			return fmt.Errorf("%s/%s/%s: %w", w.dir, nd, name, err)
		}
		last[i] = append(last[i][:0], b...)
	}
	return nil
}

// replaceFile writes dir/name (relative to dirfd) atomically: readers see
// the old or the new file, never a partial one. Raw system calls and short
// relative paths: this runs thousands of times a second on big clusters.
func replaceFile(dirfd int, dir, name string, b []byte) error {
	tmp := dir + "/." + name + ".tmp"
	fd, err := unix.Openat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	for len(b) > 0 && err == nil {
		var n int
		n, err = unix.Write(fd, b)
		b = b[n:]
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dirfd, tmp, dirfd, dir+"/"+name)
	}
	if err != nil {
		unix.Unlinkat(dirfd, tmp, 0)
	}
	return err
}
