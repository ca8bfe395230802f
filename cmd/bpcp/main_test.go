package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"bproc/client/clienttest"
	"bproc/cmd/internal/clitest"
)

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want endpoint
	}{
		{"3:/tmp/x", endpoint{remote: true, node: 3, path: "/tmp/x"}},
		{"n12:rel", endpoint{remote: true, node: 12, path: "rel"}},
		{"-1:/etc/hosts", endpoint{remote: true, node: -1, path: "/etc/hosts"}},
		{"master:/x", endpoint{remote: true, node: -1, path: "/x"}},
		{"/tmp/a:b", endpoint{path: "/tmp/a:b"}},
		{"host:/x", endpoint{path: "host:/x"}},
		{"3x:/y", endpoint{path: "3x:/y"}},
		{"plain", endpoint{path: "plain"}},
		{"3:a:b", endpoint{remote: true, node: 3, path: "a:b"}},
		{"n[0-3,7]:/x", endpoint{remote: true, spec: "n[0-3,7]", path: "/x"}},
		{"0-3:/x", endpoint{remote: true, spec: "0-3", path: "/x"}},
		{"allup,^2:/x", endpoint{remote: true, spec: "allup,^2", path: "/x"}},
		{"all:rel", endpoint{remote: true, spec: "all", path: "rel"}},
		{"node3:/x", endpoint{path: "node3:/x"}}, // hostnames stay local names
		{"a.b:/x", endpoint{path: "a.b:/x"}},
	} {
		got, err := parseEndpoint(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("%q: got %+v %v, want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "3:", "n4:", "n[0-1]:"} {
		if _, err := parseEndpoint(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestPrologue(t *testing.T) {
	clitest.Prologue(t, "bpcp", run, "src... dst", []string{}, []string{"onlyone"}, []string{"--bogus", "a", "b"}, []string{"3:", "/tmp"})
}

func umask() os.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return os.FileMode(m)
}

// Local copies need no cluster and exercise the same file and tar paths.
func TestLocalCopies(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("hello\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	old := time.Unix(1_000_000_000, 0)
	os.Chtimes(src, old, old)
	var out bytes.Buffer

	// -p keeps mode and mtime.
	dst := filepath.Join(dir, "dst")
	if code := run([]string{"-p", src, dst}, nil, &out, os.Stderr); code != 0 {
		t.Fatalf("copy: exit %d", code)
	}
	fi, err := os.Stat(dst)
	if err != nil || fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(old) {
		t.Errorf("-p: %v %v %v", fi.Mode(), fi.ModTime(), err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "hello\n" {
		t.Errorf("content %q", b)
	}

	// Several sources into a directory; a missing one fails the run.
	into := filepath.Join(dir, "into")
	os.Mkdir(into, 0o755)
	if code := run([]string{src, dst, filepath.Join(dir, "missing"), into}, nil, &out, os.Stderr); code != 1 {
		t.Errorf("missing source: exit %d", code)
	}
	for _, n := range []string{"src", "dst"} {
		if b, err := os.ReadFile(filepath.Join(into, n)); err != nil || string(b) != "hello\n" {
			t.Errorf("into/%s: %q %v", n, b, err)
		}
	}
	if code := run([]string{src, dst, filepath.Join(dir, "src")}, nil, &out, os.Stderr); code != 1 {
		t.Errorf("several sources to a file: exit %d", code)
	}
	// A failed copy loses nothing; an existing destination keeps its mode.
	keep := filepath.Join(dir, "keep")
	os.WriteFile(keep, []byte("precious\n"), 0o600)
	if code := run([]string{filepath.Join(dir, "missing"), keep}, nil, &out, os.Stderr); code != 1 {
		t.Errorf("missing source: exit %d", code)
	}
	if code := run([]string{src, keep}, nil, &out, os.Stderr); code != 0 {
		t.Errorf("copy over: exit %d", code)
	}
	if fi, err := os.Stat(keep); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("copied over a 0600 file: %v %v", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(keep); string(b) != "hello\n" {
		t.Errorf("copied over: %q", b)
	}
	// Through a symlink, the file it points to is written.
	link := filepath.Join(dir, "link")
	os.Symlink("keep", link)
	os.WriteFile(src, []byte("via link\n"), 0o640)
	if code := run([]string{src, link}, nil, &out, os.Stderr); code != 0 {
		t.Errorf("copy to a symlink: exit %d", code)
	}
	if b, _ := os.ReadFile(keep); string(b) != "via link\n" {
		t.Errorf("through a symlink: %q", b)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symlink was replaced: %v %v", fi, err)
	}
	os.WriteFile(src, []byte("hello\n"), 0o640)

	// A directory needs -r; with it, the tree is copied.
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("no tar: skipping -r")
	}
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "a", "b"), 0o755)
	os.WriteFile(filepath.Join(tree, "a", "b", "f"), []byte("deep"), 0o600)
	if code := run([]string{tree, filepath.Join(dir, "copy")}, nil, &out, os.Stderr); code != 1 {
		t.Errorf("directory without -r: exit %d", code)
	}
	if code := run([]string{"-r", tree, filepath.Join(dir, "copy")}, nil, &out, os.Stderr); code != 0 {
		t.Fatalf("-r: exit %d", code)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "copy", "a", "b", "f")); err != nil || string(b) != "deep" {
		t.Errorf("-r new dir: %q %v", b, err)
	}
	// Into an existing directory, the tree lands under its own name.
	if code := run([]string{"-r", tree, into}, nil, &out, os.Stderr); code != 0 {
		t.Fatalf("-r into: exit %d", code)
	}
	if b, err := os.ReadFile(filepath.Join(into, "tree", "a", "b", "f")); err != nil || string(b) != "deep" {
		t.Errorf("-r into dir: %q %v", b, err)
	}
}

// Copies to and from node -1 of an in-process master, through the tree.
func TestLive(t *testing.T) {
	clienttest.Start(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	data := bytes.Repeat([]byte("0123456789abcdef"), 300000) // 4.8 MB
	os.WriteFile(src, data, 0o640)
	old := time.Unix(1_200_000_000, 0)
	os.Chtimes(src, old, old)
	var out bytes.Buffer
	up := filepath.Join(dir, "up")
	if code := run([]string{"-p", src, "-1:" + up}, nil, &out, os.Stderr); code != 0 {
		t.Fatalf("upload: exit %d", code)
	}
	if b, _ := os.ReadFile(up); !bytes.Equal(b, data) {
		t.Errorf("upload: %d bytes differ", len(b))
	}
	if fi, err := os.Stat(up); err != nil || fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(old) {
		t.Errorf("upload -p: %v %v", fi.Mode(), fi.ModTime())
	}
	down := filepath.Join(dir, "down")
	if code := run([]string{"master:" + up, down}, nil, &out, os.Stderr); code != 0 {
		t.Fatalf("download: exit %d", code)
	}
	if b, _ := os.ReadFile(down); !bytes.Equal(b, data) {
		t.Errorf("download: %d bytes differ", len(b))
	}
	// A failed copy leaves the destination as it was, in both directions
	// and from node to node, and no temporary file.
	if code := run([]string{"-1:" + filepath.Join(dir, "missing"), down}, nil, &out, os.Stderr); code != 1 {
		t.Errorf("missing remote file: exit %d", code)
	}
	if b, _ := os.ReadFile(down); !bytes.Equal(b, data) {
		t.Errorf("a failed download left %d bytes of %d in the destination", len(b), len(data))
	}
	if code := run([]string{"-1:" + filepath.Join(dir, "missing"), "-1:" + up}, nil, &out, os.Stderr); code != 1 {
		t.Errorf("missing remote file to a node: exit %d", code)
	}
	if b, _ := os.ReadFile(up); !bytes.Equal(b, data) {
		t.Errorf("a failed node-to-node copy left %d bytes of %d in the destination", len(b), len(data))
	}
	if code := run([]string{"-p", "-1:" + filepath.Join(dir, "missing"), "-1:" + up}, nil, &out, os.Stderr); code != 1 {
		t.Errorf("-p, missing remote file: exit %d", code)
	}
	if b, _ := os.ReadFile(up); !bytes.Equal(b, data) {
		t.Errorf("-p: a failed copy left %d bytes of %d in the destination", len(b), len(data))
	}
	// An existing destination keeps its mode; a new one gets 0666 less
	// the umask.
	os.Chmod(up, 0o600)
	if code := run([]string{"-1:" + src, "-1:" + up}, nil, &out, os.Stderr); code != 0 {
		t.Fatalf("copy over: exit %d", code)
	}
	if fi, err := os.Stat(up); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("copied over a 0600 file: %v %v", fi.Mode(), err)
	}
	fresh := filepath.Join(dir, "fresh")
	if code := run([]string{src, "-1:" + fresh}, nil, &out, os.Stderr); code != 0 {
		t.Fatalf("copy to a new file: exit %d", code)
	}
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o666&^umask() {
		t.Errorf("a new file: %v %v, want %o", fi.Mode(), err, 0o666&^umask())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*.bpcp-*")); len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("no tar")
	}
	os.MkdirAll(filepath.Join(dir, "t", "a"), 0o755)
	os.WriteFile(filepath.Join(dir, "t", "a", "f"), []byte("deep"), 0o600)
	if code := run([]string{"-r", filepath.Join(dir, "t"), "-1:" + filepath.Join(dir, "t2")}, nil, &out, os.Stderr); code != 0 {
		t.Fatalf("-r upload: exit %d", code)
	}
	if code := run([]string{"-r", "-1:" + filepath.Join(dir, "t2"), filepath.Join(dir, "t3")}, nil, &out, os.Stderr); code != 0 {
		t.Fatalf("-r download: exit %d", code)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "t3", "a", "f")); err != nil || string(b) != "deep" {
		t.Errorf("-r round trip: %q %v", b, err)
	}
}
