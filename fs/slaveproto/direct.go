package slaveproto

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Direct streams: a process's output goes from its node to the client
// without the master. The master hands the process's owner a ticket on
// proc/PID/direct; the slave checks it with a key both derive from the
// cluster key, so the slave keeps no state per ticket but the nonces it
// has seen.
//
//	proc/PID/direct   read: "ADDR:PORT TICKET SECRET\n" (hex)
//	client -> slave   DirectMagic, ticket[TicketLen], client nonce[32], proof[32]
//	slave -> client   0, slave nonce[32], proof[32] | code != 0, len[1], text
//	then              frames (sealed like a 9P session unless the ticket says plain):
//	                  stream[1] length[4, big-endian] bytes; length 0 ends that stream
//
// The client's proof is HMAC(SECRET, cnonce) and the slave's HMAC(SECRET,
// cnonce, snonce): the ticket alone (which crosses the wire) is worthless
// without SECRET, which only a reader of proc/PID/direct has.

// DirectMagic opens a direct stream's first message.
const DirectMagic = "bproc-direct-1\n"

// Lengths of the direct handshake's parts.
const (
	TicketLen      = 2 + 4 + 4 + 1 + 8 + 16 + sha256.Size
	DirectNonceLen = 32
	DirectHelloLen = len(DirectMagic) + TicketLen + DirectNonceLen + sha256.Size
	// MaxDirectFrame bounds a frame's bytes; a sealed frame holds it whole.
	MaxDirectFrame = 4 << 20
)

// Stream numbers in a direct stream's frames and a ticket's Streams bits.
const (
	StreamStdout = 1
	StreamStderr = 2
)

// TicketFlagPlain says the cluster runs `seal no`: the frames travel in
// the clear.
const TicketFlagPlain = 1

const (
	ticketVersion   = 1
	labelTicketKey  = "bproc-direct-ticket-key"
	labelTicketMAC  = "bproc direct ticket\x00"
	labelSecret     = "bproc direct secret\x00"
	labelClientSide = "bproc direct client\x00"
	labelSlaveSide  = "bproc direct accept\x00"
)

// Ticket is what the master signs: who may attach to which streams of
// which process, until when.
type Ticket struct {
	Flags   byte
	Pid     uint32
	Inc     uint32
	Streams byte
	Expiry  time.Time // millisecond precision
	Nonce   [16]byte
}

// DirectKey derives the ticket key from the cluster key: the cluster key
// itself never signs anything but handshakes.
func DirectKey(clusterKey []byte) []byte {
	m := hmac.New(sha256.New, clusterKey)
	m.Write([]byte(labelTicketKey))
	return m.Sum(nil)
}

