package mcast

import (
	"bytes"
	"io"
	"log"
	"net/netip"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkHandle: recvstats' work for one packet, without the socket.
func BenchmarkHandle(b *testing.B) {
	w, err := CreateShm(filepath.Join(b.TempDir(), "beostat"))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	r := &receiver{cfg: ReceiverConfig{MaxNode: ShmMaxNodes - 1, Log: log.New(io.Discard, "", 0)}, shm: w, codec: NewCodec(testKey)}
	s, _ := ReadSample("testdata/x86")
	c := NewCodec(testKey)
	const nodes = 1000
	pkts := make([][]byte, nodes)
	seq := uint64(1)
	encode := func() {
		for i := range pkts {
			h := Header{Node: int32(i), Start: 1, Seq: seq, Time: int64(seq) * 1e9, Interval: 1000}
			if seq%10 == 1 {
				h.Flags = FlagStatic
			}
			p, _ := c.EncodeStats(h, s)
			pkts[i] = bytes.Clone(p)
		}
		seq++
	}
	encode()
	addr := netip.MustParseAddr("10.77.0.10")
	i := 0
	for b.Loop() {
		r.handle(pkts[i], addr, time.Now())
		if i++; i == nodes {
			b.StopTimer()
			encode()
			i = 0
			b.StartTimer()
		}
	}
}
