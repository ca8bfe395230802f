package pspace

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"bproc/fs/synth"
)

// DefaultBinCache bounds the master's spool of shipped binaries (bytes on
// disk): two binaries of the largest size a job may ship fit at once.
const DefaultBinCache = 512 << 20

// binCache keeps shipped binaries on the master's disk, not in its memory:
// exec copies the user's file into a private spool (a 0700 directory of
// 0600 files) through a sha256 writer, and slave/bin/HASH serves a read
// from the spool file at its offset, so the master's memory stays small
// whatever the binary's size. Entries are found by file identity (a binary
// is copied and hashed once while unchanged) and by hash (what a slave
// asks for). The spool is bounded by bytes on disk; an entry nobody holds
// (no exec waiting for its job to start, no slave reading it) may be
// evicted, least recently used first. The lock covers the bookkeeping
// only: a copy runs outside it, one per file identity at a time, so other
// execs go on meanwhile.
type binCache struct {
	mu      sync.Mutex
	limit   int64 // bytes on disk; 0 until set: DefaultBinCache
	used    int64 // spooled, plus reserved by copies under way
	wait    time.Duration
	dir     string // the spool; "" until a state directory or first use
	ownDir  bool   // dir is a private temporary directory, removed at close
	closed  bool
	byID    map[binID]*binary
	byHash  map[string]*binary
	copying map[binID]chan struct{} // closed when that copy ends
	lru     list.List               // of *binary, most recently used first
	freed   chan struct{}           // closed (and replaced) when space may have come free

	sent      atomic.Uint64 // bytes read by remote slaves (spread.go)
	fallbacks atomic.Uint64 // fetches from the master after peers failed (spread.go)
	drops     atomic.Uint64 // slaves dropped: holders to look over (spread.go)
}

type binID struct {
	dev, ino           uint64
	size, mtime, ctime int64  // ctime: a rewrite that kept size and mtime (touch -r) is new
	mode               uint32 // permission bits: whether others may read it travels too
}

// binary is one spooled file, DIR/HASH.
type binary struct {
	hash string
	size int64
	disk int64 // what it counts against the limit
	ids  []binID
	refs int
	elem *list.Element
	// holders are the nodes sent its start message, in order: who
	// fetches from whom (spread.go); held and serving index them, as
	// of the drops count swept
	holders []holder
	held    map[*slaveConn]bool
	serving []holder
	swept   uint64
	// deps is the file's ELF parse, once read (depsOf): a spool file is
	// named by its content and only the master writes it, so it holds.
	depsOnce sync.Once
	deps     *elfDeps
	depsErr  error
}

// binLease is an exec's hold on a spooled binary: the binary stays in the
// spool until the lease is released (the job started, or gave up).
type binLease struct {
	hash   string
	size   int64
	public bool // readable by everyone on the master, so it may be on the node
	bin    *binary
}

// spoolName is what a spooled file is called: its hash. Copies under way
// are spoolTemp* until their hash is known.
const spoolTemp = ".copy-"

// diskSize is what n bytes take on disk, in 4 KiB blocks (an empty file
// still costs its inode: one block).
func diskSize(n int64) int64 { return max(4096, (n+4095)&^4095) }

// copyHook is called as a copy into the spool starts: tests hold a copy
// there to see what goes on meanwhile.
var copyHook = func(path string) {}

// binWait bounds how long an exec waits for room in a spool full of
// binaries that starting jobs hold.
const binWait = startTimeout

// load copies path into the spool for caller c, who must be allowed to
// execute it, unless it is there already; the lease must be released.
func (b *binCache) load(ctx context.Context, path string, c *synth.Caller) (*binLease, error) {
	return b.loadWith(ctx, path, c, openExecutable)
}

// loadWith is load with the check open makes (libs.go: a library needs
// reading, not executing).
func (b *binCache) loadWith(ctx context.Context, path string, c *synth.Caller, open func(string, *synth.Caller) (*os.File, binID, error)) (*binLease, error) {
	f, id, err := open(path, c)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b.mu.Lock()
	for {
		if b.closed {
			b.mu.Unlock()
			return nil, fmt.Errorf("%s: the master is shutting down: %w", path, syscall.ESHUTDOWN)
		}
		if bin := b.byID[id]; bin != nil {
			b.holdLocked(bin)
			b.mu.Unlock()
			return newLease(bin, id), nil
		}
		done := b.copying[id]
		if done == nil {
			break
		}
		// The same file is being copied for another exec: wait for it
		// rather than copy it twice.
		b.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: waiting for its copy: %w", path, syscall.EINTR)
		}
		b.mu.Lock()
	}
	if b.copying == nil {
		b.byID, b.byHash, b.copying = map[binID]*binary{}, map[string]*binary{}, map[binID]chan struct{}{}
	}
	done := make(chan struct{})
	b.copying[id] = done
	b.mu.Unlock()

	bin, err := b.spool(ctx, f, id)

	b.mu.Lock()
	delete(b.copying, id)
	b.mu.Unlock()
	close(done)
	if err != nil {
		return nil, err
	}
	return newLease(bin, id), nil
}

