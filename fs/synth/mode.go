package synth

import (
	iofs "io/fs"
	"syscall"
)

// Conversions between io/fs modes and Unix st_mode bits, for the adapters.

// Unix mode bits beyond the permissions, and their io/fs counterparts.
var specialBits = []struct {
	unix uint32
	mode iofs.FileMode
}{
	{syscall.S_ISUID, iofs.ModeSetuid},
	{syscall.S_ISGID, iofs.ModeSetgid},
	{syscall.S_ISVTX, iofs.ModeSticky},
}

// UnixPerm returns the permission and special bits of m as a Unix mode.
func UnixPerm(m iofs.FileMode) uint32 {
	u := uint32(m.Perm())
	for _, b := range specialBits {
		if m&b.mode != 0 {
			u |= b.unix
		}
	}
	return u
}

// FromUnixPerm is the inverse of UnixPerm (file type bits are ignored).
func FromUnixPerm(u uint32) iofs.FileMode {
	m := iofs.FileMode(u & 0o777)
	for _, b := range specialBits {
		if u&b.unix != 0 {
			m |= b.mode
		}
	}
	return m
}

// UnixType returns the S_IF* type bits for m.
func UnixType(m iofs.FileMode) uint32 {
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

// UnixMode is the full st_mode for m.
func UnixMode(m iofs.FileMode) uint32 { return UnixType(m) | UnixPerm(m) }

// FromUnixMode converts a full st_mode back to an io/fs mode.
func FromUnixMode(u uint32) iofs.FileMode {
	m := FromUnixPerm(u)
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
