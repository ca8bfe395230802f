package pspace

import (
	"context"
	"errors"
	"syscall"
	"testing"

	"bproc/fs/synth"
)

// A process whose output went direct moves once its node gave the
// streams back ("back"), and one moving does not go direct.
func TestDirectAndMove(t *testing.T) {
	p := &Proc{pid: 5, attached: true, stdout: synth.NewStream(1<<10, false), stderr: synth.NewStream(1<<10, false)}
	h := &divertHandle{p: p}
	if _, err := h.Write(context.Background(), []byte("stdout stderr"), 0); err != nil {
		t.Fatalf("divert: %v", err)
	}
	if _, err := p.beginMove(nil, nil); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("moving a process whose streams were not given back: %v, want EBUSY", err)
	}
	if _, err := h.Write(context.Background(), []byte("back stdout 100 moved stderr 7 ended"), 0); err != nil {
		t.Fatalf("back: %v", err)
	}
	if _, err := p.beginMove(nil, nil); err != nil {
		t.Errorf("moving a process whose streams were given back: %v", err)
	}
	if _, err := (&divertHandle{p: p}).Write(context.Background(), []byte("stdout"), 0); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("diverting a moving process: %v, want EBUSY", err)
	}
}

// "back" takes the streams back where the direct stream ended: the
// tree's readers carry on from that byte; an ended stream stays ended.
// A bad line takes nothing back.
func TestTakeBackOffsets(t *testing.T) {
	ctx := context.Background()
	p := &Proc{pid: 5, attached: true, stdout: synth.NewStream(1<<10, false), stderr: synth.NewStream(1<<10, false)}
	p.stdout.Attach()
	p.stdout.Write(ctx, []byte("0123456789"))
	b := make([]byte, 4)
	p.stdout.Read(ctx, b) // the tree's reader took 4 bytes
	h := &divertHandle{p: p}
	if _, err := h.Write(ctx, []byte("stdout stderr"), 0); err != nil {
		t.Fatalf("divert: %v", err)
	}
	p.stdout.Detach() // the tree's reader met EOF and left: not a break
	for _, bad := range []string{
		"back stdout 3 moved",                  // below what the tree's readers took
		"back stdout x moved",                  // no offset
		"back stdout -1 moved",                 // negative
		"back stdout 9",                        // not a triple
		"back stdout 9 gone",                   // neither moved nor ended
		"back stdin 9 moved",                   // no such stream
		"back stdout 9 moved stderr 0 moved x", // trailing junk
		"back stdout 9 moved stdout 9 moved",   // twice
		"back",
	} {
		if _, err := h.Write(ctx, []byte(bad), 0); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("%q: %v, want EINVAL", bad, err)
		}
		if !p.stdout.Diverted() || !p.stderr.Diverted() {
			t.Fatalf("%q took a stream back", bad)
		}
	}
	// The slave sent bytes 4..1000006 direct: the tree goes on from there.
	if _, err := h.Write(ctx, []byte("back stdout 1000006 moved stderr 0 ended"), 0); err != nil {
		t.Fatalf("back: %v", err)
	}
	if _, err := h.Write(ctx, []byte("back stdout 1000006 moved"), 0); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("taking back twice: %v, want EINVAL", err)
	}
	if _, err := p.stdout.Write(ctx, []byte("next node")); err != nil {
		t.Fatalf("write after take-back: %v", err)
	}
	b = make([]byte, 64)
	n, err := p.stdout.Read(ctx, b)
	if err != nil || string(b[:n]) != "next node" {
		t.Errorf("read after take-back: %q, %v; want the next node's bytes", b[:n], err)
	}
	if out := p.stdout.Out(); out != 1000006+9 {
		t.Errorf("stdout's count after take-back: %d, want %d", out, 1000006+9)
	}
	if _, err := p.stderr.Write(ctx, []byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("write to an ended stream taken back: %v, want EPIPE", err)
	}
	if n, err := p.stderr.Read(ctx, b); n != 0 || err == nil {
		t.Errorf("read of an ended stream taken back: %d, %v; want EOF", n, err)
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

// FuzzTakeBack: whatever a slave writes as "back ...", it is taken whole
// or not at all, and never moves a stream below what its readers took.
func FuzzTakeBack(f *testing.F) {
	for _, s := range []string{"back stdout 5 moved stderr 0 ended", "back stdout 4 moved", "back stdout 3 moved",
		"back stderr -1 ended", "back stdout 9 moved stdout 9 moved", "back stdin 1 moved", "back", "back stdout 99999999999999999999 moved"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		ctx := context.Background()
		p := &Proc{pid: 5, attached: true, stdout: synth.NewStream(1<<10, false), stderr: synth.NewStream(1<<10, false)}
		p.stdout.Attach()
		p.stdout.Write(ctx, []byte("0123456789"))
		p.stdout.Read(ctx, make([]byte, 4))
		h := &divertHandle{p: p}
		if _, err := h.Write(ctx, []byte("stdout stderr"), 0); err != nil {
			t.Fatal(err)
		}
		_, err := h.Write(ctx, []byte("back "+line), 0)
		if err != nil && (!p.stdout.Diverted() || !p.stderr.Diverted()) {
			t.Fatalf("%q failed (%v) yet took a stream back", line, err)
		}
		if p.stdout.Out() < 4 {
			t.Fatalf("%q moved stdout below what its readers took: %d", line, p.stdout.Out())
		}
	})
}
