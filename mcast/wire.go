package mcast

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"math"
)

// Wire constants; the format is described in doc.go.
const (
	Magic        = "BPST"
	WireVersion  = 1
	DefaultPort  = 3040 // 0xbe0, BProc's port
	DefaultGroup = "239.2.11.72"

	TypeStats   = 1 // a node's sample, node -> recvstats
	TypeRequest = 2 // "send now", recvstats -> nodes

	FlagStatic = 1 << 0 // the packet carries the static section (cpuinfo)

	HeaderLen = 48
	MACLen    = sha256.Size
	MaxPacket = 32 << 10 // larger datagrams are dropped unread

	maxString = 255
)

// Payload section tags.
const (
	secStatic = 1
	secMem    = 2
	secLoad   = 3
	secStat   = 4
	secNet    = 5
)

// Decode errors; the receiver counts drops by kind.
var (
	ErrShort     = errors.New("packet truncated")
	ErrTooBig    = errors.New("packet oversized")
	ErrMagic     = errors.New("not a bproc stats packet")
	ErrVersion   = errors.New("unsupported wire version")
	ErrMAC       = errors.New("bad packet MAC")
	ErrMalformed = errors.New("malformed packet")
)

// Header is the fixed part of every packet.
type Header struct {
	Type     uint8
	Flags    uint16
	Node     int32  // sender's node number (-1 for recvstats' requests)
	Start    int64  // sender's start time, unix ns: tells restarts apart
	Seq      uint64 // per-start packet counter, from 1
	Time     int64  // when the sample was read (stats) or sent (request), unix ns, sender's clock
	Interval uint32 // sender's interval in ms (stats); 0 for requests
}

// Codec signs and checks packets with the cluster key. It reuses its hash
// and buffer, so one Codec serves one goroutine.
type Codec struct {
	mac hash.Hash
	buf []byte
	sum []byte
}

// NewCodec returns a Codec for key (the cluster key file's bytes).
func NewCodec(key []byte) *Codec {
	return &Codec{mac: hmac.New(sha256.New, key), buf: make([]byte, 0, 4096), sum: make([]byte, 0, MACLen)}
}

func (c *Codec) header(h *Header) {
	c.buf = append(c.buf[:0], Magic...)
	c.buf = append(c.buf, WireVersion, h.Type)
	c.buf = binary.LittleEndian.AppendUint16(c.buf, h.Flags)
	c.buf = binary.LittleEndian.AppendUint32(c.buf, uint32(h.Node))
	c.buf = binary.LittleEndian.AppendUint32(c.buf, 0) // payload length, set in seal
	c.buf = binary.LittleEndian.AppendUint64(c.buf, uint64(h.Start))
	c.buf = binary.LittleEndian.AppendUint64(c.buf, h.Seq)
	c.buf = binary.LittleEndian.AppendUint64(c.buf, uint64(h.Time))
	c.buf = binary.LittleEndian.AppendUint32(c.buf, h.Interval)
	c.buf = binary.LittleEndian.AppendUint32(c.buf, 0) // reserved
}

func (c *Codec) seal() ([]byte, error) {
	if len(c.buf)+MACLen > MaxPacket {
		return nil, fmt.Errorf("encoding packet: %d bytes: %w", len(c.buf)+MACLen, ErrTooBig)
	}
	binary.LittleEndian.PutUint32(c.buf[12:], uint32(len(c.buf)-HeaderLen))
	c.mac.Reset()
	c.mac.Write(c.buf)
	c.buf = c.mac.Sum(c.buf)
	return c.buf, nil
}

// EncodeRequest returns a signed request packet. The slice is reused by
// the next call.
func (c *Codec) EncodeRequest(h Header) ([]byte, error) {
	h.Type = TypeRequest
	c.header(&h)
	return c.seal()
}

