package srv

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
)

// After the handshake every byte travels sealed: AES-128-GCM frames, one
// key per direction derived from the cluster key and both handshake
// nonces, the frame's sequence number as its nonce. Reading, altering,
// replaying, reordering or injecting 9P on a connection needs the key.
//
//	frame: length[4, big-endian, of what follows] ciphertext+tag
const (
	labelSealC2S = "bproc-seal-client-to-server"
	labelSealS2C = "bproc-seal-server-to-client"
	// maxSealed bounds a frame's plaintext: a 9P message (at most 4 MiB)
	// and its header.
	maxSealed = 4<<20 + 64<<10
)

// ErrSealBroken says a frame did not authenticate: a wrong key, or bytes
// altered on the way.
var ErrSealBroken = errors.New("sealed frame does not authenticate")

// sealedConn is a net.Conn speaking sealed frames over raw.
type sealedConn struct {
	net.Conn // the raw connection: addresses, deadlines, Close

	rmu   sync.Mutex
	open  cipher.AEAD
	rseq  uint64
	br    *bufio.Reader
	frame []byte // ciphertext being opened, in place
	plain []byte // opened and not yet read

	wmu   sync.Mutex
	seal  cipher.AEAD
	wseq  uint64
	wbuf  []byte
	nonce [12]byte
}

// newAEAD makes AES-128-GCM from the first 16 bytes of a derived key:
// 128 bits are plenty, and a third faster than AES-256 here.
func newAEAD(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key[:16])
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return cipher.NewGCM(b)
}

// seal wraps raw once the handshake with nonces nc, ns succeeded; client
// says which side this is.
func seal(raw net.Conn, key, nc, ns []byte, client bool) (*sealedConn, error) {
	c2s, s2c := mac(key, labelSealC2S, nc, ns), mac(key, labelSealS2C, nc, ns)
	out, in := s2c, c2s
	if client {
		out, in = c2s, s2c
	}
	w, err := newAEAD(out)
	if err != nil {
		return nil, err
	}
	r, err := newAEAD(in)
	if err != nil {
		return nil, err
	}
	return &sealedConn{Conn: raw, open: r, seal: w, br: bufio.NewReaderSize(raw, 64<<10)}, nil
}

func nonceFor(n *[12]byte, seq uint64) []byte {
	binary.BigEndian.PutUint64(n[4:], seq)
	return n[:]
}

// Read returns opened plaintext, reading and opening the next frame when
// none is left.
func (c *sealedConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for len(c.plain) == 0 {
		var hdr [4]byte
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			return 0, err
		}
		n := int(binary.BigEndian.Uint32(hdr[:]))
		if n < c.open.Overhead() || n > maxSealed+c.open.Overhead() {
			return 0, fmt.Errorf("sealed frame of %d bytes: %w", n, ErrSealBroken)
		}
		if cap(c.frame) < n {
			c.frame = make([]byte, n)
		}
		f := c.frame[:n]
		if k, err := io.ReadFull(c.br, f); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return 0, fmt.Errorf("sealed frame of %d bytes cut short after %d: %w", n, k, io.ErrUnexpectedEOF)
			}
			return 0, err
		}
		var nonce [12]byte
		if pn := n - c.open.Overhead(); len(p) >= pn {
			// It fits: opened straight into p, not copied there after.
			if _, err := c.open.Open(p[:0:pn], nonceFor(&nonce, c.rseq), f, nil); err != nil {
				return 0, ErrSealBroken
			}
			c.rseq++
			if pn > 0 {
				return pn, nil
			}
			continue
		}
		plain, err := c.open.Open(f[:0], nonceFor(&nonce, c.rseq), f, nil)
		if err != nil {
			return 0, ErrSealBroken
		}
		c.rseq++
		c.plain = plain
	}
	n := copy(p, c.plain)
	c.plain = c.plain[n:]
	return n, nil
}

// Write seals p, in frames of at most maxSealed bytes.
func (c *sealedConn) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), maxSealed)
		if err := c.writeFrame(net.Buffers{p[:k]}); err != nil {
			return n, err
		}
		p, n = p[k:], n+k
	}
	return n, nil
}

// bigPiece: a last piece at least this large is sealed from where it
// lies, as a frame of its own behind the other pieces' frame, instead of
// being copied beside them first. The reader sees one byte stream either
// way; the extra frame costs 20 bytes, the copy a pass over the bytes.
const bigPiece = 32 << 10

