package srv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"bproc/fs/synth"
	"bproc/internal/treetest"

	"github.com/hugelgupf/p9/linux"
	"github.com/hugelgupf/p9/p9"
)

// served starts a Server for tree on loopback and returns its address and
// the lines it logged.
type served struct {
	addr string
	tree *testTree
	mu   sync.Mutex
	logs []string
}

func (s *served) logf(format string, args ...any) {
	s.mu.Lock()
	s.logs = append(s.logs, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

func (s *served) logged(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.logs {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

func serveB(b *testing.B) string { return serve(b).addr }

func dialB(b *testing.B, addr string) *Client { return dial(b, addr, toolHello) }

func serve(t testing.TB) *served { t.Helper(); return serveTree(t, newTestTree()) }

// serveTree serves tree over 9P on a local port until the test ends.
func serveTree(t testing.TB, tree *testTree) *served {
	t.Helper()
	sv := &served{tree: tree}
	sv.addr = serveOn(t, &Server{Key: testKey, Root: sv.tree.root, Logf: sv.logf})
	return sv
}

// serveOn runs s on a local port until the test ends; its address.
func serveOn(t testing.TB, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		serveReturned(t, done, 10*time.Second, "Serve did not return after cancel")
	})
	return ln.Addr().String()
}

// serveReturned waits up to limit for Serve's result on done; an error
// fails the test, and so does a hang (with hang), reported false.
func serveReturned(t testing.TB, done <-chan error, limit time.Duration, hang string) bool {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		return true
	case <-time.After(limit):
		t.Error(hang)
		return false
	}
}

func dial(t testing.TB, addr string, h Hello) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, addr, testKey, h)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var toolHello = Hello{Role: RoleTool, Uid: 0, Gid: 0, Host: "master"}

func TestIdentityReachesCaller(t *testing.T) {
	sv := serve(t)
	c := dial(t, sv.addr, Hello{Role: RoleSlave, Uid: 1000, Gid: 100, Groups: []uint32{5, 6}, Host: "node7"})
	got := treetest.Read(t, c.Open, "who")
	want := "pid=0 uid=1000 gid=100 groups=[5 6] slave=true addr=127.0.0.1 host=node7 conn=true\n"
	if got != want {
		t.Errorf("who = %q, want %q", got, want)
	}
	c2 := dial(t, sv.addr, Hello{Role: RoleTool, Uid: 0, Gid: 0, Host: "master"})
	if got := treetest.Read(t, c2.Open, "who"); !strings.Contains(got, "uid=0 ") || !strings.Contains(got, "slave=false") {
		t.Errorf("tool who = %q", got)
	}
	// DialFrom binds the source address, which the tree sees as Addr.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c3, err := DialFrom(ctx, "127.0.0.2", sv.addr, testKey, Hello{Role: RoleSlave, Host: "node2"})
	if err != nil {
		t.Fatalf("DialFrom: %v", err)
	}
	defer c3.Close()
	if got := treetest.Read(t, c3.Open, "who"); !strings.Contains(got, "addr=127.0.0.2 host=node2") {
		t.Errorf("who via DialFrom = %q", got)
	}
	if _, err := DialFrom(ctx, "not-an-ip", sv.addr, testKey, toolHello); err == nil {
		t.Error("DialFrom accepted a bad source")
	}
	if !waitFor(time.Second, func() bool { return sv.logged("connected: slave uid 1000 gid 100 host node7") }) {
		t.Errorf("connection not logged: %q", sv.logs)
	}
}

