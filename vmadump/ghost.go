package vmadump

// Fork and ghosts: what stays behind of a process that moved to another
// node. A ghost keeps the pid, the parent, the open files and the command
// line, and next to no memory; its parent's waitpid and kill keep working
// through it while the process itself runs elsewhere.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Fork makes a child of the stopped process with an injected fork(2). The
// child is a real child of the process (its waitpid and kill work on it),
// held by the same tracer thread and stopped before it runs any of its own
// code, with the registers the process stopped with (so its Syscall() is
// the parent's). It is to be turned into a ghost or Discarded. Signals
// arriving meanwhile are kept as for Wait.
func (h *Held) Fork() (*Held, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.ready(); err != nil {
		return nil, err
	}
	var child *Held
	err := h.tr.do(func() error {
		before, err := sigPending(h.Pid, unix.SIGCHLD)
		if err != nil {
			return err
		}
		for _, s := range h.pending {
			before = before || s == int(unix.SIGCHLD)
		}
		if err := ptrace(unix.PTRACE_SETOPTIONS, h.Pid, 0, unix.PTRACE_O_TRACEFORK); err != nil {
			return fmt.Errorf("ptrace SETOPTIONS %d: %w", h.Pid, err)
		}
		t := &tracee{pid: h.Pid, sysAddr: h.sysAddr, base: h.regs}
		cpid, err := t.fork()
		h.pending = append(h.pending, t.pending...)
		if e := setRegs(h.Pid, &h.regs); err == nil {
			err = e
		}
		if e := ptrace(unix.PTRACE_SETOPTIONS, h.Pid, 0, 0); err == nil && e != nil {
			err = fmt.Errorf("ptrace SETOPTIONS %d: %w", h.Pid, e)
		}
		if err != nil {
			return err
		}
		c := &Held{Pid: cpid, tr: h.tr, regs: h.regs, sysAddr: h.sysAddr, parent: h, chldBefore: before}
		if err := c.firstStop(); err != nil {
			_ = unix.Kill(cpid, unix.SIGKILL)
			reapTracee(cpid)
			return err
		}
		h.tr.hold()
		child = c
		return nil
	})
	return child, err
}

// fork injects fork(2) and returns the child's pid (tracer thread, with
// PTRACE_O_TRACEFORK set). A fork interrupted by a signal is retried.
func (t *tracee) fork() (int, error) {
	for try := 0; try < 20; try++ {
		r := t.base
		r.Rip, r.Rax, r.Orig_rax = t.sysAddr, unix.SYS_FORK, ^uint64(0)
		if err := setRegs(t.pid, &r); err != nil {
			return 0, err
		}
		child := 0
		for done := false; !done; {
			if err := ptrace(unix.PTRACE_SINGLESTEP, t.pid, 0, 0); err != nil {
				return 0, fmt.Errorf("ptrace SINGLESTEP %d: %w", t.pid, err)
			}
			ws, err := waitStop(t.pid)
			if err != nil {
				return 0, err
			}
			switch {
			case !ws.Stopped():
				return 0, fmt.Errorf("process %d died during injected fork (%s)", t.pid, describeWait(ws))
			case ws.StopSignal() == unix.SIGTRAP && ws.TrapCause() == unix.PTRACE_EVENT_FORK:
				msg, err := unix.PtraceGetEventMsg(t.pid)
				if err != nil {
					return 0, fmt.Errorf("ptrace GETEVENTMSG %d: %w", t.pid, err)
				}
				child = int(msg)
			case ws.StopSignal() == unix.SIGTRAP && ws.TrapCause() <= 0:
				done = true
			case ws.StopSignal() != unix.SIGTRAP:
				t.pending = append(t.pending, int(ws.StopSignal()))
				cur, err := getRegs(t.pid)
				if err != nil {
					return 0, err
				}
				done = cur.Rip != t.sysAddr
			}
		}
		out, err := getRegs(t.pid)
		if err != nil {
			return 0, err
		}
		ret := int64(out.Rax)
		if ret == -errRestartNoIntr && child == 0 {
			continue
		}
		if err := sysErr(out.Rax); err != nil {
			return 0, fmt.Errorf("injected fork in %d: %w", t.pid, err)
		}
		if child == 0 {
			child = int(ret)
		}
		return child, nil
	}
	return 0, fmt.Errorf("injected fork in %d kept being interrupted", t.pid)
}