func newLease(bin *binary, id binID) *binLease {
	return &binLease{hash: bin.hash, size: bin.size, public: id.mode&0o444 == 0o444, bin: bin}
}

// spool copies the file f pins into the spool, reserving its room first;
// the entry comes back held.
func (b *binCache) spool(ctx context.Context, f *os.File, id binID) (*binary, error) {
	disk := diskSize(id.size)
	dir, err := b.reserve(ctx, f.Name(), disk)
	if err != nil {
		return nil, err
	}
	copyHook(f.Name())
	tmp, sum, err := copyPinned(f, dir, id.size)
	if err != nil {
		b.unreserve(disk)
		return nil, err
	}
	return b.add(tmp, sum, id, disk)
}

// reserve makes room for disk bytes in the spool, evicting what nobody
// holds and, when the rest is held, waiting for a release.
func (b *binCache) reserve(ctx context.Context, name string, disk int64) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.dirLocked(); err != nil {
		return "", err
	}
	if disk > b.limitLocked() {
		return "", fmt.Errorf("%s: %d bytes on disk, more than the master's binary cache holds (bincache %d): %w", name, disk, b.limitLocked(), syscall.EFBIG)
	}
	wait := b.wait
	if wait == 0 {
		wait = binWait
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for b.used+disk > b.limitLocked() {
		if b.evictLocked() {
			continue
		}
		freed := b.freedLocked()
		b.mu.Unlock()
		var err error
		select {
		case <-freed:
		case <-ctx.Done():
			err = fmt.Errorf("%s: waiting for room in the binary cache: %w", name, syscall.EINTR)
		case <-timer.C:
			err = fmt.Errorf("%s: the master's binary cache is full (%d of %d bytes held by starting jobs): %w", name, b.usedNow(), b.limitNow(), syscall.EAGAIN)
		}
		b.mu.Lock()
		if err != nil {
			return "", err
		}
		if b.closed {
			return "", fmt.Errorf("%s: the master is shutting down: %w", name, syscall.ESHUTDOWN)
		}
	}
	b.used += disk
	return b.dir, nil
}

func (b *binCache) usedNow() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

func (b *binCache) limitNow() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.limitLocked()
}

func (b *binCache) limitLocked() int64 {
	if b.limit <= 0 {
		return DefaultBinCache
	}
	return b.limit
}

func (b *binCache) unreserve(disk int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= disk
	b.signalLocked()
}

// add makes the copy tmp the spool's entry for sum, or drops it for the
// entry already there (the same content under another file identity).
func (b *binCache) add(tmp, sum string, id binID, disk int64) (*binary, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		os.Remove(tmp)
		b.used -= disk
		return nil, fmt.Errorf("binary cache: the master is shutting down: %w", syscall.ESHUTDOWN)
	}
	if bin := b.byHash[sum]; bin != nil {
		os.Remove(tmp)
		b.used -= disk
		b.signalLocked()
		bin.ids = append(bin.ids, id)
		b.byID[id] = bin
		b.holdLocked(bin)
		return bin, nil
	}
	if err := os.Rename(tmp, filepath.Join(filepath.Dir(tmp), sum)); err != nil {
		os.Remove(tmp)
		b.used -= disk
		b.signalLocked()
		return nil, fmt.Errorf("binary cache: %w", err)
	}
	bin := &binary{hash: sum, size: id.size, disk: disk, ids: []binID{id}}
	bin.elem = b.lru.PushFront(bin)
	b.byID[id], b.byHash[sum] = bin, bin
	b.holdLocked(bin)
	return bin, nil
}

func (b *binCache) holdLocked(bin *binary) {
	bin.refs++
	b.lru.MoveToFront(bin.elem)
}

// release ends an exec's lease.
func (b *binCache) release(l *binLease) { b.drop(l.bin) }

func (b *binCache) drop(bin *binary) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bin.refs--
	if bin.refs == 0 {
		b.signalLocked()
		for b.used > b.limitLocked() && b.evictLocked() {
		}
	}
}

// evictLocked removes the least recently used entry nobody holds; false
// when every entry is held.
func (b *binCache) evictLocked() bool {
	for e := b.lru.Back(); e != nil; e = e.Prev() {
		bin := e.Value.(*binary)
		if bin.refs > 0 {
			continue
		}
		b.removeLocked(bin)
		b.signalLocked()
		return true
	}
	return false
}

func (b *binCache) removeLocked(bin *binary) {
	b.lru.Remove(bin.elem)
	delete(b.byHash, bin.hash)
	for _, id := range bin.ids {
		delete(b.byID, id)
	}
	b.used -= bin.disk
	os.Remove(filepath.Join(b.dir, bin.hash))
}

func (b *binCache) freedLocked() chan struct{} {
	if b.freed == nil {
		b.freed = make(chan struct{})
	}
	return b.freed
}

// signalLocked wakes every exec waiting for room.
func (b *binCache) signalLocked() {
	if b.freed != nil {
		close(b.freed)
		b.freed = nil
	}
}

