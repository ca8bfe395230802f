package pspace

import (
	"testing"

	"bproc/fs/synth"
)

// Only the caller's own class counts, as in the kernel: an owner without
// the owner's bit is refused even where group or other have it.
func TestClassBits(t *testing.T) {
	user := &synth.Caller{Uid: 1000, Gid: 100, Groups: []uint32{200}}
	for _, tc := range []struct {
		perm, uid, gid uint32
		read, exec     bool
	}{
		{0o700, 1000, 0, true, true},
		{0o077, 1000, 100, false, false}, // owner: the group's bits do not help
		{0o400, 1000, 0, true, false},
		{0o100, 1000, 0, false, true},
		{0o070, 0, 100, true, true},
		{0o070, 0, 200, true, true}, // a supplementary group
		{0o707, 0, 100, false, false},
		{0o040, 0, 200, true, false},
		{0o010, 0, 100, false, true},
		{0o007, 0, 0, true, true},
		{0o770, 0, 0, false, false},
		{0o004, 0, 0, true, false},
		{0o001, 0, 0, false, true},
	} {
		if got := readBit(user, tc.perm, tc.uid, tc.gid); got != tc.read {
			t.Errorf("readBit(%#o, uid %d, gid %d) = %v, want %v", tc.perm, tc.uid, tc.gid, got, tc.read)
		}
		if got := execBit(user, tc.perm, tc.uid, tc.gid); got != tc.exec {
			t.Errorf("execBit(%#o, uid %d, gid %d) = %v, want %v", tc.perm, tc.uid, tc.gid, got, tc.exec)
		}
	}
}
