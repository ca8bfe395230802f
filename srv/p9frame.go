package srv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// 9P message layout: size[4] type[1] tag[2] ...; Tversion adds msize[4]
// version[s].
const (
	p9Header       = 7
	msgTversion    = 100
	tversionMsize  = 7
	tversionPrefix = 11
	tversionMin    = tversionPrefix + 2 // with an empty version string
)

// errBad9P is wrapped by every error of p9Reader: the client broke 9P.
var errBad9P = errors.New("malformed 9P")

// p9Reader hands a client's 9P stream to p9's server after checking each
// message's header, because p9 trusts more than it should:
//   - the first message must be a Tversion, its msize lowered to max (p9
//     would grant up to 4 MiB per connection);
//   - a later Tversion ends the connection: p9 replaces its buffer pool
//     unguarded while other requests run, and our clients never renegotiate;
//   - a message shorter than its header or longer than max ends it too
//     (before a Tversion, p9 would read up to 4 MiB into one message).
type p9Reader struct {
	r    io.Reader
	max  uint32
	hdr  [tversionPrefix]byte
	out  []byte // header bytes checked and not yet handed out
	left uint32 // body bytes of the current message not yet handed out
	msgs int
}

func newP9Reader(r io.Reader, max uint32) *p9Reader { return &p9Reader{r: r, max: max} }

func (p *p9Reader) Read(b []byte) (int, error) {
	if len(p.out) == 0 && p.left == 0 {
		if err := p.next(); err != nil {
			return 0, err
		}
	}
	if len(p.out) > 0 {
		n := copy(b, p.out)
		p.out = p.out[n:]
		return n, nil
	}
	if uint32(len(b)) > p.left {
		b = b[:p.left]
	}
	n, err := p.r.Read(b)
	p.left -= uint32(n)
	if err == io.EOF && p.left > 0 {
		err = fmt.Errorf("%w: closed inside a message", errBad9P)
	}
	return n, err
}

// next reads and checks the next message's header.
func (p *p9Reader) next() error {
	h := p.hdr[:p9Header]
	if n, err := io.ReadFull(p.r, h); err != nil {
		if n > 0 && err == io.ErrUnexpectedEOF {
			return fmt.Errorf("%w: closed inside a header", errBad9P)
		}
		return err // io.EOF between messages is a clean hang-up
	}
	size, typ := binary.LittleEndian.Uint32(h), h[4]
	switch {
	case size < p9Header:
		return fmt.Errorf("%w: message of %d bytes, shorter than its header", errBad9P, size)
	case size > p.max:
		return fmt.Errorf("%w: message of %d bytes, more than the msize %d", errBad9P, size, p.max)
	case p.msgs == 0 && typ != msgTversion:
		return fmt.Errorf("%w: first message of type %d, not Tversion", errBad9P, typ)
	case p.msgs > 0 && typ == msgTversion:
		return fmt.Errorf("%w: a second Tversion", errBad9P)
	}
	p.msgs++
	if typ == msgTversion {
		if size < tversionMin {
			return fmt.Errorf("%w: Tversion of %d bytes", errBad9P, size)
		}
		h = p.hdr[:tversionPrefix]
		if _, err := io.ReadFull(p.r, h[p9Header:]); err != nil {
			return fmt.Errorf("%w: closed inside Tversion: %w", errBad9P, err)
		}
		if m := binary.LittleEndian.Uint32(h[tversionMsize:]); m > p.max {
			binary.LittleEndian.PutUint32(h[tversionMsize:], p.max)
		}
	}
	p.out = h
	p.left = size - uint32(len(h))
	return nil
}
