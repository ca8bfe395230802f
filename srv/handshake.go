// Package srv serves the bproc tree (a synth.Dir) over 9P2000.L to slaves
// and remote tools, mounts the same tree with FUSE, and dials a served tree.
//
// Every 9P connection starts with a handshake proving both ends hold the
// cluster key (p9 has no usable Tauth); the client's claimed identity
// (Hello) is bound into its proof and becomes the synth.Caller of every
// operation on that connection. Each connection gets its own p9 server, so
// one client's locks and blocked requests never stall another; when a
// connection ends, its Caller.Conn context is cancelled and reads or writes
// blocked in the tree must return (EINTR).
//
// The FUSE mount checks nothing itself: the tree decides, from a Caller
// built from the requesting process (pid, uid, gid, and supplementary
// groups on open, setattr, readdir and access). Nothing is cached and files
// use direct I/O, so every read sees live state.
//
// Serving:
//
//	s := &srv.Server{Key: k, Root: root, Logf: log.Printf}
//	go s.Serve(ctx, ln)
//	m, err := srv.Mount("/bproc", root, srv.MountOptions{AllowOther: true})
//	defer m.Unmount()
//
// Dialing:
//
//	c, err := srv.Dial(ctx, "master", k, srv.Hello{Role: srv.RoleTool, Uid: uid, Gid: gid})
//	f, err := c.Open("node/3/ctl", os.O_RDWR)
package srv

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Hello is what a client claims about itself in the handshake. The claim is
// bound into the client's proof, so nobody without the key can alter it.
type Hello struct {
	Role   string   // "slave" or "tool"
	Uid    uint32   // effective uid of the client process
	Gid    uint32   // effective gid
	Groups []uint32 // supplementary groups
	Host   string   // client's hostname
}

// Roles a Hello may claim.
const (
	RoleSlave = "slave"
	RoleTool  = "tool"
)

// Handshake limits: a peer cannot make us allocate or wait much. A real
// client sends its greeting the moment it connects; a stranger that does
// not is gone after GreetingTimeout, whatever it trickles.
const (
	HandshakeTimeout = 5 * time.Second
	GreetingTimeout  = 1 * time.Second
	maxFrame         = 16 << 10
	maxGroups        = 1024
	maxHost          = 255
	nonceLen         = 32
)

// handshakeTimeout and greetingTimeout are HandshakeTimeout and
// GreetingTimeout; tests shorten them.
var (
	handshakeTimeout = HandshakeTimeout
	greetingTimeout  = GreetingTimeout
)

// hsMagic opens the client's first frame. A peer speaking raw 9P (or
// anything else) fails here with a clear message.
const hsMagic = "bproc-handshake-2"

// Transcript labels keep the server's and the client's proofs apart, so
// one can never be replayed as the other.
const (
	labelServer = "bproc server proof\x00"
	labelClient = "bproc client proof\x00"
	labelAccept = "bproc server accept\x00"
)

// ErrBadKey is wrapped by handshake errors caused by a key mismatch.
var ErrBadKey = errors.New("cluster key mismatch")

// Validate checks a Hello's fields.
func (h *Hello) Validate() error {
	if h.Role != RoleSlave && h.Role != RoleTool {
		return fmt.Errorf("bad role %q (want %q or %q)", h.Role, RoleSlave, RoleTool)
	}
	if len(h.Groups) > maxGroups {
		return fmt.Errorf("%d supplementary groups, more than %d", len(h.Groups), maxGroups)
	}
	if len(h.Host) > maxHost {
		return fmt.Errorf("host name longer than %d bytes", maxHost)
	}
	for _, c := range []byte(h.Host) {
		if c <= ' ' || c >= 0x7f {
			return fmt.Errorf("host name %q has a blank, control or non-ASCII byte", h.Host)
		}
	}
	return nil
}

