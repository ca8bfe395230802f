package pspace

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"bproc/fs/slaveproto"
	"bproc/fs/synth"
)

// cc builds a C file into out with gcc, skipping the test without one.
func cc(t *testing.T, out, src string, args ...string) {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no gcc to build shared libraries with")
	}
	c := filepath.Join(t.TempDir(), "x.c")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("gcc", append([]string{"-o", out, c}, args...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v: %s", err, b)
	}
}

func libPaths(libs []slaveproto.Lib) []string {
	var ps []string
	for _, l := range libs {
		ps = append(ps, l.Path)
	}
	return ps
}

// A tree of libraries as ld.so finds them: RUNPATH with $ORIGIN for the
// executable's and a library's own needs, LD_LIBRARY_PATH before RUNPATH,
// a file that is not ELF passed over, libc from the system's directories.
func TestResolveLibs(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	cc(t, filepath.Join(dir, "b/libb.so"), "int b(void) { return 2; }\n", "-shared", "-fPIC")
	cc(t, filepath.Join(dir, "lib/liba.so"), "int b(void); int a(void) { return b(); }\n", "-shared", "-fPIC",
		"-L"+filepath.Join(dir, "b"), "-lb", "-Wl,-rpath,$ORIGIN/../b")
	exe := filepath.Join(dir, "bin/prog")
	cc(t, exe, "int a(void); int main(void) { return a(); }\n", "-L"+filepath.Join(dir, "lib"), "-la", "-Wl,-rpath,$ORIGIN/../lib")
	alt := filepath.Join(dir, "alt")
	cc(t, filepath.Join(alt, "liba.so"), "int b(void); int a(void) { return b() + 1; }\n", "-shared", "-fPIC",
		"-L"+filepath.Join(dir, "b"), "-lb", "-Wl,-rpath,"+filepath.Join(dir, "b"))
	junk := filepath.Join(dir, "junk")
	os.MkdirAll(junk, 0o755)
	os.WriteFile(filepath.Join(junk, "liba.so"), []byte("not ELF"), 0o644)

	resolve := func(env []string, c *synth.Caller) []string {
		t.Helper()
		libs, err := resolveLibs(exe, exe, env, c)
		if err != nil {
			t.Fatal(err)
		}
		if len(libs) == 0 || !libs[0].Interp {
			t.Fatalf("no interpreter first: %+v", libs)
		}
		for _, l := range libs[1:] {
			if l.Interp {
				t.Errorf("a second interpreter: %+v", libs)
			}
		}
		return libPaths(libs)
	}
	libc := func(ps []string) bool {
		return slices.ContainsFunc(ps, func(p string) bool { return filepath.Base(p) == "libc.so.6" })
	}

	got := resolve(nil, root)
	want := []string{filepath.Join(dir, "lib/liba.so"), filepath.Join(dir, "lib/../b/libb.so")}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("closure %q lacks %s", got, w)
		}
	}
	if !libc(got) {
		t.Errorf("closure %q lacks libc", got)
	}

	got = resolve([]string{"LD_LIBRARY_PATH=" + junk + ":" + alt}, root)
	if !slices.Contains(got, filepath.Join(alt, "liba.so")) || slices.Contains(got, filepath.Join(dir, "lib/liba.so")) {
		t.Errorf("LD_LIBRARY_PATH before RUNPATH, junk passed over: %q", got)
	}
	if !slices.Contains(got, filepath.Join(dir, "b/libb.so")) {
		t.Errorf("alt's libb through its own RUNPATH: %q", got)
	}

	// A user who may not search lib/ is not shipped what is in it.
	user := &synth.Caller{Uid: 4242, Gid: 4242}
	if got := resolve(nil, user); !slices.Contains(got, filepath.Join(dir, "lib/liba.so")) {
		t.Errorf("as a user with access: %q", got)
	}
	os.Chmod(filepath.Join(dir, "lib"), 0o700)
	got = resolve(nil, user)
	if slices.Contains(got, filepath.Join(dir, "lib/liba.so")) || !libc(got) {
		t.Errorf("as a user without access to lib/: %q", got)
	}
}

func TestResolveLibsNotDynamic(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	os.WriteFile(script, []byte("#!/bin/sh\necho hi\n"), 0o755)
	static := filepath.Join(dir, "static")
	cc(t, static, "int main(void) { return 0; }\n", "-static")
	for _, p := range []string{script, static} {
		if libs, err := resolveLibs(p, p, nil, root); err != nil || libs != nil {
			t.Errorf("%s: %+v, %v; want nothing", p, libs, err)
		}
	}
	if libs, err := resolveLibs("x", filepath.Join(dir, "none"), nil, root); err == nil {
		t.Errorf("a missing copy: %+v, no error", libs)
	}
}

