package pspace

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"bproc/fs/slaveproto"
	"bproc/fs/synth"

	"golang.org/x/sys/unix"
)

// openAs opens path (O_PATH: no read permission needed) with the caller's
// filesystem credentials, so every directory on the way is searched as the
// caller would search it. The master is root; without this a user could
// run, and so read, files behind directories closed to them.
func openAs(path string, c *synth.Caller) (*os.File, error) {
	var fd int
	err := asCaller(c, func() (err error) {
		fd, err = openPath(path)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openPath opens path O_PATH, refusing /proc's magic links at any depth
// of the resolution: the open runs in the master's process, where
// /proc/self/exe is bpmaster and /proc/self/fd/N the master's own open
// files, whoever the user (a symlink to /proc/self/exe, or a directory
// symlink to /proc/self, would reach them too).
func openPath(path string) (int, error) {
	fd, err := unix.Openat2(unix.AT_FDCWD, path, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ELOOP) && viaProc(path) {
		return -1, fmt.Errorf("refused: it goes through a /proc magic link, which in the master names bpmaster's process, not yours: %w", err)
	}
	return fd, err
}

// viaProc reports whether path's ELOOP came from /proc magic links (a
// symlink loop is ELOOP too, and deserves its own text): only a loop
// stays ELOOP when magic links are allowed. The open is O_PATH and its
// result closed at once.
func viaProc(path string) bool {
	fd, err := unix.Openat2(unix.AT_FDCWD, path, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC})
	if err == nil {
		unix.Close(fd)
	}
	return !errors.Is(err, unix.ELOOP)
}

// asCaller runs fn with the caller's filesystem credentials: on a thread
// of its own for a user, as is for root. The thread, whose credentials
// are the user's for good, stays a while for that same identity's next
// call (credThread): making one per call was a quarter of a user's
// launch on the master (four per exec).
func asCaller(c *synth.Caller, fn func() error) error {
	if c.Root() {
		return fn()
	}
	key := credKey(c)
	credThreads.Lock()
	t := credThreads.m[key]
	credThreads.Unlock()
	ch := make(chan error, 1)
	if t != nil {
		select {
		case t.reqs <- func() { ch <- fn() }:
			return <-ch
		default: // busy, or leaving: a thread of its own, as below
		}
	}
	go func() {
		// Never unlocked: when this goroutine ends, its thread ends with
		// it, and the changed credentials with the thread.
		runtime.LockOSThread()
		if err := setCreds(c); err != nil {
			ch <- err
			return
		}
		ch <- fn()
		serveCreds(key)
	}()
	return <-ch
}

// credThread is an idle thread with one identity's credentials, taking
// that identity's calls; it ends after credIdle without one.
type credThread struct{ reqs chan func() }

var credThreads = struct {
	sync.Mutex
	m map[string]*credThread
}{m: map[string]*credThread{}}

// credIdle is how long a credential thread waits for work; a variable
// for tests (under credThreads' lock).
var credIdle = 2 * time.Second

func credIdleNow() time.Duration {
	credThreads.Lock()
	defer credThreads.Unlock()
	return credIdle
}

// credThreadsMax bounds the idle threads (identities) kept.
const credThreadsMax = 64

// credKey names everything setCreds sets: who the thread is.
func credKey(c *synth.Caller) string {
	b := make([]byte, 0, 24+8*len(c.Groups))
	b = strconv.AppendUint(b, uint64(c.Uid), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(c.Gid), 10)
	for _, g := range c.Groups {
		b = append(b, ',')
		b = strconv.AppendUint(b, uint64(g), 10)
	}
	return string(b)
}

// serveCreds makes the calling thread (locked, with key's credentials)
// key's credential thread until it idles out; it returns at once when
// key has one already, or too many identities do.
func serveCreds(key string) {
	t := &credThread{reqs: make(chan func())}
	credThreads.Lock()
	if credThreads.m[key] != nil || len(credThreads.m) >= credThreadsMax {
		credThreads.Unlock()
		return
	}
	credThreads.m[key] = t
	credThreads.Unlock()
	timer := time.NewTimer(credIdleNow())
	defer timer.Stop()
	for {
		select {
		case fn := <-t.reqs:
			fn()
			timer.Reset(credIdleNow())
		case <-timer.C:
			// Out of the map first: a sender that still found t sends
			// without waiting, fails, and makes a thread of its own.
			credThreads.Lock()
			delete(credThreads.m, key)
			credThreads.Unlock()
			return
		}
	}
}

// setCreds changes this thread's groups and fsuid/fsgid only: raw
// setgroups, since Go's syscall.Setgroups changes every thread.
func setCreds(c *synth.Caller) error {
	groups := c.Groups
	var gp unsafe.Pointer
	if len(groups) > 0 {
		gp = unsafe.Pointer(&groups[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(gp), 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	if err := unix.Setfsgid(int(c.Gid)); err != nil {
		return fmt.Errorf("setfsgid: %w", err)
	}
	if err := unix.Setfsuid(int(c.Uid)); err != nil {
		return fmt.Errorf("setfsuid: %w", err)
	}
	return nil
}

// searchPath finds name in the directories of path as execvp does, but
// as the caller: a directory the caller cannot search tells nothing of
// what is in it, and an entry found but not executable (EACCES) does not
// end the search; EACCES is the answer only when nothing else is found.
// Relative entries are taken against cwd (skipped without one).
func searchPath(name, path, cwd string, c *synth.Caller) (string, error) {
	var found string
	var denied error
	err := asCaller(c, func() error {
		for _, d := range strings.Split(path, ":") {
			if d == "" {
				d = "."
			}
			if !strings.HasPrefix(d, "/") {
				if cwd == "" {
					continue
				}
				d = cwd + "/" + d
			}
			p := d + "/" + name
			fd, err := openPath(p)
			if err != nil {
				if errors.Is(err, unix.EACCES) && denied == nil {
					denied = fmt.Errorf("%s: %w", p, err)
				}
				continue
			}
			var st unix.Stat_t
			err = unix.Fstat(fd, &st)
			unix.Close(fd)
			if err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
				continue
			}
			if mayExecFile(c, st.Mode, st.Uid, st.Gid) {
				found = p
				return nil
			}
			if denied == nil {
				denied = fmt.Errorf("%s: %w", p, unix.EACCES)
			}
		}
		return nil
	})
	switch {
	case err != nil:
		return "", fmt.Errorf("searching PATH for %s: %w", name, err)
	case found != "":
		return found, nil
	case denied != nil:
		return "", denied
	}
	return "", fmt.Errorf("%s: not found in PATH: %w", name, syscall.ENOENT)
}

const maxBinary = slaveproto.MaxBinary

// openExecutable opens path as caller c and checks that it is a regular
// file c may execute. The open file pins it: what is read afterwards is
// what was checked, whatever a symlink swap does to the name meanwhile.
func openExecutable(path string, c *synth.Caller) (*os.File, binID, error) {
	return openShippable(path, c, func(st *syscall.Stat_t) error {
		if !mayExecFile(c, st.Mode, st.Uid, st.Gid) {
			return fmt.Errorf("%s: %w", path, syscall.EACCES)
		}
		return nil
	})
}

// openShippable opens path as caller c and checks what is open: a
// regular file that allowed accepts, of a size a job may ship. It
// returns the file with its identity, or closes it and says why not.
func openShippable(path string, c *synth.Caller, allowed func(*syscall.Stat_t) error) (*os.File, binID, error) {
	f, err := openAs(path, c)
	if err != nil {
		return nil, binID{}, err
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, binID{}, fmt.Errorf("%s: %w", path, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		err = fmt.Errorf("%s: not a regular file: %w", path, syscall.EACCES)
	} else if err = allowed(&st); err == nil && st.Size > maxBinary {
		err = fmt.Errorf("%s: %d bytes, more than the %d a job may ship: %w", path, st.Size, maxBinary, syscall.EFBIG)
	}
	if err != nil {
		f.Close()
		return nil, binID{}, err
	}
	return f, binID{st.Dev, st.Ino, st.Size, st.Mtim.Nano(), st.Ctim.Nano(), st.Mode & 0o7777}, nil
}

// copyPinned copies, as root, the file f pins (an O_PATH descriptor cannot
// be read itself) into a new 0600 file in dir through a sha256 writer, and
// returns the copy's name and the content's hash. The file must still hold
// the size bytes it was checked with: one that changed meanwhile is refused
// (what was checked is what is shipped).
func copyPinned(f *os.File, dir string, size int64) (tmp, sum string, err error) {
	r, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		return "", "", fmt.Errorf("reopening %s: %w", f.Name(), err)
	}
	defer r.Close()
	w, err := os.CreateTemp(dir, spoolTemp+"*")
	if err != nil {
		return "", "", fmt.Errorf("binary spool: %w", err)
	}
	defer func() {
		if cerr := w.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("binary spool: %w", cerr)
		}
		if err != nil {
			os.Remove(w.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(r, size+1))
	if err != nil {
		return "", "", fmt.Errorf("copying %s: %w", f.Name(), err)
	}
	if n != size {
		var st syscall.Stat_t
		if syscall.Fstat(int(r.Fd()), &st) == nil && st.Size > maxBinary {
			return "", "", fmt.Errorf("%s: grew past %d bytes: %w", f.Name(), maxBinary, syscall.EFBIG)
		}
		return "", "", fmt.Errorf("%s: changed while being read (%d bytes, not %d): %w", f.Name(), n, size, syscall.EAGAIN)
	}
	return w.Name(), hex.EncodeToString(h.Sum(nil)), nil
}
