package job

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
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

func TestBinCacheFetchesOnceAndEvictsIdle(t *testing.T) {
	tree := &binTree{bins: map[string][]byte{}}
	c := &binCache{mem: map[string]*memBin{}}
	first := tree.add([]byte("binary 0"))
	p, release, err := c.get(tree, first, 8)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); string(got) != "binary 0" {
		t.Fatalf("cached binary reads %q", got)
	}
	if _, r2, _ := c.get(tree, first, 8); tree.fetches != 1 {
		t.Fatalf("second get fetched again (%d fetches)", tree.fetches)
	} else {
		r2()
	}
	// Fill the cache past its limit while the first binary is in use: it
	// must survive, and the oldest idle one goes instead.
	var hashes []string
	for i := 1; i <= memCacheMax; i++ {
		h := tree.add([]byte(fmt.Sprintf("binary %d", i)))
		hashes = append(hashes, h)
		_, r, err := c.get(tree, h, 8)
		if err != nil {
			t.Fatal(err)
		}
		r()
	}
	if c.mem[first] == nil || c.mem[hashes[0]] != nil || len(c.mem) != memCacheMax {
		t.Fatalf("in use kept=%v, oldest idle evicted=%v, %d entries (limit %d)",
			c.mem[first] != nil, c.mem[hashes[0]] == nil, len(c.mem), memCacheMax)
	}
	release()
	bad := tree.add([]byte("x"))
	tree.bins[bad] = []byte("tampered")
	if _, _, err := c.get(tree, bad, 1); err == nil {
		t.Fatal("a binary whose hash does not match was accepted")
	}
}
