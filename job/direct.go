package job

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"bproc/fs/slaveproto"
	"bproc/srv"

	"golang.org/x/sys/unix"
)

// Direct streams (fs/slaveproto/direct.go): the slave's data port hands an
// attached job's output straight to a client holding a ticket the master
// signed, instead of sending it through the master. The slave keeps no
// state per ticket but the nonces seen until they expire. Once attached,
// a stream's bytes leave the slave's buffer as they are written to the
// client: they are not kept for a master restart.

// DefaultDataPort is bpslave's data port.
const DefaultDataPort = 2225

const (
	// maxPendingDirect bounds the handshakes in progress: strangers cost
	// at most that many connections for directGreeting each, and past it
	// the oldest of the busiest source makes room (srv's pool), so they
	// cannot keep a client out.
	maxPendingDirect = 64
	directGreeting   = 2 * time.Second
	// ticketSkew is how far a ticket's expiry may lie ahead of the
	// master's time as the node reckons it (its clock and the offset the
	// master's hello gave): the one-way delay of the hello and the drift
	// since.
	ticketSkew = time.Minute
)

// directState is the Slave's data port: its key and the nonces used.
type directState struct {
	mu   sync.Mutex
	key  []byte
	seen map[[16]byte]time.Time // ticket nonces used, until their expiry
	port int
}

// ServeDirect serves direct streams on ln, in the background until ctx
// ends; clusterKey is the cluster's key, from which the ticket key is
// derived. The port is offered to every master the Slave registers with
// from now on.
func (s *Slave) ServeDirect(ctx context.Context, ln net.Listener, clusterKey []byte) {
	s.direct.mu.Lock()
	s.direct.key = slaveproto.DirectKey(clusterKey)
	s.direct.seen = map[[16]byte]time.Time{}
	s.direct.port = ln.Addr().(*net.TCPAddr).Port
	s.direct.mu.Unlock()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	go func() {
		if err := s.acceptDirect(ctx, ln); err != nil {
			s.logf("%v", err)
		}
	}()
}

func (s *Slave) acceptDirect(ctx context.Context, ln net.Listener) error {
	pool := srv.NewHandshakePool(maxPendingDirect)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if srv.AcceptRetryable(err) { // as the 9P port: the port outlives it
				s.logf("data port: accept: %v (retrying)", err)
				select {
				case <-time.After(100 * time.Millisecond):
				case <-ctx.Done():
				}
				continue
			}
			return fmt.Errorf("data port: %w", err)
		}
		done := pool.Admit(c)
		go s.directConn(c, func() { done() })
	}
}

// offerDataPort tells the master on tree where direct streams come from.
// A master without slave/direct (older) just never hands out tickets.
func (s *Slave) offerDataPort(tree Opener) {
	s.direct.mu.Lock()
	port := s.direct.port
	s.direct.mu.Unlock()
	if port == 0 {
		return
	}
	f, err := tree.Open("slave/direct", os.O_WRONLY)
	if err != nil {
		s.logf("offering data port %d: %v", port, err)
		return
	}
	defer f.Close()
	if _, err := f.Write([]byte(strconv.Itoa(port) + "\n")); err != nil {
		s.logf("offering data port %d: %v", port, err)
	}
}

// refuse tells a peer why, briefly, and hangs up.
func refuse(c net.Conn, why string) {
	c.SetWriteDeadline(time.Now().Add(time.Second))
	msg := []byte("bproc direct stream refused: " + why)
	if len(msg) > 255 {
		msg = msg[:255]
	}
	c.Write(append([]byte{1, byte(len(msg))}, msg...))
	c.Close()
}

