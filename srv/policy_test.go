package srv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"bproc/fs/synth"

	"github.com/hugelgupf/p9/p9"
	"golang.org/x/sys/unix"
)

// The same operations through 9P and through FUSE must meet one policy
// (synth's): the same errno and the same byte counts from either.

// policyTree is the test tree and two files of uid 1000: mine (0600) and
// short, whose reads give at most 3 bytes, whose writes take at most 4
// and refuse lines starting "bad" (EINVAL).
func policyTree() *testTree {
	t := newTestTree()
	owner := func() (uint32, uint32) { return 1000, 1000 }
	mine := &synth.FuncFile{Ino: 901, Mode: 0o600, Owner: owner}
	mine.OpenFunc = func(c *synth.Caller, flags int) (synth.Handle, error) {
		if err := synth.Access(c, mine, accessFor(flags)); err != nil {
			return nil, err
		}
		return &synth.BytesHandle{Data: []byte("mine\n")}, nil
	}
	short := &synth.FuncFile{Ino: 902, Mode: 0o666, Owner: owner,
		OpenFunc: func(*synth.Caller, int) (synth.Handle, error) { return &shortHandle{}, nil }}
	t.root.ents = append(t.root.ents, synth.Dirent{Name: "mine", Node: mine}, synth.Dirent{Name: "short", Node: short})
	return t
}

// accessFor is the access an open with flags asks for.
func accessFor(flags int) uint32 {
	switch flags & syscall.O_ACCMODE {
	case syscall.O_WRONLY:
		return synth.MayWrite
	case syscall.O_RDWR:
		return synth.MayRead | synth.MayWrite
	}
	return synth.MayRead
}

type shortHandle struct{ synth.NoClose }

func (shortHandle) Read(_ context.Context, p []byte, off int64) (int, error) {
	const text = "abcdefgh"
	if off >= int64(len(text)) {
		return 0, io.EOF
	}
	return copy(p[:min(len(p), 3)], text[off:]), nil
}

func (shortHandle) Write(_ context.Context, p []byte, _ int64) (int, error) {
	if strings.HasPrefix(string(p), "bad") {
		return 0, fmt.Errorf("bad line: %w", syscall.EINVAL)
	}
	return min(len(p), 4), nil
}

// fsys is one adapter seen from a user: every call runs as uid (gid = uid).
type fsys interface {
	open(uid uint32, name string, flags int) (ofile, syscall.Errno)
	setattr(uid uint32, name string, valid p9.SetAttrMask, attr p9.SetAttr) syscall.Errno
}

type ofile interface {
	read(n int) (int, syscall.Errno)
	write(p string) (int, syscall.Errno)
	close()
}

// ninep runs the calls over 9P, one connection per uid.
type ninep struct {
	t     *testing.T
	addr  string
	conns map[uint32]*Client
}

func (n *ninep) client(uid uint32) *Client {
	c := n.conns[uid]
	if c == nil {
		c = dial(n.t, n.addr, Hello{Role: RoleTool, Uid: uid, Gid: uid, Host: "policy"})
		n.conns[uid] = c
	}
	return c
}

func (n *ninep) open(uid uint32, name string, flags int) (ofile, syscall.Errno) {
	f, err := n.client(uid).Open(name, flags)
	if err != nil {
		return nil, clientErrno(err)
	}
	return &p9ofile{f: f}, 0
}

func (n *ninep) setattr(uid uint32, name string, valid p9.SetAttrMask, attr p9.SetAttr) syscall.Errno {
	return clientErrno(n.client(uid).setattr("setattr", name, valid, attr))
}

// clientErrno is the errno in a Client's error; end of file and a short
// write are counts, not errors.
func clientErrno(err error) syscall.Errno {
	var e syscall.Errno
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, io.ErrShortWrite):
		return 0
	case errors.As(err, &e):
		return e
	}
	return syscall.EIO
}

type p9ofile struct{ f *File }

func (o *p9ofile) read(n int) (int, syscall.Errno) {
	got, err := o.f.Read(make([]byte, n))
	return got, clientErrno(err)
}

func (o *p9ofile) write(p string) (int, syscall.Errno) {
	n, err := o.f.Write([]byte(p))
	return n, clientErrno(err)
}

func (o *p9ofile) close() { o.f.Close() }

// fuseFS runs the calls on the mount, from a thread whose fsuid and fsgid
// are the user's: FUSE tells the tree the caller's fsuid.
type fuseFS struct{ dir string }