func TestDialWrongKey(t *testing.T) {
	sv := serve(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := Dial(ctx, sv.addr, []byte("wrong"), toolHello)
	if !errors.Is(err, ErrBadKey) {
		t.Errorf("dial with wrong key: %v", err)
	}
	if !waitFor(2*time.Second, func() bool { return sv.logged("cluster key mismatch") }) {
		t.Errorf("server did not log the mismatch: %q", sv.logs)
	}
	// The server keeps serving.
	c := dial(t, sv.addr, toolHello)
	treetest.Want(t, c.Open, "hello", "hello, world\n")
}

func TestGarbageAndSilentPeers(t *testing.T) {
	old := handshakeTimeout
	handshakeTimeout = 300 * time.Millisecond
	defer func() { handshakeTimeout = old }()
	sv := serve(t)

	silent, err := net.Dial("tcp", sv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	garbage, err := net.Dial("tcp", sv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer garbage.Close()
	garbage.Write(bytes.Repeat([]byte{0xff}, 100))

	// Meanwhile a real client is served.
	c := dial(t, sv.addr, toolHello)
	treetest.Want(t, c.Open, "hello", "hello, world\n")
	// Both strangers get hung up on, the silent one within the deadline.
	for name, conn := range map[string]net.Conn{"silent": silent, "garbage": garbage} {
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		start := time.Now()
		_, err := io.ReadAll(conn)
		// Unread garbage makes the close a reset.
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("%s peer: connection not closed by server: %v", name, err)
		}
		t.Logf("%s peer closed after %v", name, time.Since(start).Round(time.Millisecond))
	}
	if !sv.logged("timeout") || !sv.logged("exceeds") {
		t.Errorf("failures not logged: %q", sv.logs)
	}
}

func TestWalkReadWriteStat(t *testing.T) {
	sv := serve(t)
	c := dial(t, sv.addr, Hello{Role: RoleTool, Uid: 1000, Gid: 1000, Host: "ws"})

	treetest.Want(t, c.Open, "sub/leaf", "leaf\n")
	treetest.Want(t, c.Open, "/sub/../hello", "hello, world\n")
	if _, err := c.Open("nope", os.O_RDONLY); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("open nope: %v, want ENOENT", err)
	}
	if _, err := c.Open("hello/x", os.O_RDONLY); !errors.Is(err, syscall.ENOTDIR) && !errors.Is(err, syscall.EINVAL) {
		t.Errorf("open hello/x: %v, want ENOTDIR or EINVAL", err)
	}
	if _, err := c.Open("hello", os.O_WRONLY); !errors.Is(err, syscall.EACCES) {
		t.Errorf("open hello for writing: %v, want EACCES", err)
	}

	fi, err := c.Stat("hello")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Name() != "hello" || fi.Size() != 13 || fi.Mode() != 0o444 || fi.IsDir() {
		t.Errorf("stat hello: %v", fi)
	}
	if a, ok := fi.Sys().(*synth.Attr); !ok || a.Uid != 0 {
		t.Errorf("stat hello Sys: %#v", fi.Sys())
	}
	fi, err = c.Stat("sub")
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode() != os.ModeDir|0o755 {
		t.Errorf("stat sub: %v", fi)
	}
	if fi, err := c.Stat(""); err != nil || !fi.IsDir() {
		t.Errorf("stat root: %v %v", fi, err)
	}

	ents, err := c.ReadDir("")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
		if (e.Name() == "sub") != e.IsDir() {
			t.Errorf("entry %s: IsDir=%v", e.Name(), e.IsDir())
		}
	}
	if got := strings.Join(names, " "); got != "big ctl hello sink stream sub who" {
		t.Errorf("readdir / = %q (sorted by name expected)", got)
	}
	if info, err := ents[2].Info(); err != nil || info.Size() != 13 {
		t.Errorf("entry info: %v %v", info, err)
	}
	if _, err := c.ReadDir("hello"); !errors.Is(err, syscall.ENOTDIR) && !errors.Is(err, syscall.EINVAL) {
		t.Errorf("readdir of a file: %v", err)
	}

	// ctl: a good command, its result, then a bad one gives EINVAL.
	f := treetest.Open(t, c.Open, "ctl", os.O_RDWR)
	if _, err := f.Write([]byte("ok 1\n")); err != nil {
		t.Fatalf("write ok: %v", err)
	}
	// The File keeps one offset for reads and writes, like a descriptor.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(f); err != nil || string(b) != "done ok 1\n" {
		t.Errorf("ctl result = %q, %v", b, err)
	}
	_, err = f.Write([]byte("bad\n"))
	if !errors.Is(err, syscall.EINVAL) {
		t.Errorf("bad ctl write: %v, want EINVAL", err)
	}
	f.Close()
	sv.tree.ctl.mu.Lock()
	writes := strings.Join(sv.tree.ctl.writes, ",")
	sv.tree.ctl.mu.Unlock()
	if writes != "ok 1" {
		t.Errorf("ctl saw %q", writes)
	}
}