// EncodeStats returns a signed stats packet for s; the static section goes
// along when h.Flags has FlagStatic. The slice is reused by the next call.
func (c *Codec) EncodeStats(h Header, s *Sample) ([]byte, error) {
	h.Type = TypeStats
	c.header(&h)
	b := c.buf
	section := func(tag byte, body func([]byte) []byte) {
		b = append(b, tag, 0, 0) // two-byte length (sections are < 32 KiB)
		start := len(b)
		b = body(b)
		binary.LittleEndian.PutUint16(b[start-2:], uint16(min(len(b)-start, math.MaxUint16)))
	}
	if h.Flags&FlagStatic != 0 {
		section(secStatic, func(b []byte) []byte {
			ci := &s.CPU
			b = binary.AppendUvarint(b, uint64(ci.Count))
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(ci.MHz))
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(ci.BogoMIPS))
			for _, str := range []string{ci.Vendor, ci.Model, ci.Cache} {
				b = appendString(b, str)
			}
			return b
		})
	}
	section(secMem, func(b []byte) []byte {
		for i := range MemFields {
			if v, ok := s.Mem.Get(i); ok {
				b = binary.AppendUvarint(b, uint64(i))
				b = binary.AppendUvarint(b, v)
			}
		}
		return b
	})
	section(secLoad, func(b []byte) []byte {
		l := &s.Load
		for _, v := range []float64{l.Load1, l.Load5, l.Load15} {
			b = binary.AppendUvarint(b, uint64(math.Round(v*100)))
		}
		b = binary.AppendUvarint(b, uint64(l.Running))
		b = binary.AppendUvarint(b, uint64(l.Total))
		return binary.AppendUvarint(b, uint64(l.LastPID))
	})
	section(secStat, func(b []byte) []byte {
		st := &s.Stat
		b = binary.AppendUvarint(b, uint64(st.Fields))
		b = binary.AppendUvarint(b, uint64(st.NCPU))
		b = binary.AppendUvarint(b, uint64(len(st.PerCPU)))
		b = appendTimes(b, &st.CPU)
		for i := range st.PerCPU {
			b = appendTimes(b, &st.PerCPU[i])
		}
		for _, v := range []uint64{st.Intr, st.Ctxt, st.BootTime, st.Procs, st.Running, st.Blocked} {
			b = binary.AppendUvarint(b, v)
		}
		return b
	})
	section(secNet, func(b []byte) []byte {
		b = binary.AppendUvarint(b, uint64(len(s.Net)))
		for i := range s.Net {
			b = appendString(b, s.Net[i].Name)
			for _, v := range s.Net[i].C {
				b = binary.AppendUvarint(b, v)
			}
		}
		return b
	})
	c.buf = b
	return c.seal()
}

func appendString(b []byte, s string) []byte {
	if len(s) > maxString {
		s = s[:maxString]
	}
	b = append(b, byte(len(s)))
	return append(b, s...)
}