func asFsuid(uid uint32, f func() error) syscall.Errno {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Raw calls: they change this thread only.
	unix.RawSyscall(unix.SYS_SETFSGID, uintptr(uid), 0, 0)
	unix.RawSyscall(unix.SYS_SETFSUID, uintptr(uid), 0, 0)
	defer unix.RawSyscall(unix.SYS_SETFSGID, 0, 0, 0)
	defer unix.RawSyscall(unix.SYS_SETFSUID, 0, 0, 0)
	var e syscall.Errno
	if err := f(); err != nil && !errors.As(err, &e) {
		return syscall.EIO
	}
	return e
}

func (x *fuseFS) open(uid uint32, name string, flags int) (ofile, syscall.Errno) {
	var fd int
	e := asFsuid(uid, func() (err error) {
		fd, err = syscall.Open(filepath.Join(x.dir, name), flags, 0)
		return err
	})
	if e != 0 {
		return nil, e
	}
	return &fuseOfile{fd: fd}, 0
}

func (x *fuseFS) setattr(uid uint32, name string, valid p9.SetAttrMask, attr p9.SetAttr) syscall.Errno {
	path := filepath.Join(x.dir, name)
	return asFsuid(uid, func() error {
		switch {
		case valid.Permissions:
			return syscall.Chmod(path, uint32(attr.Permissions))
		case valid.UID || valid.GID:
			return syscall.Chown(path, int(attr.UID), int(attr.GID))
		case valid.Size:
			return syscall.Truncate(path, int64(attr.Size))
		case valid.MTimeNotSystemTime:
			return unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{{Sec: 1}, {Sec: 1}}, 0)
		case valid.MTime:
			now := unix.Timespec{Nsec: unix.UTIME_NOW}
			return unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{now, now}, 0)
		}
		return fmt.Errorf("no such setattr in the test: %+v", valid)
	})
}

type fuseOfile struct{ fd int }

func (o *fuseOfile) read(n int) (int, syscall.Errno) {
	got, err := syscall.Read(o.fd, make([]byte, n))
	var e syscall.Errno
	errors.As(err, &e)
	return max(got, 0), e
}

func (o *fuseOfile) write(p string) (int, syscall.Errno) {
	n, err := syscall.Write(o.fd, []byte(p))
	var e syscall.Errno
	errors.As(err, &e)
	return max(n, 0), e
}

func (o *fuseOfile) close() { syscall.Close(o.fd) }

// Setattr requests as 9P carries them (FUSE's are made from them above).
var (
	chmod    = p9.SetAttrMask{Permissions: true}
	chown    = p9.SetAttrMask{UID: true, GID: true}
	truncate = p9.SetAttrMask{Size: true}
	touch    = p9.SetAttrMask{ATime: true, MTime: true}
	utimes   = p9.SetAttrMask{ATime: true, MTime: true, ATimeNotSystemTime: true, MTimeNotSystemTime: true}
)

// A policy step: an open (with reads and writes on the file), or a setattr.
type policyStep struct {
	what  string
	uid   uint32
	name  string
	flags int                                // open
	io    func(f ofile) (int, syscall.Errno) // on the opened file; nil: just open
	valid *p9.SetAttrMask                    // setattr instead of open
	attr  p9.SetAttr
	want  syscall.Errno
	wantN int
}

