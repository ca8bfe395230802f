package srv

import (
	"errors"

	"bproc/fs"
)

// MountOptions tune a FUSE mount of the tree.
type MountOptions struct {
	AllowOther bool   // let other users use the mount (needed for /bproc)
	Debug      bool   // log every FUSE request
	Name       string // file system name shown in mount tables (default "bproc")
}

// Mounted is a live FUSE mount.
type Mounted struct {
	dir string
}

// Mount mounts root at dir and serves it until Unmount.
func Mount(dir string, root fs.Dir, o MountOptions) (*Mounted, error) {
	return nil, errors.New("srv: Mount not implemented yet")
}

// Unmount unmounts the tree (lazily if it is busy).
func (m *Mounted) Unmount() error { return errors.New("srv: Unmount not implemented yet") }

// Wait returns when the mount has been unmounted.
func (m *Mounted) Wait() {}