func TestChmodChown(t *testing.T) {
	sv := serve(t)
	user := dial(t, sv.addr, Hello{Role: RoleTool, Uid: 1000, Gid: 1000, Host: "ws"})
	root := dial(t, sv.addr, toolHello)

	if err := user.Chmod("sub", 0o700); !errors.Is(err, syscall.EPERM) {
		t.Errorf("chmod by user: %v, want EPERM", err)
	}
	if err := root.Chmod("sub", 0o711); err != nil {
		t.Fatalf("chmod by root: %v", err)
	}
	if err := root.Chown("sub", 1000, -1); err != nil {
		t.Fatalf("chown by root: %v", err)
	}
	if err := root.Chown("sub", -1, 50); err != nil {
		t.Fatalf("chgrp by root: %v", err)
	}
	a := sv.tree.sub.Attr()
	if a.Mode.Perm() != 0o711 || a.Uid != 1000 || a.Gid != 50 {
		t.Errorf("sub after chmod/chown: mode %v uid %d gid %d", a.Mode, a.Uid, a.Gid)
	}
	fi, err := user.Stat("sub")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o711 || fi.Sys().(*synth.Attr).Uid != 1000 || fi.Sys().(*synth.Attr).Gid != 50 {
		t.Errorf("stat after chmod: %v %+v", fi, fi.Sys())
	}
	if err := root.Chmod("hello", 0o600); !errors.Is(err, syscall.EPERM) {
		t.Errorf("chmod of a file without Setattrer: %v, want EPERM", err)
	}
}

// A read blocked in a stream returns as soon as the client goes away, and
// the connection's resources are released (the handle is closed).
func TestBlockedReadEndsOnDisconnect(t *testing.T) {
	sv := serve(t)
	st := sv.tree.stream
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, sv.addr, testKey, toolHello)
	if err != nil {
		t.Fatal(err)
	}
	f := treetest.Open(t, c.Open, "stream", os.O_RDONLY)
	// First a chunk goes through.
	st.data <- []byte("chunk1")
	buf := make([]byte, 100)
	n, err := f.Read(buf)
	if err != nil || string(buf[:n]) != "chunk1" {
		t.Fatalf("read = %q, %v", buf[:n], err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := f.Read(buf)
		readErr <- err
	}()
	if !waitFor(5*time.Second, func() bool { return st.inRead.Load() == 1 }) {
		t.Fatal("read never blocked in the stream")
	}
	goroutines := runtime.NumGoroutine()
	c.Close()
	if !waitFor(5*time.Second, func() bool { return st.inRead.Load() == 0 && st.closed.Load() == 1 }) {
		t.Fatalf("after disconnect: %d reads still blocked, %d handles closed", st.inRead.Load(), st.closed.Load())
	}
	if st.intr.Load() != 1 {
		t.Errorf("blocked read ended %d times with EINTR, want 1", st.intr.Load())
	}
	select {
	case err := <-readErr:
		if err == nil {
			t.Error("client read succeeded after Close")
		}
	case <-time.After(5 * time.Second):
		t.Error("client read still blocked after Close")
	}
	select {
	case <-c.Done():
	default:
		t.Error("Done not closed after Close")
	}
	if !waitFor(5*time.Second, func() bool { return sv.logged("disconnected") }) {
		t.Error("server never finished the connection")
	}
	if !waitFor(5*time.Second, func() bool { return runtime.NumGoroutine() < goroutines }) {
		t.Errorf("goroutines: %d before close, %d after", goroutines, runtime.NumGoroutine())
	}
}

// Done fires when the server goes away while the client is idle.
func TestClientDoneOnServerExit(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tree := newTestTree()
	s := &Server{Key: testKey, Root: tree.root}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	c := dial(t, ln.Addr().String(), toolHello)
	if _, err := c.Stat("hello"); err != nil {
		t.Fatal(err)
	}
	// A second client is blocked in a stream read: shutting down must
	// not wait for data that will never come.
	c2 := dial(t, ln.Addr().String(), toolHello)
	f := treetest.Open(t, c2.Open, "stream", os.O_RDONLY)
	go f.Read(make([]byte, 10))
	if !waitFor(5*time.Second, func() bool { return tree.stream.inRead.Load() == 1 }) {
		t.Fatal("read never blocked")
	}
	cancel()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("client Done not closed after the server stopped")
	}
	if !serveReturned(t, done, 5*time.Second, "Serve did not return with a read blocked in the tree") {
		t.FailNow()
	}
	if n := tree.stream.inRead.Load(); n != 0 {
		t.Errorf("%d reads still blocked after Serve returned", n)
	}
	if _, err := c.Stat("hello"); !errors.Is(err, syscall.ENOTCONN) {
		t.Errorf("stat after server exit: %v, want ENOTCONN", err)
	}
}

func TestDialDefaultsAndErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Port 1 on loopback: refused.
	if _, err := Dial(ctx, "127.0.0.1:1", testKey, toolHello); err == nil {
		t.Error("dial to a closed port succeeded")
	}
	for in, want := range map[string]string{
		"10.77.0.1":      "10.77.0.1:2223",
		"10.77.0.1:4000": "10.77.0.1:4000",
		"master":         "master:2223",
		"::1":            "[::1]:2223",
		"[::1]":          "[::1]:2223",
		"[::1]:9":        "[::1]:9",
		"[fe80::1]":      "[fe80::1]:2223",
	} {
		if got := WithPort(in); got != want {
			t.Errorf("WithPort(%q) = %q, want %q", in, got, want)
		}
	}
	if _, err := Dial(ctx, "127.0.0.1:1", testKey, Hello{Role: "x"}); err == nil {
		t.Error("bad hello accepted")
	}
}

func TestWriteSplitAndBigStream(t *testing.T) {
	sv := serve(t)
	c := dial(t, sv.addr, toolHello)
	// A write larger than msize is split into several Twrites.
	f := treetest.Open(t, c.Open, "sink", os.O_WRONLY)
	big := payload()[:3<<20+123]
	n, err := f.Write(big)
	if err != nil || n != len(big) {
		t.Fatalf("big write: %d, %v", n, err)
	}
	f.Close()
	sink := sv.tree.sink
	sink.mu.Lock()
	sizes, sum := sink.sizes, sink.sum.Sum(nil)
	sink.mu.Unlock()
	if wantSum := sha256.Sum256(big); len(sizes) < 4 || !bytes.Equal(sum, wantSum[:]) {
		t.Errorf("sink got %d writes %v, sum %x; want >= 4 pieces, sum %x", len(sizes), sizes, sum, wantSum)
	}
	for _, sz := range sizes {
		if sz > DefaultMaxMessage {
			t.Errorf("a write of %d bytes exceeds msize", sz)
		}
	}

	f = treetest.Open(t, c.Open, "big", os.O_RDONLY)
	defer f.Close()
	got, el := readStream(t, f)
	checkPayload(t, got)
	t.Logf("9P: 64 MiB stream in %v: %.0f MB/s", el.Round(time.Millisecond), float64(len(got))/el.Seconds()/1e6)
}

// readStream reads r to EOF into one preallocated buffer (so the figure
// measures the transport, not allocation or hashing).
func readStream(t *testing.T, r io.Reader) ([]byte, time.Duration) {
	t.Helper()
	buf := make([]byte, bigSize+(1<<20))
	n := 0
	start := time.Now()
	for {
		end := min(n+(1<<20), len(buf))
		m, err := r.Read(buf[n:end])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", n, err)
		}
		if n == len(buf) {
			t.Fatalf("more than %d bytes", bigSize)
		}
	}
	return buf[:n], time.Since(start)
}

func checkPayload(t *testing.T, got []byte) {
	t.Helper()
	want := sha256.Sum256(payload())
	if sum := sha256.Sum256(got); len(got) != bigSize || sum != want {
		t.Fatalf("got %d bytes, sha256 %x; want %d, %x", len(got), sum, bigSize, want)
	}
}

// The server grants at most MaxMessage, whatever msize a client asks for.
func TestVersionClamped(t *testing.T) {
	sv := serve(t)
	conn, sconn := handshaken(t, sv.addr)
	version := "9P2000.L"
	msg := make([]byte, 0, 64)
	msg = binary.LittleEndian.AppendUint32(msg, uint32(4+1+2+4+2+len(version)))
	msg = append(msg, msgTversion, 0xff, 0xff)
	msg = binary.LittleEndian.AppendUint32(msg, 4<<20)
	msg = binary.LittleEndian.AppendUint16(msg, uint16(len(version)))
	msg = append(msg, version...)
	if _, err := sconn.Write(msg); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply := make([]byte, 11)
	if _, err := io.ReadFull(sconn, reply); err != nil {
		t.Fatal(err)
	}
	if reply[4] != msgTversion+1 {
		t.Fatalf("reply type %d, want Rversion", reply[4])
	}
	if got := binary.LittleEndian.Uint32(reply[7:]); got != DefaultMaxMessage {
		t.Errorf("granted msize %d, want %d", got, DefaultMaxMessage)
	}
}

// No descriptor of a Client may leak into programs it starts.
func TestClientDescriptorsCloseOnExec(t *testing.T) {
	sv := serve(t)
	c := dial(t, sv.addr, toolHello)
	_ = c
	out, err := exec.Command("sh", "-c", "ls -l /proc/self/fd").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "socket:") {
		t.Errorf("a socket leaked into a child:\n%s", out)
	}
}

