package fusemount

import (
	"context"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"

	"bproc/fs/synth"
)

type plainHandle struct{ synth.NoWrite }

func (plainHandle) Read(context.Context, []byte, int64) (int, error) { return 0, nil }
func (plainHandle) Close() error                                     { return nil }

type flushHandle struct{ plainHandle }

func (flushHandle) Unfinished() bool                { return true }
func (flushHandle) Flush(ctx context.Context) error { return nil }

// Only a handle that may hold an unfinished ctl line, opened for
// writing only, has its close(2) sent to the master as FLUSH.
func TestOpenFlagsNoFlush(t *testing.T) {
	for _, c := range []struct {
		name  string
		h     synth.Handle
		flags uint32
		flush bool
	}{
		{"a file read", plainHandle{}, syscall.O_RDONLY, false},
		{"a file written", plainHandle{}, syscall.O_WRONLY, false},
		{"a ctl read", flushHandle{}, syscall.O_RDONLY, false},
		{"a ctl written", flushHandle{}, syscall.O_WRONLY, true},
		{"a ctl read and written", flushHandle{}, syscall.O_RDWR, false},
	} {
		got := openFlags(c.h, c.flags)
		if got&fuse.FOPEN_DIRECT_IO == 0 {
			t.Errorf("%s: no direct I/O (%#x)", c.name, got)
		}
		if flush := got&fuse.FOPEN_NOFLUSH == 0; flush != c.flush {
			t.Errorf("%s: flush on close %v, want %v", c.name, flush, c.flush)
		}
	}
}
