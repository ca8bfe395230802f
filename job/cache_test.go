package job

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"bproc/fs/slaveproto"
	"bproc/fs/synth"
)

// binTree serves slave/bin/HASH from a map and counts fetches. A hash with
// a gate blocks its reads until the gate is closed, and says on opened
// that its fetch has begun.
type binTree struct {
	mu      sync.Mutex
	bins    map[string][]byte
	gates   map[string]chan struct{}
	opened  chan string
	fetches map[string]int
}

func newBinTree() *binTree {
	return &binTree{bins: map[string][]byte{}, gates: map[string]chan struct{}{}, opened: make(chan string, 10), fetches: map[string]int{}}
}

type gatedReader struct {
	r    io.Reader
	gate chan struct{}
}

func (g gatedReader) Read(b []byte) (int, error) {
	if g.gate != nil {
		<-g.gate
	}
	return g.r.Read(b)
}
func (gatedReader) Write([]byte) (int, error) { return 0, os.ErrPermission }
func (gatedReader) Close() error              { return nil }

func (t *binTree) Open(name string, _ int) (io.ReadWriteCloser, error) {
	h := strings.TrimPrefix(name, "slave/bin/")
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.bins[h]
	if !ok {
		return nil, os.ErrNotExist
	}
	t.fetches[h]++
	select {
	case t.opened <- h:
	default:
	}
	return gatedReader{bytes.NewReader(b), t.gates[h]}, nil
}

func (t *binTree) add(data []byte) string {
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])
	t.mu.Lock()
	t.bins[h] = data
	t.mu.Unlock()
	return h
}

func (t *binTree) count(h string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.fetches[h]
}

func msgFor(h string, data []byte, path string) *slaveproto.Msg {
	return &slaveproto.Msg{Hash: h, Size: int64(len(data)), Path: path}
}

func TestBinCache(t *testing.T) {
	tree := newBinTree()
	c := &binCache{}
	script := []byte("#!/bin/sh\necho hi\n")
	h := tree.add(script)
	p, err := c.get(tree, "", &slaveproto.Msg{Hash: h, Size: 18, Path: "/usr/bin/greet", Public: true})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(p) != "greet" {
		t.Errorf("cached as %s: the job should keep its name", p)
	}
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("public binary: %v, %v; want mode 0755", st.Mode(), err)
	}
	if st, _ := os.Stat(filepath.Dir(filepath.Dir(p))); st.Mode().Perm() != 0o711 {
		t.Errorf("cache directory mode %v, want 0711 (not listable)", st.Mode().Perm())
	}
	// The same content under another name: no second fetch.
	p2, err := c.get(tree, "", &slaveproto.Msg{Hash: h, Size: 18, Path: "/tmp/copy"})
	if err != nil || tree.count(h) != 1 || filepath.Base(p2) != "copy" {
		t.Errorf("second name: %s, %v, %d fetches", p2, err, tree.count(h))
	}
	secret := tree.add([]byte("secret binary"))
	p3, err := c.get(tree, "", &slaveproto.Msg{Hash: secret, Size: 13, Path: "/opt/x"})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(p3); st.Mode().Perm() != 0o711 {
		t.Errorf("a binary others could not read on the master is %v here, want 0711", st.Mode().Perm())
	}
	bad := tree.add([]byte("x"))
	tree.bins[bad] = []byte("tampered")
	if _, err := c.get(tree, "", &slaveproto.Msg{Hash: bad, Size: 1, Path: "/x"}); err == nil {
		t.Error("a binary whose hash does not match was accepted")
	}
	for _, m := range []*slaveproto.Msg{{Hash: "../../etc", Path: "/x"}, {Hash: h, Size: -1, Path: "/x"}, {Hash: h, Size: maxBinary + 1, Path: "/x"}} {
		if _, err := c.get(tree, "", m); err == nil {
			t.Errorf("%+v accepted", m)
		}
	}
	// Nothing half-fetched stays behind: only the hash directories.
	ents, _ := os.ReadDir(c.dir)
	for _, e := range ents {
		if len(e.Name()) != 64 {
			t.Errorf("left in the cache: %s", e.Name())
		}
	}
	dir := c.dir
	c.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temporary cache %s left behind: %v", dir, err)
	}
}

