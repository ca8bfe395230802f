package client

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"bproc/fs/slaveproto"
)

func frames(parts ...any) []byte {
	var b []byte
	for i := 0; i < len(parts); i += 2 {
		data := parts[i+1].(string)
		h := slaveproto.DirectFrameHeader(byte(parts[i].(int)), len(data))
		b = append(append(b, h[:]...), data...)
	}
	return b
}

// demux reads a session's bytes as both streams' readers do.
func demux(t *testing.T, session []byte) (out, errOut string, oerr, eerr error) {
	c, peer := net.Pipe()
	defer peer.Close()
	ds := &DirectStreams{r: bytes.NewReader(session), conn: c}
	ds.cond = sync.NewCond(&ds.mu)
	o, _ := ds.Stdout()
	e, _ := ds.Stderr()
	done := make(chan struct{})
	var eb []byte
	go func() {
		defer close(done)
		eb, eerr = io.ReadAll(e)
		e.Close()
	}()
	ob, oerr := io.ReadAll(o)
	o.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("stderr's reader hangs on %x", session)
	}
	return string(ob), string(eb), oerr, eerr
}

func TestDirectDemux(t *testing.T) {
	out, errOut, oerr, eerr := demux(t, frames(1, "a", 2, "x", 1, "bc", 2, "", 1, ""))
	if out != "abc" || errOut != "x" || oerr != nil || eerr != nil {
		t.Errorf("got %q %q %v %v", out, errOut, oerr, eerr)
	}
	// Cut short: both readers hear of it.
	_, _, oerr, eerr = demux(t, frames(1, "a", 2, "x")[:8])
	if oerr == nil || eerr == nil {
		t.Errorf("a cut session: %v %v", oerr, eerr)
	}
	// Bytes after a stream's end are an error, not a hang.
	_, _, _, eerr = demux(t, frames(1, "", 1, "late", 2, ""))
	if eerr == nil {
		t.Errorf("bytes after the end: no error")
	}
}

// FuzzDirectDemux: whatever a node sends, both readers end.
func FuzzDirectDemux(f *testing.F) {
	f.Add(frames(1, "a", 2, "x", 1, "", 2, ""))
	f.Add(frames(2, "only err", 2, "", 1, ""))
	f.Add([]byte{1, 0, 0, 0, 9, 'a'})
	f.Add([]byte{3, 0, 0, 0, 0})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		demux(t, b)
	})
}

// A moved end is not EOF: the reader hears ErrMoved, after every byte
// before it; bytes after it are an error, as after an end.
func TestDirectMovedEnd(t *testing.T) {
	moved := func(st byte) []byte { h := slaveproto.DirectFrameHeader(st, slaveproto.DirectMoved); return h[:] }
	session := append(frames(1, "ab", 2, "x", 1, "c"), moved(1)...)
	session = append(session, frames(2, "y", 2, "")...)
	out, errOut, oerr, eerr := demux(t, session)
	if out != "abc" || !errors.Is(oerr, ErrMoved) || errOut != "xy" || eerr != nil {
		t.Errorf("got %q %v, %q %v; want abc ErrMoved, xy nil", out, oerr, errOut, eerr)
	}
	session = append(frames(1, "a"), moved(1)...)
	session = append(session, moved(2)...)
	out, errOut, oerr, eerr = demux(t, session)
	if out != "a" || !errors.Is(oerr, ErrMoved) || errOut != "" || !errors.Is(eerr, ErrMoved) {
		t.Errorf("both moved: %q %v, %q %v", out, oerr, errOut, eerr)
	}
	session = append(frames(1, "a"), moved(1)...)
	session = append(session, frames(1, "late", 2, "")...)
	if _, _, _, eerr = demux(t, session); eerr == nil || errors.Is(eerr, ErrMoved) {
		t.Errorf("bytes after a moved end: %v, want an error", eerr)
	}
}
