package pspace

import (
	"context"
	"errors"
	"syscall"
	"testing"

	"bproc/fs/synth"
)

// A process whose output went direct does not move (its next node would
// write to streams nobody reads), and one moving does not go direct.
func TestDirectAndMoveExclude(t *testing.T) {
	p := &Proc{pid: 5, attached: true, stdout: synth.NewStream(1<<10, false), stderr: synth.NewStream(1<<10, false)}
	h := &divertHandle{p: p}
	if _, err := h.Write(context.Background(), []byte("stdout stderr"), 0); err != nil {
		t.Fatalf("divert: %v", err)
	}
	if _, err := p.beginMove(nil, nil); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("moving a direct process: %v, want EBUSY", err)
	}
	q := &Proc{pid: 6, attached: true, stdout: synth.NewStream(1<<10, false), pending: &pendingMove{}}
	if _, err := (&divertHandle{p: q}).Write(context.Background(), []byte("stdout"), 0); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("diverting a moving process: %v, want EBUSY", err)
	}
}

// Divert gives the count the readers took and drops the rest.
func TestDivertOffset(t *testing.T) {
	s := synth.NewStream(1<<10, false)
	s.Attach()
	ctx := context.Background()
	s.Write(ctx, []byte("hello world"))
	b := make([]byte, 5)
	s.Read(ctx, b)
	if off := s.Divert(); off != 5 {
		t.Errorf("Divert: %d, want 5 (what was read)", off)
	}
	if n, err := s.Read(ctx, b); n != 0 || err == nil {
		t.Errorf("read after Divert: %d, %v; want EOF", n, err)
	}
	if _, err := s.Write(ctx, []byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("write after Divert: %v, want EPIPE", err)
	}
}
