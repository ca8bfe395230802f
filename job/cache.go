package job

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"bproc/fs/slaveproto"

	"golang.org/x/sys/unix"
)

// maxBinary is the largest binary a master ships (fs refuses larger ones).
const maxBinary = slaveproto.MaxBinary

// binCache keeps shipped binaries on the node, each fetched once, as
// DIR/HASH/NAME: NAME is the master's file name, so ps and pkill show the
// job by its name and a script's interpreter can open the script. DIR is
// bpslave -c's directory, or a private temporary one removed by Close. DIR
// and DIR/HASH are 0711, so users may run what is there without listing
// it; a binary is 0755 when everyone could read it on the master, 0711
// otherwise (execve needs no read permission).
//
// Nothing found on disk is trusted: DIR must be the slave user's, reached
// without a symlink, writable by nobody else, under parents nobody else
// may rename it in (CheckCacheDir), and a cached file is hashed before its
// first use in this run and run only while it is still that file (same
// inode, size and times). Since only the slave's user can change DIR's
// entries, the file checked is the file the job runs.
//
// The lock covers bookkeeping only: fetches of different binaries run side
// by side, and a start waits only for a fetch of its own binary.
type binCache struct {
	mu       sync.Mutex
	dir      string
	temp     bool
	verified map[string]fileKey // path -> the file that hashed right
	inflight map[string]*flight // by hash
	// byHash is a verified path of each hash, for peers (peer.go); begun
	// is closed (and replaced) when a fetch begins, for peers waiting
	// for a binary the node has not been asked for yet.
	byHash map[string]string
	begun  chan struct{}

	// dial, when set, connects to another slave's peer listener: a
	// start message's From are tried before the master (peer.go).
	dial PeerDialer
	logf func(format string, args ...any)
	// peerFailed counts fetches from peers that failed (then the next
	// peer, or the master, was tried).
	peerFailed atomic.Uint64
}

// flight is one fetch (or check) of a hash in progress; done is closed
// when it ends. Peers are served a fetch as it is written (peer.go): the
// rest is its progress, under binCache.mu.
type flight struct {
	done chan struct{}

	tmp      string    // the try's temporary file; "" between tries
	tmpID    [2]uint64 // its device and inode
	gen      int       // one more per try
	written  int64     // bytes of this try in tmp
	complete bool      // this try's file is whole and hashed right
	grew     chan struct{}
}

// progress reports a fetch's tries to its flight; a nil one reports nothing.
type progress struct {
	c *binCache
	f *flight
}

// grewLocked is closed when the flight next makes progress.
func (f *flight) grewLocked() chan struct{} {
	if f.grew == nil {
		f.grew = make(chan struct{})
	}
	return f.grew
}

func (p *progress) update(fn func(f *flight)) {
	if p == nil {
		return
	}
	p.c.mu.Lock()
	fn(p.f)
	if p.f.grew != nil {
		close(p.f.grew)
		p.f.grew = nil
	}
	p.c.mu.Unlock()
}

func (p *progress) begin(tmp *os.File) {
	var st unix.Stat_t
	if p == nil || unix.Fstat(int(tmp.Fd()), &st) != nil {
		return // not served as it is written: peers wait for the end
	}
	p.update(func(f *flight) {
		f.tmp, f.tmpID, f.gen, f.written, f.complete = tmp.Name(), [2]uint64{st.Dev, st.Ino}, f.gen+1, 0, false
	})
}
func (p *progress) wrote(n int) { p.update(func(f *flight) { f.written += int64(n) }) }
func (p *progress) end(ok bool) { p.update(func(f *flight) { f.tmp, f.complete = "", ok }) }

// fileKey identifies a file's content as far as the kernel tells: a write,
// a chmod or a replacement changes it.
type fileKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime unix.Timespec
}

func keyOfStat(st *unix.Stat_t) fileKey {
	return fileKey{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim, ctime: st.Ctim}
}

func keyOf(p string) (fileKey, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return fileKey{}, err
	}
	return keyOfStat(&st), nil
}

