package pspace

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"bproc/fs/synth"
)

func TestOpenExecutableAsCaller(t *testing.T) {
	dir := sharedTempDir(t)
	priv := filepath.Join(dir, "priv")
	os.Mkdir(priv, 0o700)
	prog := filepath.Join(priv, "prog")
	os.WriteFile(prog, []byte("#!/bin/sh\necho secret\n"), 0o755)
	open := filepath.Join(dir, "open")
	os.WriteFile(open, []byte("#!/bin/sh\necho hi\n"), 0o755)
	os.Symlink(prog, filepath.Join(dir, "link"))
	noexec := filepath.Join(dir, "noexec")
	os.WriteFile(noexec, []byte("data"), 0o644)
	user := &synth.Caller{Uid: 4242, Gid: 4242}

	if f, _, err := openExecutable(open, user); err != nil {
		t.Errorf("a user's executable: %v", err)
	} else {
		tmp, _, err := copyPinned(f, t.TempDir(), int64(len("#!/bin/sh\necho hi\n")))
		f.Close()
		data, _ := os.ReadFile(tmp)
		if err != nil || string(data) != "#!/bin/sh\necho hi\n" {
			t.Errorf("copied %q, %v", data, err)
		}
	}
	for _, p := range []string{prog, filepath.Join(dir, "link"), noexec, dir} {
		if f, _, err := openExecutable(p, user); !errors.Is(err, syscall.EACCES) {
			t.Errorf("%s as a user: err = %v, want EACCES", p, err)
			if f != nil {
				f.Close()
			}
		}
	}
	if f, _, err := openExecutable(prog, &synth.Caller{}); err != nil {
		t.Errorf("root: %v", err)
	} else {
		f.Close()
	}
	// The thread that took the user's credentials is gone: the master's
	// own file access is root's again.
	if _, err := os.ReadFile(prog); err != nil {
		t.Errorf("master lost root access: %v", err)
	}
}

func TestOpenRefusesProcMagicLinks(t *testing.T) {
	dir := sharedTempDir(t)
	os.Symlink("/proc/self/exe", filepath.Join(dir, "exe"))
	os.Symlink("/proc/self", filepath.Join(dir, "self"))
	os.Symlink(filepath.Join(dir, "exe"), filepath.Join(dir, "exe2"))
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	paths := []string{"/proc/self/exe", "/proc/thread-self/exe", filepath.Join(dir, "exe"), filepath.Join(dir, "exe2"),
		filepath.Join(dir, "self/exe"), filepath.Join(dir, "self/cwd/x"), "/proc/self/root/bin/true",
		"/proc/self/fd/" + itoa(int(f.Fd()))}
	for _, c := range []*synth.Caller{{Uid: 4242, Gid: 4242}, {}} {
		for _, p := range paths {
			f, _, err := openExecutable(p, c)
			if err == nil {
				f.Close()
				t.Errorf("uid %d: %s opened: it is the master's own", c.Uid, p)
				continue
			}
			if !strings.Contains(err.Error(), "magic link") {
				t.Errorf("uid %d: %s: %v, want the magic-link refusal", c.Uid, p, err)
			}
		}
	}
	os.Symlink("b", filepath.Join(dir, "a"))
	os.Symlink("a", filepath.Join(dir, "b"))
	if _, _, err := openExecutable(filepath.Join(dir, "a"), &synth.Caller{}); !errors.Is(err, syscall.ELOOP) || strings.Contains(err.Error(), "magic") {
		t.Errorf("a symlink loop: %v, want a plain ELOOP", err)
	}
	if f, _, err := openExecutable("/bin/true", &synth.Caller{Uid: 4242, Gid: 4242}); err != nil {
		t.Errorf("/bin/true: %v", err)
	} else {
		f.Close()
	}
}

func TestSearchPathAsCaller(t *testing.T) {
	dir := sharedTempDir(t)
	mk := func(sub string, mode os.FileMode, file os.FileMode) string {
		d := filepath.Join(dir, sub)
		os.Mkdir(d, 0o755)
		if file != 0 {
			os.WriteFile(filepath.Join(d, "prog"), []byte("#!/bin/sh\n"), file)
		}
		os.Chmod(d, mode)
		return d
	}
	closed := mk("closed", 0o700, 0o755) // root's, the user cannot search it
	noexec := mk("noexec", 0o755, 0o644)
	open := mk("open", 0o755, 0o755)
	empty := mk("empty", 0o755, 0)
	user := &synth.Caller{Uid: 4242, Gid: 4242}
	for _, tc := range []struct {
		path  string
		want  string
		errno syscall.Errno
	}{
		{closed + ":" + noexec + ":" + open, open + "/prog", 0},
		{closed + ":" + empty, "", syscall.EACCES},
		{noexec + ":" + empty, "", syscall.EACCES},
		{empty + ":" + dir + "/nonexistent", "", syscall.ENOENT},
		{"rel:" + open, open + "/prog", 0},
	} {
		got, err := searchPath("prog", tc.path, "", user)
		if got != tc.want || (tc.errno != 0) != (err != nil) || (tc.errno != 0 && !errors.Is(err, tc.errno)) {
			t.Errorf("PATH=%s: %q, %v; want %q, %v", tc.path, got, err, tc.want, tc.errno)
		}
	}
	if got, err := searchPath("prog", "open", dir, user); got != dir+"/open/prog" || err != nil {
		t.Errorf("a relative PATH entry against the writer's cwd: %q, %v", got, err)
	}
	if got, err := searchPath("prog", closed+":"+open, "", &synth.Caller{}); got != closed+"/prog" || err != nil {
		t.Errorf("root: %q, %v", got, err)
	}
}

// sharedTempDir is a temporary directory other users can search, for a
// test of a user's view from the master's; it skips unless run as root.
func sharedTempDir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: checks a user's view from the master's")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755) // t.TempDir makes its parent 0700
	return dir
}
