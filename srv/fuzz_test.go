package srv

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"reflect"
	"testing"
	"time"
)

// byteConn is a net.Conn reading from r and writing to w, for feeding a
// decoder bytes without a socket.
type byteConn struct {
	r io.Reader
	w io.Writer
}

func (c *byteConn) Read(p []byte) (int, error)         { return c.r.Read(p) }
func (c *byteConn) Write(p []byte) (int, error)        { return c.w.Write(p) }
func (c *byteConn) Close() error                       { return nil }
func (c *byteConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *byteConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *byteConn) SetDeadline(t time.Time) error      { return nil }
func (c *byteConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *byteConn) SetWriteDeadline(t time.Time) error { return nil }

// recordedClient is what a real client sends in a handshake: greeting and
// proof frames, recorded against a real server.
func recordedClient(tb testing.TB) []byte {
	c, s := net.Pipe()
	var rec bytes.Buffer
	go func() {
		ServerHandshake(s, testKey, false)
		s.Close()
	}()
	ClientHandshake(&byteConn{r: c, w: io.MultiWriter(c, &rec)}, testKey, Hello{Role: RoleSlave, Uid: 1, Gid: 2, Groups: []uint32{3}, Host: "node0"})
	c.Close()
	return rec.Bytes()
}

func frame(parts ...[]byte) []byte {
	var b bytes.Buffer
	writeFrame(&b, parts...)
	return b.Bytes()
}

// FuzzServerHandshake feeds the server arbitrary client bytes: it must
// fail cleanly, and never accept, since its nonce is fresh and nothing
// recorded from an earlier handshake (the seeds) can prove the key.
func FuzzServerHandshake(f *testing.F) {
	f.Add(recordedClient(f))
	f.Add(frame([]byte(hsMagic), make([]byte, nonceLen)))
	f.Add(append(frame([]byte(hsMagic), make([]byte, nonceLen)), frame([]byte(`{"Role":"tool"}`), make([]byte, sha256.Size))...))
	f.Add([]byte{0, 0, 0x40, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		h, _, err := ServerHandshake(&byteConn{r: bytes.NewReader(in), w: io.Discard}, testKey, false)
		if err == nil {
			t.Fatalf("accepted %q as %+v", in, h)
		}
	})
}

// FuzzClientHandshake feeds the client an arbitrary server: it must fail
// cleanly and never think the key proven.
func FuzzClientHandshake(f *testing.F) {
	f.Add(append(frame(make([]byte, nonceLen), make([]byte, sha256.Size)), frame([]byte("error: cluster key mismatch"))...))
	f.Add(frame([]byte("error: bad hello")))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		if _, err := ClientHandshake(&byteConn{r: bytes.NewReader(in), w: io.Discard}, testKey, toolHello); err == nil {
			t.Fatalf("accepted server %q", in)
		}
	})
}

// FuzzReadFrame: a handshake frame is returned whole and bounded, or an
// error.
func FuzzReadFrame(f *testing.F) {
	f.Add(frame([]byte(hsMagic), make([]byte, nonceLen)))
	f.Add([]byte{0, 0, 0x40, 1})
	f.Add([]byte{0, 0, 0, 5, 'h'})
	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := readFrame(bytes.NewReader(in))
		if err != nil {
			return
		}
		if len(b) > maxFrame || len(in) < 4+len(b) || !bytes.Equal(b, in[4:4+len(b)]) ||
			binary.BigEndian.Uint32(in) != uint32(len(b)) {
			t.Fatalf("frame %q from %q", b, in)
		}
	})
}