// cacheName checks a start message's hash and derives the cached file's
// name from the master's path: never empty, never a path of its own.
func cacheName(hash, path string) (string, string, error) {
	if len(hash) != 64 || strings.Trim(hash, "0123456789abcdef") != "" {
		return "", "", fmt.Errorf("bad binary hash %q: %w", hash, syscall.EINVAL)
	}
	name := filepath.Base(path)
	if name == "." || name == "/" || name == ".." || strings.ContainsAny(name, "/\x00") || len(name) > 255 {
		name = "prog"
	}
	return hash, name, nil
}

// CheckCacheDir says whether dir may hold the slave's binary cache,
// creating it if need be: see binCache. "" (a private temporary
// directory) is always fine.
func CheckCacheDir(dir string) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("binary cache: %w", err)
	}
	return secureDir(dir)
}

// secureDir refuses a cache directory someone other than the slave's user
// could plant files in, or swap for another.
func secureDir(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("binary cache %s: %w", dir, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("binary cache %s: %w", dir, err)
	}
	if real != abs {
		return fmt.Errorf("binary cache %s: reached through a symlink (it is %s): %w", dir, real, syscall.EPERM)
	}
	uid := uint32(os.Geteuid())
	var st unix.Stat_t
	if err := unix.Lstat(abs, &st); err != nil {
		return fmt.Errorf("binary cache %s: %w", dir, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("binary cache %s: not a directory: %w", dir, syscall.ENOTDIR)
	case st.Uid != uid:
		return fmt.Errorf("binary cache %s: owned by uid %d, not by the slave's uid %d: %w", dir, st.Uid, uid, syscall.EPERM)
	case st.Mode&0o022 != 0:
		return fmt.Errorf("binary cache %s: writable by group or others (mode %04o): %w", dir, st.Mode&0o7777, syscall.EPERM)
	}
	// Whoever may write a parent may rename the cache away and put a
	// directory of theirs in its place, unless the sticky bit (/tmp)
	// keeps them to their own entries.
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("binary cache %s: %s: %w", dir, p, err)
		}
		if st.Uid != 0 && st.Uid != uid {
			return fmt.Errorf("binary cache %s: its parent %s is owned by uid %d: %w", dir, p, st.Uid, syscall.EPERM)
		}
		if st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
			return fmt.Errorf("binary cache %s: its parent %s is writable by others (mode %04o): %w", dir, p, st.Mode&0o7777, syscall.EPERM)
		}
		if p == "/" {
			return nil
		}
	}
}

// ensureDir picks the cache directory on first use and checks it on
// every use: a check is a few lstats, a job start far more.
func (c *binCache) ensureDir(want string) error {
	if c.dir == "" {
		if want == "" {
			d, err := os.MkdirTemp("", "bpslave-bin-")
			if err != nil {
				return fmt.Errorf("binary cache: %w", err)
			}
			c.dir, c.temp = d, true
		} else {
			if err := os.MkdirAll(want, 0o711); err != nil {
				return fmt.Errorf("binary cache: %w", err)
			}
			abs, err := filepath.Abs(want)
			if err != nil {
				return fmt.Errorf("binary cache: %w", err)
			}
			c.dir = abs
		}
		err := secureDir(c.dir)
		if err == nil {
			// Users may run what is there, not list it.
			if cerr := os.Chmod(c.dir, 0o711); cerr != nil {
				err = fmt.Errorf("binary cache: %w", cerr)
			}
		}
		if err != nil {
			if c.temp {
				os.Remove(c.dir)
			}
			c.dir, c.temp = "", false
			return err
		}
		c.verified, c.inflight, c.byHash = map[string]fileKey{}, map[string]*flight{}, map[string]string{}
	}
	return secureDir(c.dir)
}

// get returns the path of the job's binary, fetching it if need be.
func (c *binCache) get(tree Opener, want string, m *slaveproto.Msg) (string, error) {
	p, _, err := c.fetch(tree, want, m)
	return p, err
}