// A slow fetch holds up only the starts of that binary, and it happens
// once for all of them.
func TestBinCacheNoLockAcrossFetch(t *testing.T) {
	tree := newBinTree()
	c := &binCache{}
	defer c.Close()
	big := bytes.Repeat([]byte("big binary "), 100000)
	hb := tree.add(big)
	gate := make(chan struct{})
	tree.gates[hb] = gate
	small := []byte("small")
	hs := tree.add(small)

	got := make(chan error, 2)
	for _, name := range []string{"/bin/big", "/bin/big2"} {
		go func() {
			p, err := c.get(tree, "", msgFor(hb, big, name))
			if err == nil {
				if b, rerr := os.ReadFile(p); rerr != nil || !bytes.Equal(b, big) {
					err = rerr
					if err == nil {
						err = os.ErrInvalid
					}
				}
			}
			got <- err
		}()
	}
	select {
	case h := <-tree.opened:
		if h != hb {
			t.Fatalf("fetched %s first", h)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the big fetch never began")
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.get(tree, "", msgFor(hs, small, "/bin/small"))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		close(gate)
		t.Fatal("a small binary waited for another binary's fetch")
	}
	select {
	case err := <-got:
		t.Fatalf("a start of the big binary did not wait for its fetch: %v", err)
	default:
	}
	close(gate)
	for range 2 {
		if err := <-got; err != nil {
			t.Fatal(err)
		}
	}
	if n := tree.count(hb); n != 1 {
		t.Errorf("the big binary was fetched %d times for two starts", n)
	}
}

// What is planted in the cache is never run: a cache directory others
// could have filled is refused, a cached file that does not hash right
// is fetched anew, and so is one changed after it was checked.
func TestBinCachePlanted(t *testing.T) {
	tree := newBinTree()
	prog := []byte("#!/bin/sh\necho genuine\n")
	h := tree.add(prog)
	m := msgFor(h, prog, "/bin/prog")
	base := t.TempDir()
	os.Chmod(base, 0o755)

	real := filepath.Join(base, "real")
	os.Mkdir(real, 0o711)
	link := filepath.Join(base, "link")
	os.Symlink(real, link)
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	shared := filepath.Join(base, "shared")
	os.Mkdir(shared, 0o777)
	os.Chmod(shared, 0o777)
	under := filepath.Join(shared, "cache")
	os.Mkdir(under, 0o711)
	cases := map[string]string{
		link:  "symlink",
		open:  "writable by group or others",
		under: "writable by others",
	}
	if os.Geteuid() == 0 {
		theirs := filepath.Join(base, "theirs")
		os.Mkdir(theirs, 0o711)
		os.Chown(theirs, 4242, 4242)
		cases[theirs] = "owned by uid 4242"
	}
	for dir, want := range cases {
		c := &binCache{}
		_, err := c.get(tree, dir, m)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("cache %s: %v, want an error saying %q", dir, err, want)
		}
		if err := CheckCacheDir(dir); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckCacheDir %s: %v", dir, err)
		}
	}

	// A file planted under the right name, with the wrong content.
	dir := filepath.Join(base, "cache")
	os.MkdirAll(filepath.Join(dir, h), 0o711)
	planted := filepath.Join(dir, h, "prog")
	os.WriteFile(planted, []byte("#!/bin/sh\necho evil\n"), 0o755)
	c := &binCache{}
	p, err := c.get(tree, dir, m)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, prog) {
		t.Errorf("ran the planted %q", b)
	}
	if n := tree.count(h); n != 1 {
		t.Errorf("%d fetches, want 1 (the planted file replaced)", n)
	}
	// A second run of the slave checks the file once, and fetches nothing.
	c2 := &binCache{}
	if _, err := c2.get(tree, dir, m); err != nil || tree.count(h) != 1 {
		t.Errorf("a good cached file: %v, %d fetches", err, tree.count(h))
	}
	// Changed after the check: checked again, and fetched anew.
	os.WriteFile(p, []byte("#!/bin/sh\necho evil!\n"), 0o755)
	if p, err = c2.get(tree, dir, m); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, prog) || tree.count(h) != 2 {
		t.Errorf("after a change: %q, %d fetches", b, tree.count(h))
	}
	// A symlink planted as the hash directory is replaced, not followed.
	os.RemoveAll(filepath.Join(dir, h))
	elsewhere := filepath.Join(base, "elsewhere")
	os.Mkdir(elsewhere, 0o755)
	os.WriteFile(filepath.Join(elsewhere, "prog"), []byte("#!/bin/sh\necho evil\n"), 0o755)
	os.Symlink(elsewhere, filepath.Join(dir, h))
	c3 := &binCache{}
	if p, err = c3.get(tree, dir, m); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, prog) {
		t.Errorf("ran %q through a planted symlink", b)
	}
	if st, err := os.Lstat(filepath.Join(dir, h)); err != nil || !st.IsDir() {
		t.Errorf("hash directory: %v %v", st, err)
	}
	if b, _ := os.ReadFile(filepath.Join(elsewhere, "prog")); !bytes.Contains(b, []byte("evil")) {
		t.Errorf("the symlink's target was written: %q", b)
	}
}