// directConn checks a client's ticket and, once it holds, sends it the
// job's streams; done frees its handshake place.
func (s *Slave) directConn(c net.Conn, done func()) {
	c.SetDeadline(time.Now().Add(directGreeting))
	j, t, secret, nc, err := s.directCheck(c)
	if err != nil {
		done()
		s.trace("direct stream from %s refused: %v", c.RemoteAddr(), err)
		refuse(c, err.Error())
		return
	}
	obs := j.directStreams(t.Streams)
	if err := s.divert(j, obs); err != nil {
		done()
		refuse(c, err.Error())
		s.maybeRetire(j) // it may have ended meanwhile
		return
	}
	ns := make([]byte, slaveproto.DirectNonceLen)
	rand.Read(ns)
	reply := append([]byte{0}, ns...)
	reply = append(reply, slaveproto.SlaveProof(secret, nc, ns)...)
	_, err = c.Write(reply)
	done()
	var sess net.Conn = c
	var sp *spliceDest
	if err == nil && t.Flags&slaveproto.TicketFlagPlain == 0 {
		sess, err = srv.SealStream(c, secret, nc, ns, false)
		if err == nil && !noSplice {
			sp = newSealedDest(srv.GatherWriter(sess))
		}
	} else if !noSplice {
		sp = newSpliceDest(c)
	}
	if err != nil {
		s.logf("job %d: direct stream to %s: %v", j.pid, c.RemoteAddr(), err)
		c.Close()
		s.directBroken(j, obs)
		return
	}
	c.SetDeadline(time.Time{})
	s.logf("job %d: streams go direct to %s", j.pid, c.RemoteAddr())
	s.sendDirect(j, obs, sess, sp)
}

// noSplice keeps direct streams on the buffer, read by fill and sent by
// sendDirect (the tests compare).
var noSplice = false

// directCheck reads and checks the client's greeting: the job its ticket
// names, the ticket, its secret and the client's nonce.
func (s *Slave) directCheck(c net.Conn) (*running, slaveproto.Ticket, []byte, []byte, error) {
	var t slaveproto.Ticket
	buf := make([]byte, slaveproto.DirectHelloLen)
	br := bufio.NewReaderSize(c, 256)
	// The magic first: anything else is turned away without waiting.
	if _, err := io.ReadFull(br, buf[:len(slaveproto.DirectMagic)]); err != nil {
		return nil, t, nil, nil, fmt.Errorf("reading the greeting: %w", err)
	}
	if string(buf[:len(slaveproto.DirectMagic)]) != slaveproto.DirectMagic {
		return nil, t, nil, nil, fmt.Errorf("not a direct-stream greeting: %w", slaveproto.ErrBadTicket)
	}
	if _, err := io.ReadFull(br, buf[len(slaveproto.DirectMagic):]); err != nil {
		return nil, t, nil, nil, fmt.Errorf("reading the greeting: %w", err)
	}
	h, err := slaveproto.ParseDirectHello(buf)
	if err != nil {
		return nil, t, nil, nil, err
	}
	s.direct.mu.Lock()
	key := s.direct.key
	s.direct.mu.Unlock()
	j, t, secret, err := s.checkTicket(key, h, s.masterNow())
	return j, t, secret, h.Nonce, err
}

// masterNow is the master's time as this node reckons it: tickets expire
// in the master's time, and node clocks need not agree with it.
func (s *Slave) masterNow() time.Time {
	return time.Now().Add(time.Duration(s.masterAhead.Load()))
}

