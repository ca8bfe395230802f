package synth

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"sync"
	"syscall"
	"testing"
	"time"
)

func readStream(t *testing.T, s *Stream) []byte {
	t.Helper()
	var out bytes.Buffer
	buf := make([]byte, 100<<10)
	for {
		n, err := s.Read(context.Background(), buf)
		out.Write(buf[:n])
		if err == io.EOF {
			return out.Bytes()
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	}
}

func TestStreamKeepsEveryByteWhileAttached(t *testing.T) {
	s := NewStream(256<<10, true)
	s.Attach()
	data := make([]byte, 5<<20)
	rand.Read(data)
	go func() {
		for p := data; len(p) > 0; {
			k := min(len(p), 70<<10+len(p)%1000)
			if _, err := s.Write(context.Background(), p[:k]); err != nil {
				t.Errorf("write: %v", err)
				return
			}
			p = p[k:]
		}
		s.CloseWrite()
	}()
	if got := readStream(t, s); !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, want the %d written, in order", len(got), len(data))
	}
}

func TestStreamUnattendedKeepsNewest(t *testing.T) {
	s := NewStream(100<<10, true)
	data := make([]byte, 1<<20)
	rand.Read(data)
	for p := data; len(p) > 0; p = p[min(len(p), 90<<10):] {
		if _, err := s.Write(context.Background(), p[:min(len(p), 90<<10)]); err != nil {
			t.Fatalf("an unattended lossy stream blocked or failed: %v", err)
		}
	}
	s.CloseWrite()
	if got := readStream(t, s); !bytes.Equal(got, data[len(data)-100<<10:]) {
		t.Fatalf("kept %d bytes, want the newest %d", len(got), 100<<10)
	}
}

func TestStreamBackPressureAndInterrupt(t *testing.T) {
	s := NewStream(10, false)
	s.Attach()
	if n, err := s.Write(context.Background(), []byte("0123456789")); n != 10 || err != nil {
		t.Fatalf("fill: %d, %v", n, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if n, err := s.Write(ctx, []byte("x")); n != 0 || !errors.Is(err, syscall.EINTR) {
		t.Fatalf("write to a full stream: %d, %v; want 0, EINTR", n, err)
	}
	// A write that took bytes before the interrupt reports them, not an error.
	s2 := NewStream(4, false)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if n, err := s2.Write(ctx2, []byte("abcdefgh")); n != 4 || err != nil {
		t.Fatalf("partial write: %d, %v; want 4, nil", n, err)
	}
	s.Break(errors.New("gone"))
	if _, err := s.Write(context.Background(), []byte("y")); err == nil {
		t.Fatal("write to a broken stream succeeded")
	}
}

func TestRingFiltersByOwner(t *testing.T) {
	r := NewRing(1 << 10)
	r.Write(1, []byte("one "))
	r.Write(2, []byte("two "))
	r.Write(1, []byte("three"))
	buf := make([]byte, 100)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	rr := r.Reader(1, false)
	var got []byte
	for {
		n, err := rr.Read(ctx, buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	if string(got) != "one three" {
		t.Errorf("uid 1 read %q", got)
	}
	all := r.Reader(0, true)
	n, _ := all.Read(context.Background(), buf)
	if string(buf[:n]) != "one two three" {
		t.Errorf("root read %q", buf[:n])
	}
	r.Close()
	if _, err := all.Read(context.Background(), buf); err != io.EOF {
		t.Errorf("read after Close: %v, want EOF", err)
	}
}

func TestStreamTrimKeepsTailOfUnattended(t *testing.T) {
	s := NewStream(1<<20, true)
	data := make([]byte, 300<<10)
	rand.Read(data)
	s.Write(context.Background(), data)
	s.Trim(64 << 10)
	s.CloseWrite()
	if got := readStream(t, s); !bytes.Equal(got, data[len(data)-64<<10:]) {
		t.Fatalf("kept %d bytes, want the newest %d", len(got), 64<<10)
	}
	a := NewStream(1<<20, true)
	a.Attach()
	a.Write(context.Background(), data)
	a.Trim(10)
	a.CloseWrite()
	if got := readStream(t, a); len(got) != len(data) {
		t.Fatalf("trim dropped bytes of an attached stream: %d left", len(got))
	}
}

// An unread stream holds its bounds in memory too, not only in bytes: a
// buffer whose bytes were dropped is given back.
func TestStreamRetainedMemory(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		lossy bool
		write int
	}{
		{"unattended, 100 KiB writes", true, 100 << 10},
		{"unattended, 700 KiB writes", true, 700 << 10},
		{"unattended, 1 MiB writes", true, 1 << 20},
		{"attached mode, 64 KiB writes nobody reads", false, 64 << 10},
		{"attached mode, 600 KiB writes nobody reads", false, 600 << 10},
	} {
		s := NewStream(1<<20, tc.lossy)
		p := make([]byte, tc.write)
		total := 0
		for total < 5<<20 {
			wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			n, _ := s.Write(wctx, p)
			cancel()
			if n == 0 {
				break // the attached kind is full: its writer waits
			}
			total += n
		}
		size, capacity := s.Retained()
		if size > 1<<20 || capacity > 2<<20 {
			t.Errorf("%s: running, holds %d bytes in %d of buffers; want at most 1 MiB in 2 MiB", tc.name, size, capacity)
		}
		s.CloseWrite()
		s.Trim(64 << 10)
		size, capacity = s.Retained()
		if size > 64<<10 || capacity > 64<<10 {
			t.Errorf("%s: exited, holds %d bytes in %d of buffers; want at most 64 KiB", tc.name, size, capacity)
		}
	}
}

func TestStreamCountsWhatLeaves(t *testing.T) {
	s := NewStream(10, true)
	s.StartAt(100)
	var mu sync.Mutex
	var got []int64
	s.OnOut(func(out int64, empty bool) { mu.Lock(); got = append(got, out); mu.Unlock() })
	ctx := context.Background()
	s.Write(ctx, []byte("0123456789abc")) // unattended: 3 dropped
	s.Attach()
	buf := make([]byte, 4)
	s.Read(ctx, buf)
	s.Read(ctx, buf)
	mu.Lock()
	defer mu.Unlock()
	want := []int64{103, 107, 111}
	if len(got) != len(want) {
		t.Fatalf("offsets %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("offsets %v, want %v", got, want)
		}
	}
}
