package srv

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"bproc/internal/treetest"
)

// msg9P is one 9P message: size[4] type[1] tag[2] body.
func msg9P(typ byte, tag uint16, body ...byte) []byte {
	m := binary.LittleEndian.AppendUint32(nil, uint32(p9Header+len(body)))
	m = append(m, typ)
	m = binary.LittleEndian.AppendUint16(m, tag)
	return append(m, body...)
}

func tversion(msize uint32) []byte {
	v := "9P2000.L"
	body := binary.LittleEndian.AppendUint32(nil, msize)
	body = binary.LittleEndian.AppendUint16(body, uint16(len(v)))
	return msg9P(msgTversion, 0xffff, append(body, v...)...)
}

func sizeHeader(size uint32, typ byte) []byte {
	return append(binary.LittleEndian.AppendUint32(nil, size), typ, 1, 0)
}

// A key holder speaking broken 9P loses its connection, within seconds and
// without a reply it could misuse; the server keeps serving everyone else.
func TestMalformed9PFromKeyHolder(t *testing.T) {
	sv := serve(t)
	ok := tversion(DefaultMaxMessage)
	cases := []struct {
		name string
		send [][]byte
	}{
		{"first message not Tversion", [][]byte{msg9P(110 /* Tattach */, 1, make([]byte, 20)...)}},
		{"size header of 4 GiB", [][]byte{sizeHeader(0xffffffff, msgTversion)}},
		{"size header of 3 MiB before Tversion", [][]byte{sizeHeader(3<<20, msgTversion), make([]byte, 64<<10)}},
		{"size header over msize", [][]byte{ok, sizeHeader(DefaultMaxMessage+1, 118 /* Twrite */)}},
		{"size header shorter than a header", [][]byte{ok, sizeHeader(3, 110)}},
		{"Tversion too short", [][]byte{msg9P(msgTversion, 0xffff, 1, 2)}},
		{"second Tversion", [][]byte{ok, tversion(4 << 20)}},
		{"closed inside a message", [][]byte{ok, sizeHeader(100, 110), {1, 2, 3}, nil}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw, sess := handshaken(t, sv.addr)
			for _, b := range tc.send {
				if b == nil {
					raw.(*net.TCPConn).CloseWrite()
					continue
				}
				if _, err := sess.Write(b); err != nil {
					t.Fatal(err)
				}
			}
			raw.SetReadDeadline(time.Now().Add(5 * time.Second))
			// At most the Rversion of a good Tversion comes back; then
			// the server hangs up.
			got, err := io.ReadAll(sess)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("connection still open after 5 s (read %d bytes)", len(got))
			}
			if err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("read: %v", err)
			}
			if len(got) > 0 && (tc.send[0][4] != msgTversion || len(tc.send) == 1 || got[4] != msgTversion+1 || len(got) != int(binary.LittleEndian.Uint32(got))) {
				t.Errorf("server answered %x", got)
			}
			c := dial(t, sv.addr, toolHello)
			treetest.Want(t, c.Open, "hello", "hello, world\n")
		})
	}
	if !sv.logged("malformed 9P") {
		t.Errorf("nothing logged: %q", sv.logs)
	}
}
