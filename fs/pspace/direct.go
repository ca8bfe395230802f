package pspace

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"bproc/fs/slaveproto"
	"bproc/fs/synth"
)

// Direct streams (slaveproto/direct.go): the master signs a ticket for the
// owner of an attached process, who takes its output straight from the
// node's data port; the slave then asks the master (slave/proc/PID/direct)
// to give the streams up, and sends their bytes from where the tree's
// readers left them. The master stays out of the data path; the exit
// status still comes through it.

// ticketLife is how long a ticket may wait to be used: long enough for a
// connect, short enough that a leaked one is soon worthless.
const ticketLife = 5 * time.Second

// directKeys is what signs tickets; unset, proc/PID/direct refuses.
type directKeys struct {
	mu    sync.Mutex
	key   []byte
	plain bool
}

// SetDirectKey makes proc/PID/direct sign tickets with a key derived from
// the cluster key; plain says the cluster runs `seal no`, so the streams
// go unsealed too.
func (m *Master) SetDirectKey(clusterKey []byte, plain bool) {
	m.direct.mu.Lock()
	m.direct.key, m.direct.plain = slaveproto.DirectKey(clusterKey), plain
	m.direct.mu.Unlock()
}

// ticket is the proc/PID/direct line for p: ENXIO when its output cannot
// go direct (not attached, or its node's slave offers no data port).
func (m *Master) ticket(p *Proc) ([]byte, error) {
	m.direct.mu.Lock()
	key, plain := m.direct.key, m.direct.plain
	m.direct.mu.Unlock()
	node, sc, inc := p.place()
	if key == nil || sc == nil {
		return nil, fmt.Errorf("process %d: no direct streams from node %d: %w", p.pid, node, syscall.ENXIO)
	}
	if !p.attached {
		return nil, fmt.Errorf("process %d is detached: its output goes to the node's io: %w", p.pid, syscall.ENXIO)
	}
	p.mu.Lock()
	moving := p.pending != nil
	p.mu.Unlock()
	if moving {
		return nil, fmt.Errorf("process %d is moving: %w", p.pid, syscall.EBUSY)
	}
	sc.mu.Lock()
	addr := sc.dataAddr
	sc.mu.Unlock()
	if addr == "" {
		return nil, fmt.Errorf("process %d: node %d's slave offers no data port: %w", p.pid, node, syscall.ENXIO)
	}
	t := slaveproto.Ticket{Pid: uint32(p.pid), Inc: uint32(inc), Streams: slaveproto.StreamStdout | slaveproto.StreamStderr,
		Expiry: time.Now().Add(ticketLife)}
	if plain {
		t.Flags |= slaveproto.TicketFlagPlain
	}
	rand.Read(t.Nonce[:])
	b := t.Sign(key)
	return []byte(slaveproto.FormatDirect(addr, b, slaveproto.Secret(key, b))), nil
}

// directFile is proc/PID/direct: each open signs a fresh ticket, readable
// by whoever may read the process's stdout (own).
func (m *Master) directFile(p *Proc, owner func() (uint32, uint32), own func(*synth.Caller) error) *synth.FuncFile {
	return &synth.FuncFile{Ino: synth.NewIno(), Mode: 0o400, Owner: owner, OpenFunc: func(c *synth.Caller, flags int) (synth.Handle, error) {
		if err := own(c); err != nil {
			return nil, err
		}
		line, err := m.ticket(p)
		if err != nil {
			return nil, err
		}
		return &synth.BytesHandle{Data: line}, nil
	}}
}

// slaveDataFile is slave/direct: the slave writes its data port there
// ("0": none), reachable at the address its connection comes from.
func (m *Master) slaveDataFile() *synth.FuncFile {
	return &synth.FuncFile{Ino: synth.NewIno(), Mode: 0o200, OpenFunc: func(c *synth.Caller, flags int) (synth.Handle, error) {
		sc, err := m.slaveFor(c)
		if err != nil {
			return nil, err
		}
		return &dataPortHandle{sc: sc, ip: c.Addr}, nil
	}}
}

type dataPortHandle struct {
	synth.NoRead
	synth.NoClose
	sc *slaveConn
	ip string
}