// firstStop waits for a forked child's first stop and gives it the
// registers its parent stopped with (tracer thread).
func (c *Held) firstStop() error {
	if err := waitEventStop(c.Pid, &c.pending, "forked child"); err != nil {
		return err
	}
	c.stopped = true
	return setRegs(c.Pid, &c.regs)
}

// Discard ends a Fork()ed child nobody is to see: it is killed, reaped
// through its parent (an injected wait4; the parent must still be held)
// and the SIGCHLD that caused is eaten, unless one was pending before the
// Fork. The parent is left with no zombie and no new signal.
func (c *Held) Discard() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released {
		return errReleased
	}
	p := c.parent
	if p == nil {
		return fmt.Errorf("process %d was not made by Fork: %w", c.Pid, unix.EINVAL)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.ready(); err != nil {
		return fmt.Errorf("parent of %d: %w", c.Pid, err)
	}
	c.released = true
	defer c.tr.release()
	return c.tr.do(func() error {
		if err := unix.Kill(c.Pid, unix.SIGKILL); err != nil {
			return fmt.Errorf("kill %d: %w", c.Pid, err)
		}
		for {
			ws, err := waitStop(c.Pid)
			if err != nil {
				return err
			}
			if ws.Exited() || ws.Signaled() {
				break
			}
		}
		// With SIGCHLD unblocked, the injected call takes it at once: it
		// is reported to us as it is delivered, and suppressed.
		mask, err := getSigmask(p.Pid)
		if err != nil {
			return err
		}
		if !c.chldBefore {
			if err := setSigmask(p.Pid, mask&^(1<<(unix.SIGCHLD-1))); err != nil {
				return err
			}
		}
		t := &tracee{pid: p.Pid, sysAddr: p.sysAddr, base: p.regs}
		_, werr := t.check(fmt.Sprintf("wait4 %d", c.Pid), unix.SYS_WAIT4, uint64(c.Pid), 0, unix.WALL, 0)
		if err := setSigmask(p.Pid, mask); err != nil && werr == nil {
			werr = err
		}
		if err := setRegs(p.Pid, &p.regs); err != nil && werr == nil {
			werr = err
		}
		for _, s := range t.pending {
			if s != int(unix.SIGCHLD) || c.chldBefore {
				p.pending = append(p.pending, s)
			}
		}
		return werr
	})
}

// sigPending tells whether sig is pending for pid (its own or shared).
func sigPending(pid int, sig unix.Signal) (bool, error) {
	kv, err := keyValues(fmt.Sprintf("/proc/%d/status", pid), "SigPnd", "ShdPnd")
	if err != nil {
		return false, fmt.Errorf("reading status of %d: %w", pid, err)
	}
	bit := uint64(1) << (sig - 1)
	return uint64(num(kv["SigPnd"], 16))&bit != 0 || uint64(num(kv["ShdPnd"], 16))&bit != 0, nil
}

// GhostOptions tune Held.Ghost.
type GhostOptions struct {
	// Signal is called, on the ghost's tracer thread, for every signal
	// sent to the ghost but SIGKILL (stop signals and SIGCONT included);
	// the signal is then suppressed: the host forwards it to the process
	// where it runs. It must return quickly and not call the Ghost's
	// methods (they wait for that thread).
	Signal func(sig syscall.Signal)
}

// Ghost is what remains of a process that runs elsewhere: same pid, same
// parent, same open files, its command line, a page of code looping in
// pause(2) and nothing else. Its methods report, to its parent, what the
// process did where it runs.
type Ghost struct {
	Pid int

	tr       *tracer
	opts     GhostOptions
	page     uint64 // its code page: pause loop, syscall at page+ghostSyscall
	ownChild bool   // our own child: its exit status is our caller's to reap

	mu sync.Mutex // one method at a time

	// Tracer-thread state.
	expect  map[int]int // signals we sent ourselves, to deliver, not forward
	stopped bool        // in a group-stop (PTRACE_LISTEN)
	hold    bool        // an operation wants it in a ptrace-stop
	atStop  bool        // it is in that ptrace-stop
	traps   int         // PTRACE_EVENT_STOPs that were not group-stops
	ending  bool        // Exit or Kill under way: its death is ours

	done   chan struct{}
	ended  bool
	killed bool
}

// The ghost's code: "loop: mov eax, SYS_pause; syscall; jmp loop". The
// rest of its page is zeros: a SIG_DFL sigaction and a zero itimerval.
var ghostCode = []byte{0xb8, unix.SYS_PAUSE, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7}

