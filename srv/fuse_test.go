package srv

import (
	"bproc/fs/synth"
	"bproc/internal/treetest"
	"bproc/srv/fusemount"

	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// mountTree mounts a fresh test tree, or skips saying why it cannot.
func mountTree(t *testing.T) (*testTree, string) {
	t.Helper()
	tree := newTestTree()
	return tree, mountRoot(t, tree.root)
}

// mountRoot mounts root, or skips saying why it cannot.
func mountRoot(t *testing.T, root synth.Dir) string {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no FUSE here: %v", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("FUSE tests mount directly and need root")
	}
	dir := t.TempDir()
	// Other users (setpriv below) must reach the mount point.
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	m, err := fusemount.Mount(dir, root, fusemount.MountOptions{AllowOther: true, Name: "bproctest"})
	if err != nil {
		t.Skipf("cannot mount FUSE here: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		m.Wait()
	})
	return dir
}

// mountPrivate mounts a fresh test tree with the default options (only
// root reaches it), or skips saying why it cannot; the caller unmounts,
// as what it measures may be the unmount.
func mountPrivate(tb testing.TB) (*testTree, string, *fusemount.Mounted) {
	tb.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil || os.Geteuid() != 0 {
		tb.Skip("needs /dev/fuse and root")
	}
	tree := newTestTree()
	dir := tb.TempDir()
	m, err := fusemount.Mount(dir, tree.root, fusemount.MountOptions{})
	if err != nil {
		tb.Skipf("cannot mount: %v", err)
	}
	return tree, dir, m
}

// asUser runs a command as uid/gid 1000 with supplementary groups 5 and 6.
func asUser(args ...string) *exec.Cmd {
	return exec.Command("setpriv", append([]string{"--reuid=1000", "--regid=1000", "--groups=5,6", "--"}, args...)...)
}