// hsFrame is one length-prefixed handshake message.
func writeFrame(w io.Writer, parts ...[]byte) error {
	var buf bytes.Buffer
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n > maxFrame {
		return fmt.Errorf("handshake frame of %d bytes exceeds %d", n, maxFrame)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(n))
	buf.Write(hdr[:])
	for _, p := range parts {
		buf.Write(p)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func readFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxFrame {
		return nil, fmt.Errorf("handshake frame of %d bytes exceeds %d (not a bproc peer?)", n, maxFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

func mac(key []byte, label string, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	for _, p := range parts {
		// Length-prefix every part so concatenations cannot collide.
		var l [4]byte
		binary.BigEndian.PutUint32(l[:], uint32(len(p)))
		m.Write(l[:])
		m.Write(p)
	}
	return m.Sum(nil)
}

func nonce() ([]byte, error) {
	b := make([]byte, nonceLen)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("handshake: nonce: %w", err)
	}
	return b, nil
}

// The exchange (all frames length-prefixed):
//
//	C->S  magic, Nc
//	S->C  Ns, HMAC(K, server | Nc | Ns)                 server proves the key
//	C->S  hello, HMAC(K, client | Nc | Ns | hello)       client proves the key and binds its claim
//	S->C  HMAC(K, accept | Nc | Ns | hello)              or an error text
//
// Fresh nonces on both sides make every proof single-use.

// ServerHandshake runs the server side on a freshly accepted conn and
// returns the client's verified claim and the connection to speak on from
// then on: conn with every byte sealed under keys from this handshake. It
// sets and then clears deadlines, so a peer that does not greet within
// GreetingTimeout, or does not finish within HandshakeTimeout, fails.
//
// The server decides whether the session is sealed (plain is for a
// trusted cluster network where speed matters more); its choice travels
// inside its final proof, so nobody on the way can change it.
func ServerHandshake(conn net.Conn, key []byte, plain bool) (Hello, net.Conn, error) {
	if len(key) == 0 {
		return Hello{}, nil, errors.New("handshake: empty cluster key")
	}
	end := time.Now().Add(handshakeTimeout)
	conn.SetDeadline(end)
	conn.SetReadDeadline(time.Now().Add(min(greetingTimeout, handshakeTimeout)))
	defer conn.SetDeadline(time.Time{})
	h, nc, ns, err := serverHandshake(conn, key, plain, end)
	if err != nil {
		return Hello{}, nil, fmt.Errorf("handshake with %v: %w", conn.RemoteAddr(), err)
	}
	if plain {
		return h, conn, nil
	}
	sc, err := seal(conn, key, nc, ns, false)
	if err != nil {
		return Hello{}, nil, err
	}
	return h, sc, nil
}

// Session modes the server announces in its accept.
const (
	modeSealed byte = 's'
	modePlain  byte = 'p'
)

// serverHandshake reads the greeting under the deadline already set, then
// the rest by end.
func serverHandshake(conn net.Conn, key []byte, plain bool, end time.Time) (h Hello, nc, ns []byte, err error) {
	first, err := readFrame(conn)
	if err != nil {
		return Hello{}, nil, nil, fmt.Errorf("reading greeting: %w", err)
	}
	conn.SetReadDeadline(end)
	if len(first) != len(hsMagic)+nonceLen || string(first[:len(hsMagic)]) != hsMagic {
		return Hello{}, nil, nil, errors.New("bad greeting (not a bproc client, or another version)")
	}
	nc = first[len(hsMagic):]
	if ns, err = nonce(); err != nil {
		return Hello{}, nil, nil, err
	}
	if err := writeFrame(conn, ns, mac(key, labelServer, nc, ns)); err != nil {
		return Hello{}, nil, nil, fmt.Errorf("sending challenge: %w", err)
	}
	f, err := readFrame(conn)
	if err != nil {
		return Hello{}, nil, nil, fmt.Errorf("reading client proof: %w", err)
	}
	if len(f) < sha256.Size {
		return Hello{}, nil, nil, errors.New("short client proof")
	}
	hb, proof := f[:len(f)-sha256.Size], f[len(f)-sha256.Size:]
	if !hmac.Equal(proof, mac(key, labelClient, nc, ns, hb)) {
		writeFrame(conn, []byte("error: cluster key mismatch"))
		return Hello{}, nil, nil, fmt.Errorf("client: %w", ErrBadKey)
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		writeFrame(conn, []byte("error: bad hello"))
		return Hello{}, nil, nil, fmt.Errorf("decoding hello: %w", err)
	}
	if err := h.Validate(); err != nil {
		writeFrame(conn, []byte("error: "+err.Error()))
		return Hello{}, nil, nil, fmt.Errorf("hello: %w", err)
	}
	mode := []byte{modeSealed}
	if plain {
		mode[0] = modePlain
	}
	if err := writeFrame(conn, mac(key, labelAccept, nc, ns, hb, mode), mode); err != nil {
		return Hello{}, nil, nil, fmt.Errorf("sending accept: %w", err)
	}
	return h, nc, ns, nil
}

// ClientHandshake runs the client side on a freshly dialed conn, claiming
// identity h, and returns the sealed connection to speak on from then on.
// It fails if the server does not hold the key or rejects us.
func ClientHandshake(conn net.Conn, key []byte, h Hello) (net.Conn, error) {
	sc, err := clientSession(conn, key, h)
	if err != nil {
		return nil, err
	}
	if sc == nil { // the server chose a plain session
		return conn, nil
	}
	return sc, nil
}

// clientSession returns the sealed connection, or nil when the server
// chose a plain session.
func clientSession(conn net.Conn, key []byte, h Hello) (*sealedConn, error) {
	if len(key) == 0 {
		return nil, errors.New("handshake: empty cluster key")
	}
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	defer conn.SetDeadline(time.Time{})
	nc, ns, mode, err := clientHandshake(conn, key, h)
	if err != nil {
		return nil, fmt.Errorf("handshake with %v: %w", conn.RemoteAddr(), err)
	}
	if mode == modePlain {
		return nil, nil
	}
	return seal(conn, key, nc, ns, true)
}

func clientHandshake(conn net.Conn, key []byte, h Hello) (nc, ns []byte, mode byte, err error) {
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("encoding hello: %w", err)
	}
	if nc, err = nonce(); err != nil {
		return nil, nil, 0, err
	}
	if err := writeFrame(conn, []byte(hsMagic), nc); err != nil {
		return nil, nil, 0, fmt.Errorf("sending greeting: %w", err)
	}
	f, err := readFrame(conn)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("reading challenge: %w", err)
	}
	if len(f) != nonceLen+sha256.Size {
		return nil, nil, 0, errors.New("bad challenge (not a bproc server?)")
	}
	ns, proof := f[:nonceLen], f[nonceLen:]
	if !hmac.Equal(proof, mac(key, labelServer, nc, ns)) {
		// Answer with a proof that cannot verify, so the server logs a
		// key mismatch rather than a vanished peer.
		writeFrame(conn, []byte("error: cluster key mismatch"), make([]byte, sha256.Size))
		return nil, nil, 0, fmt.Errorf("server: %w", ErrBadKey)
	}
	if err := writeFrame(conn, hb, mac(key, labelClient, nc, ns, hb)); err != nil {
		return nil, nil, 0, fmt.Errorf("sending proof: %w", err)
	}
	f, err = readFrame(conn)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("reading verdict: %w", err)
	}
	// The accept is a proof over everything said, and the session mode.
	if len(f) == sha256.Size+1 && hmac.Equal(f[:sha256.Size], mac(key, labelAccept, nc, ns, hb, f[sha256.Size:])) {
		switch m := f[sha256.Size]; m {
		case modeSealed, modePlain:
			return nc, ns, m, nil
		}
		return nil, nil, 0, fmt.Errorf("server chose unknown session mode %q", f[sha256.Size])
	}
	if bytes.HasPrefix(f, []byte("error: ")) && len(f) < 512 {
		if bytes.Contains(f, []byte("key mismatch")) {
			return nil, nil, 0, fmt.Errorf("server rejected us: %w", ErrBadKey)
		}
		return nil, nil, 0, fmt.Errorf("server rejected us: %q", f[len("error: "):])
	}
	return nil, nil, 0, errors.New("bad verdict from server")
}
