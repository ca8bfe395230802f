package pspace

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"bproc/fs/synth"
)

// maxprocs counts a user's live processes: an end or a forgotten start
// gives its place back, root is not limited, and exited ones do not
// count however many are kept.
func TestMaxProcsCountsLive(t *testing.T) {
	m, start := limitMaster(3)
	var ps []*Proc
	for i := 0; i < 3; i++ {
		p, err := start()
		if err != nil {
			t.Fatalf("process %d of 3: %v", i+1, err)
		}
		ps = append(ps, p)
	}
	if _, err := start(); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("a 4th live process with maxprocs 3: %v, want EAGAIN", err)
	}
	if _, err := m.newProc(&synth.Caller{}, m.nodes[-1], nil, []string{"x"}, false); err != nil {
		t.Fatalf("root past a user's limit: %v", err)
	}
	ps[0].finish("exit 0")
	ps[0].finish("exit 1") // a second end changes nothing
	p, err := start()
	if err != nil {
		t.Fatalf("after one ended: %v", err)
	}
	m.forget(p) // a start given up: its place comes back
	m.forget(p)
	p.finish("exit 127")
	if _, err := start(); err != nil {
		t.Fatalf("after a forgotten start: %v", err)
	}
	if _, err := start(); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("3 live again, one more: %v, want EAGAIN", err)
	}
	if got := m.live.of(4242); got != 3 {
		t.Errorf("live count %d, want 3", got)
	}
}

// TestMaxProcsCheapWithManyExited: a user's start no longer looks over
// every process kept. With 4096 exited ones (proc/ keeps that many), 4000
// starts (a launch on 4000 nodes) were 16 million looks under the
// master's lock, seconds; now a few ms.
func TestMaxProcsCheapWithManyExited(t *testing.T) {
	m, start := limitMaster(100000)
	for i := 0; i < exitedMax; i++ {
		p, err := start()
		if err != nil {
			t.Fatal(err)
		}
		p.finish("exit 0")
	}
	begin := time.Now()
	for i := 0; i < 4000; i++ {
		if _, err := start(); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(begin); d > time.Second {
		t.Errorf("4000 starts beside %d exited processes took %v, want well under 1 s", exitedMax, d)
	}
	if got := m.live.of(4242); got != 4000 {
		t.Errorf("live count %d, want 4000", got)
	}
}

// limitMaster is a master with maxprocs max, and a start of a process of
// user 4242 on the master's own node.
func limitMaster(max int) (*Master, func() (*Proc, error)) {
	cfg := DefaultConfig()
	cfg.MaxProcs = max
	m := NewMaster(cfg)
	n := m.nodes[-1]
	user := &synth.Caller{Uid: 4242, Gid: 4242}
	return m, func() (*Proc, error) { return m.newProc(user, n, nil, []string{"x"}, false) }
}
