package pspace

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"bproc/fs/slaveproto"
)

// spreadCache is a binary cache holding one binary, by hash "h".
func spreadCache() *binCache {
	b := &binCache{}
	holdOne(b)
	return b
}

// holdOne puts binary "h" in b.
func holdOne(b *binCache) {
	bin := &binary{hash: "h"}
	bin.elem = b.lru.PushFront(bin)
	b.byHash = map[string]*binary{"h": bin}
}

func peerConn(i int) *slaveConn {
	return &slaveConn{node: &node{num: i}, peer: fmt.Sprintf("10.0.0.%d:2224", i)}
}

func TestSpreadTree(t *testing.T) {
	b := spreadCache()
	var scs []*slaveConn
	for i := 0; i < 25; i++ {
		scs = append(scs, peerConn(i))
	}
	addr := func(i int) string { return scs[i].peer }
	want := map[int][]string{
		0: nil, 3: nil, // the first four fetch from the master
		4: {addr(0)}, 7: {addr(0)}, 8: {addr(1)}, 19: {addr(3)},
		20: {addr(4), addr(0)}, 24: {addr(5), addr(0)},
	}
	fromMaster := 0
	for i, sc := range scs {
		got := b.route("h", sc)
		if got == nil {
			fromMaster++
		}
		if w, ok := want[i]; ok && !slices.Equal(got, w) {
			t.Errorf("node %d fetches from %q, want %q", i, got, w)
		}
	}
	if fromMaster != spreadFanout {
		t.Errorf("%d of 25 nodes fetch from the master, want %d", fromMaster, spreadFanout)
	}
	if got := b.route("h", scs[9]); got != nil {
		t.Errorf("a node that has it is told to fetch from %q", got)
	}
	if got := b.route("other", scs[0]); got != nil {
		t.Errorf("a binary the master does not hold: %q", got)
	}
}

func TestSpreadSkipsDeadAndSilent(t *testing.T) {
	b := spreadCache()
	for i := 0; i < 4; i++ {
		b.route("h", peerConn(i))
	}
	silent := &slaveConn{node: &node{num: 9}} // no peer listener: fetches, never serves
	if got := b.route("h", silent); !slices.Equal(got, []string{"10.0.0.0:2224"}) {
		t.Fatalf("node without a listener fetches from %q", got)
	}
	b.mu.Lock()
	first := b.byHash["h"].holders[0].sc
	b.mu.Unlock()
	first.dead = true // down mid-launch: never named again
	b.slaveGone()     // as dropSlave tells it
	got := b.route("h", peerConn(5))
	if got != nil {
		t.Errorf("with holder 0 down and 3 serving left, the next node fetches from %q, want the master", got)
	}
	if got := b.route("h", peerConn(6)); !slices.Equal(got, []string{"10.0.0.1:2224"}) {
		t.Errorf("next: %q, want holder 1", got)
	}
}

func TestSpreadLeavesTheMastersNode(t *testing.T) {
	m := &Master{}
	holdOne(&m.bins)
	for i := 0; i < 4; i++ {
		m.bins.route("h", peerConn(i))
	}
	msg := &slaveproto.Msg{Op: "start", Hash: "h"}
	m.routeStart(&slaveConn{node: &node{num: -1}}, msg)
	if msg.From != nil || len(m.bins.byHash["h"].holders) != 4 {
		t.Errorf("node -1 told to fetch from %q, or made a holder", msg.From)
	}
	m.routeStart(peerConn(4), msg)
	if !slices.Equal(msg.From, []string{"10.0.0.0:2224"}) {
		t.Errorf("node 4 fetches from %q", msg.From)
	}
}

func TestSpreadFallbackCountedOnce(t *testing.T) {
	b := spreadCache()
	var scs []*slaveConn
	for i := 0; i < 5; i++ {
		scs = append(scs, peerConn(i))
		b.route("h", scs[i])
	}
	if b.fellBack("h", scs[0]) {
		t.Error("a node told to fetch from the master counted as a fallback")
	}
	if !b.fellBack("h", scs[4]) || b.fellBack("h", scs[4]) {
		t.Error("a node told to fetch from a peer: want one fallback counted, once")
	}
	if got := b.counters().Fallbacks; got != 1 {
		t.Errorf("fallbacks %d, want 1", got)
	}
}

func FuzzParsePeerPort(f *testing.F) {
	for _, s := range []string{"2224", "2224\n", "0", "65535", "65536", "-1", "+80", "080", " 80", "80\n\n", "", "\n", "99999999999999999999"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePeerPort(b)
		if err != nil {
			return
		}
		if p < 1 || p > 65535 {
			t.Fatalf("%q: port %d", b, p)
		}
		if s := strconv.Itoa(p); string(b) != s && string(b) != s+"\n" {
			t.Fatalf("%q read as %d", b, p)
		}
	})
}

// TestSpreadRouteLinear: routing a launch's nodes costs the same per
// node at any size. Each route used to look over every holder (a lock
// each), so 20000 nodes took 2·10⁸ looks, seconds; now a few ms.
func TestSpreadRouteLinear(t *testing.T) {
	b := spreadCache()
	const n = 20000
	scs := make([]*slaveConn, n)
	for i := range scs {
		scs[i] = peerConn(i)
	}
	start := time.Now()
	for _, sc := range scs {
		b.route("h", sc)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("routing %d nodes took %v, want well under 1 s", n, d)
	}
	// And a drop is still seen at once: node 0 leaves the tree.
	scs[0].dead = true
	b.slaveGone()
	b.route("h", peerConn(n))
	b.mu.Lock()
	first := b.byHash["h"].holders[0].sc
	b.mu.Unlock()
	if first == scs[0] {
		t.Error("a dropped holder stays in the tree")
	}
}
