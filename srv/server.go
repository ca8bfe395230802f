package srv

import (
	"context"
	"errors"
	"net"

	"bproc/fs"
)

// DefaultPort is bpmaster's 9P port.
const DefaultPort = "2223"

// DefaultMaxMessage is the 9P msize the server allows and Dial asks for.
const DefaultMaxMessage = 1 << 20

// Server serves a tree over 9P2000.L to clients that pass the handshake.
type Server struct {
	Key        []byte
	Root       fs.Dir // the tree; the same one FUSE serves
	Logf       func(format string, args ...any)
	MaxMessage uint32 // msize to allow; default 1 MiB (p9 allows up to 4 MiB)
}

// Serve accepts connections until ctx is done or ln fails. Each connection
// gets the handshake, then its own p9 server with a Caller built from the
// handshake's Hello. When ctx is done the listener and every connection are
// closed and Serve returns once their handlers have finished.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return errors.New("srv: Serve not implemented yet")
}
