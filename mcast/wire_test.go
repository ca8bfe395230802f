package mcast

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func TestWireRoundTrip(t *testing.T) {
	for _, dir := range []string{"testdata/x86", "testdata/arm64"} {
		s, err := ReadSample(dir)
		if err != nil {
			t.Fatal(err)
		}
		h := Header{Flags: FlagStatic, Node: 7, Start: 1234, Seq: 99, Time: 5678, Interval: 1000}
		p, err := NewCodec(testKey).EncodeStats(h, s)
		if err != nil {
			t.Fatal(err)
		}
		var got Sample
		gh, secs, err := NewCodec(testKey).Decode(p, &got)
		if err != nil {
			t.Fatal(err)
		}
		h.Type = TypeStats
		if gh != h {
			t.Errorf("header %+v, want %+v", gh, h)
		}
		if secs != HaveStatic|HaveMem|HaveLoad|HaveStat|HaveNet {
			t.Errorf("sections %b", secs)
		}
		if !reflect.DeepEqual(&got, s) {
			t.Errorf("%s: decoded sample differs:\n%+v\n%+v", dir, got, *s)
		}
		// Without the static flag the CPU info is not sent, and a
		// receiver's previous static facts survive.
		h.Flags = 0
		p, _ = NewCodec(testKey).EncodeStats(h, s)
		keep := Sample{CPU: CPUInfo{Model: "kept"}}
		_, secs, err = NewCodec(testKey).Decode(p, &keep)
		if err != nil || secs&HaveStatic != 0 || keep.CPU.Model != "kept" || keep.Load != s.Load {
			t.Errorf("dynamic-only packet: secs %b err %v model %q", secs, err, keep.CPU.Model)
		}
	}
}

func TestWireRejects(t *testing.T) {
	s, _ := ReadSample("testdata/x86")
	good, err := NewCodec(testKey).EncodeStats(Header{Flags: FlagStatic, Node: 1, Seq: 1}, s)
	if err != nil {
		t.Fatal(err)
	}
	good = bytes.Clone(good)
	c := NewCodec(testKey)
	var out Sample
	// Every truncation is refused.
	for n := 0; n < len(good); n++ {
		if _, _, err := c.Decode(good[:n], &out); err == nil {
			t.Fatalf("truncated to %d bytes: accepted", n)
		}
	}
	// Every single-bit flip is refused (the MAC covers every byte).
	for i := 0; i < len(good); i++ {
		bad := bytes.Clone(good)
		bad[i] ^= 0x10
		if _, _, err := c.Decode(bad, &out); err == nil {
			t.Fatalf("bit flip at byte %d: accepted", i)
		}
	}
	// Wrong key.
	if _, _, err := NewCodec([]byte("another key")).Decode(good, &out); !errors.Is(err, ErrMAC) {
		t.Errorf("wrong key: %v, want ErrMAC", err)
	}
	// Oversized.
	if _, _, err := c.Decode(make([]byte, MaxPacket+1), &out); !errors.Is(err, ErrTooBig) {
		t.Errorf("oversized: %v", err)
	}
	// Garbage.
	if _, _, err := c.Decode(bytes.Repeat([]byte("garbage!"), 100), &out); !errors.Is(err, ErrMagic) {
		t.Errorf("garbage: %v", err)
	}
	// A signed packet (right key) whose payload is malformed is refused,
	// not trusted: build one with a section length past the end.
	bad := signed(t, []byte{secStat, 0xff, 0x7f, 1, 2})
	if _, _, err := c.Decode(bad, &out); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad section length: %v", err)
	}
	bad = signed(t, []byte{secStat, 3, 0, 11, 1, 1}) // 11 fields per cpu
	if _, _, err := c.Decode(bad, &out); !errors.Is(err, ErrMalformed) {
		t.Errorf("too many stat fields: %v", err)
	}
}

// signed frames payload as a stats packet from node 3 with testKey.
func signed(t testing.TB, payload []byte) []byte {
	c := NewCodec(testKey)
	c.header(&Header{Type: TypeStats, Node: 3, Seq: 1})
	c.buf = append(c.buf, payload...)
	p, err := c.seal()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRequestPacket(t *testing.T) {
	p, err := NewCodec(testKey).EncodeRequest(Header{Node: -1, Seq: 4, Time: 10})
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewCodec(testKey).Verify(p)
	if err != nil || h.Type != TypeRequest || h.Node != -1 || h.Seq != 4 {
		t.Errorf("request: %+v %v", h, err)
	}
	if len(p) != HeaderLen+MACLen || binary.LittleEndian.Uint32(p[12:]) != 0 {
		t.Errorf("request length %d", len(p))
	}
}

// FuzzDecode feeds signed packets with arbitrary payloads to the decoder:
// it must return an error or a sample, never panic or over-allocate.
func FuzzDecode(f *testing.F) {
	s, _ := ReadSample("testdata/arm64")
	p, _ := NewCodec(testKey).EncodeStats(Header{Flags: FlagStatic}, s)
	f.Add(p[HeaderLen : len(p)-MACLen])
	f.Add([]byte{secNet, 2, 0, 200, 1})
	f.Add([]byte{secMem, 4, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) > MaxPacket-HeaderLen-MACLen {
			return
		}
		var out Sample
		NewCodec(testKey).Decode(signed(t, payload), &out)
		if len(out.Stat.PerCPU) > MaxCPUs || len(out.Net) > MaxIfaces {
			t.Fatalf("decoder kept %d cpus, %d ifaces", len(out.Stat.PerCPU), len(out.Net))
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	s, _ := ReadSample("testdata/x86")
	p, _ := NewCodec(testKey).EncodeStats(Header{Node: 1}, s)
	p = bytes.Clone(p)
	c := NewCodec(testKey)
	var out Sample
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if _, _, err := c.Decode(p, &out); err != nil {
			b.Fatal(err)
		}
	}
}
