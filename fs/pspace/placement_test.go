package pspace

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"bproc/fs/slaveproto"
	"bproc/fs/synth"
)

// placed is a master with slaves for nodes 0 and 1 and one process
// started on node 0.
type placed struct {
	m        *Master
	sc       [2]*slaveConn
	n        [2]*node
	p        *Proc
	events   <-chan Event
	unsub    func()
	cancel   [2]context.CancelFunc
	reporter [2]*reportHandle
}

func newPlaced(t *testing.T) *placed {
	t.Helper()
	pl := &placed{m: NewMaster(DefaultConfig())}
	pl.events, pl.unsub = pl.m.Subscribe()
	t.Cleanup(pl.unsub)
	for i, addr := range []string{"10.0.0.5", "10.0.0.6"} {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		sc, err := pl.m.register(&synth.Caller{Slave: true, Addr: addr, Conn: ctx})
		if err != nil {
			t.Fatal(err)
		}
		pl.sc[i], pl.n[i], pl.cancel[i] = sc, sc.node, cancel
		pl.reporter[i] = &reportHandle{m: pl.m, sc: sc}
	}
	p, err := pl.m.newProc(&synth.Caller{Uid: 4242, Gid: 4242}, pl.n[0], pl.sc[0], []string{"sleep", "9"}, false)
	if err != nil {
		t.Fatal(err)
	}
	pl.p = p
	pl.report(t, 0, "1 started 100")
	return pl
}

// report writes lines to node i's slave/report and fails the test on error.
func (pl *placed) report(t *testing.T, i int, lines string) {
	t.Helper()
	if _, err := pl.reporter[i].Write(context.Background(), []byte(lines), 0); err != nil {
		t.Fatalf("node %d reporting %q: %v", pl.n[i].num, lines, err)
	}
}

func (pl *placed) status() string {
	pl.p.mu.Lock()
	defer pl.p.mu.Unlock()
	return pl.p.state + " " + pl.p.status
}

func nextEvent(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("event channel closed")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	return Event{}
}

// After a move, the node the process left can neither end it by a report
// nor by going down; the new node's reports of the new incarnation can.
func TestReportFromOldIncarnationRefused(t *testing.T) {
	pl := newPlaced(t)
	inc, err := pl.p.move(pl.n[1], pl.sc[1])
	if err != nil || inc != 1 {
		t.Fatalf("move: %d, %v", inc, err)
	}
	for _, tc := range []struct {
		node  int
		lines string
		errno syscall.Errno
	}{
		{0, "1 exit 0", syscall.ESTALE},     // the old node, the old incarnation
		{0, "1 signal 9", syscall.ESTALE},   // ...
		{1, "1 exit 0", syscall.ESTALE},     // the new node naming the old one
		{0, "1.1 exit 0", syscall.ESRCH},    // the new incarnation, from the wrong node
		{1, "1.2 exit 0", syscall.ESTALE},   // an incarnation not yet given
		{1, "1.0 exit 0", syscall.EINVAL},   // incarnation 0 has one spelling
		{1, "1.x exit 0", syscall.EINVAL},   // ...
		{0, "1 eof stdout", syscall.ESTALE}, // nor its output streams
		{1, "9 exit 0", syscall.ESRCH},      // nobody
	} {
		_, err := pl.reporter[tc.node].Write(context.Background(), []byte(tc.lines), 0)
		if !errors.Is(err, tc.errno) {
			t.Errorf("node %d %q: %v, want %v", tc.node, tc.lines, err, tc.errno)
		}
		if tc.errno == syscall.ESTALE && !strings.Contains(fmt.Sprint(err), "incarnation 1 on node 1 now") {
			t.Errorf("node %d %q: %v does not say where the process is", tc.node, tc.lines, err)
		}
	}
	pl.m.dropSlave(pl.sc[0], "test") // node 0 goes down: not this process's node any more
	if got := pl.status(); got != "running " {
		t.Fatalf("after stale reports and its old node going down: %q, want running", got)
	}
	if line := pl.p.statusLine(); !strings.HasPrefix(line, "1 1 running ") {
		t.Errorf("status line %q does not show node 1", line)
	}
	pl.report(t, 1, "1.1 exit 3")
	if got := pl.status(); got != "exited exit 3" {
		t.Fatalf("after the new node's report: %q", got)
	}
	if _, err := pl.p.move(pl.n[0], pl.sc[0]); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("moving an exited process: %v, want ESRCH", err)
	}
}

