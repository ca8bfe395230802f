package pspace

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"bproc/fs/synth"
	"bproc/internal/treetest"
)

var root = &synth.Caller{}

// newSpool is a cache spooling into a fresh directory, limited to limit bytes.
func newSpool(t *testing.T, limit int64) (*binCache, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "binspool")
	b := &binCache{limit: limit}
	if err := b.useDir(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.close)
	return b, dir
}

// program writes an executable of n bytes (its first byte tells them apart).
func program(t *testing.T, name string, n int, first byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	data := bytes.Repeat([]byte{'x'}, n)
	data[0] = first
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func hashOf(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// holdCopies makes copies into the spool (of the paths given, or all)
// wait in copyHook until the returned function is called; started
// receives each copy's path.
func holdCopies(t *testing.T, only ...string) (started chan string, let func()) {
	started = make(chan string, 10)
	gate := make(chan struct{})
	old := copyHook
	copyHook = func(p string) {
		started <- p
		if len(only) == 0 || slices.Contains(only, p) {
			<-gate
		}
	}
	var once sync.Once
	let = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(func() { let(); copyHook = old })
	return started, let
}

func TestBinSpoolServesFromDisk(t *testing.T) {
	b, dir := newSpool(t, 0)
	p := program(t, "prog", 100000, '#')
	l, err := b.load(context.Background(), p, root)
	if err != nil {
		t.Fatal(err)
	}
	defer b.release(l)
	if l.hash != hashOf(t, p) || l.size != 100000 || !l.public {
		t.Errorf("lease %+v", l)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("spool directory: %v, %v", st.Mode(), err)
	}
	st, err = os.Stat(filepath.Join(dir, l.hash))
	if err != nil || st.Mode().Perm() != 0o600 || st.Size() != 100000 {
		t.Fatalf("spool file: %v, %v", st, err)
	}
	h, err := b.open(l.hash, false)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	want, _ := os.ReadFile(p)
	buf := make([]byte, 7000)
	var got []byte
	for off := int64(0); ; {
		n, err := h.Read(context.Background(), buf, off)
		got = append(got, buf[:n]...)
		off += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil || n == 0 {
			t.Fatalf("read at %d: %d, %v", off, n, err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Errorf("read %d bytes, not the binary's %d", len(got), len(want))
	}
	if _, err := b.open(strings.Repeat("0", 64), false); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("an unknown hash: %v, want ENOENT", err)
	}
}

// TestBinLoadMemory: an exec of a 64 MiB binary allocates next to nothing
// (it was 157 MiB allocated and 64 MiB kept when the cache held binaries
// in memory).
func TestBinLoadMemory(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(p, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 64<<20); err != nil {
		t.Fatal(err)
	}
	b, _ := newSpool(t, 0)
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	l, err := b.load(context.Background(), p, root)
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&m1)
	b.release(l)
	alloc := m1.TotalAlloc - m0.TotalAlloc
	t.Logf("exec of a 64 MiB binary: %d KiB allocated", alloc>>10)
	if alloc > 1<<20 {
		t.Errorf("%d bytes allocated for a 64 MiB binary, want under 1 MiB", alloc)
	}
}

func BenchmarkBinLoad64M(b *testing.B) {
	p := filepath.Join(b.TempDir(), "big")
	os.WriteFile(p, nil, 0o755)
	os.Truncate(p, 64<<20)
	b.ReportAllocs()
	for range b.N {
		c := &binCache{}
		l, err := c.load(context.Background(), p, root)
		if err != nil {
			b.Fatal(err)
		}
		c.release(l)
		c.close()
	}
}

// Two execs of the same binary at once copy it once; an exec of another
// binary goes on while that copy is under way.
func TestBinOneCopyInFlight(t *testing.T) {
	b, dir := newSpool(t, 0)
	big := program(t, "big", 1<<20, 'b')
	small := program(t, "small", 10, 's')
	started, let := holdCopies(t, big)
	leases := make(chan *binLease, 2)
	for range 2 {
		go func() {
			l, err := b.load(context.Background(), big, root)
			if err != nil {
				t.Error(err)
			}
			leases <- l
		}()
	}
	if p := <-started; p != big {
		t.Fatalf("copying %s", p)
	}
	done := make(chan error)
	go func() {
		l, err := b.load(context.Background(), small, root)
		if err == nil {
			b.release(l)
		}
		done <- err
	}()
	if p := <-started; p != small {
		t.Fatalf("copying %s, want only the small binary now", p)
	}
	if err := <-done; err != nil { // while big's copy is held
		t.Fatal(err)
	}
	let()
	l1, l2 := <-leases, <-leases
	if l1 == nil || l2 == nil || l1.bin != l2.bin {
		t.Fatalf("leases %+v %+v", l1, l2)
	}
	select {
	case p := <-started:
		t.Errorf("%s copied twice", p)
	default:
	}
	b.release(l1)
	b.release(l2)
	if got := treetest.DirNames(t, dir); len(got) != 2 {
		t.Errorf("spool holds %v, want the two binaries", got)
	}
}

// The spool is bounded by bytes on disk: the least recently used entry no
// exec or slave holds goes first; held entries stay, and an exec waits
// for room while everything is held.
func TestBinEvictionLRU(t *testing.T) {
	const blk = 4096
	b, dir := newSpool(t, 3*blk)
	a, bb, c, d := program(t, "a", blk, 'a'), program(t, "b", blk, 'b'), program(t, "c", blk, 'c'), program(t, "d", blk, 'd')
	ctx := context.Background()
	load := func(p string) *binLease {
		t.Helper()
		l, err := b.load(ctx, p, root)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	la := load(a)
	b.release(load(bb))
	b.release(load(c))
	b.release(load(c)) // c used more recently than b
	h, err := b.open(hashOf(t, c), false)
	if err != nil {
		t.Fatal(err)
	}
	b.release(load(d)) // a is held, c is being read: b goes
	want := []string{hashOf(t, a), hashOf(t, c), hashOf(t, d)}
	sort.Strings(want)
	if got := treetest.DirNames(t, dir); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("after eviction the spool holds %v, want a, c and d", got)
	}
	if b.has(hashOf(t, bb)) {
		t.Error("b is still served")
	}
	// All held now: an exec of b waits until something is released.
	ld := load(d)
	got := make(chan *binLease)
	go func() { got <- load(bb) }()
	select {
	case <-got:
		t.Fatal("b loaded into a full spool")
	case <-time.After(50 * time.Millisecond):
	}
	h.Close() // c is free again, and goes
	lb := <-got
	if b.has(hashOf(t, c)) {
		t.Error("c is still served")
	}
	for _, l := range []*binLease{la, ld, lb} {
		b.release(l)
	}
	if b.used != 3*blk {
		t.Errorf("%d bytes accounted, want %d", b.used, 3*blk)
	}
}

func TestBinSpoolFullOrTooSmall(t *testing.T) {
	b, dir := newSpool(t, 8192)
	b.wait = 20 * time.Millisecond
	ctx := context.Background()
	l, err := b.load(ctx, program(t, "a", 8000, 'a'), root)
	if err != nil {
		t.Fatal(err)
	}
	defer b.release(l)
	if _, err := b.load(ctx, program(t, "b", 10, 'b'), root); !errors.Is(err, syscall.EAGAIN) || !strings.Contains(err.Error(), "binary cache is full") {
		t.Errorf("a full spool: %v, want EAGAIN", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.load(cctx, program(t, "c", 10, 'c'), root); !errors.Is(err, syscall.EINTR) {
		t.Errorf("an interrupted wait: %v, want EINTR", err)
	}
	if _, err := b.load(ctx, program(t, "huge", 9000, 'h'), root); !errors.Is(err, syscall.EFBIG) || !strings.Contains(err.Error(), "bincache 8192") {
		t.Errorf("a binary larger than the spool: %v, want EFBIG", err)
	}
	if got := treetest.DirNames(t, dir); len(got) != 1 {
		t.Errorf("spool holds %v, want only a", got)
	}
}

// A file changed while it is copied is refused, and nothing of it stays.
func TestBinChangedWhileCopied(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(p string) error
		want   error
	}{
		{"appended", func(p string) error {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err == nil {
				_, err = f.WriteString("more")
				f.Close()
			}
			return err
		}, syscall.EAGAIN},
		{"truncated", func(p string) error { return os.Truncate(p, 10) }, syscall.EAGAIN},
		{"grown past the limit", func(p string) error { return os.Truncate(p, maxBinary+1) }, syscall.EFBIG},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, dir := newSpool(t, 0)
			p := program(t, "prog", 5000, 'p')
			started, let := holdCopies(t)
			res := make(chan error)
			go func() {
				_, err := b.load(context.Background(), p, root)
				res <- err
			}()
			<-started
			if err := tc.change(p); err != nil {
				t.Fatal(err)
			}
			let()
			if err := <-res; !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if got := treetest.DirNames(t, dir); len(got) != 0 {
				t.Errorf("spool holds %v", got)
			}
			if b.used != 0 {
				t.Errorf("%d bytes still reserved", b.used)
			}
		})
	}
}

// The same content under two files is spooled once; whether others may
// read it is each file's own.
func TestBinSameContentTwoFiles(t *testing.T) {
	b, dir := newSpool(t, 0)
	pub := program(t, "pub", 3000, 'z')
	priv := program(t, "priv", 3000, 'z')
	os.Chmod(priv, 0o700)
	lp, err := b.load(context.Background(), pub, root)
	if err != nil {
		t.Fatal(err)
	}
	lq, err := b.load(context.Background(), priv, root)
	if err != nil {
		t.Fatal(err)
	}
	if lp.bin != lq.bin || !lp.public || lq.public {
		t.Errorf("public %v, private %v", lp, lq)
	}
	b.release(lp)
	b.release(lq)
	if got := treetest.DirNames(t, dir); len(got) != 1 || b.used != 4096 {
		t.Errorf("spool holds %v, %d bytes", got, b.used)
	}
}

// At shutdown the spool is emptied; a master starting on a state
// directory removes what a crashed one left, and only that.
func TestBinSpoolCleanup(t *testing.T) {
	state := t.TempDir()
	dir := filepath.Join(state, "binspool")
	os.Mkdir(dir, 0o755)
	left := []string{strings.Repeat("ab", 32), spoolTemp + "123"}
	for _, n := range append(left, "README") {
		os.WriteFile(filepath.Join(dir, n), []byte("old"), 0o600)
	}
	m := NewMaster(DefaultConfig())
	if err := m.UseStateDir(state); err != nil {
		t.Fatal(err)
	}
	if got := treetest.DirNames(t, dir); len(got) != 1 || got[0] != "README" {
		t.Errorf("after start the spool holds %v, want only README", got)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("spool mode %v", st.Mode())
	}
	// Not a directory of the master's: refused, nothing removed.
	for _, tc := range []struct{ name, want string }{{"link", "not a directory"}, {"theirs", "owned by uid 4242"}} {
		if tc.name == "theirs" && os.Geteuid() != 0 {
			continue // only root can give it away
		}
		other := t.TempDir()
		p := filepath.Join(other, "binspool")
		if tc.name == "link" {
			os.Symlink(dir, p)
		} else {
			os.Mkdir(p, 0o700)
			os.Chown(p, 4242, 4242)
		}
		if err := NewMaster(DefaultConfig()).UseStateDir(other); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("a spool that is a %s: %v", tc.name, err)
		}
	}
	if got := treetest.DirNames(t, dir); len(got) != 1 {
		t.Errorf("the spool holds %v", got)
	}
	l, err := m.bins.load(context.Background(), program(t, "p", 10, 'p'), root)
	if err != nil {
		t.Fatal(err)
	}
	m.bins.release(l)
	m.Shutdown()
	if got := treetest.DirNames(t, dir); len(got) != 1 {
		t.Errorf("after shutdown the spool holds %v", got)
	}
	if _, err := m.bins.load(context.Background(), program(t, "q", 10, 'q'), root); !errors.Is(err, syscall.ESHUTDOWN) {
		t.Errorf("exec after shutdown: %v", err)
	}

	// Without a state directory: a private temporary one, gone at close.
	b := &binCache{}
	l, err = b.load(context.Background(), program(t, "r", 10, 'r'), root)
	if err != nil {
		t.Fatal(err)
	}
	tmp := b.dir
	if st, err := os.Stat(tmp); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("temporary spool: %v", err)
	}
	b.release(l)
	b.close()
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary spool left: %v", err)
	}
}