// checkTicket is directCheck's verdict on a greeting at time now.
func (s *Slave) checkTicket(key []byte, h slaveproto.DirectHello, now time.Time) (*running, slaveproto.Ticket, []byte, error) {
	t, err := slaveproto.ParseTicket(key, h.Ticket)
	if err != nil {
		return nil, t, nil, err
	}
	secret := slaveproto.Secret(key, h.Ticket)
	if !hmac.Equal(h.Proof, slaveproto.ClientProof(secret, h.Nonce)) {
		return nil, t, nil, fmt.Errorf("the client does not hold the ticket's secret: %w", slaveproto.ErrBadTicket)
	}
	if now.After(t.Expiry) {
		return nil, t, nil, fmt.Errorf("ticket expired %v ago: %w", now.Sub(t.Expiry).Round(time.Millisecond), slaveproto.ErrBadTicket)
	}
	if t.Expiry.Sub(now) > ticketSkew {
		return nil, t, nil, fmt.Errorf("ticket expires too far ahead (clocks apart?): %w", slaveproto.ErrBadTicket)
	}
	s.direct.mu.Lock()
	_, used := s.direct.seen[t.Nonce]
	if !used {
		for n, exp := range s.direct.seen {
			if now.After(exp) {
				delete(s.direct.seen, n)
			}
		}
		s.direct.seen[t.Nonce] = t.Expiry
	}
	s.direct.mu.Unlock()
	if used {
		return nil, t, nil, fmt.Errorf("ticket already used: %w", slaveproto.ErrBadTicket)
	}
	j := s.job(int(t.Pid))
	switch {
	case j == nil:
		return nil, t, nil, fmt.Errorf("no job %d here: %w", t.Pid, syscall.ESRCH)
	case j.inc != int(t.Inc):
		return nil, t, nil, fmt.Errorf("job %d is incarnation %d, not %d: %w", t.Pid, j.inc, t.Inc, syscall.ESTALE)
	case !j.attached:
		return nil, t, nil, fmt.Errorf("job %d is detached: %w", t.Pid, syscall.EINVAL)
	}
	return j, t, secret, nil
}

// directStreams are j's streams a ticket names.
func (j *running) directStreams(mask byte) []*outBuf {
	var obs []*outBuf
	for i, ob := range j.out {
		if mask&(1<<i) != 0 {
			obs = append(obs, ob)
		}
	}
	return obs
}

// divert takes obs from the master: sendOut stops, the master gives the
// streams up and says how far its readers took them, and the slave goes on
// from there. Refused (EBUSY) for a stream already direct.
func (s *Slave) divert(j *running, obs []*outBuf) error {
	if j.moving.Load() {
		return fmt.Errorf("job %d is moving: %w", j.pid, syscall.EBUSY)
	}
	var names []string
	for _, ob := range obs {
		ob.mu.Lock()
		busy, gone := ob.diverting, ob.gone
		if !busy && !gone {
			ob.diverting = true
		}
		ob.mu.Unlock()
		if busy || gone {
			s.undivert(obs[:len(names)])
			if gone {
				return fmt.Errorf("job %d is over: %w", j.pid, syscall.ESRCH)
			}
			return fmt.Errorf("job %d's %s is already direct: %w", j.pid, ob.name, syscall.EBUSY)
		}
		names = append(names, ob.name)
	}
	offs, err := s.askDivert(j, names)
	if err != nil {
		s.undivert(obs)
		return err
	}
	for _, ob := range obs {
		off := offs[ob.name]
		ob.mu.Lock()
		if off > ob.acked && off <= ob.end() {
			ob.dropTo(off)
		}
		ob.direct = true
		ob.closed = false // its end, if the master had it, goes direct too
		ob.signalLocked()
		ob.mu.Unlock()
	}
	return nil
}

func (s *Slave) undivert(obs []*outBuf) {
	for _, ob := range obs {
		ob.mu.Lock()
		ob.diverting = false
		ob.signalLocked()
		ob.mu.Unlock()
	}
}