// FuzzHello: a hello decodes and validates or is refused; a valid one
// survives a round trip.
func FuzzHello(f *testing.F) {
	for _, h := range []Hello{toolHello, {Role: RoleSlave, Uid: 1000, Gid: 100, Groups: []uint32{4, 27}, Host: "node3"}} {
		b, _ := json.Marshal(h)
		f.Add(b)
	}
	f.Add([]byte(`{"Role":"slave","Host":"a b"}`))
	f.Add([]byte(`{"Role":"admin"}`))
	f.Add([]byte(`{"Role":"tool","Uid":-1}`))
	f.Add([]byte(`{"Role":"tool","Groups":null,"Host":"\u00e9"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var h Hello
		if json.Unmarshal(in, &h) != nil || h.Validate() != nil {
			return
		}
		b, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		var back Hello
		if err := json.Unmarshal(b, &back); err != nil || back.Validate() != nil || !reflect.DeepEqual(h, back) {
			t.Fatalf("%+v came back as %+v (%v)", h, back, err)
		}
	})
}

// FuzzSealedRead seals msgs, alters the stream at one byte (or not), and
// reads it back: intact, every message comes back; altered, what comes
// back is a prefix of what was sent and then an error, never bytes that
// were not sent.
func FuzzSealedRead(f *testing.F) {
	f.Add([]byte("hello"), []byte("world"), uint32(0), byte(0))
	f.Add([]byte("hello"), []byte("world"), uint32(3), byte(0x80))
	f.Add([]byte(""), []byte("x"), uint32(30), byte(1))
	f.Add(bytes.Repeat([]byte("9"), 5000), []byte("p"), uint32(4000), byte(0xff))
	nc, ns := bytes.Repeat([]byte{1}, nonceLen), bytes.Repeat([]byte{2}, nonceLen)
	f.Fuzz(func(t *testing.T, m1, m2 []byte, at uint32, flip byte) {
		var wire bytes.Buffer
		w, err := seal(&byteConn{r: eofReader{}, w: &wire}, testKey, nc, ns, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range [][]byte{m1, m2} {
			if err := w.writeFrame([][]byte{m}); err != nil {
				t.Fatal(err)
			}
		}
		b := wire.Bytes()
		if flip != 0 && len(b) > 0 {
			b[int(at)%len(b)] ^= flip
		}
		r, err := seal(&byteConn{r: bytes.NewReader(b), w: io.Discard}, testKey, nc, ns, false)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		sent := append(append([]byte{}, m1...), m2...)
		if flip == 0 || len(b) == 0 {
			if err != nil || !bytes.Equal(got, sent) {
				t.Fatalf("intact stream: got %q, %v; sent %q", got, err, sent)
			}
			return
		}
		if err == nil || !bytes.HasPrefix(sent, got) {
			t.Fatalf("altered stream: got %q, %v; sent %q", got, err, sent)
		}
		if !errors.Is(err, ErrSealBroken) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("altered stream: error %v", err)
		}
	})
}

// FuzzSealedGarbage: bytes nobody sealed never open; only an empty stream
// ends cleanly.
func FuzzSealedGarbage(f *testing.F) {
	f.Add([]byte{0, 0, 0, 16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := seal(&byteConn{r: bytes.NewReader(in), w: io.Discard}, testKey, make([]byte, nonceLen), make([]byte, nonceLen), false)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(r); len(got) > 0 || (err == nil) != (len(in) == 0) {
			t.Fatalf("opened %q from %q (%v)", got, in, err)
		}
	})
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// FuzzP9Reader: whatever a key holder sends, p9 sees only whole messages
// within the msize, a first Tversion with its msize clamped, no other
// Tversion, and bytes the client sent (but the clamped msize).
func FuzzP9Reader(f *testing.F) {
	const max = 8192
	f.Add(append(tversion(1<<20), msg9P(110, 1, make([]byte, 20)...)...))
	f.Add(append(tversion(100), tversion(100)...))
	f.Add(msg9P(110, 1, 1, 2, 3))
	f.Add(sizeHeader(0xffffffff, msgTversion))
	f.Add(append(tversion(max), sizeHeader(3, 110)...))
	f.Add(append(tversion(max), sizeHeader(max+1, 118)...))
	f.Add(msg9P(msgTversion, 0xffff, 1, 2))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := io.ReadAll(newP9Reader(bytes.NewReader(in), max))
		if err != nil && !errors.Is(err, errBad9P) {
			t.Fatalf("error %v not malformed 9P", err)
		}
		if len(out) > len(in) {
			t.Fatalf("%d bytes out of %d", len(out), len(in))
		}
		want := append([]byte{}, in[:len(out)]...)
		if len(want) >= tversionPrefix && binary.LittleEndian.Uint32(want[tversionMsize:]) > max {
			binary.LittleEndian.PutUint32(want[tversionMsize:], max)
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("passed %x for %x", out, in)
		}
		for i := 0; len(out) > 0; i++ {
			if len(out) < p9Header {
				t.Fatalf("a partial header passed: %x", out)
			}
			size := binary.LittleEndian.Uint32(out)
			if size < p9Header || size > max || (i == 0) != (out[4] == msgTversion) {
				t.Fatalf("message %d passed: %x", i, out[:p9Header])
			}
			if i == 0 {
				if len(out) < tversionPrefix {
					t.Fatalf("partial Tversion passed: %x", out)
				}
				if m := binary.LittleEndian.Uint32(out[tversionMsize:]); m > max {
					t.Fatalf("msize %d passed", m)
				}
			}
			out = out[min(int(size), len(out)):]
		}
	})
}