const (
	ghostSyscall = 5    // offset of the syscall instruction
	ghostZeros   = 2048 // offset of zeroed memory in the page
)

var errGhostEnded = errors.New("ghost has ended")

// Ghost turns the stopped process into a ghost: every mapping but its
// argv/environ pages and the kernel's [vdso]/[vvar] is unmapped, a page
// of code looping in pause(2) is what it runs, its signal handlers are
// reset to the default, its mask cleared, its timers, rseq and robust list
// dropped, and it is made non-dumpable (killed, it writes no core).
// PTRACE_O_EXITKILL: if this process dies, the ghost dies with SIGKILL.
// Take its files first (TakeFile) if the host forwards them. The Held is
// used up, also by an error after the first change (the process is then
// killed: it may have lost its memory); an error before any change leaves
// the Held as it was, and says so.
func (h *Held) Ghost(opts GhostOptions) (*Ghost, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.ready(); err != nil {
		return nil, err
	}
	h.released = true
	g := &Ghost{Pid: h.Pid, tr: h.tr, opts: opts, expect: map[int]int{}, done: make(chan struct{})}
	if st, err := readStatus(h.Pid); err == nil {
		g.ownChild = st.ppid == os.Getpid()
	}
	var changed bool
	err := h.tr.do(func() error {
		var err error
		changed, err = g.hollow(h)
		switch {
		case err != nil && changed:
			_ = unix.Kill(h.Pid, unix.SIGKILL)
			if !g.ownChild {
				reapTracee(h.Pid)
			}
		case err != nil:
			_ = setRegs(h.Pid, &h.regs)
		}
		return err
	})
	if err != nil && !changed {
		h.released = false
		return nil, fmt.Errorf("making a ghost of %d (it is held as it was): %w", h.Pid, err)
	}
	if err != nil {
		h.tr.release()
		return nil, fmt.Errorf("making a ghost of %d (killed): %w", h.Pid, err)
	}
	go g.watch()
	return g, nil
}

// hollow does Ghost's work (tracer thread); changed tells whether the
// process was changed before an error.
func (g *Ghost) hollow(h *Held) (changed bool, err error) {
	err = g.hollowing(h, &changed)
	return changed, err
}

func (g *Ghost) hollowing(h *Held, changed *bool) error {
	pid := h.Pid
	if err := exitKill(pid); err != nil {
		return err
	}
	st, err := readStatus(pid)
	if err != nil {
		return err
	}
	rseq, err := getRseq(pid)
	if err != nil {
		return err
	}
	t := &tracee{pid: pid, sysAddr: h.sysAddr, base: h.regs}
	defer func() {
		if !*changed {
			h.pending = append(h.pending, t.pending...) // still held: Resume re-sends them
		}
	}()
	page, err := t.check("mmap ghost page", unix.SYS_MMAP, 0, pageSize, unix.PROT_READ|unix.PROT_EXEC,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uint64(0), 0)
	if err != nil {
		return err
	}
	mem, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", pid), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("opening memory of %d: %w", pid, err)
	}
	defer mem.Close()
	if _, err := mem.WriteAt(ghostCode, int64(page)); err != nil {
		_, _ = t.call(unix.SYS_MUNMAP, page, pageSize)
		return fmt.Errorf("writing ghost code into %d: %w", pid, err)
	}
	*changed = true
	g.page = page
	t.sysAddr = page + ghostSyscall
	zeros := page + ghostZeros
	type call struct {
		what string
		nr   uintptr
		args []uint64
	}
	calls := []call{
		{"set_robust_list", unix.SYS_SET_ROBUST_LIST, []uint64{0, 24}},
		{"set_tid_address", unix.SYS_SET_TID_ADDRESS, []uint64{0}},
		{"prctl PR_SET_DUMPABLE", unix.SYS_PRCTL, []uint64{unix.PR_SET_DUMPABLE, 0}},
	}
	if rseq != nil {
		const rseqUnregister = 1
		calls = append(calls, call{"rseq unregister", unix.SYS_RSEQ, []uint64{rseq.Addr, uint64(rseq.Size), rseqUnregister, uint64(rseq.Sig)}})
	}
	for w := uint64(0); w < 3; w++ {
		calls = append(calls, call{"setitimer", unix.SYS_SETITIMER, []uint64{w, zeros, 0}})
	}
	for s := uint64(1); s <= 64; s++ {
		if (st.sigCgt|st.sigIgn)&(1<<(s-1)) != 0 && s != uint64(unix.SIGKILL) && s != uint64(unix.SIGSTOP) {
			calls = append(calls, call{fmt.Sprintf("rt_sigaction %d SIG_DFL", s), unix.SYS_RT_SIGACTION, []uint64{s, zeros, 0, 8}})
		}
	}
	for _, c := range calls {
		if _, err := t.check(c.what, c.nr, c.args...); err != nil {
			return err
		}
	}
	spans, err := ghostUnmaps(pid, page)
	if err != nil {
		return err
	}
	for _, s := range spans {
		if _, err := t.check(fmt.Sprintf("munmap %#x-%#x", s.addr, s.addr+s.len), unix.SYS_MUNMAP, s.addr, s.len); err != nil {
			return err
		}
	}
	g.pending(t.pending)
	if err := setSigmask(pid, 0); err != nil {
		return err
	}
	r := h.regs
	r.Rip, r.Orig_rax, r.Rax = page, ^uint64(0), 0
	if err := setRegs(pid, &r); err != nil {
		return err
	}
	if err := ptrace(unix.PTRACE_CONT, pid, 0, 0); err != nil {
		return fmt.Errorf("ptrace CONT %d: %w", pid, err)
	}
	return nil
}

