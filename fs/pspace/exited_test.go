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

// Run forgets the oldest exited processes beyond exitedMax, now that it
// looks at processes once a second rather than every tick.
func TestRunForgetsBeyondExitedMax(t *testing.T) {
	m := NewMaster(DefaultConfig())
	n := m.nodes[-1]
	for i := 0; i < exitedMax+10; i++ {
		p, err := m.newProc(&synth.Caller{}, n, nil, []string{"x"}, false)
		if err != nil {
			t.Fatal(err)
		}
		p.finish("exit 0")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)
	kept := func() (int, bool) {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.procs), m.procs[1] != nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		k, first := kept()
		if k == exitedMax && !first {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s %d processes kept (want %d), pid 1 still there: %v", k, exitedMax, first)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