// FuzzCacheName: whatever the message says, the cached file is a plain
// name directly under DIR/HASH, and HASH is 64 hex digits.
func FuzzCacheName(f *testing.F) {
	good := strings.Repeat("ab", 32)
	for _, s := range [][2]string{
		{good, "/bin/true"}, {good, "../../etc/x"}, {good, "/"}, {good, ""}, {good, ".."},
		{good, "a\x00b"}, {"../../etc", "/x"}, {strings.Repeat("A", 64), "/x"},
		{good + "/..", "/x"}, {"", ""}, {good, strings.Repeat("n", 300)},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, hash, path string) {
		h, name, err := cacheName(hash, path)
		if err != nil {
			return
		}
		if h != hash || len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
			t.Fatalf("hash %q accepted as %q", hash, h)
		}
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || len(name) > 255 {
			t.Fatalf("path %q gives name %q", path, name)
		}
		p := filepath.Join("/cache", h, name)
		if filepath.Dir(p) != filepath.Join("/cache", h) {
			t.Fatalf("%q, %q lands at %s", hash, path, p)
		}
	})
}

// Peers (peer.go): slaves serving each other binaries.

// peers connects caches to other slaves' peer trees in-process, by the
// address a start message names.
type peers map[string]*Slave

type localPeer struct{ *synth.Local }

func (localPeer) Close() error { return nil }

func (p peers) dial(_ context.Context, addr string) (PeerConn, error) {
	s, ok := p[addr]
	if !ok {
		return nil, syscall.ECONNREFUSED
	}
	return localPeer{&synth.Local{Root: s.PeerTree(), Caller: &synth.Caller{Slave: true}}}, nil
}

// newPeerSlave is a slave whose cache is its own directory, dialing ps.
func newPeerSlave(t *testing.T, ps peers, corrupt bool) *Slave {
	s := &Slave{CacheDir: filepath.Join(t.TempDir(), "cache"), DialPeer: ps.dial, CorruptPeer: corrupt, Logf: t.Logf}
	t.Cleanup(func() { s.Close() })
	return s
}

// add is a slave serving at addr.
func (p peers) add(t *testing.T, addr string, corrupt bool) *Slave {
	s := newPeerSlave(t, p, corrupt)
	p[addr] = s
	return s
}

