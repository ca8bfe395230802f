package pspace

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"bproc/fs/synth"
)

// noRacy trusts files changed just now, for the test: the caches keep
// what they read at once.
func noRacy(t *testing.T) {
	r := depsRacy
	depsRacy = 0
	t.Cleanup(func() { depsRacy = r })
}

// ld.so.conf is read once while its files and the directories it globs
// stay as they were; an edit, an include added or removed, is read.
func TestConfCacheSeesChanges(t *testing.T) {
	noRacy(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "ld.so.conf")
	d := filepath.Join(dir, "conf.d")
	os.MkdirAll(d, 0o755)
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(conf, "include conf.d/*.conf\n/opt/main\n")
	write(filepath.Join(d, "a.conf"), "/opt/a\n")
	check := func(what string, wantReads int, want ...string) {
		t.Helper()
		before := confCache.reads
		got := cachedConfDirs(conf)
		if n := confCache.reads - before; n != wantReads {
			t.Errorf("%s: read %d times, want %d", what, n, wantReads)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", what, got, want)
		}
	}
	check("first", 1, "/opt/a", "/opt/main")
	check("unchanged", 0, "/opt/a", "/opt/main")
	write(filepath.Join(d, "a.conf"), "/opt/a2\n")
	check("an included file rewritten", 1, "/opt/a2", "/opt/main")
	write(filepath.Join(d, "b.conf"), "/opt/b\n")
	check("an include added", 1, "/opt/a2", "/opt/b", "/opt/main")
	os.Remove(filepath.Join(d, "a.conf"))
	check("an include removed", 1, "/opt/b", "/opt/main")
	write(conf, "/opt/only\n")
	check("ld.so.conf rewritten", 1, "/opt/only")
	check("unchanged again", 0, "/opt/only")
	os.Remove(conf)
	check("ld.so.conf gone", 1)
	check("still gone", 0)
	write(conf, "/opt/back\n")
	check("ld.so.conf back", 1, "/opt/back")

	// A file changed just now may change again within the clock's
	// granularity: not kept.
	depsRacy = time.Hour
	write(conf, "/opt/new\n")
	check("changed just now", 1, "/opt/new")
	check("still young", 1, "/opt/new")
}

// A binary's closure is searched once per caller and environment while
// every path the search tried stats the same: a library put where one
// was missing, a library replaced (its own needs with it), one taken
// away, a directory closed to the caller: each is seen at the next
// launch.
func TestClosureCacheSeesChanges(t *testing.T) {
	noRacy(t)
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	first, second := filepath.Join(dir, "first"), filepath.Join(dir, "second")
	os.MkdirAll(first, 0o755)
	cc(t, filepath.Join(second, "libx.so"), "int x(void) { return 1; }\n", "-shared", "-fPIC")
	exe := filepath.Join(dir, "prog")
	cc(t, exe, "int x(void); int main(void) { return x(); }\n", "-L"+second, "-lx", "-Wl,-rpath,"+first+":"+second)
	libx1, libx2 := filepath.Join(first, "libx.so"), filepath.Join(second, "libx.so")
	user := &synth.Caller{Uid: 4242, Gid: 4242}

	resolve := func(what string, c *synth.Caller, wantSearches int, want, notWant []string) {
		t.Helper()
		before := closureCache.resolved
		libs, err := resolveLibs(exe, exe, nil, c)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if n := closureCache.resolved - before; n != wantSearches {
			t.Errorf("%s: searched %d times, want %d", what, n, wantSearches)
		}
		got := libPaths(libs)
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("%s: %q lacks %s", what, got, w)
			}
		}
		for _, w := range notWant {
			if slices.Contains(got, w) {
				t.Errorf("%s: %q has %s", what, got, w)
			}
		}
	}
	resolve("first", root, 1, []string{libx2}, []string{libx1})
	resolve("unchanged", root, 0, []string{libx2}, []string{libx1})
	resolve("another caller", user, 1, []string{libx2}, nil)
	resolve("that caller again", user, 0, []string{libx2}, nil)

	// Put where the search looked first and found nothing; it needs a
	// liby (linked against one elsewhere) that second/ lacks.
	build := t.TempDir()
	cc(t, filepath.Join(build, "liby.so"), "int y(void) { return 2; }\n", "-shared", "-fPIC")
	cc(t, libx1, "int y(void); int x(void) { return y(); }\n", "-shared", "-fPIC", "-L"+build, "-ly", "-Wl,-rpath,"+second)
	resolve("a library put in an earlier directory", root, 1, []string{libx1}, []string{libx2})
	// libx1 needs liby, which is not there yet: found once it is.
	cc(t, filepath.Join(second, "liby.so"), "int y(void) { return 2; }\n", "-shared", "-fPIC")
	resolve("its missing need put in place", root, 1, []string{libx1, filepath.Join(second, "liby.so")}, []string{libx2})
	resolve("unchanged", root, 0, []string{libx1, filepath.Join(second, "liby.so")}, nil)
	// Replaced by a version without that need.
	cc(t, libx1+".new", "int x(void) { return 3; }\n", "-shared", "-fPIC")
	if err := os.Rename(libx1+".new", libx1); err != nil {
		t.Fatal(err)
	}
	resolve("replaced by one without the need", root, 1, []string{libx1}, []string{filepath.Join(second, "liby.so")})
	os.Remove(libx1)
	resolve("taken away", root, 1, []string{libx2}, []string{libx1})

	// The user may no longer search second/: nothing found there.
	resolve("the user, nothing changed for it", user, 0, []string{libx2}, nil)
	os.Chmod(second, 0o700)
	resolve("second/ closed to the user", user, 1, nil, []string{libx2})
	resolve("root still may (its paths stat the same)", root, 0, []string{libx2}, nil)
}