func appendTimes(b []byte, t *CPUTimes) []byte {
	for _, v := range t {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

// Verify checks a packet's framing and MAC and returns its header. Nothing
// in an unverified packet is trusted, not even its length fields.
func (c *Codec) Verify(p []byte) (Header, error) {
	var h Header
	if len(p) > MaxPacket {
		return h, ErrTooBig
	}
	if len(p) < HeaderLen+MACLen {
		return h, ErrShort
	}
	if string(p[:4]) != Magic {
		return h, ErrMagic
	}
	if p[4] != WireVersion {
		return h, fmt.Errorf("%w %d", ErrVersion, p[4])
	}
	if n := binary.LittleEndian.Uint32(p[12:]); uint64(n) != uint64(len(p)-HeaderLen-MACLen) {
		return h, ErrShort
	}
	body := p[:len(p)-MACLen]
	c.mac.Reset()
	c.mac.Write(body)
	c.sum = c.mac.Sum(c.sum[:0])
	if !hmac.Equal(c.sum, p[len(body):]) {
		return h, ErrMAC
	}
	h.Type = p[5]
	h.Flags = binary.LittleEndian.Uint16(p[6:])
	h.Node = int32(binary.LittleEndian.Uint32(p[8:]))
	h.Start = int64(binary.LittleEndian.Uint64(p[16:]))
	h.Seq = binary.LittleEndian.Uint64(p[24:])
	h.Time = int64(binary.LittleEndian.Uint64(p[32:]))
	h.Interval = binary.LittleEndian.Uint32(p[40:])
	return h, nil
}

// Decode verifies p and, for a stats packet, decodes its sample into s
// (reusing s's slices). Sections s does not receive keep their old values,
// so a receiver can keep static facts between static packets. Flags tell
// which sections arrived.
func (c *Codec) Decode(p []byte, s *Sample) (Header, Sections, error) {
	h, err := c.Verify(p)
	if err != nil || h.Type != TypeStats {
		return h, 0, err
	}
	var got Sections
	r := reader{b: p[HeaderLen : len(p)-MACLen]}
	for len(r.b) > 0 && r.err == nil {
		tag := r.byte()
		n := int(r.u16())
		body := reader{b: r.take(n)}
		if r.err != nil {
			break
		}
		switch tag {
		case secStatic:
			got |= HaveStatic
			decodeStatic(&body, &s.CPU)
		case secMem:
			got |= HaveMem
			s.Mem = MemInfo{}
			for len(body.b) > 0 && body.err == nil {
				i, v := body.uvarint(), body.uvarint()
				if i >= uint64(len(MemFields)) {
					continue // a field from a newer table: skip
				}
				s.Mem.V[i] = v
				s.Mem.Have |= 1 << i
			}
		case secLoad:
			got |= HaveLoad
			l := &s.Load
			l.Load1 = float64(body.uvarint()) / 100
			l.Load5 = float64(body.uvarint()) / 100
			l.Load15 = float64(body.uvarint()) / 100
			l.Running, l.Total, l.LastPID = body.u32(), body.u32(), body.u32()
		case secStat:
			got |= HaveStat
			decodeStat(&body, &s.Stat)
		case secNet:
			got |= HaveNet
			n := body.uvarint()
			if n > MaxIfaces {
				body.err = ErrMalformed
				break
			}
			s.Net = s.Net[:0]
			for i := uint64(0); i < n && body.err == nil; i++ {
				var ifc Iface
				ifc.Name = body.string()
				if len(ifc.Name) >= IfNameLen {
					body.err = ErrMalformed
				}
				for j := range ifc.C {
					ifc.C[j] = body.uvarint()
				}
				s.Net = append(s.Net, ifc)
			}
		default:
			continue // a section from a newer version: skip it
		}
		if body.err != nil {
			r.err = body.err
		}
	}
	if r.err != nil {
		return h, got, fmt.Errorf("%w: %v", ErrMalformed, r.err)
	}
	return h, got, nil
}

// Sections tells which parts of a Sample a packet carried.
type Sections uint8

const (
	HaveStatic Sections = 1 << iota
	HaveMem
	HaveLoad
	HaveStat
	HaveNet
)

func decodeStatic(r *reader, ci *CPUInfo) {
	count := r.uvarint()
	if count > 1<<20 {
		r.err = ErrMalformed
		return
	}
	ci.Count = int(count)
	ci.MHz = r.float()
	ci.BogoMIPS = r.float()
	ci.Vendor, ci.Model, ci.Cache = r.string(), r.string(), r.string()
}

func decodeStat(r *reader, st *Stat) {
	fields, ncpu, nper := r.uvarint(), r.uvarint(), r.uvarint()
	if fields > StatFields || ncpu > 1<<20 || nper > MaxCPUs || nper > ncpu {
		r.err = ErrMalformed
		return
	}
	st.Fields, st.NCPU = int(fields), int(ncpu)
	r.times(&st.CPU)
	st.PerCPU = st.PerCPU[:0]
	for i := uint64(0); i < nper && r.err == nil; i++ {
		st.PerCPU = append(st.PerCPU, CPUTimes{})
		r.times(&st.PerCPU[i])
	}
	for _, p := range []*uint64{&st.Intr, &st.Ctxt, &st.BootTime, &st.Procs, &st.Running, &st.Blocked} {
		*p = r.uvarint()
	}
}

// reader consumes a byte slice; the first error sticks and later reads
// return zero values, so decoders need not check after every field.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil || n > len(r.b) {
		r.err = ErrShort
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if b := r.take(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = ErrMalformed
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) u32() uint32 {
	v := r.uvarint()
	if v > math.MaxUint32 {
		r.err = ErrMalformed
	}
	return uint32(v)
}

func (r *reader) float() float64 {
	b := r.take(8)
	if b == nil {
		return 0
	}
	f := math.Float64frombits(binary.LittleEndian.Uint64(b))
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0
	}
	return f
}

func (r *reader) string() string {
	n := int(r.byte())
	return string(r.take(n))
}

func (r *reader) times(t *CPUTimes) {
	for i := range t {
		t[i] = r.uvarint()
	}
}