func TestFuseReadStatReaddir(t *testing.T) {
	_, dir := mountTree(t)
	for name, want := range map[string]string{"hello": "hello, world\n", "sub/leaf": "leaf\n"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(b) != want {
			t.Errorf("read %s = %q, %v", name, b, err)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 13 || fi.Mode() != 0o444 {
		t.Errorf("stat hello: %v", fi)
	}
	fi, err = os.Stat(filepath.Join(dir, "sub"))
	if err != nil || fi.Mode() != os.ModeDir|0o755 {
		t.Errorf("stat sub: %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "nope")); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("stat nope: %v", err)
	}
	names := treetest.DirNames(t, dir)
	want := []string{"big", "ctl", "hello", "sink", "stream", "sub", "who"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("readdir = %v, want %v", names, want)
	}
	// The FUSE device must not leak into programs the server starts.
	out, err := exec.Command("sh", "-c", "ls -l /proc/self/fd").CombinedOutput()
	if err != nil || strings.Contains(string(out), "/dev/fuse") {
		t.Errorf("/dev/fuse leaked into a child (%v):\n%s", err, out)
	}
	// ls -l goes through readdirplus/lookup and getattr.
	out, err = exec.Command("ls", "-ln", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "hello") {
		t.Errorf("ls -ln: %v\n%s", err, out)
	}
}

func TestFuseCaller(t *testing.T) {
	_, dir := mountTree(t)
	who := filepath.Join(dir, "who")
	// The file's Size is 0: cat must still read it (direct I/O).
	out, err := exec.Command("cat", who).Output()
	if err != nil {
		t.Fatal(err)
	}
	if s := string(out); !strings.Contains(s, "uid=0 gid=0 ") || strings.Contains(s, "pid=0 ") ||
		!strings.Contains(s, "slave=false") || !strings.Contains(s, "conn=false") {
		t.Errorf("root cat who = %q", s)
	}
	out, err = asUser("cat", who).Output()
	if err != nil {
		t.Fatalf("cat who as uid 1000: %v", err)
	}
	if s := string(out); !strings.Contains(s, "uid=1000 gid=1000 groups=[5 6] ") {
		t.Errorf("user cat who = %q", s)
	}
	// The pid is the reading process's.
	cmd := exec.Command("sh", "-c", `echo $$; exec cat "$1"`, "sh", who)
	out, err = cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(out), "\n", 2)
	if pid, _ := strconv.Atoi(lines[0]); pid == 0 || !strings.Contains(lines[1], "pid="+lines[0]+" ") {
		t.Errorf("pid: shell %s, who says %q", lines[0], lines[1])
	}
}

func TestFuseCtlWrites(t *testing.T) {
	tree, dir := mountTree(t)
	ctl := filepath.Join(dir, "ctl")
	// bash and coreutils report the errno (dash says "I/O error" for any
	// failed builtin write, so it cannot show what the tree returned).
	for _, sh := range [][]string{{"bash", "-c", `echo bad > "$1"`}, {"sh", "-c", `/bin/echo bad > "$1"`}} {
		if _, err := exec.LookPath(sh[0]); err != nil {
			continue
		}
		out, err := exec.Command(sh[0], append(sh[1:], "sh", ctl)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "Invalid argument") {
			t.Errorf("%s: %v, output %q; want a write error EINVAL", sh[2], err, out)
		}
	}
	out, err := exec.Command("sh", "-c", `echo ok 2 > "$1"`, "sh", ctl).CombinedOutput()
	if err != nil {
		t.Errorf("echo ok 2 > ctl: %v %s", err, out)
	}
	// Read back the result on the same open file (offset 0 via pread).
	f, err := os.OpenFile(ctl, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("ok 3")); err != nil {
		t.Errorf("write ok 3: %v", err)
	}
	if _, err := f.Write([]byte("nonsense")); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("write nonsense: %v, want EINVAL", err)
	}
	buf := make([]byte, 100)
	n, err := f.ReadAt(buf, 0)
	if string(buf[:n]) != "done ok 3\n" {
		t.Errorf("ctl result %q, %v", buf[:n], err)
	}
	f.Close()
	tree.ctl.mu.Lock()
	got := strings.Join(tree.ctl.writes, ",")
	tree.ctl.mu.Unlock()
	if got != "ok 2,ok 3" {
		t.Errorf("ctl saw %q", got)
	}
	// Writing a read-only file is refused at open.
	if _, err := os.OpenFile(filepath.Join(dir, "hello"), os.O_WRONLY|os.O_TRUNC, 0); !errors.Is(err, syscall.EACCES) {
		t.Errorf("open hello for writing: %v, want EACCES", err)
	}
}

func TestFuseChmodChown(t *testing.T) {
	tree, dir := mountTree(t)
	sub := filepath.Join(dir, "sub")
	out, err := asUser("chmod", "700", sub).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not permitted") {
		t.Errorf("chmod as user: %v %q, want EPERM", err, out)
	}
	if err := os.Chmod(sub, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(sub, 1000, 50); err != nil {
		t.Fatal(err)
	}
	a := tree.sub.Attr()
	if a.Mode.Perm() != 0o711 || a.Uid != 1000 || a.Gid != 50 {
		t.Errorf("sub: mode %v uid %d gid %d", a.Mode, a.Uid, a.Gid)
	}
	fi, err := os.Stat(sub)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o711 || st.Uid != 1000 || st.Gid != 50 {
		t.Errorf("stat after chmod: %v uid %d gid %d", fi.Mode(), st.Uid, st.Gid)
	}
	if err := os.Chmod(filepath.Join(dir, "hello"), 0o600); !errors.Is(err, syscall.EPERM) {
		t.Errorf("chmod hello: %v, want EPERM", err)
	}

	// access(2) follows the mode with the caller's supplementary groups.
	if err := os.Chmod(sub, 0o710); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(sub, 1000, 5); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		uid, groups string
		test        string
		ok          bool
	}{
		{"1000", "1", "-r", true},  // owner
		{"2000", "5", "-x", true},  // supplementary group 5 has x
		{"2000", "5", "-r", false}, // ... but not r
		{"3000", "7", "-x", false}, // others: nothing
		{"0", "0", "-w", true},     // root
	} {
		cmd := exec.Command("setpriv", "--reuid="+tc.uid, "--regid="+tc.uid, "--groups="+tc.groups, "--", "test", tc.test, sub)
		err := cmd.Run()
		if (err == nil) != tc.ok {
			t.Errorf("uid %s groups %s: test %s sub: %v, want ok=%v", tc.uid, tc.groups, tc.test, err, tc.ok)
		}
	}
}

