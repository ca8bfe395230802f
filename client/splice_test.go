package client

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"bproc/fs/slaveproto"

	"golang.org/x/sys/unix"
)

// blockingPipe is a pipe as a shell makes it (os.Pipe's are non-blocking).
func blockingPipe() (*os.File, *os.File, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(p[0]), "pipe-r"), os.NewFile(uintptr(p[1]), "pipe-w"), nil
}

// plainSession serves session's bytes from a TCP peer and reads them as
// DialDirect does a plain one; ahead: the handshake's reader holds the
// first of them (what it read ahead).
func plainSession(t *testing.T, session []byte, ahead bool) *DirectStreams {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write(session)
		c.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	br := bufio.NewReaderSize(c, 64<<10)
	if ahead {
		if _, err := br.Peek(len(session)); err != io.EOF && err != bufio.ErrBufferFull {
			t.Fatal(err)
		}
	}
	ds := newDirectStreams(c, plainReader{br, c})
	if ds.sp == nil {
		t.Fatal("no splice source on a TCP connection")
	}
	return ds
}

// bigSession: stdout in frames of all sizes (a first small one, so that
// the buffered reader holds bytes ahead), stderr between them.
func bigSession() (session, out, errOut []byte) {
	rng := rand.New(rand.NewSource(1))
	for i, size := range []int{3, 200 << 10, 1, 1 << 20, 70 << 10, 5000, 1<<20 - 8<<10} {
		b := make([]byte, size)
		rng.Read(b)
		h := slaveproto.DirectFrameHeader(slaveproto.StreamStdout, size)
		session = append(append(session, h[:]...), b...)
		out = append(out, b...)
		e := []byte{'e', byte('0' + i)}
		h = slaveproto.DirectFrameHeader(slaveproto.StreamStderr, len(e))
		session = append(append(session, h[:]...), e...)
		errOut = append(errOut, e...)
	}
	for _, id := range []byte{slaveproto.StreamStdout, slaveproto.StreamStderr} {
		h := slaveproto.DirectFrameHeader(id, 0)
		session = append(session, h[:]...)
	}
	return session, out, errOut
}

// spliceAll splices stdout to d and reads stderr, as bpsh does.
func spliceAll(t *testing.T, ds *DirectStreams, d *SpliceDest) (moved int, errOut []byte, err error) {
	o, _ := ds.Stdout()
	e, _ := ds.Stderr()
	done := make(chan error, 1)
	go func() {
		var err error
		errOut, err = io.ReadAll(e)
		e.Close()
		done <- err
	}()
	for {
		n, err := o.(*directReader).SpliceTo(d)
		moved += n
		if err == io.EOF {
			break
		}
		if err != nil {
			o.Close()
			<-done
			return moved, errOut, err
		}
	}
	o.Close()
	return moved, errOut, <-done
}

// With stdout a pipe or a file, the spliced bytes are the stream's,
// exactly; stderr read beside them is whole too.
func TestSpliceToPipeAndFile(t *testing.T) {
	session, want, wantErr := bigSession()
	t.Run("pipe", func(t *testing.T) {
		pr, pw, err := blockingPipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pr.Close()
		got := make(chan []byte)
		go func() { b, _ := io.ReadAll(pr); got <- b }()
		d, err := NewSpliceDest(pw)
		if err != nil {
			t.Fatal(err)
		}
		if d.pipe != nil {
			t.Error("a pipe spliced to through a pipe of its own")
		}
		n, errOut, err := spliceAll(t, plainSession(t, session, true), d)
		pw.Close()
		if d.Spliced() < int64(len(want))/2 {
			t.Errorf("%d of %d bytes spliced", d.Spliced(), len(want))
		}
		if b := <-got; err != nil || n != len(want) || !bytes.Equal(b, want) || !bytes.Equal(errOut, wantErr) {
			t.Fatalf("moved %d, %v; pipe got %d bytes (want %d, equal %v), stderr %q", n, err, len(b), len(want), bytes.Equal(b, want), errOut)
		}
	})
	t.Run("file", func(t *testing.T) {
		f, d := fileDest(t)
		n, errOut, err := spliceAll(t, plainSession(t, session, true), d)
		if d.Spliced() < int64(len(want))/2 {
			t.Errorf("%d of %d bytes spliced", d.Spliced(), len(want))
		}
		b, rerr := os.ReadFile(f.Name())
		if err != nil || rerr != nil || n != len(want) || !bytes.Equal(b, want) || !bytes.Equal(errOut, wantErr) {
			t.Fatalf("moved %d, %v, %v; file has %d bytes (want %d, equal %v), stderr %q", n, err, rerr, len(b), len(want), bytes.Equal(b, want), errOut)
		}
	})
}