var policySteps = []policyStep{
	{what: "open read-only file for reading", uid: 1000, name: "hello", flags: os.O_RDONLY},
	{what: "open read-only file for writing", uid: 1000, name: "hello", flags: os.O_WRONLY, want: syscall.EACCES},
	{what: "open read-only file O_RDWR|O_TRUNC", uid: 1000, name: "hello", flags: os.O_RDWR | os.O_TRUNC, want: syscall.EACCES},
	{what: "open read-only file for writing as root", uid: 0, name: "hello", flags: os.O_WRONLY, want: syscall.EACCES},
	{what: "open directory for reading", uid: 1000, name: "sub", flags: os.O_RDONLY},
	{what: "open directory for writing", uid: 1000, name: "sub", flags: os.O_WRONLY, want: syscall.EISDIR},
	{what: "open ctl O_WRONLY|O_TRUNC|O_CREAT", uid: 1000, name: "ctl", flags: os.O_WRONLY | os.O_TRUNC | os.O_CREATE},
	{what: "open another user's 0600 file", uid: 2000, name: "mine", flags: os.O_RDONLY, want: syscall.EACCES},
	{what: "open own 0600 file read-write", uid: 1000, name: "mine", flags: os.O_RDWR},
	{what: "chmod by a user", uid: 1000, name: "sub", valid: &chmod, attr: p9.SetAttr{Permissions: 0o700}, want: syscall.EPERM},
	{what: "chmod by root", uid: 0, name: "sub", valid: &chmod, attr: p9.SetAttr{Permissions: 0o755}},
	{what: "chown by a user", uid: 1000, name: "sub", valid: &chown, attr: p9.SetAttr{UID: 1000, GID: 1000}, want: syscall.EPERM},
	{what: "chown by root", uid: 0, name: "sub", valid: &chown, attr: p9.SetAttr{UID: 0, GID: 0}},
	{what: "chmod of a node without Setattrer", uid: 0, name: "hello", valid: &chmod, attr: p9.SetAttr{Permissions: 0o600}, want: syscall.EPERM},
	{what: "truncate to 0 without write permission", uid: 1000, name: "hello", valid: &truncate, want: syscall.EACCES},
	{what: "truncate to 0 with write permission", uid: 1000, name: "ctl", valid: &truncate},
	{what: "truncate to 5", uid: 0, name: "ctl", valid: &truncate, attr: p9.SetAttr{Size: 5}, want: syscall.EPERM},
	{what: "truncate a directory", uid: 0, name: "sub", valid: &truncate, want: syscall.EISDIR},
	{what: "touch by root", uid: 0, name: "hello", valid: &touch},
	{what: "touch by a user who may not write", uid: 1000, name: "hello", valid: &touch, want: syscall.EACCES},
	{what: "touch by a user who may write", uid: 1000, name: "ctl", valid: &touch},
	{what: "touch by the owner", uid: 1000, name: "mine", valid: &touch},
	{what: "utimes by a non-owner who may write", uid: 1000, name: "ctl", valid: &utimes, want: syscall.EPERM},
	{what: "utimes by the owner", uid: 1000, name: "mine", valid: &utimes},
	{what: "short read", uid: 1000, name: "short", flags: os.O_RDWR, wantN: 3,
		io: func(f ofile) (int, syscall.Errno) { return f.read(100) }},
	{what: "reads to the end", uid: 1000, name: "short", flags: os.O_RDONLY, wantN: 8,
		io: func(f ofile) (int, syscall.Errno) {
			total := 0
			for {
				n, e := f.read(100)
				if e != 0 || n == 0 {
					return total, e
				}
				total += n
			}
		}},
	{what: "short write", uid: 1000, name: "short", flags: os.O_WRONLY, wantN: 4,
		io: func(f ofile) (int, syscall.Errno) { return f.write("0123456789") }},
	{what: "refused write", uid: 1000, name: "short", flags: os.O_WRONLY, want: syscall.EINVAL,
		io: func(f ofile) (int, syscall.Errno) { return f.write("bad line\n") }},
	{what: "write to a read-only handle", uid: 1000, name: "short", flags: os.O_RDONLY, want: syscall.EBADF,
		io: func(f ofile) (int, syscall.Errno) { return f.write("x") }},
}

func (s policyStep) run(x fsys) (int, syscall.Errno) {
	if s.valid != nil {
		return 0, x.setattr(s.uid, s.name, *s.valid, s.attr)
	}
	f, e := x.open(s.uid, s.name, s.flags)
	if e != 0 {
		return 0, e
	}
	defer f.close()
	if s.io == nil {
		return 0, 0
	}
	return s.io(f)
}

func TestOnePolicyBothAdapters(t *testing.T) {
	dir := mountRoot(t, policyTree().root)
	sv := serveTree(t, policyTree())
	adapters := map[string]fsys{"fuse": &fuseFS{dir: dir}, "9p": &ninep{t: t, addr: sv.addr, conns: map[uint32]*Client{}}}
	for _, s := range policySteps {
		got := map[string]string{}
		for name, x := range adapters {
			n, e := s.run(x)
			got[name] = fmt.Sprintf("n=%d errno=%d (%v)", n, int(e), e)
		}
		want := fmt.Sprintf("n=%d errno=%d (%v)", s.wantN, int(s.want), s.want)
		if got["fuse"] != want || got["9p"] != want {
			t.Errorf("%s (uid %d, %s): fuse %s, 9p %s; want %s", s.what, s.uid, s.name, got["fuse"], got["9p"], want)
		}
	}
}
