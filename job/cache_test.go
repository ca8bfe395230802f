package job

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"bproc/fs"
)

// binTree serves slave/bin/HASH from a map and counts fetches.
type binTree struct {
	bins    map[string][]byte
	fetches int
}

type nopCloser struct{ io.Reader }

func (nopCloser) Write([]byte) (int, error) { return 0, os.ErrPermission }
func (nopCloser) Close() error              { return nil }

func (t *binTree) Open(name string, _ int) (io.ReadWriteCloser, error) {
	b, ok := t.bins[strings.TrimPrefix(name, "slave/bin/")]
	if !ok {
		return nil, os.ErrNotExist
	}
	t.fetches++
	return nopCloser{bytes.NewReader(b)}, nil
}

func (t *binTree) add(data []byte) string {
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])
	t.bins[h] = data
	return h
}

func TestBinCache(t *testing.T) {
	tree := &binTree{bins: map[string][]byte{}}
	c := &binCache{}
	h := tree.add([]byte("#!/bin/sh\necho hi\n"))
	p, err := c.get(tree, "", &fs.Msg{Hash: h, Size: 18, Path: "/usr/bin/greet", Public: true})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(p) != "greet" {
		t.Errorf("cached as %s: the job should keep its name", p)
	}
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("public binary: %v, %v; want mode 0755", st.Mode(), err)
	}
	if st, _ := os.Stat(filepath.Dir(filepath.Dir(p))); st.Mode().Perm() != 0o711 {
		t.Errorf("cache directory mode %v, want 0711 (not listable)", st.Mode().Perm())
	}
	// The same content under another name: no second fetch.
	p2, err := c.get(tree, "", &fs.Msg{Hash: h, Size: 18, Path: "/tmp/copy"})
	if err != nil || tree.fetches != 1 || filepath.Base(p2) != "copy" {
		t.Errorf("second name: %s, %v, %d fetches", p2, err, tree.fetches)
	}
	secret := tree.add([]byte("secret binary"))
	p3, err := c.get(tree, "", &fs.Msg{Hash: secret, Size: 13, Path: "/opt/x"})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(p3); st.Mode().Perm() != 0o711 {
		t.Errorf("a binary others could not read on the master is %v here, want 0711", st.Mode().Perm())
	}
	bad := tree.add([]byte("x"))
	tree.bins[bad] = []byte("tampered")
	if _, err := c.get(tree, "", &fs.Msg{Hash: bad, Size: 1, Path: "/x"}); err == nil {
		t.Error("a binary whose hash does not match was accepted")
	}
	for _, m := range []*fs.Msg{{Hash: "../../etc", Path: "/x"}, {Hash: h, Size: -1, Path: "/x"}, {Hash: h, Size: maxBinary + 1, Path: "/x"}} {
		if _, err := c.get(tree, "", m); err == nil {
			t.Errorf("%+v accepted", m)
		}
	}
	dir := c.dir
	c.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temporary cache %s left behind: %v", dir, err)
	}
}