// fetch is get, also saying whether this call fetched the file from the
// master (libs.go logs those).
func (c *binCache) fetch(tree Opener, want string, m *slaveproto.Msg) (string, bool, error) {
	hash, name, err := cacheName(m.Hash, m.Path)
	if err != nil {
		return "", false, err
	}
	if m.Size < 0 || m.Size > maxBinary {
		return "", false, fmt.Errorf("binary of %d bytes: %w", m.Size, syscall.EFBIG)
	}
	c.mu.Lock()
	if err := c.ensureDir(want); err != nil {
		c.mu.Unlock()
		return "", false, err
	}
	dir := c.dir
	p := filepath.Join(dir, hash, name)
	for {
		if k, ok := c.verified[p]; ok {
			if now, err := keyOf(p); err == nil && now == k {
				c.mu.Unlock()
				return p, false, nil
			}
			delete(c.verified, p)
		}
		f := c.inflight[hash]
		if f == nil {
			break
		}
		c.mu.Unlock()
		<-f.done
		c.mu.Lock()
	}
	f := &flight{done: make(chan struct{})}
	c.inflight[hash] = f
	if c.begun != nil {
		close(c.begun)
		c.begun = nil
	}
	c.mu.Unlock()

	k, fetched, err := fill(c.sources(tree, m), dir, hash, name, m, &progress{c: c, f: f})

	c.mu.Lock()
	delete(c.inflight, hash)
	if err == nil {
		c.verified[p] = k
		c.byHash[hash] = p
	}
	c.mu.Unlock()
	close(f.done)
	if err != nil {
		return "", false, err
	}
	return p, fetched, nil
}

// fill makes DIR/HASH/NAME a checked copy of the binary: the file already
// there, the same content under another name (a link), or a fetch from
// the first of srcs that gives it whole and with the right hash.
func fill(srcs []source, dir, hash, name string, m *slaveproto.Msg, prog *progress) (fileKey, bool, error) {
	hdir := filepath.Join(dir, hash)
	if err := hashDir(hdir); err != nil {
		return fileKey{}, false, err
	}
	p := filepath.Join(hdir, name)
	k, err := verifyFile(p, hash, m.Size)
	if err == nil {
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		// Not what it claims to be: planted, or damaged. Fetch it anew.
		if err := os.RemoveAll(p); err != nil {
			return fileKey{}, false, fmt.Errorf("binary cache: %w", err)
		}
	}
	if linked, err := linkSibling(hdir, p, hash, m.Size); err != nil {
		return fileKey{}, false, err
	} else if linked {
		// Linked, or another slave sharing the directory got there first.
		if k, err := verifyFile(p, hash, m.Size); err == nil {
			return k, false, nil
		}
		os.RemoveAll(p)
	}
	mode := os.FileMode(0o711)
	if m.Public {
		mode = 0o755
	}
	for i, src := range srcs {
		k, err = fetchInto(src, dir, hash, m.Size, mode, p, prog)
		if err == nil || i == len(srcs)-1 {
			break
		}
		if src.failed != nil {
			src.failed(err)
		}
	}
	return k, err == nil, err
}

