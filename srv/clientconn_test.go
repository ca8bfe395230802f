package srv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
)

// tcpPair is pair's two ends as TCP connections.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	c, s := pair(t)
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// clientConn must send each 9P message whole, sealed, however p9 splits
// it; a broken socket must not turn into a write error for p9.
func TestClientConnSealsWholeMessages(t *testing.T) {
	c, s := tcpPair(t)
	nc, ns := bytes.Repeat([]byte{1}, nonceLen), bytes.Repeat([]byte{2}, nonceLen)
	csc, _ := seal(c, testKey, nc, ns, true)
	ssc, _ := seal(s, testKey, nc, ns, false)
	cc := newClientConn(c, csc, &Client{done: make(chan struct{})})
	var want bytes.Buffer
	for i, split := range [][]int{{2, 5, 100}, {7, 0, 1}, {4, 1000}, {1, 1, 1, 1, 3, 50}} {
		body := bytes.Repeat([]byte{byte('a' + i)}, 3+i*37)
		msg := binary.LittleEndian.AppendUint32(nil, uint32(4+len(body)))
		msg = append(msg, body...)
		want.Write(msg)
		for _, k := range split {
			k = min(k, len(msg))
			if n, err := cc.Write(msg[:k]); n != k || err != nil {
				t.Fatalf("write: %d, %v", n, err)
			}
			msg = msg[k:]
		}
		if len(msg) > 0 {
			cc.Write(msg)
		}
	}
	got := make([]byte, want.Len())
	if _, err := io.ReadFull(ssc, got); err != nil || !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("server read %q, %v; want %q", got, err, want.Bytes())
	}
	if ssc.rseq != 4 {
		t.Errorf("%d frames for 4 messages", ssc.rseq)
	}
	// Writing on the closed socket: no error for p9, the client is done.
	c.Close()
	if n, err := cc.Write([]byte{9, 0, 0, 0, 1, 2, 3, 4, 5}); n != 9 || err != nil {
		t.Fatalf("write after close: %d, %v", n, err)
	}
	select {
	case <-cc.cli.done:
	default:
		t.Fatal("a failed write did not mark the client done")
	}
}

// A frame altered, replayed or sealed under another key does not open.
func TestSealedFramesAuthenticate(t *testing.T) {
	c, s := tcpPair(t)
	nc, ns := bytes.Repeat([]byte{1}, nonceLen), bytes.Repeat([]byte{2}, nonceLen)
	csc, _ := seal(c, testKey, nc, ns, true)
	// What the sender puts on the wire, captured.
	var wire bytes.Buffer
	csc.Conn = struct{ net.Conn }{&captureConn{Conn: c, w: &wire}}
	csc.Write([]byte("exec /bin/true"))
	frame := append([]byte(nil), wire.Bytes()...)
	tests := map[string][]byte{
		"flipped":  func() []byte { f := append([]byte(nil), frame...); f[len(f)-1] ^= 1; return f }(),
		"replayed": append(append([]byte(nil), frame...), frame...),
		"short":    frame[:len(frame)-3],
	}
	for name, bytesOnWire := range tests {
		r, w := net.Pipe()
		ssc, _ := seal(r, testKey, nc, ns, false)
		go func() { w.Write(bytesOnWire); w.Close() }()
		buf := make([]byte, 64)
		var err error
		for err == nil {
			_, err = ssc.Read(buf)
		}
		if name == "replayed" || name == "flipped" {
			if !errors.Is(err, ErrSealBroken) {
				t.Errorf("%s: %v, want ErrSealBroken", name, err)
			}
		} else if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: %v, want unexpected EOF", name, err)
		}
	}
	r, w := net.Pipe()
	other, _ := seal(r, []byte("another key entirely, 32 bytes!"), nc, ns, false)
	go func() { w.Write(frame); w.Close() }()
	if _, err := other.Read(make([]byte, 64)); !errors.Is(err, ErrSealBroken) {
		t.Errorf("another key: %v, want ErrSealBroken", err)
	}
	_ = s
}

type captureConn struct {
	net.Conn
	w *bytes.Buffer
}

func (c *captureConn) Write(p []byte) (int, error) { return c.w.Write(p) }

// The server chooses the session mode; the client follows, and both then
// speak the same way.
func TestSessionModes(t *testing.T) {
	for _, plain := range []bool{false, true} {
		c, s := tcpPair(t)
		done := make(chan net.Conn, 1)
		go func() {
			_, sess, err := ServerHandshake(s, testKey, plain)
			if err != nil {
				t.Errorf("server: %v", err)
			}
			done <- sess
		}()
		csess, err := ClientHandshake(c, testKey, toolHello)
		if err != nil {
			t.Fatalf("client: %v", err)
		}
		ssess := <-done
		if _, sealed := csess.(*sealedConn); sealed == plain {
			t.Errorf("plain=%v: client session sealed=%v", plain, sealed)
		}
		go csess.Write([]byte("hello"))
		buf := make([]byte, 5)
		if _, err := io.ReadFull(ssess, buf); err != nil || string(buf) != "hello" {
			t.Errorf("plain=%v: server read %q, %v", plain, buf, err)
		}
	}
}

// Large pieces are sealed where they lie (a frame of their own) and opened
// straight into a reader's buffer when it fits: the bytes come out the
// same whatever the reader's buffer size, and a flipped bit in the large
// frame still does not open.
func TestSealedLargePieces(t *testing.T) {
	big := make([]byte, 3*bigPiece+7)
	for i := range big {
		big[i] = byte(i * 7)
	}
	hdr := []byte("hdr12")
	want := append(append(append([]byte(nil), hdr...), big...), big[:bigPiece]...)
	for _, rsize := range []int{1, 5, 4096, len(big), len(big) + 100} {
		c, s := tcpPair(t)
		nc, ns := bytes.Repeat([]byte{1}, nonceLen), bytes.Repeat([]byte{2}, nonceLen)
		csc, _ := seal(c, testKey, nc, ns, true)
		ssc, _ := seal(s, testKey, nc, ns, false)
		go func() {
			csc.writeFrame(net.Buffers{hdr, big})
			csc.Write(big[:bigPiece])
			c.Close()
		}()
		var got []byte
		buf := make([]byte, rsize)
		for {
			n, err := ssc.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("read size %d: %v", rsize, err)
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("read size %d: %d bytes, not the %d written", rsize, len(got), len(want))
		}
		if ssc.rseq != 3 {
			t.Errorf("read size %d: %d frames, want 3 (header, large piece, large write)", rsize, ssc.rseq)
		}
	}
	c, _ := tcpPair(t)
	nc, ns := bytes.Repeat([]byte{1}, nonceLen), bytes.Repeat([]byte{2}, nonceLen)
	csc, _ := seal(c, testKey, nc, ns, true)
	var wire bytes.Buffer
	csc.Conn = struct{ net.Conn }{&captureConn{Conn: c, w: &wire}}
	csc.writeFrame(net.Buffers{hdr, big})
	f := wire.Bytes()
	f[len(f)-100] ^= 1
	r, w := net.Pipe()
	ssc, _ := seal(r, testKey, nc, ns, false)
	go func() { w.Write(f); w.Close() }()
	buf := make([]byte, len(big))
	var err error
	for err == nil {
		_, err = ssc.Read(buf)
	}
	if !errors.Is(err, ErrSealBroken) {
		t.Errorf("flipped large frame: %v, want ErrSealBroken", err)
	}
}
