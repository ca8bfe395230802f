// Package client is the small library programs use to reach the bproc tree:
// through the FUSE mount on the master (plain file operations) or over 9P
// from anywhere else, plus the parsing shared by the classic commands
// (nodespecs, node and process status lines, exec results).
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"
	"time"

	"bproc/key"
	"bproc/srv"
)

// File is an open file of the tree.
type File = io.ReadWriteCloser

// Tree is the bproc tree, wherever it is. Names are slash-separated and
// relative to the tree's root ("node/3/ctl").
type Tree interface {
	Open(name string, flag int) (File, error)
	Stat(name string) (fs.FileInfo, error)
	ReadDir(name string) ([]fs.DirEntry, error)
	Chmod(name string, mode fs.FileMode) error
	Chown(name string, uid, gid int) error
	// Close releases the connection (a no-op for the mount).
	Close() error
}

// Environment variables and defaults of Connect.
const (
	EnvMount      = "BPROC_MOUNT"
	EnvMaster     = "BPROC_MASTER"
	EnvKey        = "BPROC_KEY"
	DefaultMount  = "/bproc"
	DefaultMaster = "localhost"
)

// Options says how to reach the tree. Zero values mean: the environment,
// then the defaults.
type Options struct {
	Mount   string // mount point; env BPROC_MOUNT, default /bproc
	Master  string // host[:port] for 9P; env BPROC_MASTER, default localhost:2223
	KeyFile string // cluster key; env BPROC_KEY, default key.DefaultPath
	// Net skips the mount and always dials 9P.
	Net bool
	// Timeout bounds dialing and the handshake (default 10s).
	Timeout time.Duration
}

// Connect reaches the tree: the mount when it is present (its `status`
// file exists), 9P to the master otherwise.
func Connect(opts Options) (Tree, error) {
	mnt := opts.Mount
	if mnt == "" {
		mnt = os.Getenv(EnvMount)
	}
	if mnt == "" {
		mnt = DefaultMount
	}
	if !opts.Net {
		if _, err := os.Stat(filepath.Join(mnt, "status")); err == nil {
			return &MountTree{Root: mnt}, nil
		}
	}
	return dial(opts, mnt)
}

func dial(opts Options, mnt string) (Tree, error) {
	addr := opts.Master
	if addr == "" {
		addr = os.Getenv(EnvMaster)
	}
	if addr == "" {
		addr = DefaultMaster
	}
	addr = srv.WithPort(addr)
	kf := opts.KeyFile
	if kf == "" {
		kf = os.Getenv(EnvKey)
	}
	if kf == "" {
		kf = key.DefaultPath
	}
	k, err := key.Load(kf)
	if err != nil {
		return nil, fmt.Errorf("no bproc tree mounted at %s and cannot dial %s: %w", mnt, addr, err)
	}
	h := srv.Hello{Role: srv.RoleTool, Uid: uint32(os.Geteuid()), Gid: uint32(os.Getegid())}
	if gs, err := os.Getgroups(); err == nil {
		for _, g := range gs {
			h.Groups = append(h.Groups, uint32(g))
		}
	}
	h.Host, _ = os.Hostname()
	to := opts.Timeout
	if to <= 0 {
		to = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), to)
	defer cancel()
	c, err := srv.Dial(ctx, addr, k, h)
	if err != nil {
		return nil, fmt.Errorf("no bproc tree mounted at %s; dialing master %s: %w", mnt, addr, err)
	}
	return &NetTree{C: c}, nil
}

// MountTree is the tree through its FUSE mount: plain os calls, so the
// master sees the caller's own pid, credentials, cwd and environment.
type MountTree struct{ Root string }

func (m *MountTree) p(name string) string { return filepath.Join(m.Root, filepath.FromSlash(name)) }

// Open opens name with os.OpenFile.
func (m *MountTree) Open(name string, flag int) (File, error) {
	f, err := os.OpenFile(m.p(name), flag, 0)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Stat describes name.
func (m *MountTree) Stat(name string) (fs.FileInfo, error) { return os.Stat(m.p(name)) }

// ReadDir lists name.
func (m *MountTree) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(m.p(name)) }

// Chmod changes name's permission bits.
func (m *MountTree) Chmod(name string, mode fs.FileMode) error { return os.Chmod(m.p(name), mode) }

// Chown changes name's owner and group; -1 leaves one unchanged.
func (m *MountTree) Chown(name string, uid, gid int) error { return os.Chown(m.p(name), uid, gid) }

// Close does nothing.
func (m *MountTree) Close() error { return nil }

// NetTree is the tree over a 9P connection to the master.
type NetTree struct{ C *srv.Client }

// Open opens name.
func (n *NetTree) Open(name string, flag int) (File, error) {
	f, err := n.C.Open(name, flag)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: unwrapErrno(err)}
	}
	return f, nil
}

// Stat describes name.
func (n *NetTree) Stat(name string) (fs.FileInfo, error) {
	fi, err := n.C.Stat(name)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: unwrapErrno(err)}
	}
	return fi, nil
}

// ReadDir lists name.
func (n *NetTree) ReadDir(name string) ([]fs.DirEntry, error) {
	ds, err := n.C.ReadDir(name)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: unwrapErrno(err)}
	}
	return ds, nil
}

// Chmod changes name's permission bits.
func (n *NetTree) Chmod(name string, mode fs.FileMode) error {
	if err := n.C.Chmod(name, mode); err != nil {
		return &fs.PathError{Op: "chmod", Path: name, Err: unwrapErrno(err)}
	}
	return nil
}

// Chown changes name's owner and group.
func (n *NetTree) Chown(name string, uid, gid int) error {
	if err := n.C.Chown(name, uid, gid); err != nil {
		return &fs.PathError{Op: "chown", Path: name, Err: unwrapErrno(err)}
	}
	return nil
}

// Close closes the connection.
func (n *NetTree) Close() error { return n.C.Close() }

// unwrapErrno reduces an error to its errno when it carries one, so
// messages read like the mount's ("no such file or directory").
func unwrapErrno(err error) error {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return err
}

// remote reports whether t is reached over the network, where the master
// cannot see the caller's environment and cwd.
func remote(t Tree) bool {
	_, ok := t.(*MountTree)
	return !ok
}

// ReadFile reads a whole (small) file of the tree.
func ReadFile(t Tree, name string) ([]byte, error) {
	f, err := t.Open(name, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return b, &fs.PathError{Op: "read", Path: name, Err: unwrapErrno(err)}
	}
	return b, nil
}

// WriteFile opens name for writing and writes data in one write.
func WriteFile(t Tree, name string, data []byte) error {
	f, err := t.Open(name, os.O_WRONLY)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if werr != nil {
		return &fs.PathError{Op: "write", Path: name, Err: unwrapErrno(werr)}
	}
	if cerr != nil {
		return &fs.PathError{Op: "close", Path: name, Err: unwrapErrno(cerr)}
	}
	return nil
}

// NodeDir is the tree path of node n's directory.
func NodeDir(n int) string { return path.Join("node", fmt.Sprint(n)) }
