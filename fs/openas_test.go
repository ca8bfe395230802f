package fs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestOpenExecutableAsCaller(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: checks a user's view from the master's")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755) // t.TempDir makes its parent 0700
	priv := filepath.Join(dir, "priv")
	os.Mkdir(priv, 0o700)
	prog := filepath.Join(priv, "prog")
	os.WriteFile(prog, []byte("#!/bin/sh\necho secret\n"), 0o755)
	open := filepath.Join(dir, "open")
	os.WriteFile(open, []byte("#!/bin/sh\necho hi\n"), 0o755)
	os.Symlink(prog, filepath.Join(dir, "link"))
	noexec := filepath.Join(dir, "noexec")
	os.WriteFile(noexec, []byte("data"), 0o644)
	user := &Caller{Uid: 4242, Gid: 4242}

	if f, _, err := openExecutable(open, user); err != nil {
		t.Errorf("a user's executable: %v", err)
	} else {
		data, err := readPinned(f)
		f.Close()
		if err != nil || string(data) != "#!/bin/sh\necho hi\n" {
			t.Errorf("read %q, %v", data, err)
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
	if f, _, err := openExecutable(prog, &Caller{}); err != nil {
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
