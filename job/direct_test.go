package job

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"bproc/client"
	"bproc/fs/pspace"
	"bproc/fs/slaveproto"
	"bproc/fs/synth"
	"bproc/internal/treetest"
)

var testClusterKey = []byte("0123456789abcdef0123456789abcdef")

// startDirect is a master whose node -1 serves direct streams on a
// loopback port, returned with root's view of the tree.
func startDirect(t *testing.T) (*Slave, *synth.Local, string) { return startDirectMode(t, false) }

// startDirectMode is startDirect, with `seal no` when plain.
func startDirectMode(t *testing.T, plain bool) (*Slave, *synth.Local, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startDirectOn(t, plain, ln)
}

// startDirectOn is startDirectMode with the data port on ln.
func startDirectOn(t *testing.T, plain bool, ln net.Listener) (*Slave, *synth.Local, string) {
	t.Helper()
	var s *Slave
	_, u := startMasterWith(t, func(ctx context.Context, m *pspace.Master, sl *Slave) {
		m.SetDirectKey(testClusterKey, plain)
		sl.ServeDirect(ctx, ln, testClusterKey)
		s = sl
	})
	return s, u, ln.Addr().String()
}

// ticketOf reads proc/PID/direct as root and points it at addr (node -1's
// slave is "local" to the master).
func ticketOf(t *testing.T, u *synth.Local, pid, addr string) slaveproto.Direct {
	t.Helper()
	d, err := slaveproto.ParseDirect(treetest.Read(t, u.Open, "proc/"+pid+"/direct"))
	if err != nil {
		t.Fatal(err)
	}
	d.Addr = addr
	return d
}

func readAll(t *testing.T, ds *client.DirectStreams) (string, string) {
	t.Helper()
	o, _ := ds.Stdout()
	e, _ := ds.Stderr()
	errc := make(chan string, 1)
	go func() {
		b, err := io.ReadAll(e)
		if err != nil {
			t.Errorf("stderr: %v", err)
		}
		errc <- string(b)
	}()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Errorf("stdout: %v", err)
	}
	return string(b), <-errc
}

func TestDirectStreams(t *testing.T) {
	for _, plain := range []bool{false, true} {
		t.Run(map[bool]string{false: "sealed", true: "plain"}[plain], func(t *testing.T) { testDirectStreams(t, plain) })
	}
}

func testDirectStreams(t *testing.T, plain bool) {
	_, u, addr := startDirectMode(t, plain)
	pid := mustExec(t, u, "-1", `exec -i /bin/sh -c "echo out; echo err >&2; head -c 20000000 /dev/zero; sleep 0.1; echo late >&2; exit 3"`)
	ds, err := client.DialDirect(ticketOf(t, u, pid, addr))
	if err != nil {
		t.Fatal(err)
	}
	out, errOut := readAll(t, ds)
	if want := "out\n" + strings.Repeat("\x00", 20000000); out != want {
		t.Errorf("stdout: %d bytes, want %d", len(out), len(want))
	}
	if errOut != "err\nlate\n" {
		t.Errorf("stderr %q", errOut)
	}
	if w := treetest.Read(t, u.Open, "proc/"+pid+"/wait"); w != "exit 3\n" {
		t.Errorf("wait %q", w)
	}
	// The tree's reader meets EOF: the streams went direct.
	if got := treetest.Read(t, u.Open, "proc/"+pid+"/stdout"); got != "" {
		t.Errorf("proc/%s/stdout after going direct: %q", pid, got)
	}
}

// A client that goes away mid-stream breaks it: the job meets EPIPE and
// ends, and the slave forgets it (its streams' ends all seen).
func TestDirectClientGone(t *testing.T) {
	for _, plain := range []bool{false, true} {
		t.Run(map[bool]string{false: "sealed", true: "plain"}[plain], func(t *testing.T) {
			s, u, addr := startDirectMode(t, plain)
			pid := mustExec(t, u, "-1", `exec -i /bin/sh -c "head -c 400000000 /dev/zero"`)
			ds, err := client.DialDirect(ticketOf(t, u, pid, addr))
			if err != nil {
				t.Fatal(err)
			}
			o, _ := ds.Stdout()
			if _, err := io.ReadFull(o, make([]byte, 3<<20)); err != nil {
				t.Fatal(err)
			}
			ds.Close()
			if w := treetest.Read(t, u.Open, "proc/"+pid+"/wait"); w == "exit 0\n" {
				t.Errorf("the job ran to its end (%q): its stream did not break", w)
			}
			n, _ := strconv.Atoi(pid)
			for deadline := time.Now().Add(10 * time.Second); s.job(n) != nil; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					j := s.job(n)
					for _, ob := range j.out {
						ob.mu.Lock()
						t.Logf("%s: eof %v broken %v closed %v direct %v size %d", ob.name, ob.eof, ob.broken, ob.closed, ob.direct, ob.size)
						ob.mu.Unlock()
					}
					s.jmu.Lock()
					t.Logf("status %q reported %v cur %v", j.status, j.reported != nil, j.reported == s.cur)
					s.jmu.Unlock()
					t.Fatalf("job %d still kept after its end and its client's", n)
				}
			}
		})
	}
}