// fromPeers is the start message of a binary to fetch from peers first.
func fromPeers(h string, data []byte, from ...string) *slaveproto.Msg {
	m := msgFor(h, data, "prog")
	m.From = from
	return m
}

// wantFetches checks what the master served for h and how many of the
// child's tries at peers failed.
func wantFetches(t *testing.T, master *binTree, h string, child *Slave, fromMaster int, failed int) {
	t.Helper()
	if n := master.count(h); n != fromMaster {
		t.Errorf("the master served %d fetches, want %d", n, fromMaster)
	}
	if n := child.PeerFailures(); n != uint64(failed) {
		t.Errorf("%d failed peer fetches, want %d", n, failed)
	}
}

func fetchFrom(t *testing.T, s *Slave, tree Opener, m *slaveproto.Msg, want []byte) {
	t.Helper()
	p, err := s.binCache().get(tree, s.CacheDir, m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("cached copy: %d bytes, err %v; want the %d bytes sent", len(got), err, len(want))
	}
}

func TestPeerFetch(t *testing.T) {
	master := newBinTree()
	data := bytes.Repeat([]byte("binary!"), 100000)
	h := master.add(data)
	ps := peers{}
	fetchFrom(t, ps.add(t, "parent:2224", false), master, msgFor(h, data, "/bin/prog"), data)
	child := newPeerSlave(t, ps, false)
	fetchFrom(t, child, master, fromPeers(h, data, "parent:2224"), data)
	wantFetches(t, master, h, child, 1, 0) // the parent's; the child's from the peer
}

func TestPeerFallsBack(t *testing.T) {
	defer func(w time.Duration) { peerWait = w }(peerWait)
	peerWait = 50 * time.Millisecond
	master := newBinTree()
	data := bytes.Repeat([]byte("x"), 300000)
	h := master.add(data)
	ps := peers{}
	fetchFrom(t, ps.add(t, "bad:2224", true), master, msgFor(h, data, "prog"), data)
	ps.add(t, "empty:2224", false)

	for _, tc := range []struct {
		name string
		from []string
	}{
		{"corrupt bytes", []string{"bad:2224"}},
		{"refused", []string{"nobody:2224"}},
		{"peer lacks it", []string{"empty:2224"}},
		{"all of them", []string{"nobody:2224", "empty:2224", "bad:2224"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := master.count(h)
			child := newPeerSlave(t, ps, false)
			fetchFrom(t, child, master, fromPeers(h, data, tc.from...), data)
			wantFetches(t, master, h, child, before+1, len(tc.from)) // the fallback
			ents, _ := os.ReadDir(child.CacheDir)
			for _, e := range ents {
				if !e.IsDir() {
					t.Errorf("left behind in the cache: %s", e.Name())
				}
			}
		})
	}
}