// hashDir makes DIR/HASH a directory of ours, replacing anything else.
func hashDir(hdir string) error {
	var st unix.Stat_t
	err := unix.Lstat(hdir, &st)
	if err == nil && (st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != uint32(os.Geteuid()) || st.Mode&0o022 != 0) {
		if err := os.RemoveAll(hdir); err != nil {
			return fmt.Errorf("binary cache: %w", err)
		}
		err = unix.ENOENT
	}
	if err == unix.ENOENT {
		if err := os.Mkdir(hdir, 0o711); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("binary cache: %w", err)
		}
		if err := os.Chmod(hdir, 0o711); err != nil { // past the umask
			return fmt.Errorf("binary cache: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("binary cache: %s: %w", hdir, err)
	}
	return nil
}

// linkSibling links p to a checked file of the same content under another
// name in hdir; false when there is none.
func linkSibling(hdir, p, hash string, size int64) (bool, error) {
	ents, err := os.ReadDir(hdir)
	if err != nil {
		return false, fmt.Errorf("binary cache: %w", err)
	}
	for _, e := range ents {
		other := filepath.Join(hdir, e.Name())
		if other == p {
			continue
		}
		if _, err := verifyFile(other, hash, size); err != nil {
			os.RemoveAll(other)
			continue
		}
		if err := os.Link(other, p); err != nil && !errors.Is(err, fs.ErrExist) {
			return false, fmt.Errorf("binary cache: %w", err)
		}
		return true, nil
	}
	return false, nil
}

// verifyFile checks that p is a regular file of ours that only we can
// change, with the given size and hash, reading it through the descriptor
// it checked.
func verifyFile(p, hash string, size int64) (fileKey, error) {
	// O_NONBLOCK: a fifo planted there must not hang the slave.
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return fileKey{}, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fileKey{}, err
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return fileKey{}, fmt.Errorf("%s: not a regular file", p)
	case st.Uid != uint32(os.Geteuid()) || st.Mode&0o022 != 0:
		return fileKey{}, fmt.Errorf("%s: uid %d, mode %04o: not the slave's alone", p, st.Uid, st.Mode&0o7777)
	case st.Size != size:
		return fileKey{}, fmt.Errorf("%s: %d bytes, want %d", p, st.Size, size)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fileKey{}, fmt.Errorf("%s: %w", p, err)
	}
	if hex.EncodeToString(h.Sum(nil)) != hash {
		return fileKey{}, fmt.Errorf("%s: content does not match its hash", p)
	}
	return keyOfStat(&st), nil
}

// fetchInto streams the binary from from (the master, or a peer) into a
// temporary file in the cache directory, hashing as it writes, and
// renames it to p once the hash is right. On any failure nothing is left
// behind.
func fetchInto(from source, dir, hash string, size int64, mode os.FileMode, p string, prog *progress) (k fileKey, err error) {
	src, err := from.open(hash)
	if err != nil {
		return fileKey{}, fmt.Errorf("opening binary: %w", err)
	}
	defer src.Close()
	removeStale(dir)
	tmp, err := os.CreateTemp(dir, "tmp-")
	if err != nil {
		return fileKey{}, fmt.Errorf("binary cache: %w", err)
	}
	prog.begin(tmp)
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
		prog.end(err == nil)
	}()
	h := sha256.New()
	n, err := copyBinary(tmp, h, src, size, prog)
	if err != nil {
		return fileKey{}, err
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != hash || n != size {
		return fileKey{}, fmt.Errorf("binary arrived corrupt (%d bytes of %d): %w", n, size, syscall.EIO)
	}
	if err := tmp.Chmod(mode); err != nil { // past the umask
		return fileKey{}, fmt.Errorf("binary cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fileKey{}, storeErr(dir, size, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fileKey{}, fmt.Errorf("binary cache: %w", err)
	}
	return keyOf(p)
}

// copyBinary copies at most size+1 bytes (one more shows a liar) from src
// to the file and the hash.
func copyBinary(dst *os.File, h hash.Hash, src io.Reader, size int64, prog *progress) (int64, error) {
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	buf := *bp
	var n int64
	for n <= size {
		r, err := src.Read(buf[:min(int64(len(buf)), size+1-n)])
		if r > 0 {
			h.Write(buf[:r])
			if _, werr := dst.Write(buf[:r]); werr != nil {
				return n, storeErr(filepath.Dir(dst.Name()), size, werr)
			}
			n += int64(r)
			prog.wrote(r)
		}
		if err == io.EOF || (r == 0 && err == nil) {
			break
		}
		if err != nil {
			return n, fmt.Errorf("reading binary: %w", err)
		}
	}
	return n, nil
}

// storeErr says the cache could not take the binary (ENOSPC, EDQUOT...),
// without the temporary file's name.
func storeErr(dir string, size int64, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("binary cache %s: storing %d bytes: %w", dir, size, err)
}

// removeStale removes temporary files a slave left when it died in a
// fetch. Only old ones: another slave may share the directory.
func removeStale(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "tmp-") {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// Close removes a temporary cache.
func (c *binCache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.temp {
		c.temp = false
		return os.RemoveAll(c.dir)
	}
	return nil
}