// A reader blocked on a stream is interrupted by a signal.
func TestFuseInterruptBlockedRead(t *testing.T) {
	tree, dir := mountTree(t)
	st := tree.stream
	start := time.Now()
	err := exec.Command("timeout", "1", "cat", filepath.Join(dir, "stream")).Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 124 {
		t.Errorf("timeout 1 cat stream: %v, want exit 124", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cat took %v to die", d)
	}
	if !waitFor(5*time.Second, func() bool { return st.inRead.Load() == 0 && st.closed.Load() == st.opened.Load() }) {
		t.Errorf("after interrupt: %d reads blocked, %d of %d handles closed", st.inRead.Load(), st.closed.Load(), st.opened.Load())
	}
	if st.intr.Load() < 1 {
		t.Error("the blocked read did not end with EINTR")
	}
	// Data pushed later reaches a new reader.
	st.data <- []byte("late\n")
	out, err := exec.Command("timeout", "5", "head", "-c", "5", filepath.Join(dir, "stream")).Output()
	if err != nil || string(out) != "late\n" {
		t.Errorf("head stream = %q, %v", out, err)
	}
}

func TestFuseBigStreamAndWrites(t *testing.T) {
	tree, dir := mountTree(t)
	f, err := os.Open(filepath.Join(dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	got, el := readStream(t, f)
	f.Close()
	checkPayload(t, got)
	t.Logf("FUSE: 64 MiB stream read in %v: %.0f MB/s", el.Round(time.Millisecond), float64(len(got))/el.Seconds()/1e6)

	// Large writes arrive in large requests.
	w, err := os.OpenFile(filepath.Join(dir, "sink"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	data := payload()[:16<<20]
	start := time.Now()
	for off := 0; off < len(data); off += 1 << 20 {
		if _, err := w.Write(data[off : off+1<<20]); err != nil {
			t.Fatal(err)
		}
	}
	wel := time.Since(start)
	w.Close()
	tree.sink.mu.Lock()
	sizes, sum := tree.sink.sizes, tree.sink.sum.Sum(nil)
	tree.sink.mu.Unlock()
	want := sha256.Sum256(data)
	if !bytes.Equal(sum, want[:]) {
		t.Errorf("sink checksum mismatch after %d writes", len(sizes))
	}
	sorted := append([]int(nil), sizes...)
	sort.Ints(sorted)
	t.Logf("FUSE: 16 MiB written in %v: %.0f MB/s, %d requests, largest %d bytes", wel.Round(time.Millisecond),
		float64(len(data))/wel.Seconds()/1e6, len(sizes), sorted[len(sorted)-1])
	if sorted[len(sorted)-1] < 128<<10 {
		t.Errorf("largest FUSE write was %d bytes; MaxWrite not in effect", sorted[len(sorted)-1])
	}
}

// A copy of the mount in another mount namespace must not keep Unmount
// (and bpmaster's exit) waiting.
func TestFuseUnmountWithNamespaceCopy(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare")
	}
	tree, dir, m := mountPrivate(t)
	// The copy reads the stream, so it holds the connection busy too.
	cp := exec.Command("unshare", "-m", "--propagation", "private", "cat", filepath.Join(dir, "stream"))
	if err := cp.Start(); err != nil {
		m.Unmount()
		t.Skipf("unshare: %v", err)
	}
	defer func() { cp.Process.Kill(); cp.Wait() }()
	if !waitFor(5*time.Second, func() bool { return tree.stream.inRead.Load() == 1 }) {
		t.Fatal("reader in the other namespace never blocked")
	}
	start := time.Now()
	if err := m.Unmount(); err != nil {
		t.Errorf("unmount: %v", err)
	}
	waited := make(chan struct{})
	go func() { m.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after Unmount")
	}
	t.Logf("unmount with a namespace copy took %v", time.Since(start).Round(time.Millisecond))
	if !waitFor(5*time.Second, func() bool { return tree.stream.inRead.Load() == 0 }) {
		t.Error("the copy's blocked read did not end")
	}
	if err := cp.Wait(); err == nil {
		t.Error("cat in the other namespace succeeded; want an error after abort")
	}
}

// One node reached under two names, handed out as a fresh object on every
// lookup (as the master's tree does): go-fuse finds its inode by number
// and drops the new object, so the inode must take the new one over, or
// the second name serves the state of the first lookup.
func TestFuseLookupSameNodeTwoNames(t *testing.T) {
	var gen atomic.Int32
	fresh := func(*synth.Caller, string) synth.Node {
		g := gen.Add(1)
		return &synth.FuncFile{Ino: 4242, Mode: 0o444, OpenFunc: func(*synth.Caller, int) (synth.Handle, error) {
			return &synth.BytesHandle{Data: []byte(strconv.Itoa(int(g)))}, nil
		}}
	}
	a, b := synth.NewDir(nil), synth.NewDir(nil)
	a.LookupFunc, b.LookupFunc = fresh, fresh
	dir := mountRoot(t, synth.NewDir(synth.StaticEntries("a", a, "b", b)))
	for _, name := range []string{"a/x", "b/x", "a/x"} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		// Each open follows a lookup of its own: it must see that one.
		if want := strconv.Itoa(int(gen.Load())); string(got) != want {
			t.Errorf("read %s = %q, want %q (the object of the latest lookup)", name, got, want)
		}
	}
}