func (h *dataPortHandle) Write(_ context.Context, b []byte, _ int64) (int, error) {
	port, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || port < 0 || port > 65535 {
		return 0, fmt.Errorf("data port %q: %w", b, syscall.EINVAL)
	}
	addr := ""
	if port != 0 && h.ip != "" {
		addr = net.JoinHostPort(h.ip, strconv.Itoa(port))
	}
	h.sc.mu.Lock()
	h.sc.dataAddr = addr
	h.sc.mu.Unlock()
	return len(b), nil
}

// divertFile is slave/proc/PID/direct for the process's slave: writing
// stream names ("stdout stderr") takes those streams from the tree's
// readers (proc/PID/stdout then gives EOF); reading then gives, per name,
// "NAME OFF": the count of its bytes the tree's readers took, from which
// the slave sends the rest direct. Writing "back NAME OFF HOW..." gives
// them back as the process moves (HOW "moved": the tree's readers carry
// on from byte OFF; "ended": the stream had ended direct).
func (m *Master) divertFile(p *Proc) *synth.FuncFile {
	return &synth.FuncFile{Ino: synth.NewIno(), Mode: 0o600, OpenFunc: func(*synth.Caller, int) (synth.Handle, error) {
		return &divertHandle{p: p}, nil
	}}
}

type divertHandle struct {
	synth.NoClose
	p   *Proc
	mu  sync.Mutex
	out []byte // the answer, read from its start whatever the file offset (past the write)
}

func (h *divertHandle) stream(name string) (*synth.Stream, error) {
	switch name {
	case "stdout":
		return h.p.stdout, nil
	case "stderr":
		return h.p.stderr, nil
	}
	return nil, fmt.Errorf("divert %q: no such stream: %w", name, syscall.EINVAL)
}

func (h *divertHandle) Write(_ context.Context, b []byte, _ int64) (int, error) {
	if !h.p.attached {
		return 0, fmt.Errorf("process %d is detached: %w", h.p.pid, syscall.EINVAL)
	}
	f := strings.Fields(string(b))
	if len(f) > 0 && f[0] == "back" {
		if err := h.takeBack(f[1:]); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	// Not while it moves: the next node writes to the tree's streams.
	h.p.mu.Lock()
	moving := h.p.pending != nil
	h.p.mu.Unlock()
	if moving {
		return 0, fmt.Errorf("process %d is moving: %w", h.p.pid, syscall.EBUSY)
	}
	var streams []*synth.Stream
	for _, name := range f {
		s, err := h.stream(name)
		if err != nil {
			return 0, err
		}
		streams = append(streams, s)
	}
	var out []byte
	for i, s := range streams {
		out = fmt.Appendf(out, "%s %d\n", f[i], s.Divert())
	}
	h.mu.Lock()
	h.out = out
	h.mu.Unlock()
	return len(b), nil
}

// takeBack is "back NAME OFF HOW...": each stream is checked before any
// is taken back.
func (h *divertHandle) takeBack(f []string) error {
	if len(f) == 0 || len(f)%3 != 0 {
		return fmt.Errorf("back %q: want NAME OFF HOW triples: %w", strings.Join(f, " "), syscall.EINVAL)
	}
	type back struct {
		s     *synth.Stream
		off   int64
		ended bool
	}
	var backs []back
	for i := 0; i < len(f); i += 3 {
		s, err := h.stream(f[i])
		if err != nil {
			return err
		}
		off, err := strconv.ParseInt(f[i+1], 10, 64)
		if err != nil || off < 0 {
			return fmt.Errorf("back %s: offset %q: %w", f[i], f[i+1], syscall.EINVAL)
		}
		if f[i+2] != "moved" && f[i+2] != "ended" {
			return fmt.Errorf("back %s: %q is neither moved nor ended: %w", f[i], f[i+2], syscall.EINVAL)
		}
		if !s.Diverted() {
			return fmt.Errorf("process %d's %s did not go direct: %w", h.p.pid, f[i], syscall.EINVAL)
		}
		for _, b := range backs {
			if b.s == s {
				return fmt.Errorf("back %s twice: %w", f[i], syscall.EINVAL)
			}
		}
		backs = append(backs, back{s, off, f[i+2] == "ended"})
	}
	for i, b := range backs {
		if err := b.s.TakeBack(b.off, b.ended); err != nil {
			return fmt.Errorf("process %d's %s: %w", h.p.pid, f[3*i], err)
		}
	}
	return nil
}

func (h *divertHandle) Read(_ context.Context, b []byte, off int64) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := copy(b, h.out)
	h.out = h.out[n:]
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}
