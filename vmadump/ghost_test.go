package vmadump

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ownGroup starts ghostparent in a process group of its own, so that
// SIGTSTP stops it: its parent, the test, is in another group of the same
// session.
func ownGroup() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// heldParent starts ghostparent with attr and holds it in its read of
// stdin.
func heldParent(t *testing.T, attr *syscall.SysProcAttr) (*prog, *Held) {
	t.Helper()
	cmd := exec.Command(buildC(t, false, "ghostparent.c"))
	cmd.SysProcAttr = attr
	p := startCmd(t, "READY", cmd)
	waitSyscall(t, p.cmd.Process.Pid, unix.SYS_READ)
	h := seizeHeld(t, p.cmd.Process.Pid)
	return p, h
}

// heldFork holds a ghostparent started with attr, and a Fork of it.
func heldFork(t *testing.T, attr *syscall.SysProcAttr) (p *prog, h, c *Held) {
	t.Helper()
	p, h = heldParent(t, attr)
	c, err := h.Fork()
	if err != nil {
		t.Fatalf("Fork: %v", err)
	}
	return p, h, c
}

// forkGhost makes a ghost child of a held ghostparent, lets the parent
// run on and has it wait for the ghost.
func forkGhost(t *testing.T, opts GhostOptions) (*prog, *Ghost) {
	t.Helper()
	return forkGhostAttr(t, opts, ownGroup())
}

func forkGhostAttr(t *testing.T, opts GhostOptions, attr *syscall.SysProcAttr) (*prog, *Ghost) {
	t.Helper()
	p, h, c := heldFork(t, attr)
	if nr, fd, ret := c.Syscall(); nr != unix.SYS_READ || fd != 0 || ret != -errRestartSys {
		t.Fatalf("child's Syscall() = %d, %d, %d; want the parent's read of fd 0", nr, fd, ret)
	}
	if st, err := readStatus(c.Pid); err != nil || st.ppid != h.Pid {
		t.Fatalf("forked %d: parent %d (%v), want %d", c.Pid, st.ppid, err, h.Pid)
	}
	g, err := c.Ghost(opts)
	if err != nil {
		t.Fatalf("Ghost: %v", err)
	}
	t.Cleanup(func() { _ = unix.Kill(g.Pid, unix.SIGKILL) })
	if err := h.Resume(nil); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if _, err := fmt.Fprintf(p.in, "wait %d\n", g.Pid); err != nil {
		t.Fatal(err)
	}
	return p, g
}

func ended(t *testing.T, g *Ghost) {
	t.Helper()
	select {
	case <-g.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed")
	}
}

// Exit(7): the parent's waitpid gets exit status 7 and one SIGCHLD, and
// nothing is left to reap.
func TestGhostExit(t *testing.T) {
	needRoot(t)
	p, g := forkGhost(t, GhostOptions{})
	if err := g.Exit(7); err != nil {
		t.Fatalf("Exit: %v", err)
	}
	expectLine(t, p, "EXITED 7")
	ended(t, g)
	if g.Killed() {
		t.Error("Killed() after Exit")
	}
	if _, err := p.in.Write([]byte("check\n")); err != nil {
		t.Fatal(err)
	}
	expectLine(t, p, "CHECK -1 10 sigchld 1")
	if err := g.Exit(1); err == nil {
		t.Error("Exit of an ended ghost did not fail")
	}
}

// Kill(sig): the parent sees the ghost killed by sig, without a core.
func TestGhostKill(t *testing.T) {
	needRoot(t)
	for _, sig := range []syscall.Signal{unix.SIGTERM, unix.SIGQUIT} {
		p, g := forkGhost(t, GhostOptions{})
		if err := g.Kill(sig); err != nil {
			t.Fatalf("Kill(%v): %v", sig, err)
		}
		expectLine(t, p, fmt.Sprintf("SIGNALED %d core 0", sig))
		ended(t, g)
		if g.Killed() {
			t.Errorf("Killed() after Kill(%v)", sig)
		}
	}
	_, g := forkGhost(t, GhostOptions{})
	if err := g.Kill(unix.SIGCHLD); err == nil {
		t.Error("Kill(SIGCHLD) accepted")
	}
}

