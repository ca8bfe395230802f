package job

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"bproc/fs/slaveproto"
	"bproc/fs/synth"
)

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
	parent := newPeerSlave(t, ps, false)
	ps["parent:2224"] = parent
	fetchFrom(t, parent, master, msgFor(h, data, "/bin/prog"), data)

	child := newPeerSlave(t, ps, false)
	m := msgFor(h, data, "/bin/prog")
	m.From = []string{"parent:2224"}
	fetchFrom(t, child, master, m, data)
	if n := master.count(h); n != 1 {
		t.Errorf("the master served %d fetches, want 1 (the parent's; the child's from the peer)", n)
	}
	if n := child.PeerFailures(); n != 0 {
		t.Errorf("%d failed peer fetches, want 0", n)
	}
}

func TestPeerFallsBack(t *testing.T) {
	defer func(w time.Duration) { peerWait = w }(peerWait)
	peerWait = 50 * time.Millisecond
	master := newBinTree()
	data := bytes.Repeat([]byte("x"), 300000)
	h := master.add(data)
	ps := peers{}
	bad := newPeerSlave(t, ps, true)
	ps["bad:2224"] = bad
	fetchFrom(t, bad, master, msgFor(h, data, "prog"), data)
	ps["empty:2224"] = newPeerSlave(t, ps, false)

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
			m := msgFor(h, data, "prog")
			m.From = tc.from
			fetchFrom(t, child, master, m, data)
			if n := master.count(h) - before; n != 1 {
				t.Errorf("the master served %d fetches, want 1 (the fallback)", n)
			}
			if n := child.PeerFailures(); n != uint64(len(tc.from)) {
				t.Errorf("%d failed peer fetches, want %d", n, len(tc.from))
			}
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
	parent := newPeerSlave(t, ps, false)
	ps["parent:2224"] = parent
	parent.binCache() // a slave has its cache before it serves

	child := newPeerSlave(t, ps, false)
	done := make(chan error, 1)
	go func() {
		m := msgFor(h, data, "prog")
		m.From = []string{"parent:2224"}
		_, err := child.binCache().get(master, child.CacheDir, m)
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
	if n := master.count(h); n != 1 {
		t.Errorf("the master served %d fetches, want 1", n)
	}
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
			parent := newPeerSlave(t, ps, false)
			ps["parent:2224"] = parent
			parentDone := make(chan error, 1)
			go func() {
				_, err := parent.binCache().get(parentTree, parent.CacheDir, msgFor(h, data, "prog"))
				parentDone <- err
			}()
			child := newPeerSlave(t, ps, false)
			childDone := make(chan error, 1)
			go func() {
				m := msgFor(h, data, "prog")
				m.From = []string{"parent:2224"}
				_, err := child.binCache().get(master, child.CacheDir, m)
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
				want = 1
			}
			if n := master.count(h); n != want {
				t.Errorf("the master served %d fetches, want %d", n, want)
			}
			if n := child.PeerFailures(); n != uint64(want) {
				t.Errorf("%d failed peer fetches, want %d", n, want)
			}
		})
	}
}
