package pspace

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"bproc/fs/slaveproto"
	"bproc/fs/synth"
)

// fakeSlave is a slave the test plays: it reads the messages the master
// sends and writes what a slave would.
type fakeSlave struct {
	t      *testing.T
	m      *Master
	sc     *slaveConn
	caller *synth.Caller
	msgs   chan slaveproto.Msg
}

func newFakeSlave(t *testing.T, m *Master, addr string) *fakeSlave {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c := &synth.Caller{Slave: true, Addr: addr, Conn: ctx}
	sc, err := m.register(c)
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeSlave{t: t, m: m, sc: sc, caller: c, msgs: make(chan slaveproto.Msg, 64)}
	go func() {
		r := bufio.NewReader(readerOf(ctx, sc.jobs))
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			var msg slaveproto.Msg
			if json.Unmarshal(line, &msg) == nil && msg.Op != "hello" && msg.Op != "ack" {
				fs.msgs <- msg
			}
		}
	}()
	return fs
}

type streamReader struct {
	ctx context.Context
	s   *synth.Stream
}

func (r streamReader) Read(p []byte) (int, error) { return r.s.Read(r.ctx, p) }

func readerOf(ctx context.Context, s *synth.Stream) io.Reader { return streamReader{ctx, s} }

// next is the next message the master sent this slave, which must be op.
func (fs *fakeSlave) next(op string) slaveproto.Msg {
	fs.t.Helper()
	select {
	case msg := <-fs.msgs:
		if msg.Op != op {
			fs.t.Fatalf("node %d got %q (%+v), want %q", fs.sc.node.num, msg.Op, msg, op)
		}
		return msg
	case <-time.After(5 * time.Second):
		fs.t.Fatalf("node %d: no %q message", fs.sc.node.num, op)
	}
	return slaveproto.Msg{}
}

// open opens name in the tree as this slave.
func (fs *fakeSlave) open(name string, flag int) io.ReadWriteCloser {
	fs.t.Helper()
	f, err := (&synth.Local{Root: fs.m.Root(), Caller: fs.caller}).Open(name, flag)
	if err != nil {
		fs.t.Fatalf("node %d opening %s: %v", fs.sc.node.num, name, err)
	}
	return f
}

func (fs *fakeSlave) migReport(mig int, r slaveproto.MigReport) {
	fs.t.Helper()
	b, _ := json.Marshal(r)
	f := fs.open(fmt.Sprintf("slave/mig/%d/ctl", mig), os.O_WRONLY)
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		fs.t.Fatalf("migration report %s: %v", r.Ev, err)
	}
}

func (fs *fakeSlave) report(line string) {
	fs.t.Helper()
	if _, err := (&reportHandle{m: fs.m, sc: fs.sc}).Write(context.Background(), []byte(line+"\n"), 0); err != nil {
		fs.t.Fatalf("report %q: %v", line, err)
	}
}

// migCluster: the master's own slave (node -1) and nodes 0 and 1.
func migCluster(t *testing.T) (*Master, *fakeSlave, [2]*fakeSlave) {
	m := NewMaster(DefaultConfig())
	local := newFakeSlave(t, m, slaveproto.LocalAddr)
	return m, local, [2]*fakeSlave{newFakeSlave(t, m, "10.0.0.5"), newFakeSlave(t, m, "10.0.0.6")}
}

// writeCtl writes line to node/N/ctl as caller c, in the background
// (the write returns once the source has seized the writer); the result
// is read from the same open file.
func writeCtl(m *Master, c *synth.Caller, node int, line string) (<-chan error, func() string) {
	f, err := (&synth.Local{Root: m.Root(), Caller: c}).Open(fmt.Sprintf("node/%d/ctl", node), os.O_RDWR)
	done := make(chan error, 1)
	if err != nil {
		done <- err
		return done, func() string { return "" }
	}
	go func() {
		_, err := f.Write([]byte(line + "\n"))
		done <- err
	}()
	return done, func() string {
		b, _ := io.ReadAll(f)
		f.Close()
		return string(b)
	}
}

func waitErr(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("write did not return")
	}
	return nil
}