// Stop and Cont are what the parent's waitpid(WUNTRACED|WCONTINUED) sees.
func TestGhostStopCont(t *testing.T) {
	needRoot(t)
	p, g := forkGhost(t, GhostOptions{})
	for _, sig := range []syscall.Signal{unix.SIGSTOP, unix.SIGTSTP, unix.SIGSTOP} {
		if err := g.Stop(sig); err != nil {
			t.Fatalf("Stop(%v): %v", sig, err)
		}
		expectLine(t, p, fmt.Sprintf("STOPPED %d", sig))
		if st := procState(t, g.Pid); st != "T" && st != "t" {
			t.Errorf("stopped ghost in state %s", st)
		}
		if err := g.Cont(); err != nil {
			t.Fatalf("Cont: %v", err)
		}
		expectLine(t, p, "CONTINUED")
	}
	if err := g.Stop(unix.SIGTERM); err == nil {
		t.Error("Stop(SIGTERM) accepted")
	}
	if err := g.Exit(0); err != nil {
		t.Fatalf("Exit: %v", err)
	}
	expectLine(t, p, "EXITED 0")
}

// waitState polls until pid is in state st.
func waitState(t *testing.T, pid int, st string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if procState(t, pid) == st {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("process %d in state %s, want %s", pid, procState(t, pid), st)
}

// In an orphaned process group (a session of its own) the kernel discards
// SIGTSTP: Stop says so and the ghost runs on; SIGSTOP still stops it.
func TestGhostStopOrphaned(t *testing.T) {
	needRoot(t)
	p, g := forkGhostAttr(t, GhostOptions{}, &syscall.SysProcAttr{Setsid: true})
	if err := g.Stop(unix.SIGTSTP); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("Stop(SIGTSTP) in an orphaned group: %v, want EAGAIN", err)
	}
	waitState(t, g.Pid, "S")
	if err := g.Stop(unix.SIGSTOP); err != nil {
		t.Fatalf("Stop(SIGSTOP): %v", err)
	}
	expectLine(t, p, "STOPPED 19")
	if err := g.Exit(4); err != nil {
		t.Fatalf("Exit: %v", err)
	}
	expectLine(t, p, "EXITED 4")
}

// procState is the state letter of /proc/PID/stat.
func procState(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])[0]
}

// Signals sent to a ghost go to GhostOptions.Signal and do nothing
// locally: it neither dies nor stops. SIGKILL ends it: Killed.
func TestGhostSignals(t *testing.T) {
	needRoot(t)
	got := make(chan syscall.Signal, 16)
	p, g := forkGhost(t, GhostOptions{Signal: func(s syscall.Signal) { got <- s }})
	for _, sig := range []syscall.Signal{unix.SIGUSR1, unix.SIGTERM, unix.SIGTRAP, unix.SIGSTOP, unix.SIGCONT} {
		if err := unix.Kill(g.Pid, sig); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-got:
			if s != sig {
				t.Fatalf("Signal(%v), want %v", s, sig)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%v sent to the ghost never reached Signal", sig)
		}
		waitState(t, g.Pid, "S") // back in pause(2): neither dead nor stopped
	}
	if err := unix.Kill(g.Pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ended(t, g)
	if !g.Killed() {
		t.Error("Killed() false after kill -9")
	}
	expectLine(t, p, "SIGNALED 9 core 0")
	select {
	case s := <-got:
		t.Errorf("Signal(%v) called for nothing", s)
	default:
	}
}

// A 256 MB process's ghost holds at most 1 MiB and keeps its command line.
func TestGhostMemory(t *testing.T) {
	needRoot(t)
	p := startProg(t, "READY", buildC(t, false, "memhog.c"), "256")
	pid := p.cmd.Process.Pid
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	h := seizeHeld(t, pid)
	t1 := time.Now()
	g, err := h.Ghost(GhostOptions{})
	if err != nil {
		t.Fatalf("Ghost: %v", err)
	}
	rss := vmRSS(t, pid)
	t.Logf("ghost of a 256 MB process: VmRSS %d kB; seize+wait %v, ghost %v", rss, t1.Sub(t0), time.Since(t1))
	if rss > 1024 {
		t.Errorf("ghost VmRSS %d kB, want at most 1024", rss)
	}
	if now, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err != nil || !bytes.Equal(now, cmdline) {
		t.Errorf("ghost cmdline %q (%v), was %q", now, err, cmdline)
	}
	if err := g.Exit(3); err != nil {
		t.Fatalf("Exit: %v", err)
	}
	ended(t, g)
	_ = p.cmd.Wait()
	if code := p.cmd.ProcessState.ExitCode(); code != 3 {
		t.Errorf("ghost's exit status %d (%v), want 3", code, p.cmd.ProcessState)
	}
}

func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	kv, err := keyValues(fmt.Sprintf("/proc/%d/status", pid), "VmRSS")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(kv["VmRSS"]), " kB"), 10, 64)
	if err != nil {
		t.Fatalf("VmRSS %q: %v", kv["VmRSS"], err)
	}
	return n
}