// Past what the handshake read ahead, every byte of the frames is spliced:
// reading a frame's header takes none of its bytes along (which would
// then be copied through the program, a sixth of bpsh's CPU).
func TestSpliceReadsNoFrameBytes(t *testing.T) {
	session, want, wantErr := bigSession()
	f, d := fileDest(t)
	n, errOut, err := spliceAll(t, plainSession(t, session, false), d)
	if err != nil || n != len(want) || !bytes.Equal(errOut, wantErr) {
		t.Fatalf("moved %d of %d, %v; stderr %q", n, len(want), err, errOut)
	}
	if d.Spliced() != int64(len(want)) {
		t.Errorf("%d of %d bytes spliced, the rest read and written", d.Spliced(), len(want))
	}
	b, err := os.ReadFile(f.Name())
	if err != nil || !bytes.Equal(b, want) {
		t.Fatalf("file has %d bytes (want %d), %v", len(b), len(want), err)
	}
}

// What splice cannot take is refused up front, and a reader gone from
// the pipe is the file's failure: the stream itself reads on.
func TestSpliceRefusalsAndWriteErrors(t *testing.T) {
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := NewSpliceDest(f); !errors.Is(err, ErrNoSplice) {
		t.Errorf("a file in append mode: %v, want ErrNoSplice", err)
	}
	nr, nw, err := os.Pipe() // Go's pipes are non-blocking
	if err != nil {
		t.Fatal(err)
	}
	defer nr.Close()
	defer nw.Close()
	if _, err := NewSpliceDest(nw); !errors.Is(err, ErrNoSplice) {
		t.Errorf("a non-blocking pipe: %v, want ErrNoSplice", err)
	}
	sealed := &DirectStreams{r: bytes.NewReader(nil)}
	sealed.cond = sync.NewCond(&sealed.mu)
	o, _ := sealed.Stdout()
	if _, err := o.(*directReader).SpliceTo(&SpliceDest{}); !errors.Is(err, ErrNoSplice) {
		t.Errorf("a session without a splice source: %v, want ErrNoSplice", err)
	}

	session, want, wantErr := bigSession()
	pr, pw, err := blockingPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	pr.Close()
	d, err := NewSpliceDest(pw)
	if err != nil {
		t.Fatal(err)
	}
	ds := plainSession(t, session, true)
	so, _ := ds.Stdout()
	se, _ := ds.Stderr()
	errc := make(chan []byte)
	go func() { b, _ := io.ReadAll(se); errc <- b }()
	moved, err := so.(*directReader).SpliceTo(d)
	var we *WriteError
	if !errors.As(err, &we) {
		t.Fatalf("splicing to a pipe without a reader: %d, %v; want a WriteError", moved, err)
	}
	rest, err := io.ReadAll(so)
	if err != nil || !bytes.HasSuffix(want, rest) || len(rest) == 0 {
		t.Errorf("after the write error Read got %d bytes, %v; want the stream's rest", len(rest), err)
	}
	if b := <-errc; !bytes.Equal(b, wantErr) {
		t.Errorf("stderr %q, want %q", b, wantErr)
	}
}

// A pipe whose reader is slow fills: the move then waits for the pipe, not
// for the socket (whose bytes are all there already, so it would never
// become readable again).
func TestSpliceToSlowPipe(t *testing.T) {
	session, want, _ := bigSession()
	pr, pw, err := blockingPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	got := make(chan []byte)
	go func() {
		time.Sleep(300 * time.Millisecond) // the pipe and then the socket's buffer fill meanwhile
		b, _ := io.ReadAll(pr)
		got <- b
	}()
	d, err := NewSpliceDest(pw)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	done := make(chan error, 1)
	go func() {
		n, _, err := spliceAll(t, plainSession(t, session, true), d)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		pw.Close()
		done <- err
	}()
	select {
	case err := <-done:
		if b := <-got; err != nil || !bytes.Equal(b, want) {
			t.Fatalf("%v; the pipe got %d bytes of %d", err, len(b), len(want))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("splicing into a slow pipe hangs")
	}
}

// fileDest is a SpliceDest to a new file, both closed when t ends.
func fileDest(t *testing.T) (*os.File, *SpliceDest) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	d, err := NewSpliceDest(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return f, d
}