// A stream is done with (its job may be forgotten) once its end is read
// and it ended somewhere, but not while a direct client takes it over:
// its end goes to that client then, even when the master had it all (a
// job that ended just as bpsh went direct was forgotten, and bpsh's
// direct stream cut short: t8300 failed one run in six).
func TestStreamDone(t *testing.T) {
	for _, tc := range []struct {
		name string
		ob   *outBuf
		want bool
	}{
		{"still read", &outBuf{closed: true}, false},
		{"ended on the master", &outBuf{eof: true, closed: true}, true},
		{"nothing written", &outBuf{eof: true}, true},
		{"bytes not yet taken", &outBuf{eof: true, size: 3, closed: true}, false},
		{"broken", &outBuf{eof: true, broken: true, size: 3}, true},
		{"a client taking it direct", &outBuf{eof: true, closed: true, diverting: true}, false},
		{"a client taking it, nothing written", &outBuf{eof: true, diverting: true}, false},
		{"direct, end not yet sent", &outBuf{eof: true, diverting: true, direct: true, acked: 3}, false},
		{"direct, end sent", &outBuf{eof: true, diverting: true, direct: true, closed: true, acked: 3}, true},
	} {
		if got := tc.ob.done(); got != tc.want {
			t.Errorf("%s: done %v, want %v", tc.name, got, tc.want)
		}
	}
}

// emfileOnce is a listener whose first Accept fails as one out of
// descriptors does.
type emfileOnce struct {
	net.Listener
	failed atomic.Bool
}