// askDivert has the master give up j's streams names; it answers each
// one's offset.
func (s *Slave) askDivert(j *running, names []string) (map[string]int64, error) {
	l, _ := s.link()
	if l == nil {
		return nil, fmt.Errorf("no master to hand job %d's streams over: %w", j.pid, syscall.ENOTCONN)
	}
	f, err := l.tree.Open(fmt.Sprintf("slave/proc/%d/direct", j.pid), os.O_RDWR)
	if err != nil {
		return nil, fmt.Errorf("job %d: %w", j.pid, err)
	}
	defer f.Close()
	if _, err := f.Write([]byte(strings.Join(names, " "))); err != nil {
		return nil, fmt.Errorf("job %d: diverting its streams: %w", j.pid, err)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("job %d: diverting its streams: %w", j.pid, err)
	}
	offs := map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		name, off, ok := strings.Cut(line, " ")
		n, err := strconv.ParseInt(off, 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("job %d: the master's answer %q: %w", j.pid, line, syscall.EIO)
		}
		offs[name] = n
	}
	for _, name := range names {
		if _, ok := offs[name]; !ok {
			return nil, fmt.Errorf("job %d: the master did not give up %s: %w", j.pid, name, syscall.EIO)
		}
	}
	return offs, nil
}

// sendDirect writes obs's bytes to the client as they come, each stream's
// end as an empty frame, and hangs up when all have ended. A client that
// goes away breaks the streams, as a reader leaving the tree does.
//
// With sp the streams' fills send their pipes to the client themselves
// once their kept bytes are sent: spliced (a plain session) or read and
// sealed (splice.go).
func (s *Slave) sendDirect(j *running, obs []*outBuf, sess net.Conn, sp *spliceDest) {
	defer sess.Close()
	defer s.maybeRetire(j)
	defer s.logDirectEnd(j, obs)
	write := srv.GatherWriter(sess)
	if sp != nil {
		write = sp.write
		for _, ob := range obs {
			ob.mu.Lock()
			ob.spliceTo = sp
			ob.mu.Unlock()
		}
	}
	for {
		var chans []chan struct{}
		sent, open := false, false
		for _, ob := range obs {
			id := byte(1 << indexOf(j, ob))
			ob.mu.Lock()
			if ob.broken || ob.closed || !ob.direct {
				ob.mu.Unlock()
				continue
			}
			if ob.gone { // dropped before it went direct: what it held is lost
				ob.mu.Unlock()
				s.directBroken(j, obs)
				return
			}
			open = true
			var chunk []byte
			if ob.size > 0 && ob.inflight == nil {
				chunk, _ = ob.at(ob.acked)
				chunk = chunk[:min(len(chunk), slaveproto.MaxDirectFrame)]
				ob.inflight = chunk
			}
			end := ob.size == 0 && ob.eof
			moved := ob.back && chunk == nil && ob.size == 0
			chans = append(chans, ob.changed)
			ob.mu.Unlock()
			switch {
			case moved:
				// The master has the stream back from here on: the
				// client carries on in the tree, and sendOut here.
				hdr := slaveproto.DirectFrameHeader(id, slaveproto.DirectMoved)
				err := write(net.Buffers{hdr[:]})
				ob.mu.Lock()
				ob.direct, ob.diverting, ob.moving, ob.back, ob.spliceTo = false, false, false, false, nil
				ob.signalLocked()
				ob.mu.Unlock()
				go s.sendOut(j, ob)
				if err != nil {
					// The tree has every byte from the moved end on:
					// nothing is lost, the client just does not hear it.
					s.logf("job %d: direct stream's moved end: %v", j.pid, err)
				}
				sent = true
			case chunk != nil:
				hdr := slaveproto.DirectFrameHeader(id, len(chunk))
				err := write(net.Buffers{hdr[:], chunk})
				ob.mu.Lock()
				ob.inflight = nil
				if err == nil && !ob.gone {
					ob.dropTo(ob.acked + int64(len(chunk)))
					ob.sentDirect += int64(len(chunk))
				}
				if ob.orphan != nil {
					recycle(ob.orphan)
					ob.orphan = nil
				}
				ob.signalLocked()
				ob.mu.Unlock()
				if err != nil {
					s.logf("job %d: direct stream: %v", j.pid, err)
					s.directBroken(j, obs)
					return
				}
				sent = true
			case end:
				hdr := slaveproto.DirectFrameHeader(id, 0)
				if err := write(net.Buffers{hdr[:]}); err != nil {
					s.directBroken(j, obs)
					return
				}
				ob.mu.Lock()
				ob.closed = true
				ob.signalLocked()
				ob.mu.Unlock()
				sent = true
			}
		}
		if !open {
			return
		}
		if sent {
			continue
		}
		wait(chans)
	}
}