// pending forwards signals that arrived while the ghost was being made.
func (g *Ghost) pending(sigs []int) {
	for _, s := range sigs {
		if g.opts.Signal != nil && s != int(unix.SIGKILL) {
			g.opts.Signal(syscall.Signal(s))
		}
	}
}

// ghostUnmaps lists what to unmap of pid to make it a ghost: everything
// but the ghost page, the kernel's mappings and the pages holding argv
// and environ (so that /proc/PID/cmdline and environ still read).
func ghostUnmaps(pid int, page uint64) ([]span, error) {
	maps, err := readMaps(pid)
	if err != nil {
		return nil, err
	}
	stat, err := readStat(pid)
	if err != nil {
		return nil, err
	}
	keepLo := stat.argStart &^ (pageSize - 1)
	keepHi := (max(stat.argEnd, stat.envEnd) + pageSize - 1) &^ (pageSize - 1)
	if stat.argStart == 0 {
		keepLo, keepHi = 0, 0
	}
	var out []span
	for _, mp := range maps {
		if mp.start == page || mp.start >= userTop {
			continue
		}
		if _, kernel := specialKinds[mp.path]; kernel {
			continue
		}
		add := func(a, b uint64) {
			if a < b {
				out = append(out, span{a, b - a})
			}
		}
		if !overlaps(mp.start, mp.end, keepLo, keepHi) {
			add(mp.start, mp.end)
			continue
		}
		add(mp.start, max(mp.start, keepLo))
		add(min(mp.end, keepHi), mp.end)
	}
	return out, nil
}

// watch reports the ghost's events to the tracer thread as they come; it
// waits without consuming them (WNOWAIT), from any thread.
func (g *Ghost) watch() {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, g.Pid, &info, unix.WEXITED|unix.WSTOPPED|unix.WNOWAIT|unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		ended, handled := false, false
		_ = g.tr.do(func() error {
			if err != nil && !g.ended {
				g.finish(false) // gone without our seeing it (reaped elsewhere)
			}
			for !g.ended {
				got, err := g.next(false)
				if err != nil || !got {
					break
				}
				handled = true
			}
			ended = g.ended
			return nil
		})
		if ended {
			g.tr.release()
			return
		}
		if !handled {
			time.Sleep(time.Millisecond) // taken by an operation meanwhile; never spin
		}
	}
}

// next takes and handles the ghost's next event, waiting for it if block
// (tracer thread). It reports whether there was one.
func (g *Ghost) next(block bool) (bool, error) {
	flags := unix.WEXITED | unix.WSTOPPED | unix.WNOWAIT | unix.WALL
	if !block {
		flags |= unix.WNOHANG
	}
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, g.Pid, &info, flags, nil)
		if err == unix.EINTR {
			continue
		}
		if err == unix.ECHILD {
			// Reaped already: by its parent, when that is us (ownChild),
			// which may beat us to its exit.
			g.finish(false)
			return true, nil
		}
		if err != nil {
			g.finish(false)
			return false, fmt.Errorf("waitid %d: %w", g.Pid, err)
		}
		break
	}
	raw := (*[128]byte)(unsafe.Pointer(&info))
	if binary.LittleEndian.Uint32(raw[16:]) == 0 {
		return false, nil // WNOHANG: nothing yet
	}
	status := int32(binary.LittleEndian.Uint32(raw[24:]))
	switch info.Code {
	case cldExited, cldKilled, cldDumped:
		if !g.ownChild {
			reapTracee(g.Pid)
		}
		g.finish(info.Code != cldExited && status == int32(unix.SIGKILL))
		return true, nil
	}
	var ws unix.WaitStatus
	n, err := unix.Wait4(g.Pid, &ws, unix.WALL|unix.WNOHANG, nil)
	if err != nil || n == 0 {
		return false, nil
	}
	g.handle(ws)
	return true, nil
}

