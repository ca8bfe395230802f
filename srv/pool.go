package srv

import (
	"net"
	"sync"
	"time"
)

// pool holds the connections still in the handshake. It never refuses a
// newcomer: when full, the oldest pending connection of the source address
// with the most pending ones is evicted. A flood from one address then only
// ever evicts its own connections; a flood from many addresses evicts the
// oldest, and a key holder's handshake (one round trip) is the newest
// almost always. Together with the short greeting deadline this lets a key
// holder through whatever strangers do, short of max new connections
// inside one round trip.
type pool struct {
	mu    sync.Mutex
	max   int
	n     int
	bySrc map[string][]*pendingConn // oldest first
}

type pendingConn struct {
	c       net.Conn
	src     string
	since   time.Time
	evicted bool // guarded by pool.mu
	gone    bool // left the pool; guarded by pool.mu
}

func newPool(max int) *pool {
	return &pool{max: max, bySrc: make(map[string][]*pendingConn)}
}

// srcAddr is the host part of c's remote address.
func srcAddr(c net.Conn) string {
	a := c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(a); err == nil {
		return host
	}
	return a
}

// admit records c. If the pool was full it returns the connection evicted
// for it, for the caller to close.
func (p *pool) admit(c net.Conn) (pc, evicted *pendingConn) {
	pc = &pendingConn{c: c, src: srcAddr(c), since: time.Now()}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n >= p.max {
		evicted = p.victim()
		if evicted != nil {
			evicted.evicted = true
			p.removeLocked(evicted)
		}
	}
	p.bySrc[pc.src] = append(p.bySrc[pc.src], pc)
	p.n++
	return pc, evicted
}

// victim is the oldest pending connection of the source with the most;
// between equals, the source whose oldest is older.
func (p *pool) victim() *pendingConn {
	var v *pendingConn
	most := 0
	for _, l := range p.bySrc {
		if len(l) > most || (len(l) == most && l[0].since.Before(v.since)) {
			v, most = l[0], len(l)
		}
	}
	return v
}

func (p *pool) removeLocked(pc *pendingConn) {
	if pc.gone {
		return
	}
	pc.gone = true
	l := p.bySrc[pc.src]
	for i, x := range l {
		if x == pc {
			l = append(l[:i], l[i+1:]...)
			break
		}
	}
	if len(l) == 0 {
		delete(p.bySrc, pc.src)
	} else {
		p.bySrc[pc.src] = l
	}
	p.n--
}

// done takes pc out of the pool once its handshake ended, and says whether
// it had been evicted.
func (p *pool) done(pc *pendingConn) (evicted bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.removeLocked(pc)
	return pc.evicted
}

// pending is the number of connections in the handshake.
func (p *pool) pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// HandshakePool is pool for listeners other than Server's (bpslave's
// data port): the same eviction, so strangers cannot keep a key holder
// out.
type HandshakePool struct{ p *pool }

// NewHandshakePool is a pool of at most max connections in the handshake.
func NewHandshakePool(max int) *HandshakePool { return &HandshakePool{newPool(max)} }

// Admit records c, closing the connection evicted for it when the pool was
// full; done takes c out once its handshake ended and says whether c was
// evicted meanwhile.
func (h *HandshakePool) Admit(c net.Conn) (done func() (evicted bool)) {
	pc, evicted := h.p.admit(c)
	if evicted != nil {
		evicted.c.Close() // its handshake fails and cleans up
	}
	return func() bool { return h.p.done(pc) }
}

// refusalKinds name each refusal cause in the rate-limited log, which
// counts events by these names.
var refusalKinds = map[string]string{
	RefusedBusy:     "connections evicted (handshake pool full)",
	RefusedTimeout:  "failed handshakes (timed out)",
	RefusedKey:      "failed handshakes (cluster key mismatch)",
	RefusedGreeting: "failed handshakes (closed, or not a bproc client)",
	RefusedHello:    "failed handshakes (closed, or not a bproc client)",
	RefusedClosed:   "failed handshakes (closed, or not a bproc client)",
	RefusedOther:    "failed handshakes (closed, or not a bproc client)",
}