// Without a move, the first incarnation's slave going down loses the
// process, as before.
func TestNodeDownLosesUnmovedProcess(t *testing.T) {
	pl := newPlaced(t)
	pl.cancel[0]()
	select {
	case <-pl.p.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the process outlived its node")
	}
	if got := pl.status(); got != "exited lost node 0 down" {
		t.Errorf("status %q", got)
	}
}

// Subscribers hear a process start, move and exit, in that order.
func TestEventsInOrder(t *testing.T) {
	pl := newPlaced(t)
	late, cancel := pl.m.Subscribe()
	defer cancel()
	pl.p.move(pl.n[1], pl.sc[1])
	pl.report(t, 1, "1.1 signal 15")
	want := []Event{
		{Kind: Started, Pid: 1, Node: 0},
		{Kind: Moved, Pid: 1, Node: 1, From: 0, Inc: 1},
		{Kind: Exited, Pid: 1, Node: 1, Inc: 1, Status: "signal 15 SIGTERM"},
	}
	for i, w := range want {
		if ev := nextEvent(t, pl.events); ev != w {
			t.Errorf("event %d: %+v, want %+v", i, ev, w)
		}
	}
	if ev := nextEvent(t, late); ev.Kind != Moved {
		t.Errorf("a subscriber from after the start first hears %+v", ev)
	}
	cancel()
	cancel() // twice is harmless
	for range late {
	}
}

// A subscriber that does not read loses events (counted), and the master
// does not wait for it.
func TestSlowSubscriberDoesNotBlock(t *testing.T) {
	m := NewMaster(DefaultConfig())
	ch, cancel := m.Subscribe()
	defer cancel()
	n := m.nodes[-1]
	total := eventBuffer + 10
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < total; i++ {
			p, err := m.newProc(&synth.Caller{}, n, nil, []string{"x"}, false)
			if err != nil {
				t.Error(err)
				return
			}
			p.slaveReport("started 5")
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the master waited for a subscriber that does not read")
	}
	for i := 0; i < eventBuffer; i++ {
		<-ch
	}
	p, _ := m.newProc(&synth.Caller{}, n, nil, []string{"x"}, false)
	p.slaveReport("started 5")
	if ev := nextEvent(t, ch); ev.Dropped != 10 || ev.Pid != p.pid {
		t.Errorf("after falling behind: %+v, want pid %d with 10 dropped", ev, p.pid)
	}
}

// Where a process runs is read while it moves (go test -race).
func TestPlacementConcurrentReads(t *testing.T) {
	pl := newPlaced(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				pl.p.statusLine()
				pl.m.Snapshot()
				pl.m.signalNode(&synth.Caller{}, pl.n[1], 0)
				pl.reporter[0].Write(context.Background(), []byte("1 eof stderr"), 0)
			}
		}()
	}
	for i := 0; i < 200; i++ {
		if _, err := pl.p.move(pl.n[i%2], pl.sc[i%2]); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if _, _, inc := pl.p.place(); inc != 200 {
		t.Errorf("incarnation %d after 200 moves", inc)
	}
}

// An adopted process keeps the incarnation its slave kept: reports about
// an earlier one stay refused under the new master.
func TestAdoptKeepsIncarnation(t *testing.T) {
	m := NewMaster(DefaultConfig())
	if err := m.UseStateDir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.pids.first = 10 // as if an earlier master issued 1-9
	m.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sc, err := m.register(&synth.Caller{Slave: true, Addr: "10.0.0.5", Conn: ctx})
	if err != nil {
		t.Fatal(err)
	}
	events, unsub := m.Subscribe()
	defer unsub()
	if err := m.adopt(sc, &slaveproto.Adopt{Pid: 5, Inc: 2, Argv: []string{"sleep"}, State: "running"}); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, events); ev != (Event{Kind: Started, Pid: 5, Node: 0, Inc: 2}) {
		t.Errorf("adoption: %+v", ev)
	}
	r := &reportHandle{m: m, sc: sc}
	if _, err := r.Write(context.Background(), []byte("5.1 exit 0"), 0); !errors.Is(err, syscall.ESTALE) {
		t.Errorf("report of incarnation 1: %v, want ESTALE", err)
	}
	if _, err := r.Write(context.Background(), []byte("5.2 exit 4"), 0); err != nil {
		t.Fatalf("report of incarnation 2: %v", err)
	}
	if ev := nextEvent(t, events); ev.Kind != Exited || ev.Status != "exit 4" || ev.Inc != 2 {
		t.Errorf("exit: %+v", ev)
	}
}
