package srv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// pair returns two ends of a loopback TCP connection.
func pair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- nil
			return
		}
		ch <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-ch
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

type hsResult struct {
	h   Hello
	err error
}

func serverSide(s net.Conn, key []byte) chan hsResult {
	ch := make(chan hsResult, 1)
	go func() {
		h, _, err := ServerHandshake(s, key, false)
		ch <- hsResult{h, err}
	}()
	return ch
}

func TestHandshakeOK(t *testing.T) {
	c, s := pair(t)
	res := serverSide(s, testKey)
	want := Hello{Role: RoleSlave, Uid: 1000, Gid: 100, Groups: []uint32{4, 27}, Host: "node3"}
	if _, err := ClientHandshake(c, testKey, want); err != nil {
		t.Fatalf("client: %v", err)
	}
	r := <-res
	if r.err != nil {
		t.Fatalf("server: %v", r.err)
	}
	if r.h.Role != want.Role || r.h.Uid != want.Uid || r.h.Gid != want.Gid || r.h.Host != want.Host ||
		len(r.h.Groups) != 2 || r.h.Groups[0] != 4 || r.h.Groups[1] != 27 {
		t.Errorf("server got %+v, want %+v", r.h, want)
	}
}

func TestHandshakeWrongKey(t *testing.T) {
	c, s := pair(t)
	res := serverSide(s, testKey)
	_, err := ClientHandshake(c, []byte("some other key"), Hello{Role: RoleTool})
	if !errors.Is(err, ErrBadKey) {
		t.Errorf("client with wrong key: got %v, want key mismatch", err)
	}
	if r := <-res; !errors.Is(r.err, ErrBadKey) {
		t.Errorf("server facing wrong key: got %v, want key mismatch", r.err)
	}
}

// A client holding the key must not trust a server that lacks it: the
// server's proof comes first, so an impostor learns nothing usable.
func TestHandshakeImpostorServer(t *testing.T) {
	c, s := pair(t)
	res := serverSide(s, []byte("impostor"))
	_, err := ClientHandshake(c, testKey, Hello{Role: RoleSlave, Host: "n1"})
	if !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), "server") {
		t.Errorf("client facing impostor: got %v", err)
	}
	if r := <-res; r.err == nil {
		t.Error("impostor server accepted the client")
	}
}

func TestHandshakeBadInput(t *testing.T) {
	old := handshakeTimeout
	handshakeTimeout = 300 * time.Millisecond
	defer func() { handshakeTimeout = old }()

	huge := make([]byte, 4)
	binary.BigEndian.PutUint32(huge, 1<<30)
	cases := []struct {
		name string
		send []byte
		want string
	}{
		{"silent", nil, "timeout"},
		{"9p instead", []byte{19, 0, 0, 0, 100, 0xff, 0xff, 0, 0, 1, 0, 8, 0, '9', 'P', '2', '0', '0', '0'}, "not a bproc peer"},
		{"oversized frame", huge, "exceeds"},
		{"garbage frame", append([]byte{0, 0, 0, 5}, "hello"...), "bad greeting"},
		{"truncated", []byte{0, 0, 0, 40, 'b', 'p'}, "timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, s := pair(t)
			res := serverSide(s, testKey)
			if tc.send != nil {
				c.Write(tc.send)
			}
			start := time.Now()
			select {
			case r := <-res:
				if r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
					t.Errorf("got %v, want error containing %q", r.err, tc.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("server handshake hung")
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v, deadline is %v", d, handshakeTimeout)
			}
		})
	}
}

func TestHandshakeBadHello(t *testing.T) {
	cases := []Hello{
		{Role: "admin"},
		{Role: RoleTool, Host: strings.Repeat("h", 300)},
		{Role: RoleTool, Host: "bad host"},
		{Role: RoleTool, Groups: make([]uint32, 2000)},
	}
	for _, h := range cases {
		c, _ := pair(t)
		if _, err := ClientHandshake(c, testKey, h); err == nil {
			t.Errorf("client accepted to send %+v", h)
		}
	}
	// A client that sends a bad hello anyway (bypassing Validate) is
	// rejected by the server with a readable reason.
	c, s := pair(t)
	res := serverSide(s, testKey)
	_, _, _, err := clientHandshake(c, testKey, Hello{Role: "admin"})
	if err == nil || !strings.Contains(err.Error(), "bad role") {
		t.Errorf("client: got %v, want rejection naming the role", err)
	}
	if r := <-res; r.err == nil || !strings.Contains(r.err.Error(), "bad role") {
		t.Errorf("server: got %v", r.err)
	}
}

// The claim is bound into the proof: a man in the middle changing the
// hello (e.g. uid 1000 -> 0) makes the server reject it.
func TestHandshakeTamperedHello(t *testing.T) {
	c, s := pair(t)
	res := serverSide(s, testKey)
	mc, ms := net.Pipe()
	// Relay client->server, rewriting the uid in the hello frame.
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ms.Read(buf)
			if n > 0 {
				b := bytes.Replace(buf[:n], []byte(`"Uid":1000`), []byte(`"Uid":0000`), 1)
				c.Write(b)
			}
			if err != nil {
				c.Close()
				return
			}
		}
	}()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				ms.Write(buf[:n])
			}
			if err != nil {
				ms.Close()
				return
			}
		}
	}()
	_, err := ClientHandshake(mc, testKey, Hello{Role: RoleTool, Uid: 1000})
	if err == nil {
		t.Error("client: tampered handshake succeeded")
	}
	if r := <-res; !errors.Is(r.err, ErrBadKey) {
		t.Errorf("server: got %v, want proof failure", r.err)
	}
}
