package job

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"bproc/fs/slaveproto"
)

// withLibs: a library the node has with the same content stays where it
// is, one it lacks or has otherwise is fetched once and put first in
// LD_LIBRARY_PATH; a fetched interpreter runs the binary, argv[0] kept.
func TestWithLibs(t *testing.T) {
	tree := newBinTree()
	s := &Slave{CacheDir: t.TempDir(), cache: &binCache{}}
	defer s.Close()
	node := t.TempDir()
	lib := func(name, content string, onNode string) slaveproto.Lib {
		data := []byte(content)
		h := tree.add(data)
		p := filepath.Join(node, name)
		if onNode != "" {
			if err := os.WriteFile(p, []byte(onNode), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return slaveproto.Lib{Path: p, Hash: h, Size: int64(len(data))}
	}
	same := lib("libsame.so", "same", "same")
	other := lib("libother.so", "master's", "node's!!")
	missing := lib("libmissing.so", "missing", "")
	m := &slaveproto.Msg{Pid: 1, Argv: []string{"prog", "a"}, Env: []string{"A=1", "LD_LIBRARY_PATH=/user"},
		Libs: []slaveproto.Lib{same, other, missing}}

	for range 2 {
		prog, argv, env, err := s.withLibs(tree, m, "/cache/prog")
		if err != nil {
			t.Fatal(err)
		}
		if prog != "/cache/prog" || !slices.Equal(argv, m.Argv) {
			t.Errorf("prog %s argv %q, want the binary as sent", prog, argv)
		}
		var ld string
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, "LD_LIBRARY_PATH="); ok {
				ld = v
			}
		}
		dirs := strings.Split(ld, ":")
		if len(dirs) != 3 || dirs[2] != "/user" || !slices.Contains(env, "A=1") {
			t.Fatalf("env %q: want two fetched directories, then the user's", env)
		}
		for i, l := range []slaveproto.Lib{other, missing} {
			if b, err := os.ReadFile(filepath.Join(dirs[i], filepath.Base(l.Path))); err != nil || string(b) != map[int]string{0: "master's", 1: "missing"}[i] {
				t.Errorf("%s: %q, %v", dirs[i], b, err)
			}
		}
	}
	if n := tree.count(same.Hash); n != 0 {
		t.Errorf("the library the node has was fetched %d times", n)
	}
	if n, k := tree.count(other.Hash), tree.count(missing.Hash); n != 1 || k != 1 {
		t.Errorf("fetched %d and %d times, want once each", n, k)
	}

	interp := lib("ld.so", "an interpreter", "")
	interp.Interp = true
	m.Libs = []slaveproto.Lib{interp, same}
	prog, argv, env, err := s.withLibs(tree, m, "/cache/prog")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ld.so", "--argv0", "prog", "--library-path", "/user", "/cache/prog", "a"}
	if filepath.Base(prog) != "ld.so" || !slices.Equal(argv, want) || !slices.Equal(env, m.Env) {
		t.Errorf("through the interpreter: %s %q %q, want ld.so %q and the env as sent", prog, argv, env, want)
	}

	m.Libs = []slaveproto.Lib{{Path: "relative.so", Hash: same.Hash, Size: same.Size}}
	if _, _, _, err := s.withLibs(tree, m, "/cache/prog"); err == nil {
		t.Error("a relative library path accepted")
	}
	m.Libs = []slaveproto.Lib{{Path: "/x/libbad.so", Hash: "../../etc", Size: 1}}
	if _, _, _, err := s.withLibs(tree, m, "/cache/prog"); err == nil {
		t.Error("a bad hash accepted")
	}
}

// sameOnNode answers from the stat for a version it hashed before, and
// sees a library rewritten in place (same size, even its mtime put
// back) or replaced as a different one.
func TestSameOnNodeSeesChanges(t *testing.T) {
	p := filepath.Join(t.TempDir(), "libx.so")
	hash := func(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:]) }
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	same := func(content string) bool {
		return sameOnNode(&slaveproto.Lib{Path: p, Hash: hash(content), Size: int64(len(content))})
	}
	write("version one")
	if !same("version one") || !same("version one") {
		t.Fatal("the node's own copy, hashed and then known: not the same")
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	write("version two") // same size
	os.Chtimes(p, st.ModTime(), st.ModTime())
	if same("version one") || !same("version two") {
		t.Error("rewritten in place with its mtime put back: not seen")
	}
	tmp := p + ".new"
	if err := os.WriteFile(tmp, []byte("version 3!!"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Rename(tmp, p)
	if same("version two") || !same("version 3!!") {
		t.Error("replaced: not seen")
	}
}
