package srv

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"
)

// A server's Stats count clients in and out by role and refused
// handshakes by cause, as bpmaster's /metrics shows them.
func TestStatsCountClientsAndRefusals(t *testing.T) {
	old := handshakeTimeout
	handshakeTimeout = 300 * time.Millisecond
	defer func() { handshakeTimeout = old }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st := &Stats{}
	s := &Server{Key: testKey, Root: newTestTree().root, Stats: st}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	addr := ln.Addr().String()

	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	if _, err := Dial(dctx, addr, []byte("the wrong key, long enough"), toolHello); err == nil {
		t.Fatal("dial with a wrong key succeeded")
	}
	garbage, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer garbage.Close()
	garbage.Write(bytes.Repeat([]byte{0xff}, 100))
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	hangup, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	hangup.Close()

	c, err := Dial(dctx, addr, testKey, toolHello)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if !waitFor(2*time.Second, func() bool { return st.Connected()[RoleTool] == 1 }) {
		t.Errorf("connected = %v, want 1 tool", st.Connected())
	}
	want := map[string]uint64{RefusedKey: 1, RefusedGreeting: 1, RefusedTimeout: 1, RefusedClosed: 1}
	if !waitFor(3*time.Second, func() bool { return equal(st.Refused(), want) }) {
		t.Errorf("refused = %v, want %v", st.Refused(), want)
	}
	c.Close()
	if !waitFor(2*time.Second, func() bool { return st.Connected()[RoleTool] == 0 }) {
		t.Errorf("after close, connected = %v", st.Connected())
	}
}

func equal(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