// setLimit applies the config's bincache, evicting what no longer fits.
func (b *binCache) setLimit(limit int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.limit = limit
	for b.used > b.limitLocked() && b.evictLocked() {
	}
}

// useDir spools into dir (made 0700 if need be), removing what an
// earlier master left there; called before the first exec.
func (b *binCache) useDir(dir string) error {
	if err := spoolDir(dir); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dir != "" {
		return fmt.Errorf("binary spool %s: already spooling into %s", dir, b.dir)
	}
	b.dir = dir
	return nil
}

// spoolDir makes dir a directory only root may enter and empties it of
// spool files (named by their hash, or copies under way).
func spoolDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("binary spool: %w", err)
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("binary spool: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("binary spool %s: not a directory", dir)
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; uid != uint32(os.Geteuid()) {
		return fmt.Errorf("binary spool %s: owned by uid %d, not the master's", dir, uid)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("binary spool: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("binary spool: %w", err)
	}
	for _, e := range ents {
		if isSpoolName(e.Name()) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("binary spool: %w", err)
			}
		}
	}
	return nil
}

func isSpoolName(name string) bool {
	if strings.HasPrefix(name, spoolTemp) {
		return true
	}
	_, err := hex.DecodeString(name)
	return err == nil && len(name) == 2*sha256.Size
}

// dirLocked makes sure there is a spool: a private temporary directory
// when the master has no state directory.
func (b *binCache) dirLocked() error {
	if b.closed {
		return fmt.Errorf("binary cache: the master is shutting down: %w", syscall.ESHUTDOWN)
	}
	if b.dir != "" {
		return nil
	}
	dir, err := os.MkdirTemp("", "bpmaster-bin-")
	if err != nil {
		return fmt.Errorf("binary spool: %w", err)
	}
	b.dir, b.ownDir = dir, true
	return nil
}

// close empties the spool: at shutdown. A slave still reading keeps its
// open file until it closes it.
func (b *binCache) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for e := b.lru.Front(); e != nil; {
		next := e.Next()
		b.removeLocked(e.Value.(*binary))
		e = next
	}
	if b.ownDir {
		os.RemoveAll(b.dir)
	}
	b.signalLocked()
}

// open opens the spooled binary with that hash for a slave's read; the
// entry is held until the handle is closed. What a remote slave (remote)
// reads counts as sent.
func (b *binCache) open(hash string, remote bool) (synth.Handle, error) {
	b.mu.Lock()
	bin := b.byHash[hash]
	if bin == nil {
		b.mu.Unlock()
		return nil, fmt.Errorf("binary %s: %w", hash, syscall.ENOENT)
	}
	b.holdLocked(bin)
	p := filepath.Join(b.dir, bin.hash)
	b.mu.Unlock()
	f, err := os.Open(p)
	if err != nil {
		b.drop(bin)
		return nil, fmt.Errorf("binary %s: %w", hash, err)
	}
	return &spoolHandle{f: f, b: b, bin: bin, remote: remote}, nil
}

func (b *binCache) has(hash string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byHash[hash] != nil
}

// spoolHandle reads a spooled binary at the reader's offset: nothing of it
// is held in memory.
type spoolHandle struct {
	synth.NoWrite
	f      *os.File
	b      *binCache
	bin    *binary
	remote bool
	once   sync.Once
}

func (h *spoolHandle) Read(_ context.Context, p []byte, off int64) (int, error) {
	n, err := h.f.ReadAt(p, off)
	if h.remote && n > 0 {
		h.b.sent.Add(uint64(n))
	}
	if n > 0 && err == io.EOF {
		err = nil // the data now, the end on the next read
	}
	return n, err
}

func (h *spoolHandle) Close() error {
	var err error
	h.once.Do(func() {
		err = h.f.Close()
		h.b.drop(h.bin)
	})
	return err
}

// parseBytes reads the config's bincache: a byte count, or one with a K, M
// or G suffix (KiB, MiB, GiB); at least one byte, at most 1 TiB.
func parseBytes(s string) (int64, error) {
	num, mul := s, int64(1)
	if i := len(s) - 1; i > 0 {
		switch s[i] {
		case 'k', 'K':
			num, mul = s[:i], 1<<10
		case 'm', 'M':
			num, mul = s[:i], 1<<20
		case 'g', 'G':
			num, mul = s[:i], 1<<30
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mul {
		return 0, fmt.Errorf("bad size %q (bytes, or a number with K, M or G; more than 0, at most 1024G)", s)
	}
	return n * mul, nil
}

// depsOf is the ELF parse of the spooled binary of lease l, read once
// per spool entry.
func (b *binCache) depsOf(l *binLease) (*elfDeps, error) {
	bin := l.bin
	bin.depsOnce.Do(func() {
		f, err := os.Open(b.spooledPath(bin.hash))
		if err != nil {
			bin.depsErr = fmt.Errorf("reading its copy: %w", err)
			return
		}
		defer f.Close()
		bin.deps, bin.depsErr = readDeps(f)
	})
	return bin.deps, bin.depsErr
}