// si_code values of SIGCHLD.
const (
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
)

func (g *Ghost) finish(byKill bool) {
	if g.ended {
		return
	}
	g.ended = true
	g.killed = byKill && !g.ending
	close(g.done)
}

// handle reacts to one stop of the ghost (tracer thread).
func (g *Ghost) handle(ws unix.WaitStatus) {
	if ws.Exited() || ws.Signaled() {
		g.finish(ws.Signaled() && ws.Signal() == unix.SIGKILL)
		return
	}
	if !ws.Stopped() {
		return
	}
	sig := ws.StopSignal()
	if uint32(ws)>>16 == unix.PTRACE_EVENT_STOP {
		group := isStopSignal(sig)
		if g.hold {
			g.atStop, g.stopped = true, group
			return
		}
		if group {
			g.stopped = true
			_ = ptrace(unix.PTRACE_LISTEN, g.Pid, 0, 0)
			return
		}
		g.stopped = false
		g.traps++
		_ = ptrace(unix.PTRACE_CONT, g.Pid, 0, 0)
		return
	}
	if uint32(ws)>>16 != 0 {
		_ = ptrace(unix.PTRACE_CONT, g.Pid, 0, 0) // some other event: it runs no code of its own
		return
	}
	if g.expect[int(sig)] > 0 {
		g.expect[int(sig)]--
		_ = ptrace(unix.PTRACE_CONT, g.Pid, 0, uintptr(sig))
		return
	}
	if sig == unix.SIGCONT {
		g.stopped = false
	}
	if g.opts.Signal != nil {
		g.opts.Signal(sig)
	}
	_ = ptrace(unix.PTRACE_CONT, g.Pid, 0, 0)
}

func isStopSignal(s syscall.Signal) bool {
	return s == unix.SIGSTOP || s == unix.SIGTSTP || s == unix.SIGTTIN || s == unix.SIGTTOU
}

// pump handles events until cond holds (tracer thread).
func (g *Ghost) pump(cond func() bool) error {
	for !cond() {
		if g.ended {
			return errGhostEnded
		}
		if _, err := g.next(true); err != nil {
			return err
		}
	}
	return nil
}

// op runs f on the tracer thread, one at a time.
func (g *Ghost) op(f func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.done:
		return errGhostEnded
	default:
	}
	return g.tr.do(func() error {
		if g.ended {
			return errGhostEnded
		}
		return f()
	})
}

// send makes the ghost get sig as its own (delivered, not forwarded).
func (g *Ghost) send(sig syscall.Signal) error {
	g.expect[int(sig)]++
	if err := unix.Tgkill(g.Pid, g.Pid, sig); err != nil {
		g.expect[int(sig)]--
		return fmt.Errorf("tgkill %d %v: %w", g.Pid, sig, err)
	}
	return nil
}

// Stop puts the ghost in a group-stop as if stopped by sig (SIGSTOP,
// SIGTSTP, SIGTTIN or SIGTTOU): its parent's waitpid(WUNTRACED) reports
// WIFSTOPPED with WSTOPSIG sig. It returns once it is stopped. A SIGTSTP,
// SIGTTIN or SIGTTOU the kernel discards (orphaned process group) fails
// with EAGAIN, the ghost running on.
func (g *Ghost) Stop(sig syscall.Signal) error {
	if !isStopSignal(sig) {
		return fmt.Errorf("ghost %d: %v is not a stop signal: %w", g.Pid, sig, unix.EINVAL)
	}
	return g.op(func() error {
		if g.stopped {
			return nil
		}
		if err := g.send(sig); err != nil {
			return err
		}
		if err := g.pump(func() bool { return g.expect[int(sig)] == 0 }); err != nil {
			return err
		}
		// Delivered: it stops now, or the kernel dropped it. An
		// interrupt tells which, whatever comes first.
		traps := g.traps
		if err := ptrace(ptraceInterrupt, g.Pid, 0, 0); err != nil {
			return fmt.Errorf("ptrace INTERRUPT %d: %w", g.Pid, err)
		}
		if err := g.pump(func() bool { return g.stopped || g.traps > traps }); err != nil {
			return err
		}
		if !g.stopped {
			return fmt.Errorf("ghost %d: %v was discarded (orphaned process group): %w", g.Pid, sig, unix.EAGAIN)
		}
		return nil
	})
}