// A peer asked for a binary before its own start message arrived serves
// it once its fetch ends.
func TestPeerWaitsForItsFetch(t *testing.T) {
	master := newBinTree()
	data := bytes.Repeat([]byte("y"), 200000)
	h := master.add(data)
	gate := make(chan struct{})
	master.gates[h] = gate
	ps := peers{}
	parent := ps.add(t, "parent:2224", false)
	parent.binCache() // a slave has its cache before it serves

	child := newPeerSlave(t, ps, false)
	done := make(chan error, 1)
	go func() {
		_, err := child.binCache().get(master, child.CacheDir, fromPeers(h, data, "parent:2224"))
		done <- err
	}()
	go parent.binCache().get(master, parent.CacheDir, msgFor(h, data, "prog"))
	<-master.opened // the parent's fetch has begun
	select {
	case err := <-done:
		t.Fatalf("the child's fetch ended before the parent had the binary: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wantFetches(t, master, h, child, 1, 0)
}

func TestPeerTreeRefuses(t *testing.T) {
	s := newPeerSlave(t, peers{}, false)
	stranger := &synth.Local{Root: s.PeerTree(), Caller: &synth.Caller{Uid: 0}}
	h := "0000000000000000000000000000000000000000000000000000000000000000"
	if _, err := stranger.Open("bin/"+h, os.O_RDONLY); !errors.Is(err, syscall.EPERM) {
		t.Errorf("a caller that is not a slave: %v, want EPERM", err)
	}
	slave := &synth.Local{Root: s.PeerTree(), Caller: &synth.Caller{Slave: true}}
	for _, name := range []string{"../cache", "short", h + "0"} {
		if _, err := slave.Open("bin/"+name, os.O_RDONLY); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("bin/%s: %v, want ENOENT", name, err)
		}
	}
}

// halfTree serves one binary: its first half at once, the rest once gate
// is closed; bad makes the rest other bytes.
type halfTree struct {
	data []byte
	gate chan struct{}
	bad  bool
}

type halfReader struct {
	t   *halfTree
	off int
}

func (r *halfReader) Read(b []byte) (int, error) {
	half := len(r.t.data) / 2
	if r.off >= half {
		<-r.t.gate
	}
	if r.off >= len(r.t.data) {
		return 0, io.EOF
	}
	end := len(r.t.data)
	if r.off < half {
		end = half
	}
	n := copy(b, r.t.data[r.off:end])
	if r.t.bad && r.off >= half {
		for i := range b[:n] {
			b[i] ^= 1
		}
	}
	r.off += n
	return n, nil
}
func (*halfReader) Write([]byte) (int, error) { return 0, os.ErrPermission }
func (*halfReader) Close() error              { return nil }

func (t *halfTree) Open(string, int) (io.ReadWriteCloser, error) { return &halfReader{t: t}, nil }

// tmpBytes is the size of the temporary file a fetch writes in dir (0: none).
func tmpBytes(dir string) int64 {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "tmp-") {
			if fi, err := e.Info(); err == nil {
				return fi.Size()
			}
		}
	}
	return 0
}

// A peer serves a binary as its own fetch writes it; when that fetch
// turns out bad, the child's read fails and it falls back to the master.
func TestPeerServesAsItIsWritten(t *testing.T) {
	for _, bad := range []bool{false, true} {
		t.Run(fmt.Sprintf("bad=%v", bad), func(t *testing.T) {
			data := bytes.Repeat([]byte("0123456789abcdef"), 1<<17) // 2 MiB: several reads
			master := newBinTree()
			h := master.add(data)
			parentTree := &halfTree{data: data, gate: make(chan struct{}), bad: bad}
			ps := peers{}
			parent := ps.add(t, "parent:2224", false)
			parentDone := make(chan error, 1)
			go func() {
				_, err := parent.binCache().get(parentTree, parent.CacheDir, msgFor(h, data, "prog"))
				parentDone <- err
			}()
			child := newPeerSlave(t, ps, false)
			childDone := make(chan error, 1)
			go func() {
				_, err := child.binCache().get(master, child.CacheDir, fromPeers(h, data, "parent:2224"))
				childDone <- err
			}()
			deadline := time.Now().Add(10 * time.Second)
			for tmpBytes(child.CacheDir) < int64(len(data)/2) {
				if time.Now().After(deadline) {
					t.Fatalf("the child has %d bytes of the parent's first half (%d) before the parent has the rest", tmpBytes(child.CacheDir), len(data)/2)
				}
				time.Sleep(5 * time.Millisecond)
			}
			close(parentTree.gate)
			if err := <-parentDone; (err != nil) != bad {
				t.Fatalf("the parent's fetch: %v", err)
			}
			if err := <-childDone; err != nil {
				t.Fatal(err)
			}
			fetchFrom(t, child, master, msgFor(h, data, "prog"), data)
			want := 0
			if bad {
				want = 1 // the child's fallback
			}
			wantFetches(t, master, h, child, want, want)
		})
	}
}
