// Package treetest has the helpers tests share for reading a bproc tree,
// whichever way they reach it: a synth.Local, a 9P srv.Client, a mount.
package treetest

import (
	"io"
	"os"
	"testing"
)

// Open opens file name with flag by open (a tree's Open method); it ends
// the test when the file cannot be opened.
func Open[F io.Closer](t testing.TB, open func(name string, flag int) (F, error), name string, flag int) F {
	t.Helper()
	f, err := open(name, flag)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	return f
}

// Read returns the whole of file name, opened read-only by open; it ends
// the test when the file cannot be opened or read.
func Read[F io.ReadCloser](t testing.TB, open func(name string, flag int) (F, error), name string) string {
	t.Helper()
	f := Open(t, open, name, os.O_RDONLY)
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

// Want checks that file name, opened by open, reads want; a mismatch
// fails the test and it goes on.
func Want[F io.ReadCloser](t testing.TB, open func(name string, flag int) (F, error), name, want string) {
	t.Helper()
	if got := Read(t, open, name); got != want {
		t.Errorf("%s = %q, want %q", name, got, want)
	}
}

// DirNames lists directory dir of the file system (a mount, a spool),
// sorted as os.ReadDir returns them; it ends the test when dir cannot be
// read.
func DirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