// logDirectEnd says, as a job's direct streams end (or break), how many
// bytes each sent direct, and how many of them were spliced from the pipe
// unread (seal no).
func (s *Slave) logDirectEnd(j *running, obs []*outBuf) {
	var parts []string
	for _, ob := range obs {
		ob.mu.Lock()
		parts = append(parts, fmt.Sprintf("%s %d bytes (%d spliced)", ob.name, ob.sentDirect, ob.splicedDirect))
		ob.mu.Unlock()
	}
	s.logf("job %d: direct streams done: %s", j.pid, strings.Join(parts, ", "))
}

func indexOf(j *running, ob *outBuf) int {
	if j.out[1] == ob {
		return 1
	}
	return 0
}

// wait returns once any of chans (one or two) is closed. Not on the
// job's end: a dropped job's direct streams go on to their end.
func wait(chans []chan struct{}) {
	if len(chans) == 1 {
		<-chans[0]
		return
	}
	select {
	case <-chans[0]:
	case <-chans[1]:
	}
}

// directBroken: the client is gone; the job meets EPIPE on its next
// write, as when its reader in the tree leaves.
func (s *Slave) directBroken(j *running, obs []*outBuf) {
	for _, ob := range obs {
		ob.mu.Lock()
		if !ob.broken && !ob.closed {
			ob.broken = true
			ob.clear()
			ob.r.Close()
		}
		ob.signalLocked()
		ob.mu.Unlock()
	}
	s.maybeRetire(j)
}

// handBackWait bounds each step of handBack: the job is stopped, so the
// pipe holds all it will hold, and the client reads or is gone.
const handBackWait = 10 * time.Second

// handBack gives j's direct streams back to the master as j, stopped,
// moves: everything j wrote is sent direct, the master takes each stream
// back from the byte after it ("back NAME OFF HOW"), and then sendDirect
// ends the direct stream with its moved end and sendOut carries on
// through the master (for the next node, or for j itself if the move
// fails). The order is exact: the client reads the direct stream up to
// its moved end, then the tree, where the next node's bytes come.
func (s *Slave) handBack(j *running) error {
	j.moving.Store(true) // no new divert meanwhile
	var obs []*outBuf
	for _, ob := range j.out {
		ob.mu.Lock()
		err := ob.waitLocked(func() bool { return !ob.diverting || ob.direct || ob.gone })
		if err == nil && ob.direct && !ob.gone {
			obs = append(obs, ob)
			if !ob.closed && !ob.broken {
				ob.moving = true
				ob.signalLocked()
			}
		}
		ob.mu.Unlock()
		if err != nil {
			return s.handBackFailed(j, obs, fmt.Errorf("job %d's %s: a client taking it direct: %w", j.pid, ob.name, err))
		}
	}
	if len(obs) == 0 {
		return nil
	}
	for _, ob := range obs {
		if err := s.drainPipe(ob); err != nil {
			return s.handBackFailed(j, obs, fmt.Errorf("job %d's %s: %w", j.pid, ob.name, err))
		}
	}
	var line []string
	for _, ob := range obs {
		ob.mu.Lock()
		err := ob.waitLocked(func() bool { return ob.closed || ob.broken || ob.size == 0 && ob.inflight == nil && !ob.eof })
		how := "moved"
		if ob.closed || ob.broken {
			how = "ended"
		}
		line = append(line, ob.name, strconv.FormatInt(ob.acked, 10), how)
		ob.mu.Unlock()
		if err != nil {
			return s.handBackFailed(j, obs, fmt.Errorf("job %d's %s: sending what it holds direct: %w", j.pid, ob.name, err))
		}
	}
	if err := s.askBack(j, line); err != nil {
		return s.handBackFailed(j, obs, err)
	}
	for _, ob := range obs {
		ob.mu.Lock()
		if ob.moving {
			ob.back = true
			ob.signalLocked()
		}
		ob.mu.Unlock()
	}
	s.logf("job %d: streams given back to the master to move (%s)", j.pid, strings.Join(line, " "))
	return nil
}

