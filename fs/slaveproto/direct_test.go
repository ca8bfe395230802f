package slaveproto

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

var fuzzKey = DirectKey([]byte("fuzz cluster key"))

func TestTicketRoundTrip(t *testing.T) {
	in := Ticket{Flags: TicketFlagPlain, Pid: 7, Inc: 2, Streams: 3, Expiry: time.UnixMilli(1700000000123)}
	in.Nonce[0] = 9
	b := in.Sign(fuzzKey)
	out, err := ParseTicket(fuzzKey, b)
	if err != nil || out != in {
		t.Fatalf("round trip: %+v, %v; want %+v", out, err, in)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x40
		if _, err := ParseTicket(fuzzKey, c); !errors.Is(err, ErrBadTicket) {
			t.Errorf("byte %d altered: %v, want ErrBadTicket", i, err)
		}
	}
	if _, err := ParseTicket(DirectKey([]byte("other")), b); !errors.Is(err, ErrBadTicket) {
		t.Errorf("another cluster's key: %v", err)
	}
}

// FuzzParseTicket: any bytes are refused or are a ticket that signs back
// to exactly them; nothing panics.
func FuzzParseTicket(f *testing.F) {
	good := (&Ticket{Pid: 1, Streams: 3, Expiry: time.UnixMilli(1)}).Sign(fuzzKey)
	f.Add(good)
	f.Add(good[:10])
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, TicketLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		tk, err := ParseTicket(fuzzKey, b)
		if err != nil {
			if !errors.Is(err, ErrBadTicket) {
				t.Fatalf("refusal without ErrBadTicket: %v", err)
			}
			return
		}
		if again := tk.Sign(fuzzKey); !bytes.Equal(again, b) {
			t.Fatalf("accepted %x, which signs back as %x", b, again)
		}
	})
}

// FuzzParseDirectHello: a greeting is split only when it has the form.
func FuzzParseDirectHello(f *testing.F) {
	f.Add([]byte(DirectMagic + string(make([]byte, DirectHelloLen-len(DirectMagic)))))
	f.Add([]byte("GET / HTTP/1.0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseDirectHello(b)
		if err == nil && (len(h.Ticket) != TicketLen || len(h.Nonce) != DirectNonceLen || len(h.Proof) != 32) {
			t.Fatalf("split %d bytes into %d/%d/%d", len(b), len(h.Ticket), len(h.Nonce), len(h.Proof))
		}
	})
}

// FuzzParseDirectFrame: a header is a known stream and a bounded length.
func FuzzParseDirectFrame(f *testing.F) {
	for _, h := range [][5]byte{DirectFrameHeader(1, 0), DirectFrameHeader(2, MaxDirectFrame), DirectFrameHeader(3, 1), DirectFrameHeader(1, MaxDirectFrame+1), DirectFrameHeader(2, DirectMoved), {0x81, 0, 0, 0, 1}, {0x83, 0, 0, 0, 0}} {
		f.Add(h[:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var h [5]byte
		copy(h[:], b)
		st, n, err := ParseDirectFrame(h)
		if err == nil && ((st != StreamStdout && st != StreamStderr) || (n < 0 && n != DirectMoved) || n > MaxDirectFrame) {
			t.Fatalf("header %x gave stream %d length %d", h, st, n)
		}
		if err == nil && DirectFrameHeader(st, n) != h {
			t.Fatalf("header %x does not encode back", h)
		}
	})
}

// FuzzParseDirect: proc/PID/direct lines parse whole or not at all.
func FuzzParseDirect(f *testing.F) {
	good := FormatDirect("10.0.0.1:2225", make([]byte, TicketLen), make([]byte, 32))
	f.Add(good)
	f.Add("a b c")
	f.Add("")
	f.Fuzz(func(t *testing.T, line string) {
		d, err := ParseDirect(line)
		if err == nil && (len(d.Ticket) != TicketLen || len(d.Secret) != 32 || d.Addr == "") {
			t.Fatalf("%q parsed to %+v", line, d)
		}
	})
}