// A process on the master writes `move` to node 1's ctl: its node's slave
// seizes it, the write returns, the image goes from the source to node 1
// through slave/mig, node 1 restores it, and the source keeps the ghost,
// which the process space lists under the writer's own pid on node 1.
func TestMoveFromMaster(t *testing.T) {
	m, local, nodes := migCluster(t)
	writer := &synth.Caller{Node: -1, Pid: 4321, Uid: 4242, Gid: 4242}
	done, result := writeCtl(m, writer, 1, "move 6")
	seize := local.next("seize")
	if seize.OSPid != 4321 || seize.Kind != "move" || seize.Flags != 6 {
		t.Fatalf("seize %+v", seize)
	}
	select {
	case err := <-done:
		t.Fatalf("the write returned (%v) before the writer was seized", err)
	case <-time.After(50 * time.Millisecond):
	}
	local.migReport(seize.Mig, slaveproto.MigReport{Ev: "seized"})
	if err := waitErr(t, done); err != nil {
		t.Fatalf("move: %v", err)
	}
	local.migReport(seize.Mig, slaveproto.MigReport{Ev: "stopped", Argv: []string{"calc", "--big"}})
	start := nodes[1].next("start")
	if start.Mig != seize.Mig || start.Pid != 4321 || start.Hash != "" || start.Uid != 4242 {
		t.Fatalf("start %+v", start)
	}
	// The image crosses from the source to the destination unchanged.
	go func() {
		w := local.open(fmt.Sprintf("slave/mig/%d/image", seize.Mig), os.O_WRONLY)
		w.Write([]byte("IMAGE BYTES"))
		w.Close()
	}()
	img, err := io.ReadAll(nodes[1].open(fmt.Sprintf("slave/mig/%d/image", seize.Mig), os.O_RDONLY))
	if err != nil || string(img) != "IMAGE BYTES" {
		t.Fatalf("image %q, %v", img, err)
	}
	nodes[1].report("4321 started 77")
	local.migReport(seize.Mig, slaveproto.MigReport{Ev: "dumped"})
	out := local.next("migrated")
	if out.Errno != 0 || !out.Ghost || out.Pid != 4321 {
		t.Fatalf("migrated %+v", out)
	}
	if r := result(); r != "" {
		t.Errorf("ctl result %q", r)
	}
	m.mu.Lock()
	p := m.procs[4321]
	m.mu.Unlock()
	if p == nil {
		t.Fatal("the moved process is not in the process space under its pid")
	}
	if line := p.statusLine(); line != "4321 1 running 4242 4242 calc --big\n" {
		t.Errorf("status %q", line)
	}
	// It ends there: the ghost hears how, and a signal sent to the ghost
	// reaches the process.
	ctl := local.open("slave/ghost/4321/ctl", os.O_WRONLY)
	if _, err := ctl.Write([]byte("signal 15\n")); err != nil {
		t.Fatal(err)
	}
	if sig := nodes[1].next("signal"); sig.Pid != 4321 || sig.Sig != 15 {
		t.Errorf("signal %+v", sig)
	}
	nodes[1].report("4321 exit 7")
	if g := local.next("ghost"); g.Pid != 4321 || g.State != "exit 7" {
		t.Errorf("ghost news %+v", g)
	}
	// Another slave may not reach the ghost's files.
	if _, err := (&synth.Local{Root: m.Root(), Caller: nodes[0].caller}).Open("slave/ghost/4321/ctl", os.O_WRONLY); err == nil {
		t.Error("node 0 opened the ghost's ctl")
	}
}

// A restore that fails on the destination fails the writer's move with
// the destination's errno: the source lets it run on with it, and
// nothing is left in the process space.
func TestMoveRestoreFails(t *testing.T) {
	m, local, nodes := migCluster(t)
	writer := &synth.Caller{Node: -1, Pid: 999, Uid: 4242, Gid: 4242}
	done, result := writeCtl(m, writer, 0, "move")
	seize := local.next("seize")
	if seize.Flags != 6 {
		t.Errorf("default flags %d, want exec,other (6)", seize.Flags)
	}
	local.migReport(seize.Mig, slaveproto.MigReport{Ev: "seized"})
	if err := waitErr(t, done); err != nil {
		t.Fatal(err)
	}
	local.migReport(seize.Mig, slaveproto.MigReport{Ev: "stopped"})
	nodes[0].next("start")
	nodes[0].report("999 failed 2 /usr/lib/libfoo.so: no such file")
	out := local.next("migrated")
	if out.Errno != int(syscall.ENOENT) || out.Ghost {
		t.Fatalf("migrated %+v, want ENOENT", out)
	}
	if r := result(); !strings.Contains(r, "libfoo") {
		t.Errorf("ctl result %q, want the error", r)
	}
	m.mu.Lock()
	p := m.procs[999]
	m.mu.Unlock()
	if p != nil {
		t.Errorf("a failed move left process %s", p.statusLine())
	}
}