// handBackFailed undoes handBack: the streams stay direct (the move
// fails, the job goes on here).
func (s *Slave) handBackFailed(j *running, obs []*outBuf, err error) error {
	for _, ob := range obs {
		ob.mu.Lock()
		ob.moving = false
		ob.signalLocked()
		ob.mu.Unlock()
		ob.r.SetReadDeadline(time.Time{})
	}
	j.moving.Store(false)
	return err
}

// waitLocked waits (ob.mu held) until ok, for at most handBackWait.
func (ob *outBuf) waitLocked(ok func() bool) error {
	t := time.NewTimer(handBackWait)
	defer t.Stop()
	for !ok() {
		ch := ob.changed
		ob.mu.Unlock()
		select {
		case <-ch:
		case <-t.C:
			ob.mu.Lock()
			return fmt.Errorf("still waiting after %v: %w", handBackWait, syscall.ETIMEDOUT)
		}
		ob.mu.Lock()
	}
	return nil
}

// drainPipe pauses ob's fill (its read deadline interrupts it) and reads
// what the stopped job left in the pipe into ob's buffer, for sendDirect.
func (s *Slave) drainPipe(ob *outBuf) error {
	ob.mu.Lock()
	moving := ob.moving
	ob.mu.Unlock()
	if !moving {
		return nil // it ended direct
	}
	if err := ob.r.SetReadDeadline(time.Now()); err != nil {
		return fmt.Errorf("interrupting its reader: %w", err)
	}
	ob.mu.Lock()
	err := ob.waitLocked(func() bool { return ob.paused || ob.gone || ob.broken || ob.eof })
	ob.mu.Unlock()
	ob.r.SetReadDeadline(time.Time{})
	if err != nil {
		return fmt.Errorf("pausing its reader: %w", err)
	}
	rc, err := ob.r.SyscallConn()
	if err != nil {
		return err
	}
	var rerr error
	buf := make([]byte, 64<<10)
	err = rc.Read(func(fd uintptr) bool {
		for {
			n, e := unix.Read(int(fd), buf)
			switch {
			case e == unix.EINTR:
				continue
			case e == unix.EAGAIN:
				return true // empty: all the stopped job wrote is in hand
			case e != nil:
				rerr = fmt.Errorf("reading its pipe: %w", e)
				return true
			}
			ob.mu.Lock()
			if n == 0 {
				ob.eof = true
			} else if !ob.gone && !ob.broken {
				ob.push(append([]byte(nil), buf[:n]...))
			}
			ob.signalLocked()
			ob.mu.Unlock()
			if n == 0 {
				return true
			}
		}
	})
	if err == nil {
		err = rerr
	}
	return err
}

// askBack has the master take j's streams back: line is NAME OFF HOW
// triples.
func (s *Slave) askBack(j *running, line []string) error {
	l, _ := s.link()
	if l == nil {
		return fmt.Errorf("no master to give job %d's streams back to: %w", j.pid, syscall.ENOTCONN)
	}
	f, err := l.tree.Open(fmt.Sprintf("slave/proc/%d/direct", j.pid), os.O_RDWR)
	if err != nil {
		return fmt.Errorf("job %d: %w", j.pid, err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("back " + strings.Join(line, " "))); err != nil {
		return fmt.Errorf("job %d: giving its streams back: %w", j.pid, err)
	}
	return nil
}
