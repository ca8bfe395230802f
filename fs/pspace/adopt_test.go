package pspace

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"bproc/fs/synth"
)

func TestStatePidsNeverReused(t *testing.T) {
	dir := t.TempDir()
	m := NewMaster(DefaultConfig())
	if err := m.UseStateDir(dir); err != nil {
		t.Fatal(err)
	}
	c := &synth.Caller{}
	n := m.nodes[-1]
	var last int
	for i := 0; i < pidBlock+10; i++ { // across a block boundary
		p, err := m.newProc(c, n, nil, []string{"x"}, false)
		if err != nil {
			t.Fatal(err)
		}
		last = p.pid
	}
	// A crash now: the next master starts above every pid issued.
	m2 := NewMaster(DefaultConfig())
	if err := m2.UseStateDir(dir); err != nil {
		t.Fatal(err)
	}
	if p, err := m2.newProc(c, m2.nodes[-1], nil, []string{"x"}, false); err != nil || p.pid <= last {
		t.Fatalf("pid %v (%v) after a restart, %d issued before", p, err, last)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "nextpid")); len(b) == 0 {
		t.Fatal("no high-water mark written")
	}
	os.WriteFile(filepath.Join(dir, "nextpid"), []byte("garbage\n"), 0o600)
	if err := NewMaster(DefaultConfig()).UseStateDir(dir); err == nil || !strings.Contains(err.Error(), "bad pid high-water mark") {
		t.Fatalf("garbage state: %v", err)
	}
}

// A stream reports every byte leaving it (read or dropped) as an offset
// from its first byte, base included.
// Only one slave holds a node: a second claim is refused while the first
// is connected, and succeeds once it is gone.
func TestSecondSlaveRefused(t *testing.T) {
	m := NewMaster(DefaultConfig())
	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	c1 := &synth.Caller{Slave: true, Addr: "10.0.0.5", Conn: ctx1}
	c2 := &synth.Caller{Slave: true, Addr: "10.0.0.5", Conn: ctx2}
	if _, err := m.register(c1); err != nil {
		t.Fatal(err)
	}
	if _, err := m.register(c2); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("second slave: %v, want EBUSY", err)
	}
	if m.nodes[0].conn.key != ctx1 {
		t.Fatal("the first slave lost its node")
	}
	cancel1()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := m.register(c2); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("after the first left: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