// rfork: the parent's ctl reads its ghost child's pid; the child is the
// space's process under that pid.
func TestRforkFromMaster(t *testing.T) {
	m, local, nodes := migCluster(t)
	writer := &synth.Caller{Node: -1, Pid: 500, Uid: 4242, Gid: 4242}
	done, result := writeCtl(m, writer, 1, "rfork")
	seize := local.next("seize")
	local.migReport(seize.Mig, slaveproto.MigReport{Ev: "seized"})
	if err := waitErr(t, done); err != nil {
		t.Fatal(err)
	}
	local.migReport(seize.Mig, slaveproto.MigReport{Ev: "stopped", Child: 501, Argv: []string{"par"}})
	start := nodes[1].next("start")
	if start.Pid != 501 {
		t.Fatalf("start %+v, want the child's pid 501", start)
	}
	nodes[1].report("501 started 12")
	local.migReport(seize.Mig, slaveproto.MigReport{Ev: "dumped"})
	if out := local.next("migrated"); out.Errno != 0 || out.Pid != 501 {
		t.Fatalf("migrated %+v", out)
	}
	if r := result(); r != "501\n" {
		t.Errorf("parent's ctl reads %q, want 501", r)
	}
}

// jobWrites starts a job of uid on node 0 (pid 300 there) that writes
// line to node 1's ctl; the source seizes it and it stops. It returns
// the seize message and node 1's start.
func jobWrites(t *testing.T, uid uint32, line string) (*Master, [2]*fakeSlave, *Proc, slaveproto.Msg, slaveproto.Msg) {
	t.Helper()
	m, _, nodes := migCluster(t)
	p, err := m.newProc(&synth.Caller{Uid: uid, Gid: uid}, nodes[0].sc.node, nodes[0].sc, []string{"job"}, false)
	if err != nil {
		t.Fatal(err)
	}
	nodes[0].report(fmt.Sprintf("%d started 300", p.pid))
	done, _ := writeCtl(m, &synth.Caller{Node: 0, Pid: 300, Uid: uid, Gid: uid}, 1, line)
	seize := nodes[0].next("seize")
	nodes[0].migReport(seize.Mig, slaveproto.MigReport{Ev: "seized"})
	if err := waitErr(t, done); err != nil {
		t.Fatal(err)
	}
	nodes[0].migReport(seize.Mig, slaveproto.MigReport{Ev: "stopped"})
	return m, nodes, p, seize, nodes[1].next("start")
}

// A process of the space moves from node 0 to node 1: same pid, next
// incarnation; node 0's reports about it are refused from then on, and
// its source slave ends it there (no ghost: that is where it started).
func TestMoveJobOn(t *testing.T) {
	m, nodes, p, seize, start := jobWrites(t, 4242, "move")
	var err error
	if start.Pid != p.pid || start.Inc != 1 {
		t.Fatalf("start %+v, want pid %d incarnation 1", start, p.pid)
	}
	// Node 1's output goes to the process's stream before it counts.
	w := nodes[1].open(fmt.Sprintf("slave/proc/%d/stdout", p.pid), os.O_WRONLY)
	nodes[1].report(fmt.Sprintf("%d.1 started 41", p.pid))
	nodes[0].migReport(seize.Mig, slaveproto.MigReport{Ev: "dumped"})
	if out := nodes[0].next("migrated"); out.Errno != 0 || out.Ghost {
		t.Fatalf("migrated %+v", out)
	}
	if node, _, inc := p.place(); node != 1 || inc != 1 {
		t.Fatalf("placed on node %d incarnation %d", node, inc)
	}
	_, err = (&reportHandle{m: m, sc: nodes[0].sc}).Write(context.Background(), []byte(fmt.Sprintf("%d signal 9\n", p.pid)), 0)
	if !errors.Is(err, syscall.ESTALE) {
		t.Errorf("old node's report: %v, want ESTALE", err)
	}
	w.Write([]byte("from node 1\n"))
	w.Close()
	nodes[1].report(fmt.Sprintf("%d.1 exit 0", p.pid))
	<-p.done
	if p.statusLine() != fmt.Sprintf("%d 1 exited 4242 4242 job\n", p.pid) {
		t.Errorf("status %q", p.statusLine())
	}
}

