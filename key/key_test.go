package key

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "  s3cret-key-of-some-length\n", 0o600)
	k, err := Load(good)
	if err != nil || string(k) != "s3cret-key-of-some-length" {
		t.Errorf("Load(good) = %q, %v", k, err)
	}
	if k, err := Load(write("ro", "abcdefghijklmnop", 0o400)); err != nil || string(k) != "abcdefghijklmnop" {
		t.Errorf("Load(0400) = %q, %v", k, err)
	}
	os.Symlink(good, filepath.Join(dir, "link"))
	big := strings.Repeat("k", 100<<10)
	cases := []struct {
		path string
		want string
	}{
		{filepath.Join(dir, "missing"), "no such file"},
		{write("empty", " \n\t", 0o600), "empty"},
		{write("short", "abc\n", 0o600), "too short"},
		{write("groupread", "abc", 0o640), "chmod 600"},
		{write("otherwrite", "abc", 0o602), "chmod 600"},
		{write("big", big, 0o600), "larger than"},
		{dir, "not a regular file"},
		{filepath.Join(dir, "link"), "symbolic link"},
	}
	for _, tc := range cases {
		_, err := Load(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%s) = %v, want error containing %q", filepath.Base(tc.path), err, tc.want)
		}
	}
}

func TestLoadWrongOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the file away")
	}
	p := filepath.Join(t.TempDir(), "k")
	if err := os.WriteFile(p, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "owned by uid 1000") {
		t.Errorf("Load of a file owned by another user: %v", err)
	}
}

func TestLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "etc", "bproc", "cluster.key")
	k1, err := LoadOrCreate(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) != 64 {
		t.Errorf("created key has %d hex digits, want 64", len(k1))
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: %v %v", fi, err)
	}
	di, err := os.Stat(filepath.Dir(p))
	if err != nil || di.Mode().Perm() != 0o755 {
		t.Errorf("key dir mode: %v %v", di, err)
	}
	k2, err := LoadOrCreate(p)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Errorf("second LoadOrCreate = %q, %v; want the same key %q", k2, err, k1)
	}
	// Another machine's key is different.
	k3, err := LoadOrCreate(filepath.Join(dir, "other.key"))
	if err != nil || bytes.Equal(k1, k3) {
		t.Errorf("two created keys are equal or failed: %v", err)
	}
	// A bad existing key is not silently replaced.
	os.Chmod(p, 0o644)
	if _, err := LoadOrCreate(p); err == nil {
		t.Error("LoadOrCreate accepted a world-readable key")
	}
}