func (l *emfileOnce) Accept() (net.Conn, error) {
	if !l.failed.Swap(true) {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// The data port outlives running out of descriptors, as the 9P port does.
func TestDirectAcceptRetries(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &emfileOnce{Listener: ln}
	_, u, addr := startDirectOn(t, false, fl)
	pid := mustExec(t, u, "-1", `exec -i /bin/echo hi`)
	ds, err := client.DialDirect(ticketOf(t, u, pid, addr))
	if err != nil {
		t.Fatalf("dialing after an EMFILE: %v", err)
	}
	if out, _ := readAll(t, ds); out != "hi\n" {
		t.Errorf("stdout %q", out)
	}
	if !fl.failed.Load() {
		t.Error("the listener never failed: the test tested nothing")
	}
}

func TestDirectTicketOnlyForOwner(t *testing.T) {
	_, u, _ := startDirect(t)
	pid := mustExec(t, u, "-1", "exec -i /bin/sleep 10")
	other := &synth.Local{Root: u.Root, Caller: &synth.Caller{Uid: 4242, Gid: 4242}}
	if _, err := other.Open("proc/"+pid+"/direct", os.O_RDONLY); !errors.Is(err, syscall.EACCES) {
		t.Errorf("another user opening proc/%s/direct: %v, want EACCES", pid, err)
	}
	detached := mustExec(t, u, "-1", "exec /bin/sleep 10")
	if _, err := u.Open("proc/"+detached+"/direct", os.O_RDONLY); !errors.Is(err, syscall.ENXIO) {
		t.Errorf("a detached process's direct: %v, want ENXIO", err)
	}
}

// TestDirectRefusals: every ticket but a fresh one, for a job the slave
// runs in that incarnation, with its secret proved, is refused.
func TestDirectRefusals(t *testing.T) {
	s, u, addr := startDirect(t)
	pidText := mustExec(t, u, "-1", "exec -i /bin/sleep 10")
	pid, _ := strconv.Atoi(pidText)
	key := slaveproto.DirectKey(testClusterKey)
	now := time.Now()
	ticket := func(pid, inc int, exp time.Time, k []byte) slaveproto.DirectHello {
		tk := slaveproto.Ticket{Pid: uint32(pid), Inc: uint32(inc), Streams: 3, Expiry: exp}
		rand.Read(tk.Nonce[:])
		b := tk.Sign(k)
		nc := make([]byte, 32)
		return slaveproto.DirectHello{Ticket: b, Nonce: nc, Proof: slaveproto.ClientProof(slaveproto.Secret(k, b), nc)}
	}
	replayed := ticket(pid, 0, now.Add(time.Second), key)
	if _, _, _, err := s.checkTicket(key, replayed, now); err != nil {
		t.Fatalf("a good ticket: %v", err)
	}
	badProof := ticket(pid, 0, now.Add(time.Second), key)
	badProof.Proof = slaveproto.ClientProof(make([]byte, 32), badProof.Nonce)
	for _, c := range []struct {
		name string
		h    slaveproto.DirectHello
		want string
	}{
		{"replayed", replayed, "already used"},
		{"expired", ticket(pid, 0, now.Add(-time.Millisecond), key), "expired"},
		{"far ahead", ticket(pid, 0, now.Add(time.Hour), key), "too far ahead"},
		{"wrong key", ticket(pid, 0, now.Add(time.Second), slaveproto.DirectKey([]byte("another cluster"))), "MAC does not check"},
		{"other pid", ticket(pid+100, 0, now.Add(time.Second), key), "no job"},
		{"other incarnation", ticket(pid, 1, now.Add(time.Second), key), "incarnation"},
		{"no secret", badProof, "does not hold the ticket's secret"},
	} {
		_, _, _, err := s.checkTicket(key, c.h, now)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// Through the port, a refusal is readable text and the end.
	d := ticketOf(t, u, pidText, addr)
	d.Ticket[len(d.Ticket)-1] ^= 1
	if _, err := client.DialDirect(d); err == nil || !strings.Contains(err.Error(), "MAC does not check") {
		t.Errorf("an altered ticket: %v", err)
	}
}

// TestDirectMasterClock: the slave learns the master's clock from its
// hello, and checks tickets against the master's time, not its own.
func TestDirectMasterClock(t *testing.T) {
	s, u, addr := startDirect(t)
	// The same clock, read by the master before the slave: a little behind.
	if ahead := time.Duration(s.masterAhead.Load()); ahead >= 0 || ahead < -time.Second {
		t.Fatalf("the master's clock from its hello: %v ahead, want a little behind", ahead)
	}
	pidText := mustExec(t, u, "-1", "exec -i /bin/echo on-the-masters-time")
	d := ticketOf(t, u, pidText, addr)
	saved := s.masterAhead.Load()
	// A master an hour ahead signed this ticket for 5 s of its own time:
	// an hour past, in its time.
	s.masterAhead.Store(int64(time.Hour))
	if _, err := client.DialDirect(d); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("a ticket an hour old in the master's time: %v", err)
	}
	s.masterAhead.Store(saved)
	d = ticketOf(t, u, pidText, addr)
	ds, err := client.DialDirect(d)
	if err != nil {
		t.Fatalf("a fresh ticket: %v", err)
	}
	defer ds.Close()
	if out, _ := readAll(t, ds); out != "on-the-masters-time\n" {
		t.Errorf("stdout %q", out)
	}
}

// TestDirectPendingBound: silent strangers hold at most maxPendingDirect
// handshakes; past it the oldest makes room, so a client with a ticket
// still gets its stream at once.
func TestDirectPendingBound(t *testing.T) {
	_, u, addr := startDirect(t)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range maxPendingDirect {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	pid := mustExec(t, u, "-1", `exec -i /bin/echo hi`)
	start := time.Now()
	ds, err := client.DialDirect(ticketOf(t, u, pid, addr))
	if err != nil {
		t.Fatalf("a client behind %d silent strangers: %v", maxPendingDirect, err)
	}
	if out, _ := readAll(t, ds); out != "hi\n" {
		t.Errorf("stdout %q", out)
	}
	if d := time.Since(start); d >= directGreeting {
		t.Errorf("the client waited %v, the strangers' whole greeting time", d)
	}
	// The oldest stranger was evicted for it.
	conns[0].SetReadDeadline(time.Now().Add(directGreeting / 2))
	if _, err := conns[0].Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the oldest stranger's connection: %v, want EOF (evicted)", err)
	}
}

// A job whose streams went direct gives them back (handBack, as it is
// seized to move): the client reads every byte up to the moved end, and
// the tree exactly the rest, from the byte after it, however much the
// slave and the pipe held. Here the job goes on where it is afterwards
// (a move that failed): its output carries on through the master.
func TestDirectHandBack(t *testing.T) {
	for _, plain := range []bool{false, true} {
		t.Run(map[bool]string{false: "sealed", true: "plain"}[plain], func(t *testing.T) { testDirectHandBack(t, plain) })
	}
}

func testDirectHandBack(t *testing.T, plain bool) {
	s, u, addr := startDirectMode(t, plain)
	const total = 16000000
	pid := mustExec(t, u, "-1", `exec -i /bin/sh -c "echo first; head -c 16000000 /dev/zero | tr '\\0' a; echo err >&2"`)
	ds, err := client.DialDirect(ticketOf(t, u, pid, addr))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(pid)
	j := s.job(n)
	if j == nil {
		t.Fatalf("no job %d", n)
	}
	o, _ := ds.Stdout()
	e, _ := ds.Stderr()
	// Read a little, then stop the job while its pipe and the slave's
	// buffer are full: handBack drains both.
	head := make([]byte, 6)
	if _, err := io.ReadFull(o, head); err != nil || string(head) != "first\n" {
		t.Fatalf("first bytes %q, %v", head, err)
	}
	ob := j.out[0]
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ob.mu.Lock()
		full := ob.size >= outLimit || ob.spliceTo != nil && ob.acked > 2<<20 // the socket full, and the buffer
		ob.mu.Unlock()
		if full {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slave's buffer did not fill: size %d acked %d direct %v", ob.size, ob.acked, ob.direct)
		}
	}
	if err := syscall.Kill(-j.pgid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	back := make(chan error, 1)
	go func() { back <- s.handBack(j) }()
	errc := make(chan error, 1)
	go func() {
		b, err := io.ReadAll(e)
		if len(b) != 0 {
			err = errors.New("stderr had bytes before the move: " + string(b))
		} else if !errors.Is(err, client.ErrMoved) {
			err = errors.New("stderr did not end moved")
		} else {
			err = nil
		}
		errc <- err
	}()
	direct, err := io.ReadAll(o)
	if !errors.Is(err, client.ErrMoved) {
		t.Fatalf("stdout's direct stream ended with %v, want ErrMoved", err)
	}
	if err := <-errc; err != nil {
		t.Error(err)
	}
	if err := <-back; err != nil {
		t.Fatalf("handBack: %v", err)
	}
	o.Close()
	e.Close()
	if err := syscall.Kill(-j.pgid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	rest := treetest.Read(t, u.Open, "proc/"+pid+"/stdout")
	if len(direct)+len(rest) != total || strings.Trim(string(direct)+rest, "a") != "" {
		t.Errorf("direct %d bytes + tree %d bytes: want %d bytes of a, none lost or twice", len(direct), len(rest), total)
	}
	if len(direct) == 0 || len(rest) == 0 {
		t.Errorf("direct %d, tree %d: one side carried it all", len(direct), len(rest))
	}
	t.Logf("direct %d bytes, then the tree %d", len(direct), len(rest))
	if got := treetest.Read(t, u.Open, "proc/"+pid+"/stderr"); got != "err\n" {
		t.Errorf("stderr through the tree after the move: %q", got)
	}
	if w := treetest.Read(t, u.Open, "proc/"+pid+"/wait"); w != "exit 0\n" {
		t.Errorf("wait %q", w)
	}
}

// A moved process's streams count on from what it wrote before (the
// start's offsets): the master's acks and diverts name the stream's
// bytes, and a stream it left empty here is still "nothing written".
func TestMovedStreamOffsets(t *testing.T) {
	j := newRunning(&slaveproto.Msg{Op: "start", Pid: 9, Inc: 1, StdoutOff: 1988895, StderrOff: 3})
	ob := j.out[0]
	if ob.end() != 1988895 || ob.end() != ob.base {
		t.Fatalf("stdout starts at %d (base %d), want 1988895", ob.end(), ob.base)
	}
	ob.push([]byte("1200000\n"))
	s := &Slave{}
	s.ensureJobs()
	s.jobs[9] = j
	s.ack(9, "stdout", 1988895+4) // the master's readers took 4 bytes of it
	if ob.acked != 1988899 || ob.size != 4 {
		t.Errorf("after the ack: acked %d size %d, want 1988899 and 4", ob.acked, ob.size)
	}
	e := j.out[1]
	e.eof = true
	if !e.settled(nil) {
		t.Errorf("an empty stderr that ended is not settled (end %d, base %d)", e.end(), e.base)
	}
}