// What is refused before anything happens.
func TestMigrateRefused(t *testing.T) {
	m, local, nodes := migCluster(t)
	_ = nodes
	for _, tc := range []struct {
		c    *synth.Caller
		node int
		line string
		want syscall.Errno
	}{
		{&synth.Caller{Node: synth.NodeUnknown, Uid: 4242}, 0, "move", syscall.EINVAL},
		{&synth.Caller{Node: -1, Pid: 7, Uid: 4242}, 0, "move 8", syscall.EINVAL},
		{&synth.Caller{Node: -1, Pid: 7, Uid: 4242}, 0, "move bogus", syscall.EINVAL},
		{&synth.Caller{Node: -1, Pid: 7, Uid: 4242}, -1, "rfork", syscall.EINVAL},
		{&synth.Caller{Node: -1, Pid: 7, Uid: 4242}, 5, "move", syscall.ENOENT},
	} {
		done, _ := writeCtl(m, tc.c, tc.node, tc.line)
		if err := waitErr(t, done); !errors.Is(err, tc.want) {
			t.Errorf("%q to node %d: %v, want %v", tc.line, tc.node, err, tc.want)
		}
	}
	// To the node it is on: done at once, nothing asked of any slave.
	done, _ := writeCtl(m, &synth.Caller{Node: -1, Pid: 7, Uid: 4242}, -1, "move")
	if err := waitErr(t, done); err != nil {
		t.Errorf("move to its own node: %v", err)
	}
	// A node the user may not use.
	m.nodes[1].mode = 0o100
	done, _ = writeCtl(m, &synth.Caller{Node: -1, Pid: 7, Uid: 4242}, 1, "move")
	if err := waitErr(t, done); !errors.Is(err, syscall.EACCES) {
		t.Errorf("move to a node 0100: %v, want EACCES", err)
	}
	select {
	case msg := <-local.msgs:
		t.Errorf("the source was asked %+v", msg)
	default:
	}
	// A source that cannot seize the writer fails the write with its errno.
	done, _ = writeCtl(m, &synth.Caller{Node: -1, Pid: 7, Uid: 4242}, 0, "move")
	seize := local.next("seize")
	local.migReport(seize.Mig, slaveproto.MigReport{Ev: "failed", Errno: int(syscall.EPERM), Text: "ptrace: not permitted"})
	if err := waitErr(t, done); !errors.Is(err, syscall.EPERM) {
		t.Errorf("seize failed: %v, want EPERM", err)
	}
}

// execmove by a job on a node: its next incarnation is the new program on
// the other node (shipped like exec's), and the node it leaves ends it.
func TestExecmoveJobOn(t *testing.T) {
	_, nodes, p, seize, start := jobWrites(t, 0, "execmove -e A=B /bin/true x")
	if seize.Kind != "execmove" {
		t.Fatalf("seize %+v", seize)
	}
	if start.Pid != p.pid || start.Inc != 1 || start.Hash == "" || start.Path != "/bin/true" ||
		strings.Join(start.Argv, " ") != "/bin/true x" || strings.Join(start.Env, " ") != "A=B" {
		t.Fatalf("start %+v", start)
	}
	nodes[1].report(fmt.Sprintf("%d.1 started 12", p.pid))
	if out := nodes[0].next("migrated"); out.Errno != 0 || out.Ghost {
		t.Fatalf("migrated %+v, want success without a ghost", out)
	}
	if node, _, inc := p.place(); node != 1 || inc != 1 {
		t.Errorf("placed on node %d incarnation %d", node, inc)
	}
}

// A user may have at most migPerUser migrations in flight (each holds an
// image buffer on the master); the next gets EAGAIN before its source
// is asked anything; root is not limited.
func TestMigrationsPerUser(t *testing.T) {
	m, local, _ := migCluster(t)
	for i := 0; i < migPerUser; i++ {
		done, _ := writeCtl(m, &synth.Caller{Node: -1, Pid: 1000 + i, Uid: 4242, Gid: 4242}, 0, "move")
		seize := local.next("seize")
		local.migReport(seize.Mig, slaveproto.MigReport{Ev: "seized"})
		if err := waitErr(t, done); err != nil {
			t.Fatalf("move %d: %v", i, err)
		}
	}
	done, _ := writeCtl(m, &synth.Caller{Node: -1, Pid: 2000, Uid: 4242, Gid: 4242}, 0, "move")
	if err := waitErr(t, done); !errors.Is(err, syscall.EAGAIN) {
		t.Errorf("move past the limit: %v, want EAGAIN", err)
	}
	done, _ = writeCtl(m, &synth.Caller{Node: -1, Pid: 2001}, 0, "move")
	seize := local.next("seize")
	local.migReport(seize.Mig, slaveproto.MigReport{Ev: "seized"})
	if err := waitErr(t, done); err != nil {
		t.Errorf("root's move: %v", err)
	}
}

