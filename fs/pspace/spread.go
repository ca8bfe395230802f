package pspace

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"

	"bproc/fs/slaveproto"
	"bproc/fs/synth"
)

// Binaries spread by tree: a binary started on many nodes crosses the
// master's link at most spreadFanout times. Every slave with a peer
// listener (bpslave --peer-port, announced in slave/peer) serves the
// binaries its cache holds to other slaves. The master keeps, per spooled
// binary, the nodes it has sent it to in order (holders); the first
// spreadFanout fetch it from the master, holder i after them from holder
// i/spreadFanout-1 (a tree of fan-out spreadFanout), with that holder's own
// sources after it as fallbacks, then the master. The slave checks the
// hash whatever the source (job/cache.go), so a peer can make a fetch
// fail, never run the wrong bytes.

// spreadFanout is how many fetch from the master, and from each holder.
const spreadFanout = 4

// spreadDepth bounds the peers a start message names (the parent, then
// its sources).
const spreadDepth = 3

// holder is a node the master sent a binary's start message to.
type holder struct {
	sc       *slaveConn
	addr     string // its peer listener; "" when it serves none
	fromPeer bool   // told to fetch from peers: a fetch from the master is a fallback
}

// route returns the peers node sc is to fetch the binary hash from (nil:
// the master) and records sc as a holder. Holders whose connection is gone
// leave the tree first, so a node down mid-launch is never named again.
// It is called for every node of a launch: what it needs is kept beside
// the holders (who they are, which serve), and the holders are looked
// over again only after a slave was dropped, so a set launch's routing is
// linear in its nodes, not quadratic.
func (b *binCache) route(hash string, sc *slaveConn) []string {
	addr := sc.peerAddr()
	b.mu.Lock()
	defer b.mu.Unlock()
	bin := b.byHash[hash]
	if bin == nil {
		return nil
	}
	if drops := b.drops.Load(); bin.swept != drops || bin.held == nil {
		bin.swept = drops
		bin.sweepHolders()
	}
	if bin.held[sc] {
		return nil // it has it, or fetches it now
	}
	tree := bin.serving // the holders that serve, in order
	var from []string
	for j := len(tree); len(from) < spreadDepth && j >= spreadFanout; {
		j = j/spreadFanout - 1
		from = append(from, tree[j].addr)
	}
	h := holder{sc: sc, addr: addr, fromPeer: from != nil}
	bin.holders = append(bin.holders, h)
	bin.held[sc] = true
	if addr != "" {
		bin.serving = append(bin.serving, h)
	}
	return from
}

// sweepHolders drops the holders whose connection is gone and makes the
// index of who holds it and the list of those that serve again.
func (bin *binary) sweepHolders() {
	live := bin.holders[:0]
	for _, h := range bin.holders {
		if h.sc.alive() {
			live = append(live, h)
		}
	}
	clear(bin.holders[len(live):])
	bin.holders = live
	bin.held = make(map[*slaveConn]bool, len(live))
	bin.serving = bin.serving[:0]
	for _, h := range live {
		bin.held[h.sc] = true
		if h.addr != "" {
			bin.serving = append(bin.serving, h)
		}
	}
}

// slaveGone tells the routing a slave's connection went: the holders are
// looked over at the next route.
func (b *binCache) slaveGone() { b.drops.Add(1) }

// fellBack notes that node sc fetches hash from the master: a fallback
// when it was told to fetch from peers. Counted once per holder.
func (b *binCache) fellBack(hash string, sc *slaveConn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	bin := b.byHash[hash]
	if bin == nil {
		return false
	}
	for i := range bin.holders {
		if h := &bin.holders[i]; h.sc == sc && h.fromPeer {
			h.fromPeer = false
			b.fallbacks.Add(1)
			return true
		}
	}
	return false
}

// BinaryCounters are the binary shipping counters of a Snapshot.
type BinaryCounters struct {
	Sent      uint64 // bytes of binaries the master sent to slaves over the network
	Fallbacks uint64 // fetches from the master by slaves whose peers failed them
}

func (b *binCache) counters() BinaryCounters {
	return BinaryCounters{Sent: b.sent.Load(), Fallbacks: b.fallbacks.Load()}
}

// routeStart fills a start message's From (see route); a migration's
// start runs no binary, and the master's own node reads it in-process.
func (m *Master) routeStart(sc *slaveConn, msg *slaveproto.Msg) {
	if msg.Op == "start" && msg.Mig == 0 && msg.Hash != "" && msg.From == nil && sc.node.num != -1 {
		msg.From = m.bins.route(msg.Hash, sc)
	}
}

// fromField is routeStart for a start message encoded from a node set's
// template: its "from" field, or none.
func (m *Master) fromField(sc *slaveConn, hash string) [][]byte {
	if hash == "" || sc.node.num == -1 {
		return nil
	}
	from := m.bins.route(hash, sc)
	if from == nil {
		return nil
	}
	b, err := json.Marshal(from)
	if err != nil {
		return nil
	}
	return [][]byte{append([]byte(`"from":`), b...)}
}

func (sc *slaveConn) peerAddr() string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.peer
}

// ParsePeerPort reads what a slave writes to slave/peer: its peer
// listener's port, 1-65535, and a newline at most.
func ParsePeerPort(b []byte) (int, error) {
	s := strings.TrimSuffix(string(b), "\n")
	p, err := strconv.Atoi(s)
	if err != nil || p <= 0 || p > 65535 || s != strconv.Itoa(p) {
		return 0, fmt.Errorf("bad peer port %q (want a number 1-65535): %w", s, syscall.EINVAL)
	}
	return p, nil
}

// peerHandle is slave/peer: the slave announces its peer listener, at the
// address it connects from.
type peerHandle struct {
	synth.NoRead
	synth.NoClose
	m    *Master
	sc   *slaveConn
	addr string
}

func (h *peerHandle) Write(_ context.Context, b []byte, _ int64) (int, error) {
	port, err := ParsePeerPort(b)
	if err != nil {
		return 0, err
	}
	if h.addr == slaveproto.LocalAddr {
		return 0, fmt.Errorf("the master's own node serves no peers: %w", syscall.EINVAL)
	}
	addr := net.JoinHostPort(h.addr, strconv.Itoa(port))
	h.sc.mu.Lock()
	h.sc.peer = addr
	h.sc.mu.Unlock()
	h.m.Logf("node %d serves binaries to peers at %s", h.sc.node.num, addr)
	return len(b), nil
}

func (m *Master) newPeerFile() synth.Node {
	return &synth.FuncFile{Ino: synth.NewIno(), Mode: 0o200, OpenFunc: func(c *synth.Caller, flags int) (synth.Handle, error) {
		sc, err := m.slaveFor(c)
		if err != nil {
			return nil, err
		}
		return &peerHandle{m: m, sc: sc, addr: c.Addr}, nil
	}}
}