// Cont continues a stopped ghost (as SIGCONT): its parent's
// waitpid(WCONTINUED) reports WIFCONTINUED. A running ghost is left alone.
func (g *Ghost) Cont() error {
	return g.op(func() error {
		if !g.stopped {
			return nil
		}
		if err := g.send(unix.SIGCONT); err != nil {
			return err
		}
		return g.pump(func() bool { return g.expect[int(unix.SIGCONT)] == 0 })
	})
}

// interrupt brings the ghost to a ptrace-stop of ours (tracer thread).
func (g *Ghost) interrupt() error {
	g.hold, g.atStop = true, false
	if err := ptrace(ptraceInterrupt, g.Pid, 0, 0); err != nil {
		g.hold = false
		return fmt.Errorf("ptrace INTERRUPT %d: %w", g.Pid, err)
	}
	err := g.pump(func() bool { return g.atStop })
	g.hold = false
	return err
}

// Exit ends the ghost with exit status code: its parent sees WIFEXITED,
// WEXITSTATUS code, and gets one SIGCHLD. It returns once it has ended.
func (g *Ghost) Exit(code int) error {
	return g.op(func() error {
		g.ending = true
		if err := g.interrupt(); err != nil {
			return err
		}
		r, err := getRegs(g.Pid)
		if err != nil {
			return err
		}
		r.Rip, r.Rax, r.Rdi, r.Orig_rax = g.page+ghostSyscall, unix.SYS_EXIT_GROUP, uint64(code&0xff), ^uint64(0)
		if err := setRegs(g.Pid, &r); err != nil {
			return err
		}
		if err := ptrace(unix.PTRACE_CONT, g.Pid, 0, 0); err != nil {
			return fmt.Errorf("ptrace CONT %d: %w", g.Pid, err)
		}
		return g.pump(func() bool { return g.ended })
	})
}

// Signals whose default action ends the process (with or without core).
func killsByDefault(s syscall.Signal) bool {
	switch s {
	case unix.SIGCHLD, unix.SIGCONT, unix.SIGURG, unix.SIGWINCH, unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
		return false
	}
	return s >= 1 && s <= 64
}

// Kill ends the ghost as killed by sig with its default action, writing
// no core file: its parent sees WIFSIGNALED, WTERMSIG sig. sig must be one
// whose default action ends a process. It returns once it has ended.
func (g *Ghost) Kill(sig syscall.Signal) error {
	if !killsByDefault(sig) {
		return fmt.Errorf("ghost %d: %v does not end a process: %w", g.Pid, sig, unix.EINVAL)
	}
	return g.op(func() error {
		g.ending = true
		if sig == unix.SIGKILL {
			if err := unix.Kill(g.Pid, unix.SIGKILL); err != nil {
				return fmt.Errorf("kill %d: %w", g.Pid, err)
			}
			return g.pump(func() bool { return g.ended })
		}
		// From a stop of ours, so that a stopped ghost takes it too.
		if err := g.interrupt(); err != nil {
			return err
		}
		if err := g.send(sig); err != nil {
			return err
		}
		g.stopped = false
		if err := ptrace(unix.PTRACE_CONT, g.Pid, 0, 0); err != nil {
			return fmt.Errorf("ptrace CONT %d: %w", g.Pid, err)
		}
		return g.pump(func() bool { return g.ended })
	})
}

// Done is closed when the ghost has ended: by Exit or Kill, or by a
// SIGKILL sent to it (Killed), or reaped by someone else (its parent,
// when that is this process, may reap it before its end is seen here:
// then Killed is false and the parent's status tells).
func (g *Ghost) Done() <-chan struct{} { return g.done }

// Killed tells, once Done is closed, whether the ghost ended by a SIGKILL
// from outside (not by Exit or Kill): the host forwards it to the process.
func (g *Ghost) Killed() bool {
	select {
	case <-g.done:
	default:
		return false
	}
	return g.killed // written before done was closed
}