func TestReportedErrnoOnce(t *testing.T) {
	for _, tc := range []struct {
		text string
		want string
	}{
		{"open /tmp/x: no such file or directory", "open /tmp/x: no such file or directory"},
		{"open /tmp/x", "open /tmp/x: no such file or directory"},
	} {
		err := reported(tc.text, syscall.ENOENT)
		if err.Error() != tc.want || !errors.Is(err, syscall.ENOENT) {
			t.Errorf("reported(%q) = %q (ENOENT: %v), want %q wrapping ENOENT", tc.text, err, errors.Is(err, syscall.ENOENT), tc.want)
		}
	}
}

// A moved process that ends on its new node before the master has heard
// its old node's "dumped" (a short job on a busy machine): its end is
// kept until the move counts, not refused and lost (its ghost and its
// waiters would wait for good).
func TestMoveEndsBeforeDumped(t *testing.T) {
	_, nodes, p, seize, start := jobWrites(t, 4242, "move")
	nodes[1].report(fmt.Sprintf("%d.%d started 41", p.pid, start.Inc))
	nodes[1].report(fmt.Sprintf("%d.%d eof stdout\n%d.%d eof stderr\n%d.%d exit 3", p.pid, start.Inc, p.pid, start.Inc, p.pid, start.Inc))
	nodes[0].migReport(seize.Mig, slaveproto.MigReport{Ev: "dumped"})
	if out := nodes[0].next("migrated"); out.Errno != 0 {
		t.Fatalf("migrated %+v", out)
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the end that came before the move counted was lost")
	}
	if got, want := p.statusLine(), fmt.Sprintf("%d 1 exited 4242 4242 job\n", p.pid); got != want {
		t.Errorf("status %q, want %q", got, want)
	}
	p.mu.Lock()
	st := p.status
	p.mu.Unlock()
	if st != "exit 3" {
		t.Errorf("end %q, want exit 3", st)
	}
}

// A destination that reports "started" twice (or started, then failed)
// while the move is pending does not block its report file for good.
func TestMoveRepeatedStartReport(t *testing.T) {
	_, nodes, p, seize, start := jobWrites(t, 4242, "move")
	done := make(chan struct{})
	go func() {
		defer close(done)
		nodes[1].report(fmt.Sprintf("%d.%d started 41", p.pid, start.Inc))
		nodes[1].report(fmt.Sprintf("%d.%d started 41", p.pid, start.Inc))
		nodes[1].report(fmt.Sprintf("%d.%d failed 5 again", p.pid, start.Inc))
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a repeated start report blocked")
	}
	nodes[0].migReport(seize.Mig, slaveproto.MigReport{Ev: "dumped"})
	if out := nodes[0].next("migrated"); out.Errno != 0 {
		t.Fatalf("migrated %+v", out)
	}
	if node, _, inc := p.place(); node != 1 || inc != start.Inc {
		t.Fatalf("placed on node %d incarnation %d", node, inc)
	}
}

// The destination's process writes its output and ends before the move
// counts (a short job: `echo move >ctl; hostname`): its stream's close,
// EOF for the stream's readers, is kept until the move commits, as its
// reports are, and not dropped as a left node's would be.
func TestMoveOutputEndsBeforeDumped(t *testing.T) {
	_, nodes, p, seize, start := jobWrites(t, 4242, "move")
	p.stdout.Attach()
	defer p.stdout.Detach()
	nodes[1].report(fmt.Sprintf("%d.%d started 41", p.pid, start.Inc))
	w := nodes[1].open(fmt.Sprintf("slave/proc/%d/stdout", p.pid), os.O_WRONLY)
	if _, err := w.Write([]byte("node1\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	nodes[1].report(fmt.Sprintf("%d.%d eof stderr\n%d.%d exit 4", p.pid, start.Inc, p.pid, start.Inc))
	nodes[0].migReport(seize.Mig, slaveproto.MigReport{Ev: "dumped"})
	if out := nodes[0].next("migrated"); out.Errno != 0 {
		t.Fatalf("migrated %+v", out)
	}
	got := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(readerOf(context.Background(), p.stdout))
		got <- string(b)
	}()
	select {
	case out := <-got:
		if out != "node1\n" {
			t.Errorf("stdout %q, want %q", out, "node1\n")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stdout never ended: the close that came before the move counted was lost")
	}
}