func TestBinCacheConfig(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"1", 1}, {"300M", 300 << 20}, {"4k", 4096}, {"2G", 2 << 30}, {"1024G", 1 << 40},
		{"0", 0}, {"-1", 0}, {"M", 0}, {"1025G", 0}, {"1.5M", 0}, {"9223372036854775807K", 0},
	} {
		c, err := ParseConfig(strings.NewReader("bincache " + tc.in))
		switch {
		case tc.want == 0 && err == nil:
			t.Errorf("bincache %s accepted as %d", tc.in, c.BinCache)
		case tc.want != 0 && (err != nil || c.BinCache != tc.want):
			t.Errorf("bincache %s: %v, %v, want %d", tc.in, c, err, tc.want)
		}
	}
	// A lower limit on reload evicts what no longer fits.
	m := NewMaster(DefaultConfig())
	m.UseStateDir(t.TempDir())
	t.Cleanup(m.Shutdown)
	for _, n := range []string{"a", "b"} {
		l, err := m.bins.load(context.Background(), program(t, n, 5000, n[0]), root)
		if err != nil {
			t.Fatal(err)
		}
		m.bins.release(l)
	}
	cfg := DefaultConfig()
	cfg.BinCache = 8192
	m.SetConfig(cfg)
	if m.bins.used != 8192 || len(m.bins.byHash) != 1 {
		t.Errorf("after reload: %d bytes, %d binaries", m.bins.used, len(m.bins.byHash))
	}
}

// A binary rewritten in place with its size and mtime kept (cp then
// touch -r, an unpacker restoring times) is a new version: its ctime
// moved, and the spool copies it again rather than serve the old bytes.
func TestBinRewriteKeepingMtime(t *testing.T) {
	b, _ := newSpool(t, 0)
	p := program(t, "prog", 3000, 'a')
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	l1, err := b.load(context.Background(), p, root)
	if err != nil {
		t.Fatal(err)
	}
	b.release(l1)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{'b'}, 0) // same size
	f.Close()
	if err := os.Chtimes(p, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	l2, err := b.load(context.Background(), p, root)
	if err != nil {
		t.Fatal(err)
	}
	defer b.release(l2)
	if want := hashOf(t, p); l2.hash != want || l2.hash == l1.hash {
		t.Errorf("after a rewrite keeping size and mtime: spooled %s, the file is %s (before: %s)", l2.hash, want, l1.hash)
	}
}