func TestLdConfDirs(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "conf.d"), 0o755)
	os.WriteFile(filepath.Join(dir, "ld.so.conf"), []byte("# comment\ninclude conf.d/*.conf\n/opt/a /opt/b # trailing\nrelative\nhwcap 0 x\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "conf.d/1.conf"), []byte("/opt/one:/opt/two\ninclude "+filepath.Join(dir, "ld.so.conf")+"\n"), 0o644)
	got := ldConfDirs(filepath.Join(dir, "ld.so.conf"), 0)
	if len(got) < 4 || !slices.Equal(got[:4], []string{"/opt/one", "/opt/two", "/opt/one", "/opt/two"}) || !slices.Contains(got, "/opt/b") || slices.Contains(got, "relative") {
		t.Errorf("ldConfDirs: %q", got)
	}
	if got := ldConfDirs(filepath.Join(dir, "none"), 0); got != nil {
		t.Errorf("a missing file: %q", got)
	}
}

// The master ships the libraries with the binary: spooled, leased until
// the start, by content.
func TestLoadLibs(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	cc(t, filepath.Join(dir, "libx.so"), "int x(void) { return 1; }\n", "-shared", "-fPIC")
	exe := filepath.Join(dir, "prog")
	cc(t, exe, "int x(void); int main(void) { return x(); }\n", "-L"+dir, "-lx", "-Wl,-rpath,"+dir)
	os.Chmod(filepath.Dir(dir), 0o755)
	m := NewMaster(DefaultConfig())
	m.UseStateDir(t.TempDir())
	t.Cleanup(m.Shutdown)
	bin, err := m.bins.load(context.Background(), exe, root)
	if err != nil {
		t.Fatal(err)
	}
	defer m.bins.release(bin)
	libs, leases, err := m.loadLibs(context.Background(), exe, bin, nil, root)
	if err != nil {
		t.Fatal(err)
	}
	defer m.bins.releaseAll(leases)
	if !slices.Contains(libPaths(libs), filepath.Join(dir, "libx.so")) {
		t.Fatalf("libs %q lack libx.so", libPaths(libs))
	}
	// A library only its owner may read goes with root's jobs only: the
	// node's cache could not give it to that user's job alone.
	os.Chown(filepath.Join(dir, "libx.so"), 4242, 4242)
	os.Chmod(filepath.Join(dir, "libx.so"), 0o600)
	user := &synth.Caller{Uid: 4242, Gid: 4242}
	for _, tc := range []struct {
		c    *synth.Caller
		want bool
	}{{user, false}, {root, true}} {
		got, ls, err := m.loadLibs(context.Background(), exe, bin, nil, tc.c)
		m.bins.releaseAll(ls)
		if err != nil || slices.Contains(libPaths(got), filepath.Join(dir, "libx.so")) != tc.want {
			t.Errorf("a private library for uid %d: %q, %v; shipped: want %v", tc.c.Uid, libPaths(got), err, tc.want)
		}
	}
	i := slices.IndexFunc(libs, func(l slaveproto.Lib) bool { return l.Path == filepath.Join(dir, "libx.so") })
	if i < 0 || len(leases) != len(libs) {
		t.Fatalf("libs %+v, %d leases", libs, len(leases))
	}
	if l := libs[i]; !m.bins.has(l.Hash) || l.Size == 0 || l.Hash == bin.hash {
		t.Errorf("libx.so not spooled by its hash: %+v", l)
	}
}

// FuzzReadDeps: readDeps meets users' files; it must not panic or hang.
func FuzzReadDeps(f *testing.F) {
	f.Add([]byte("#!/bin/sh\n"))
	f.Add([]byte("\x7fELF"))
	f.Add([]byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\x3e\x00\x01\x00\x00\x00"))
	for _, p := range []string{"/bin/true", "/lib64/ld-linux-x86-64.so.2"} {
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
			f.Add(b[:min(len(b), 1<<14)])
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		readDeps(bytes.NewReader(b))
	})
}

func TestLibCacheKeyword(t *testing.T) {
	for _, tc := range []struct {
		in  string
		off bool
		ok  bool
	}{{"", false, true}, {"libcache yes", false, true}, {"libcache no", true, true}, {"libcache maybe", false, false}, {"libcache", false, false}} {
		c, err := ParseConfig(strings.NewReader(tc.in))
		if (err == nil) != tc.ok || (err == nil && c.NoLibCache != tc.off) {
			t.Errorf("%q: %+v, %v", tc.in, c, err)
		}
	}
}

// The parse of a binary or library is kept per version of the file: the
// same file is not parsed again, a changed one is, and one changed just
// now is not kept (it may change again within the clock's granularity).
func TestDepsCacheKeepsEachVersion(t *testing.T) {
	bin, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Skip("no /bin/true to parse:", err)
	}
	path := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(path, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	deps := func() (*elfDeps, int) {
		t.Helper()
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var st syscall.Stat_t
		if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		before := depsCache.parsed
		d, err := cachedDeps(f, &st)
		if err != nil {
			t.Fatal(err)
		}
		return d, depsCache.parsed - before
	}
	if _, n := deps(); n != 1 {
		t.Fatalf("first read parsed %d times", n)
	}
	if _, n := deps(); n != 1 {
		t.Errorf("a file changed just now: its parse was kept (parsed %d times, want 1)", n)
	}
	defer func(r time.Duration) { depsRacy = r }(depsRacy)
	depsRacy = 0
	d, _ := deps()
	if d == nil || d.interp == "" {
		t.Skip("/bin/true is not a dynamic ELF binary")
	}
	if _, n := deps(); n != 0 {
		t.Errorf("the same version was parsed again")
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if d, n := deps(); n != 1 || d != nil {
		t.Errorf("after a rewrite into a script: parsed %d times, deps %+v; want a fresh parse, not ELF", n, d)
	}
}
