package srv

import (
	iofs "io/fs"
	"syscall"

	"github.com/hugelgupf/p9/p9"
)

// Unix mode bits beyond the permissions, and their io/fs counterparts.
var specialBits = []struct {
	unix uint32
	mode iofs.FileMode
}{
	{syscall.S_ISUID, iofs.ModeSetuid},
	{syscall.S_ISGID, iofs.ModeSetgid},
	{syscall.S_ISVTX, iofs.ModeSticky},
}

// unixPerm returns the permission and special bits of m as a Unix mode.
func unixPerm(m iofs.FileMode) uint32 {
	u := uint32(m.Perm())
	for _, b := range specialBits {
		if m&b.mode != 0 {
			u |= b.unix
		}
	}
	return u
}

// fromUnixPerm is the inverse of unixPerm (file type bits are ignored).
func fromUnixPerm(u uint32) iofs.FileMode {
	m := iofs.FileMode(u & 0o777)
	for _, b := range specialBits {
		if u&b.unix != 0 {
			m |= b.mode
		}
	}
	return m
}

// unixType returns the S_IF* type bits for m.
func unixType(m iofs.FileMode) uint32 {
	switch {
	case m.IsDir():
		return syscall.S_IFDIR
	case m&iofs.ModeSymlink != 0:
		return syscall.S_IFLNK
	case m&iofs.ModeNamedPipe != 0:
		return syscall.S_IFIFO
	case m&iofs.ModeSocket != 0:
		return syscall.S_IFSOCK
	case m&iofs.ModeCharDevice != 0:
		return syscall.S_IFCHR
	case m&iofs.ModeDevice != 0:
		return syscall.S_IFBLK
	}
	return syscall.S_IFREG
}

// unixMode is the full st_mode for m.
func unixMode(m iofs.FileMode) uint32 { return unixType(m) | unixPerm(m) }

// fromUnixMode converts a full st_mode back to an io/fs mode.
func fromUnixMode(u uint32) iofs.FileMode {
	m := fromUnixPerm(u)
	switch u & syscall.S_IFMT {
	case syscall.S_IFDIR:
		m |= iofs.ModeDir
	case syscall.S_IFLNK:
		m |= iofs.ModeSymlink
	case syscall.S_IFIFO:
		m |= iofs.ModeNamedPipe
	case syscall.S_IFSOCK:
		m |= iofs.ModeSocket
	case syscall.S_IFCHR:
		m |= iofs.ModeDevice | iofs.ModeCharDevice
	case syscall.S_IFBLK:
		m |= iofs.ModeDevice
	}
	return m
}

// p9Mode converts an io/fs mode to a 9P mode.
func p9Mode(m iofs.FileMode) p9.FileMode { return p9.FileMode(unixMode(m)) }