// Operations the tree does not support fail with a clear errno; none
// crashes the server or the connection.
func TestUnsupportedOperations(t *testing.T) {
	sv := serve(t)
	_, sconn := handshaken(t, sv.addr)
	pc, err := p9.NewClient(sconn, p9.WithMessageSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	root, err := pc.Attach("")
	if err != nil {
		t.Fatal(err)
	}
	walk := func(names ...string) p9.File {
		_, f, err := root.Walk(names)
		if err != nil {
			t.Fatalf("walk %v: %v", names, err)
		}
		return f
	}
	is := func(what string, err error, want linux.Errno) {
		t.Helper()
		if (want == 0 && err != nil) || (want != 0 && !errors.Is(err, want)) {
			t.Errorf("%s: %v, want %v", what, err, want)
		}
	}
	_, err = root.Mkdir("d", 0o755, 0, 0)
	is("mkdir", err, linux.EPERM)
	_, _, _, err = walk().Create("f", p9.ReadWrite, 0o644, 0, 0)
	is("create", err, linux.EPERM)
	_, err = root.Symlink("a", "b", 0, 0)
	is("symlink", err, linux.EPERM)
	_, err = root.Mknod("n", 0o644, 0, 0, 0, 0)
	is("mknod", err, linux.EPERM)
	is("unlinkat", root.UnlinkAt("hello", 0), linux.EPERM)
	is("renameat", root.RenameAt("hello", root, "x"), linux.EPERM)
	is("remove", walk("hello").(interface{ Remove() error }).Remove(), linux.EPERM)
	is("link", root.Link(walk("hello"), "h2"), linux.EPERM)
	_, err = walk("hello").Readlink()
	is("readlink", err, linux.EINVAL)
	_, _, err = root.Walk([]string{".."})
	is("walk ..", err, linux.EINVAL)
	_, _, err = root.Walk([]string{"hello", "x"})
	if err == nil {
		t.Error("walk through a file succeeded")
	}
	_, _, err = walk().Open(p9.WriteOnly)
	is("open dir for writing", err, linux.EISDIR)
	h := walk("hello")
	is("setattr mtime (touch) by root", h.SetAttr(p9.SetAttrMask{MTime: true}, p9.SetAttr{}), 0)
	is("setattr size 5", h.SetAttr(p9.SetAttrMask{Size: true}, p9.SetAttr{Size: 5}), linux.EPERM)
	is("setattr size 0", h.SetAttr(p9.SetAttrMask{Size: true}, p9.SetAttr{}), 0)
	_, err = h.ReadAt(make([]byte, 10), 0)
	is("read unopened", err, linux.EINVAL)
	_, err = h.GetXattr("user.x")
	if err == nil {
		t.Error("getxattr succeeded")
	}
	// Still serving on the same connection.
	f := walk("hello")
	if _, _, err := f.Open(p9.ReadOnly); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	if n, err := f.ReadAt(buf, 0); err != nil || string(buf[:n]) != "hello, world\n" {
		t.Errorf("read after the errors: %q %v", buf[:n], err)
	}
}

// A listing larger than one message arrives whole, over several Treaddirs.
func TestReadDirLarge(t *testing.T) {
	const n = 50000
	big := &testDir{ino: 1, mode: 0o755}
	for i := 0; i < n; i++ {
		big.ents = append(big.ents, synth.Dirent{Name: fmt.Sprintf("entry%05d", i), Node: &textFile{ino: uint64(10 + i)}})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go (&Server{Key: testKey, Root: big}).Serve(ctx, ln)
	c := dial(t, ln.Addr().String(), toolHello)
	ents, err := c.ReadDir("")
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != n {
		t.Fatalf("got %d entries, want %d", len(ents), n)
	}
	for i, e := range ents {
		if want := fmt.Sprintf("entry%05d", i); e.Name() != want {
			t.Fatalf("entry %d = %q, want %q", i, e.Name(), want)
		}
	}
}

// One Client used from many goroutines at once.
func TestClientConcurrent(t *testing.T) {
	sv := serve(t)
	c := dial(t, sv.addr, toolHello)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				f, err := c.Open("sub/leaf", os.O_RDONLY)
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(f)
				f.Close()
				if err != nil || string(b) != "leaf\n" {
					errs <- fmt.Errorf("read %q: %v", b, err)
					return
				}
				if _, err := c.Stat("hello"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// handshaken dials addr and completes the handshake as a tool: the raw
// connection (for deadlines) and the session to speak 9P on.
func handshaken(t *testing.T, addr string) (net.Conn, net.Conn) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	sconn, err := ClientHandshake(conn, testKey, toolHello)
	if err != nil {
		t.Fatal(err)
	}
	return conn, sconn
}
