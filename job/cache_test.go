package job

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"bproc/fs/slaveproto"
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