// writeFrame seals the pieces as one frame (a large last piece as a
// second), in one write: a 9P message p9 hands over in parts travels
// whole in one write.
func (c *sealedConn) writeFrame(pieces net.Buffers) error {
	size := 0
	for _, b := range pieces {
		size += len(b)
	}
	if size > maxSealed {
		return fmt.Errorf("sealing %d bytes: more than a frame holds", size)
	}
	var body []byte
	if k := len(pieces) - 1; k >= 0 && len(pieces[k]) >= bigPiece {
		body, pieces = pieces[k], pieces[:k]
	}
	head := size - len(body)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	ov := c.seal.Overhead()
	need := 0
	if head > 0 || body == nil {
		need += 4 + head + ov
	}
	if body != nil {
		need += 4 + len(body) + ov
	}
	if cap(c.wbuf) < need {
		c.wbuf = make([]byte, need)
	}
	buf := c.wbuf[:need]
	off := 0
	if head > 0 || body == nil {
		p := 4
		for _, b := range pieces {
			p += copy(buf[p:], b)
		}
		off = c.sealFrame(buf, buf[4:4+head])
	}
	if body != nil {
		c.sealFrame(buf[off:], body)
	}
	_, err := c.Conn.Write(buf)
	return err
}

// sealFrame seals plain (in place when it lies at buf[4:]) as the frame at
// the start of buf, and returns the frame's length.
func (c *sealedConn) sealFrame(buf, plain []byte) int {
	n := len(plain) + c.seal.Overhead()
	binary.BigEndian.PutUint32(buf, uint32(n))
	c.seal.Seal(buf[4:4], nonceFor(&c.nonce, c.wseq), plain, nil)
	c.wseq++
	return 4 + n
}

// frameWriter writes a gathered 9P message on a session: as one sealed
// frame, or with one writev on a plain connection.
func frameWriter(sess net.Conn) func(net.Buffers) error {
	if sc, ok := sess.(*sealedConn); ok {
		return sc.writeFrame
	}
	return func(b net.Buffers) error {
		_, err := b.WriteTo(sess)
		return err
	}
}

// msgWriter gathers the pieces of each 9P message (size[4] first) that
// p9's net.Buffers writes one by one, and hands the whole message to out.
// The pieces are p9's buffers, valid until its send returns, which is
// after the last piece.
type msgWriter struct {
	out  func(net.Buffers) error
	msg  net.Buffers
	need int // bytes still to come for the current message; 0 between
	hdr  [4]byte
	nhdr int
}

func (w *msgWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if w.need == 0 { // a new message: learn its size
			k := copy(w.hdr[w.nhdr:], p)
			w.nhdr += k
			if w.nhdr < 4 {
				w.msg = append(w.msg, p)
				return n, nil
			}
			w.need = int(binary.LittleEndian.Uint32(w.hdr[:])) - (w.nhdr - k)
			w.nhdr = 0
			if w.need <= 0 {
				return n, fmt.Errorf("9P message of size %d", binary.LittleEndian.Uint32(w.hdr[:]))
			}
		}
		k := min(len(p), w.need)
		w.msg = append(w.msg, p[:k])
		w.need -= k
		p = p[k:]
		if w.need == 0 {
			msg := w.msg
			w.msg = w.msg[:0]
			if err := w.out(msg); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// SealStream wraps raw in sealed frames as a session after its handshake
// is wrapped, keyed by key and both sides' nonces; client says which side
// this is. Direct output streams (job/direct.go) use it with their
// ticket's secret as the key.
func SealStream(raw net.Conn, key, nc, ns []byte, client bool) (net.Conn, error) {
	return seal(raw, key, nc, ns, client)
}

// GatherWriter writes pieces as one frame on a sealed stream, or with one
// writev on a plain connection.
func GatherWriter(c net.Conn) func(net.Buffers) error { return frameWriter(c) }

// RawTCP gives c's descriptor, for splice(2) and poll, when c is a TCP
// connection (a sealed or other wrapped one is not).
func RawTCP(c net.Conn) (*net.TCPConn, syscall.RawConn, bool) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil, nil, false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil, nil, false
	}
	return tc, raw, true
}
