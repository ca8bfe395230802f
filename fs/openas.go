package fs

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// openAs opens path (O_PATH: no read permission needed) with the caller's
// filesystem credentials, so every directory on the way is searched as the
// caller would search it. The master is root; without this a user could
// run, and so read, files behind directories closed to them.
func openAs(path string, c *Caller) (*os.File, error) {
	if c.Root() {
		fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return os.NewFile(uintptr(fd), path), nil
	}
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// Never unlocked: when this goroutine ends, its thread ends with
		// it, and the changed credentials with the thread.
		runtime.LockOSThread()
		fd, err := openAsThread(path, c)
		ch <- result{fd, err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, fmt.Errorf("%s: %w", path, r.err)
	}
	return os.NewFile(uintptr(r.fd), path), nil
}

// openAsThread changes this thread's groups and fsuid/fsgid only: raw
// setgroups, since Go's syscall.Setgroups changes every thread.
func openAsThread(path string, c *Caller) (int, error) {
	groups := c.Groups
	var gp unsafe.Pointer
	if len(groups) > 0 {
		gp = unsafe.Pointer(&groups[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(gp), 0); e != 0 {
		return -1, fmt.Errorf("setgroups: %w", e)
	}
	if err := unix.Setfsgid(int(c.Gid)); err != nil {
		return -1, fmt.Errorf("setfsgid: %w", err)
	}
	if err := unix.Setfsuid(int(c.Uid)); err != nil {
		return -1, fmt.Errorf("setfsuid: %w", err)
	}
	return unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
}

// MaxBinary bounds what a user can make the master read and ship (the
// whole binary is held in memory) and what a slave accepts.
const MaxBinary = 256 << 20

const maxBinary = MaxBinary

// openExecutable opens path as caller c and checks that it is a regular
// file c may execute. The open file pins it: what is read afterwards is
// what was checked, whatever a symlink swap does to the name meanwhile.
func openExecutable(path string, c *Caller) (*os.File, binID, error) {
	f, err := openAs(path, c)
	if err != nil {
		return nil, binID{}, err
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, binID{}, fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case st.Mode&syscall.S_IFMT != syscall.S_IFREG:
		err = fmt.Errorf("%s: not a regular file: %w", path, syscall.EACCES)
	case !mayExecFile(c, st.Mode, st.Uid, st.Gid):
		err = fmt.Errorf("%s: %w", path, syscall.EACCES)
	case st.Size > maxBinary:
		err = fmt.Errorf("%s: %d bytes, more than the %d a job may ship: %w", path, st.Size, maxBinary, syscall.EFBIG)
	}
	if err != nil {
		f.Close()
		return nil, binID{}, err
	}
	return f, binID{st.Dev, st.Ino, st.Size, st.Mtim.Nano(), st.Mode & 0o7777}, nil
}

// readPinned reads, as root, the file f pins (an O_PATH descriptor cannot
// be read itself), at most maxBinary bytes.
func readPinned(f *os.File) ([]byte, error) {
	r, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		return nil, fmt.Errorf("reopening %s: %w", f.Name(), err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxBinary+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	if len(data) > maxBinary {
		return nil, fmt.Errorf("%s: grew past %d bytes: %w", f.Name(), maxBinary, syscall.EFBIG)
	}
	return data, nil
}
