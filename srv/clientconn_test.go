package srv

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
)

// clientConn must send each 9P message whole however p9 splits it, and a
// broken socket must not turn into a write error for p9.
func TestClientConnGathersMessages(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(c)
		got <- b
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cc := &clientConn{tc: nc.(*net.TCPConn), cli: &Client{done: make(chan struct{})}}
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
	cc.Close()
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("peer got %d bytes, want %d", len(b), want.Len())
	}
	// Writing on the closed socket: no error for p9, the client is done.
	if n, err := cc.Write([]byte{9, 0, 0, 0, 1, 2, 3, 4, 5}); n != 9 || err != nil {
		t.Fatalf("write after close: %d, %v", n, err)
	}
	select {
	case <-cc.cli.done:
	default:
		t.Fatal("a failed write did not mark the client done")
	}
}
