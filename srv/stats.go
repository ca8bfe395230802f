package srv

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
)

// Stats counts what a Server sees for monitoring (bpmaster's /metrics):
// the clients connected now, by role, and the handshakes it refused, by
// cause. The zero value is ready; a Server with no Stats counts nothing.
type Stats struct {
	mu        sync.Mutex
	connected map[string]int64
	refused   map[string]uint64
}

// Handshake refusal causes, as Refused reports them.
const (
	RefusedKey      = "key"      // the client does not hold the cluster key
	RefusedGreeting = "greeting" // not a bproc client, or another version
	RefusedHello    = "hello"    // a key holder sent a malformed identity
	RefusedTimeout  = "timeout"  // silent or too slow
	RefusedClosed   = "closed"   // hung up during the handshake
	RefusedBusy     = "busy"     // evicted: too many handshakes in progress
	RefusedOther    = "other"
)

// refusalCause classifies a ServerHandshake error; evicted: the pool
// closed the connection to make room.
func refusalCause(err error, evicted bool) string {
	var ne net.Error
	switch {
	case evicted:
		return RefusedBusy
	case errors.Is(err, ErrBadKey):
		return RefusedKey
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return RefusedTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return RefusedClosed
	case strings.Contains(err.Error(), "greeting"):
		return RefusedGreeting
	case strings.Contains(err.Error(), "hello"):
		return RefusedHello
	}
	return RefusedOther
}

// refuse counts a refused handshake; cause is a Refused* constant.
func (s *Stats) refuse(cause string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	if s.refused == nil {
		s.refused = map[string]uint64{}
	}
	s.refused[cause]++
	s.mu.Unlock()
}

// connect counts a client of role in; the returned func counts it out.
func (s *Stats) connect(role string) func() {
	if s == nil {
		return func() {}
	}
	s.add(role, 1)
	return func() { s.add(role, -1) }
}

func (s *Stats) add(role string, d int64) {
	s.mu.Lock()
	if s.connected == nil {
		s.connected = map[string]int64{}
	}
	s.connected[role] += d
	s.mu.Unlock()
}

// Connected returns the clients connected now, by role ("slave", "tool").
func (s *Stats) Connected() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int64{RoleSlave: 0, RoleTool: 0}
	for k, v := range s.connected {
		out[k] = v
	}
	return out
}

// Refused returns the handshakes refused since the start, by cause.
func (s *Stats) Refused() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]uint64, len(s.refused))
	for k, v := range s.refused {
		out[k] = v
	}
	return out
}
