package pspace

import (
	"context"
	"testing"
	"time"

	"bproc/fs/synth"
)

// All exited processes together keep at most exitedKeepTotal of output
// nobody read; the oldest lose theirs first.
func TestExitedOutputBoundedInTotal(t *testing.T) {
	m := NewMaster(DefaultConfig())
	n := m.nodes[-1]
	chunk := make([]byte, exitedKeepBytes)
	count := 2 * exitedKeepTotal / exitedKeepBytes // twice what may stay
	for i := 0; i < count; i++ {
		p, err := m.newProc(&synth.Caller{Uid: 4242, Gid: 4242}, n, nil, []string{"x"}, false)
		if err != nil {
			t.Fatal(err)
		}
		p.stdout.Write(context.Background(), chunk)
		p.finish("exit 0")
	}
	m.sweep(time.Now())
	total, oldest, newest := 0, 0, 0
	for pid, p := range m.procs {
		size, capacity := p.stdout.Retained()
		total += capacity
		if pid == 1 {
			oldest = size
		}
		if pid == count {
			newest = size
		}
	}
	if total > exitedKeepTotal {
		t.Errorf("%d exited processes keep %d bytes of buffers, more than %d", count, total, exitedKeepTotal)
	}
	if oldest != 0 || newest != exitedKeepBytes {
		t.Errorf("the oldest keeps %d bytes, the newest %d; want 0 and %d", oldest, newest, exitedKeepBytes)
	}
}
