package mcast

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// freeAddr returns a loopback UDP address nobody listens on (unicast: the
// unit tests run in the host's network namespace, without multicast).
func freeAddr(t *testing.T) string {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// waitFor polls cond until it holds or the deadline passes.
// tempShm creates a shm file "beostat" in a fresh temporary directory,
// closed when the test ends.
func tempShm(t *testing.T) (dir string, w *ShmWriter) {
	t.Helper()
	dir = t.TempDir()
	w, err := CreateShm(filepath.Join(dir, "beostat"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return dir, w
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type testCluster struct {
	statsAddr, reqAddr string
	shm, files         string
	rd                 *ShmReader
	cancel             context.CancelFunc
	done               chan error
}

func startReceiver(t *testing.T, dir string, statsAddr, reqAddr string) *testCluster {
	tc := &testCluster{statsAddr: statsAddr, reqAddr: reqAddr,
		shm: filepath.Join(dir, "beostat"), files: filepath.Join(dir, "beostat.d"), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	tc.cancel = cancel
	ready := make(chan struct{})
	go func() {
		tc.done <- RunReceiver(ctx, ReceiverConfig{Key: testKey, StatsAddr: statsAddr, RequestAddr: reqAddr,
			ShmPath: tc.shm, FilesDir: tc.files, Log: log.New(io.Discard, "", 0), Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-tc.done:
		t.Fatalf("receiver: %v", err)
	}
	rd, err := OpenShm(tc.shm)
	if err != nil {
		t.Fatal(err)
	}
	tc.rd = rd
	return tc
}

func (tc *testCluster) stop(t *testing.T) {
	tc.cancel()
	if err := <-tc.done; err != nil {
		t.Error(err)
	}
	tc.rd.Close()
}

func (tc *testCluster) record(node int) *Record {
	r := new(Record)
	tc.rd.Read(node, r)
	return r
}

func startSender(t *testing.T, tc *testCluster, node int, procfs, reqAddr string, iv time.Duration) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- RunSender(ctx, SenderConfig{Node: node, Key: testKey, Procfs: procfs, Interval: iv,
			StatsAddr: tc.statsAddr, RequestAddr: reqAddr, Log: log.New(io.Discard, "", 0)})
	}()
	t.Cleanup(cancel)
	select {
	case err := <-errc:
		t.Fatalf("sender %d: %v", node, err)
	case <-time.After(20 * time.Millisecond):
	}
	return cancel
}

// copyProc makes a writable copy of a capture, to change under a sender.
func copyProc(t *testing.T, from string) string {
	dir := t.TempDir()
	for _, f := range []string{"cpuinfo", "meminfo", "loadavg", "stat", "net/dev"} {
		b, err := os.ReadFile(filepath.Join(from, f))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestSendReceive(t *testing.T) {
	tc := startReceiver(t, t.TempDir(), freeAddr(t), freeAddr(t))
	defer tc.stop(t)
	const iv = 50 * time.Millisecond
	p0 := copyProc(t, "testdata/x86")
	stop0 := startSender(t, tc, 0, p0, tc.reqAddr, iv)
	startSender(t, tc, 3, "testdata/arm64", freeAddr(t), iv)

	waitFor(t, 2*time.Second, "both nodes up", func() bool {
		return tc.record(0).State(time.Now()) == StateUp && tc.record(3).State(time.Now()) == StateUp
	})
	r3 := tc.record(3)
	if r3.NCPU != 4 || r3.Load[0] != 1.52 || cstr(r3.Vendor[:]) != "0x41" || r3.Address().String() != "127.0.0.1" {
		t.Errorf("node 3 record: ncpu %d load %v vendor %q addr %v", r3.NCPU, r3.Load, cstr(r3.Vendor[:]), r3.Address())
	}
	if st := tc.record(1).State(time.Now()); st != StateDown {
		t.Errorf("node 1 never sent, state %s", st)
	}

	// The per-node files are the node's /proc files, parseable as such.
	waitFor(t, 2*time.Second, "files of node 3", func() bool {
		_, err := os.Stat(filepath.Join(tc.files, "3", "stamp"))
		return err == nil
	})
	b, _ := os.ReadFile(filepath.Join(tc.files, "3", "meminfo"))
	m, err := ParseMemInfo(b)
	if v, _ := m.Get(MemTotal); err != nil || v != 7998356 {
		t.Errorf("files/3/meminfo: MemTotal %d, %v", v, err)
	}
	want, _ := os.ReadFile("testdata/arm64/loadavg")
	waitFor(t, time.Second, "files/3/loadavg", func() bool {
		b, _ := os.ReadFile(filepath.Join(tc.files, "3", "loadavg"))
		return bytes.Equal(b, want)
	})
	b, _ = os.ReadFile(filepath.Join(tc.files, "3", "cpuinfo"))
	if ci, _ := ParseCPUInfo(b); ci.Count != 4 || ci.Model != "CPU part 0xd0c" {
		t.Errorf("files/3/cpuinfo: %+v", ci)
	}

	// Busy cpus on node 0's prepared /proc show on node 0 only: a ticker
	// adds user time (and no idle) to its stat, as a busy kernel would.
	st, _ := ReadSample(p0)
	busy := st.Stat
	stopBusy := make(chan struct{})
	busyDone := make(chan struct{})
	go func() {
		defer close(busyDone)
		for {
			for i := range busy.PerCPU {
				busy.PerCPU[i][CPUUser] += 2
			}
			busy.CPU[CPUUser] += uint64(2 * len(busy.PerCPU))
			tmp := filepath.Join(p0, ".stat")
			os.WriteFile(tmp, RenderStat(&busy), 0o644)
			os.Rename(tmp, filepath.Join(p0, "stat"))
			select {
			case <-stopBusy:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	waitFor(t, 2*time.Second, "node 0 busy", func() bool { r := tc.record(0); return r.CPUPct > 99 && r.PerCPUPct[1] > 99 })
	if r := tc.record(3); r.CPUPct != 0 {
		t.Errorf("node 3 shows %v%% busy", r.CPUPct)
	}
	close(stopBusy)
	<-busyDone
	waitFor(t, 2*time.Second, "node 0 idle again", func() bool { return tc.record(0).CPUPct == 0 })

	// Stopping a sender marks its node stale, in the record and the stamp.
	stop0()
	waitFor(t, 2*time.Second, "node 0 stale", func() bool { return tc.record(0).Flags&RecStale != 0 })
	waitFor(t, time.Second, "stamp says stale", func() bool {
		b, _ := os.ReadFile(filepath.Join(tc.files, "0", "stamp"))
		return strings.Contains(string(b), "state stale\n")
	})
	if tc.record(3).State(time.Now()) != StateUp {
		t.Error("node 3 went stale too")
	}
}

// Restarted receiver: its start-up request makes the nodes answer at once,
// long before their next tick.
func TestRequestOnStart(t *testing.T) {
	dir := t.TempDir()
	stats, req := freeAddr(t), freeAddr(t)
	tc := startReceiver(t, dir, stats, req)
	startSender(t, tc, 5, "testdata/x86", req, 10*time.Second) // one sample, then 10 s quiet
	waitFor(t, 2*time.Second, "node 5", func() bool { return tc.record(5).SenderSeq >= 1 })
	seq := tc.record(5).SenderSeq
	tc.stop(t)
	os.Remove(filepath.Join(dir, "beostat"))
	began := time.Now()
	tc = startReceiver(t, dir, stats, req)
	defer tc.stop(t)
	waitFor(t, time.Second, "node 5 after restart", func() bool { return tc.record(5).State(time.Now()) == StateUp })
	t.Logf("node back %v after restart", time.Since(began))
	if r := tc.record(5); r.Flags&RecStatic == 0 || r.SenderSeq <= seq {
		t.Errorf("restart answer: flags %b seq %d (before %d)", r.Flags, r.SenderSeq, seq)
	}
}

// Bad packets change nothing and are counted by kind.
func TestHostilePackets(t *testing.T) {
	tc := startReceiver(t, t.TempDir(), freeAddr(t), freeAddr(t))
	defer tc.stop(t)
	c, err := net.Dial("udp4", tc.statsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, _ := ReadSample("testdata/x86")
	wrong, _ := NewCodec([]byte("not the cluster key")).EncodeStats(Header{Flags: FlagStatic, Node: 1, Start: 1, Seq: 1, Interval: 1000}, s)
	good, _ := NewCodec(testKey).EncodeStats(Header{Flags: FlagStatic, Node: 2, Start: 1, Seq: 5, Interval: 1000}, s)
	good = bytes.Clone(good)
	old, _ := NewCodec(testKey).EncodeStats(Header{Node: 2, Start: 1, Seq: 4, Interval: 1000}, s)
	old = bytes.Clone(old)
	bigNode, _ := NewCodec(testKey).EncodeStats(Header{Node: ShmMaxNodes, Start: 1, Seq: 1}, s)
	bigNode = bytes.Clone(bigNode)
	sends := []struct {
		p   []byte
		ctr int
	}{
		{wrong, CtrBadMAC},
		{[]byte("garbage"), CtrShort},
		{bytes.Repeat([]byte{0xbe}, 1000), CtrBadMagic},
		{good[:len(good)-1], CtrShort},
		{make([]byte, MaxPacket+100), CtrOversized},
		{bigNode, CtrBadNode},
		{good, CtrAccepted},
		{good, CtrReplayed},
		{old, CtrReplayed},
	}
	for i, snd := range sends {
		before := tc.rd.Header().Counters[snd.ctr]
		if _, err := c.Write(snd.p); err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Second, fmt.Sprintf("packet %d counted as %s", i, CounterNames[snd.ctr]), func() bool {
			return tc.rd.Header().Counters[snd.ctr] == before+1
		})
	}
	if tc.rd.Nodes() > 0 {
		if r := tc.record(1); r.Flags != 0 {
			t.Errorf("wrong-key packet created node 1: %+v", r.Flags)
		}
	}
	if r := tc.record(2); r.SenderSeq != 5 {
		t.Errorf("node 2 seq %d after replays, want 5", r.SenderSeq)
	}
	h := tc.rd.Header()
	if h.Counters[CtrReceived] != uint64(len(sends)) || h.Counters[CtrAccepted] != 1 {
		t.Errorf("counters %v", h.Counters[:NumCounters/2+2])
	}
}

// Over its CPU share the files writer defers ordinary refreshes but not
// urgent ones (a node appearing or going stale).
func TestFilesBudget(t *testing.T) {
	dir, w := tempShm(t)
	set := func(node int, load float64) {
		w.Update(node, func(r *Record) { r.Flags = RecPresent; r.Updated = time.Now().UnixNano(); r.Load[0] = load })
	}
	set(0, 1)
	set(1, 1)
	fw, err := newFilesWriter(filepath.Join(dir, "d"), filepath.Join(dir, "beostat"), 1e-9, log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	fw.maxBank = time.Microsecond // one refresh, then the budget is spent for good
	stop := make(chan struct{})
	go fw.run(stop)
	defer func() { close(stop); <-fw.done }()
	load := func(node int) string {
		b, _ := os.ReadFile(filepath.Join(dir, "d", fmt.Sprint(node), "loadavg"))
		return string(b)
	}
	fw.mark(0, true, false)
	waitFor(t, 2*time.Second, "node 0's first files", func() bool { return strings.HasPrefix(load(0), "1.00 ") })
	set(0, 2)
	fw.mark(0, false, false)
	set(1, 3)
	fw.mark(1, false, true)
	waitFor(t, 2*time.Second, "urgent node 1 despite the budget", func() bool { return strings.HasPrefix(load(1), "3.00 ") })
	time.Sleep(100 * time.Millisecond) // the deferred refresh had its chance to (wrongly) happen
	if l := load(0); !strings.HasPrefix(l, "1.00 ") {
		t.Errorf("node 0 refreshed over budget: %q", l)
	}
}

// A refresh that keeps failing is logged once, not at every packet.
func TestFilesErrorLoggedOnce(t *testing.T) {
	dir, w := tempShm(t)
	w.Update(0, func(r *Record) { r.Flags = RecPresent; r.Updated = time.Now().UnixNano() })
	os.MkdirAll(filepath.Join(dir, "d"), 0o755)
	os.WriteFile(filepath.Join(dir, "d", "0"), nil, 0o644) // a file where node 0's directory goes
	var logged bytes.Buffer
	fw, err := newFilesWriter(filepath.Join(dir, "d"), filepath.Join(dir, "beostat"), -1, log.New(&logged, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		fw.report(fw.write(0, false))
	}
	if n := strings.Count(logged.String(), "\n"); n != 1 || !strings.Contains(logged.String(), "per-node files") {
		t.Errorf("logged %d lines: %q", n, logged.String())
	}
	os.Remove(filepath.Join(dir, "d", "0"))
	delete(fw.last, 0)
	fw.report(fw.write(0, false))
	if !strings.Contains(logged.String(), "writing again") {
		t.Errorf("recovery not logged: %q", logged.String())
	}
	unix.Close(fw.dirfd)
	fw.shm.Close()
}
