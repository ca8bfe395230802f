package job

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"bproc/fs/slaveproto"

	"golang.org/x/sys/unix"
)

// The library cache's node side: a start message lists what the binary
// needs as the master found it (fs/pspace/libs.go). A library at the same
// path on the node with the same content is used where it is; the others
// are fetched by content into the binary cache, as DIR/HASH/NAME with
// NAME the name the binary asks for, once per node. Then:
//
//   - with the interpreter on the node, the binary runs as always, with
//     the fetched libraries' directories first in LD_LIBRARY_PATH: its
//     /proc/PID/exe, argv[0] and comm are the binary's, and programs it
//     runs inherit the path;
//   - with the interpreter fetched too, the binary runs through it:
//     `ld.so --argv0 ARGV0 --library-path DIRS BIN ARGS` (glibc 2.33 or
//     later), so argv[0] is kept but /proc/PID/exe is the interpreter.
//
// Jobs run as their user, never set-id, so neither way changes what a
// job may do.

// localHashes remembers the hash of files found on the node, by what the
// kernel says of them: a file is hashed again only once it changed.
var localHashes = struct {
	sync.Mutex
	m map[fileKey]string
}{m: map[fileKey]string{}}

// maxLocalHashes bounds localHashes: past it, it starts over.
const maxLocalHashes = 4096

// sameOnNode reports whether the node has the library l at its path with
// its content. The file is opened as ld.so would open it (symlinks
// followed) and hashed through that descriptor.
func sameOnNode(l *slaveproto.Lib) bool {
	// Only a regular file is opened: opening a device can do things.
	var st unix.Stat_t
	if err := unix.Stat(l.Path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != l.Size {
		return false
	}
	// A version hashed before needs no open: the stat names it (a
	// launch checked each library with four calls more).
	localHashes.Lock()
	sum, ok := localHashes.m[keyOfStat(&st)]
	localHashes.Unlock()
	if ok {
		return sum == l.Hash
	}
	f, err := os.OpenFile(l.Path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != l.Size {
		return false
	}
	k := keyOfStat(&st)
	localHashes.Lock()
	sum, ok = localHashes.m[k]
	localHashes.Unlock()
	if !ok {
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return false
		}
		sum = hex.EncodeToString(h.Sum(nil))
		localHashes.Lock()
		if len(localHashes.m) >= maxLocalHashes {
			clear(localHashes.m)
		}
		localHashes.m[k] = sum
		localHashes.Unlock()
	}
	return sum == l.Hash
}

// withLibs makes sure the libraries of job m are on the node and says
// how to run the binary bin with them: the program, argv and environment
// to exec.
func (s *Slave) withLibs(tree Opener, m *slaveproto.Msg, bin string) (string, []string, []string, error) {
	if len(m.Libs) == 0 {
		return bin, m.Argv, m.Env, nil
	}
	interp := ""
	var dirs []string
	for i := range m.Libs {
		l := &m.Libs[i]
		if !filepath.IsAbs(l.Path) {
			return "", nil, nil, fmt.Errorf("library path %q is not absolute: %w", l.Path, syscall.EINVAL)
		}
		if sameOnNode(l) {
			continue
		}
		p, fetched, err := s.cache.fetch(tree, s.CacheDir, &slaveproto.Msg{Hash: l.Hash, Size: l.Size, Path: l.Path, Public: l.Public})
		if err != nil {
			return "", nil, nil, fmt.Errorf("fetching %s: %w", l.Path, err)
		}
		if fetched {
			s.logf("job %d: fetched library %s (%s, %d bytes)", m.Pid, l.Path, l.Hash, l.Size)
		}
		if l.Interp {
			interp = p
		} else if d := filepath.Dir(p); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	if interp == "" && len(dirs) == 0 {
		return bin, m.Argv, m.Env, nil
	}
	env := make([]string, 0, len(m.Env)+1)
	old, had := "", false
	for _, kv := range m.Env {
		if v, ok := strings.CutPrefix(kv, "LD_LIBRARY_PATH="); ok {
			old, had = v, true
			continue
		}
		env = append(env, kv)
	}
	path := strings.Join(dirs, ":")
	if had && old != "" {
		path = strings.TrimPrefix(path+":"+old, ":")
	}
	if interp == "" {
		return bin, m.Argv, append(env, "LD_LIBRARY_PATH="+path), nil
	}
	// --library-path replaces LD_LIBRARY_PATH for this program only: the
	// environment the job sees stays the user's.
	argv0 := bin
	if len(m.Argv) > 0 {
		argv0 = m.Argv[0]
	}
	argv := []string{filepath.Base(interp), "--argv0", argv0}
	if path != "" {
		argv = append(argv, "--library-path", path)
	}
	argv = append(argv, bin)
	if len(m.Argv) > 1 {
		argv = append(argv, m.Argv[1:]...)
	}
	return interp, argv, m.Env, nil
}