func hmacOf(key []byte, label string, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

func (t *Ticket) body() []byte {
	b := make([]byte, 0, TicketLen)
	b = append(b, ticketVersion, t.Flags)
	b = binary.BigEndian.AppendUint32(b, t.Pid)
	b = binary.BigEndian.AppendUint32(b, t.Inc)
	b = append(b, t.Streams)
	b = binary.BigEndian.AppendUint64(b, uint64(t.Expiry.UnixMilli()))
	return append(b, t.Nonce[:]...)
}

// Sign returns the ticket's bytes, MACed with key (DirectKey).
func (t *Ticket) Sign(key []byte) []byte {
	b := t.body()
	return append(b, hmacOf(key, labelTicketMAC, b)...)
}

// Secret is what proves the holder read the ticket from the tree.
func Secret(key, ticket []byte) []byte { return hmacOf(key, labelSecret, ticket) }

// ErrBadTicket is wrapped by every refused ticket.
var ErrBadTicket = errors.New("bad direct-stream ticket")

// ParseTicket decodes b and checks its MAC with key: what it says can be
// trusted only when err is nil.
func ParseTicket(key, b []byte) (Ticket, error) {
	var t Ticket
	if len(b) != TicketLen {
		return t, fmt.Errorf("%d bytes, want %d: %w", len(b), TicketLen, ErrBadTicket)
	}
	body, sum := b[:TicketLen-sha256.Size], b[TicketLen-sha256.Size:]
	if !hmac.Equal(sum, hmacOf(key, labelTicketMAC, body)) {
		return t, fmt.Errorf("its MAC does not check: %w", ErrBadTicket)
	}
	if body[0] != ticketVersion {
		return t, fmt.Errorf("version %d: %w", body[0], ErrBadTicket)
	}
	t.Flags = body[1]
	t.Pid = binary.BigEndian.Uint32(body[2:])
	t.Inc = binary.BigEndian.Uint32(body[6:])
	t.Streams = body[10]
	t.Expiry = time.UnixMilli(int64(binary.BigEndian.Uint64(body[11:])))
	copy(t.Nonce[:], body[19:])
	return t, nil
}

// ClientProof and SlaveProof are the two sides' proofs of SECRET.
func ClientProof(secret, cnonce []byte) []byte {
	return hmacOf(secret, labelClientSide, cnonce)
}

func SlaveProof(secret, cnonce, snonce []byte) []byte {
	return hmacOf(secret, labelSlaveSide, cnonce, snonce)
}

// DirectHello is the client's first message, split.
type DirectHello struct {
	Ticket, Nonce, Proof []byte
}

// ParseDirectHello splits the client's first message (DirectHelloLen
// bytes); it checks only the form.
func ParseDirectHello(b []byte) (DirectHello, error) {
	if len(b) != DirectHelloLen || string(b[:len(DirectMagic)]) != DirectMagic {
		return DirectHello{}, fmt.Errorf("not a direct-stream greeting: %w", ErrBadTicket)
	}
	b = b[len(DirectMagic):]
	return DirectHello{Ticket: b[:TicketLen], Nonce: b[TicketLen : TicketLen+DirectNonceLen], Proof: b[TicketLen+DirectNonceLen:]}, nil
}

// Direct is a parsed proc/PID/direct line.
type Direct struct {
	Addr           string // host:port of the slave's data port
	Ticket, Secret []byte
}

// ParseDirect decodes "ADDR:PORT TICKET SECRET\n".
func ParseDirect(line string) (Direct, error) {
	f := strings.Fields(line)
	if len(f) != 3 {
		return Direct{}, fmt.Errorf("direct line %q: want ADDR:PORT TICKET SECRET", line)
	}
	t, err1 := hex.DecodeString(f[1])
	s, err2 := hex.DecodeString(f[2])
	if err := errors.Join(err1, err2); err != nil || len(t) != TicketLen || len(s) != sha256.Size {
		return Direct{}, fmt.Errorf("direct line %q: bad ticket or secret", line)
	}
	return Direct{Addr: f[0], Ticket: t, Secret: s}, nil
}

// FormatDirect is the line of proc/PID/direct.
func FormatDirect(addr string, ticket, secret []byte) string {
	return fmt.Sprintf("%s %x %x\n", addr, ticket, secret)
}

// DirectMoved is the length a frame header gives for a stream's "moved"
// end: the process moved to another node, and the stream carries on in
// the tree's proc/PID/stdout (or stderr) from the byte after this frame.
// On the wire it is the stream's number with movedBit, length 0.
const DirectMoved = -1

const movedBit = 0x80

// DirectFrameHeader is the header of one frame of a direct stream (n
// DirectMoved: the stream's moved end).
func DirectFrameHeader(stream byte, n int) [5]byte {
	var h [5]byte
	h[0] = stream
	if n == DirectMoved {
		h[0], n = stream|movedBit, 0
	}
	binary.BigEndian.PutUint32(h[1:], uint32(n))
	return h
}

// ReadDirectFrame reads the next frame's header from r: its stream and
// length (0: that stream ended; DirectMoved: it goes on in the tree).
func ReadDirectFrame(r io.Reader) (stream byte, n int, err error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, 0, err
	}
	return ParseDirectFrame(h)
}

// ParseDirectFrame checks a frame header.
func ParseDirectFrame(h [5]byte) (stream byte, n int, err error) {
	stream, size := h[0], binary.BigEndian.Uint32(h[1:])
	moved := stream&movedBit != 0
	stream &^= movedBit
	if stream != StreamStdout && stream != StreamStderr {
		return 0, 0, fmt.Errorf("direct frame for stream %d", stream)
	}
	if size > MaxDirectFrame {
		return 0, 0, fmt.Errorf("direct frame of %d bytes, more than %d", size, MaxDirectFrame)
	}
	if moved {
		if size != 0 {
			return 0, 0, fmt.Errorf("moved end of stream %d with %d bytes", stream, size)
		}
		return stream, DirectMoved, nil
	}
	return stream, int(size), nil
}