// Discard leaves the parent with no zombie and no SIGCHLD.
func TestDiscard(t *testing.T) {
	needRoot(t)
	p, h, c := heldFork(t, ownGroup())
	if err := c.Discard(); err != nil {
		t.Fatalf("Discard: %v", err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", c.Pid)); err == nil {
		t.Errorf("discarded child %d still exists", c.Pid)
	}
	if err := h.Resume(nil); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if _, err := p.in.Write([]byte("check\n")); err != nil {
		t.Fatal(err)
	}
	expectLine(t, p, "CHECK -1 10 sigchld 0")
	if err := h.Discard(); err == nil {
		t.Error("Discard of a process not made by Fork accepted")
	}
}

// ghostHelper is the test binary as a ghost's host: it makes a ghost of
// $VMADT_PID, says GHOSTED and waits to be killed.
func ghostHelper() int {
	pid, _ := strconv.Atoi(os.Getenv("VMADT_PID"))
	h, err := Seize(pid)
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Wait(ctx); err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	if _, err := h.Ghost(GhostOptions{}); err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	fmt.Println("GHOSTED")
	select {}
}

// If the ghost's host dies, the ghost dies with SIGKILL (EXITKILL): it
// never runs on without its memory.
func TestGhostDiesWithHost(t *testing.T) {
	needRoot(t)
	p := startProg(t, "READY", buildC(t, false, "ghostparent.c"))
	host := exec.Command(os.Args[0])
	host.Env = append(os.Environ(), "VMADT_HELPER=ghost", fmt.Sprintf("VMADT_PID=%d", p.cmd.Process.Pid))
	hp := startCmd(t, "GHOSTED", host)
	if rss := vmRSS(t, p.cmd.Process.Pid); rss > 1024 {
		t.Fatalf("not a ghost: VmRSS %d kB", rss)
	}
	if err := hp.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
	if st, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !st.Signaled() || st.Signal() != unix.SIGKILL {
		t.Fatalf("ghost after its host died: %v, want killed by SIGKILL", p.cmd.ProcessState)
	}
}

// rfork's way: the Fork()ed child is dumped with its fd 0 replaced by a
// memfd (what it reads there), restored elsewhere, and discarded here.
func TestForkDumpRestore(t *testing.T) {
	needRoot(t)
	_, h, c := heldFork(t, ownGroup())
	var img bytes.Buffer
	if err := c.Dump(&img, DumpOptions{Mem: map[int][]byte{0: []byte("check\n")}}); err != nil {
		t.Fatalf("Dump of the forked child: %v", err)
	}
	if err := c.Discard(); err != nil {
		t.Fatalf("Discard: %v", err)
	}
	if err := h.Resume(nil); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	r, err := restoreImage(t, img.Bytes())
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	// It reads "check" from the memfd, answers, then meets its end: exit 2.
	out, code := r.output(t, 10*time.Second)
	if out != "CHECK -1 10 sigchld 0\n" || code != 2 {
		t.Fatalf("restored child: exit %d, output %q", code, out)
	}
}

// A parent that holds its own child (as bproc's slave holds its jobs)
// waits with WaitExit: its wait takes none of the ptrace stops, and gets
// the ghost's exit status.
func TestGhostOwnChildWaitExit(t *testing.T) {
	needRoot(t)
	p := startProg(t, "READY", buildC(t, false, "ghostparent.c"))
	done := make(chan error, 1)
	go func() {
		if err := WaitExit(p.cmd.Process.Pid); err != nil {
			done <- err
			return
		}
		done <- p.cmd.Wait()
	}()
	h := seizeHeld(t, p.cmd.Process.Pid)
	g, err := h.Ghost(GhostOptions{})
	if err != nil {
		t.Fatalf("Ghost: %v", err)
	}
	if err := g.Stop(unix.SIGSTOP); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := g.Cont(); err != nil {
		t.Fatalf("Cont: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("the parent's wait returned while the ghost lives: %v", err)
	default:
	}
	if err := g.Exit(5); err != nil {
		t.Fatalf("Exit: %v", err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the parent's wait never returned")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 5 {
		t.Fatalf("exit status %d (%v), want 5", code, p.cmd.ProcessState)
	}
}
