package vmadump

// Holding a process for migration: Seize stops it where it is (typically
// still inside the write(2) that asked to move), Wait until it is stopped,
// then Dump, and Resume (it failed) or Ghost (it moved).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// tracer is one OS thread that issues every ptrace request for its
// tracees: the kernel takes them only from the thread that attached (or
// auto-attached a forked child). Its goroutine ends, and the thread with
// it, when the last Held or Ghost using it is released; a tracee still
// attached then is detached by the kernel (or killed, with EXITKILL).
type tracer struct {
	reqs chan func()
	quit chan struct{} // closed when the thread is gone
	mu   sync.Mutex
	refs int
}

func newTracer() *tracer {
	tr := &tracer{reqs: make(chan func()), quit: make(chan struct{}), refs: 1}
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		for f := range tr.reqs {
			if f == nil {
				close(tr.quit)
				return
			}
			f()
		}
	}()
	return tr
}

// do runs f on the tracer thread and returns its error (errReleased if
// the thread is gone). f must not call do or release.
func (tr *tracer) do(f func() error) error {
	done := make(chan error, 1)
	select {
	case tr.reqs <- func() { done <- f() }:
		return <-done
	case <-tr.quit:
		return errReleased
	}
}

func (tr *tracer) hold() {
	tr.mu.Lock()
	tr.refs++
	tr.mu.Unlock()
}

// release drops a reference; the last one ends the thread.
func (tr *tracer) release() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.refs--
	if tr.refs == 0 {
		go func() { tr.reqs <- nil }()
	}
}

// Held is a process seized with ptrace by this one. Its methods may be
// called from any goroutine, one at a time.
type Held struct {
	Pid int

	tr       *tracer
	mu       sync.Mutex
	stopped  bool
	released bool
	gone     bool            // it ended while we waited
	regs     unix.PtraceRegs // as it stopped; put back before it runs
	sysAddr  uint64          // a syscall instruction in its [vdso]
	pending  []int           // signals that arrived while held, re-sent on Resume

	// For a Fork()ed child: its parent, and whether the parent had a
	// SIGCHLD pending before the fork (Discard must not eat that one).
	parent     *Held
	chldBefore bool
}

var errReleased = errors.New("process no longer held")

// Seize attaches to pid (PTRACE_SEIZE) and asks it to stop
// (PTRACE_INTERRUPT) without waiting: a process inside a system call stops
// when the call returns, before its next instruction. Threaded processes
// are refused (ErrThreaded); so are pid <= 0 and the caller itself.
func Seize(pid int) (*Held, error) {
	if pid <= 0 || pid == os.Getpid() {
		return nil, fmt.Errorf("cannot seize process %d: %w", pid, unix.EINVAL)
	}
	if err := threadCheck(pid); err != nil {
		return nil, err
	}
	h := &Held{Pid: pid, tr: newTracer()}
	err := h.tr.do(func() error {
		if err := ptrace(ptraceSeize, pid, 0, 0); err != nil {
			return fmt.Errorf("ptrace SEIZE %d: %w", pid, err)
		}
		if err := ptrace(ptraceInterrupt, pid, 0, 0); err != nil {
			_ = ptrace(unix.PTRACE_DETACH, pid, 0, 0)
			return fmt.Errorf("ptrace INTERRUPT %d: %w", pid, err)
		}
		return nil
	})
	if err != nil {
		h.tr.release()
		return nil, err
	}
	return h, nil
}

// Wait waits until the process is in its ptrace stop, which may take as
// long as the system call it is in. Signals that arrive meanwhile are kept
// and re-sent by Resume (and recorded by Dump). If it stops with more than
// one thread, ErrThreaded (it stays held: Resume it).
func (h *Held) Wait(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return errReleased
	}
	delay := 50 * time.Microsecond
	for !h.stopped {
		if err := h.tr.do(h.poll); err != nil {
			if h.gone {
				h.released = true
				h.tr.release()
			}
			return err
		}
		if h.stopped {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for process %d to stop: %w", h.Pid, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 500*time.Microsecond) // a move waits for this: poll often
	}
	return threadCheck(h.Pid)
}

// poll takes one wait status if there is one (tracer thread).
func (h *Held) poll() error {
	for {
		var ws unix.WaitStatus
		n, err := unix.Wait4(h.Pid, &ws, unix.WALL|unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait4 %d: %w", h.Pid, err)
		}
		if n == 0 {
			return nil
		}
		if !ws.Stopped() {
			h.gone = true
			return fmt.Errorf("process %d ended while being stopped (%s)", h.Pid, describeWait(ws))
		}
		if uint32(ws)>>16 == unix.PTRACE_EVENT_STOP {
			return h.stoppedNow()
		}
		// A signal on its way in: keep it for later, let the stop come.
		h.pending = append(h.pending, int(ws.StopSignal()))
		if err := ptrace(unix.PTRACE_CONT, h.Pid, 0, 0); err != nil {
			return fmt.Errorf("ptrace CONT %d: %w", h.Pid, err)
		}
	}
}

// stoppedNow records the registers and a syscall instruction to inject
// calls with (tracer thread).
func (h *Held) stoppedNow() error {
	regs, err := getRegs(h.Pid)
	if err != nil {
		return err
	}
	a, err := vdsoSyscall(h.Pid)
	if err != nil {
		return err
	}
	h.regs, h.sysAddr, h.stopped = regs, a, true
	return nil
}

// vdsoSyscall finds a syscall instruction in pid's [vdso].
func vdsoSyscall(pid int) (uint64, error) {
	maps, err := readMaps(pid)
	if err != nil {
		return 0, err
	}
	for _, mp := range maps {
		if mp.path != "[vdso]" {
			continue
		}
		mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
		if err != nil {
			return 0, fmt.Errorf("opening memory of %d: %w", pid, err)
		}
		defer mem.Close()
		b := make([]byte, mp.size())
		if _, err := mem.ReadAt(b, int64(mp.start)); err != nil {
			return 0, fmt.Errorf("reading [vdso] of %d: %w", pid, err)
		}
		off, err := syscallOffset(b)
		if err != nil {
			return 0, err
		}
		return mp.start + off, nil
	}
	return 0, fmt.Errorf("process %d has no [vdso]; cannot inject system calls", pid)
}

// ready is the check every method of a stopped Held starts with.
func (h *Held) ready() error {
	if h.released {
		return errReleased
	}
	if !h.stopped {
		return fmt.Errorf("process %d is not stopped yet (call Wait)", h.Pid)
	}
	return nil
}

// Syscall tells the system call the process stopped just after: its
// number (orig_rax, -1 if it was not in one), its first argument (rdi:
// for write(2), the fd written) and its return value (rax; a restart code
// such as -ERESTARTSYS, -512, if the stop interrupted it: it is re-issued
// on Resume unless Resume sets a return value).
func (h *Held) Syscall() (nr int, fd int, ret int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return int(int64(h.regs.Orig_rax)), int(int64(h.regs.Rdi)), int64(h.regs.Rax)
}

// Dump writes an image of the process as it is stopped; it stays stopped
// and held. opts.Leave is irrelevant here. Signals held so far travel in
// the image (and are still re-sent on Resume).
func (h *Held) Dump(w io.Writer, opts DumpOptions) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.ready(); err != nil {
		return err
	}
	if err := opts.check(); err != nil {
		return err
	}
	return h.tr.do(func() error {
		d := &dumper{pid: h.Pid, opts: opts, pending: append([]int(nil), h.pending...)}
		defer func() {
			if d.haveReg {
				_ = setRegs(h.Pid, &h.regs)
			}
			h.pending = append(h.pending, d.pending[len(h.pending):]...)
		}()
		return d.write(w)
	})
}

// Resume lets the process run on and releases it. With ret, the system
// call it stopped after returns that (e.g. -int64(unix.EHOSTDOWN): the
// write fails with EHOSTDOWN) instead of what it returned or of being
// restarted. Signals held meanwhile are re-sent. A process that never
// stopped is released as it is, and ret cannot be applied (an error).
func (h *Held) Resume(ret *int64) error {
	return h.letGo(func() error { return h.resume(ret) })
}

func (h *Held) resume(ret *int64) error {
	if !h.stopped {
		// The tracer thread's end detaches it and drops the pending
		// interrupt (if no other tracee keeps the thread alive, so
		// detach explicitly when it does stop meanwhile).
		if ret != nil {
			return fmt.Errorf("process %d never stopped: return value not set", h.Pid)
		}
		return nil
	}
	err := h.tr.do(func() error {
		r := h.regs
		if ret != nil {
			r.Rax = uint64(*ret)
		}
		if err := setRegs(h.Pid, &r); err != nil {
			return err
		}
		if err := ptrace(unix.PTRACE_DETACH, h.Pid, 0, 0); err != nil {
			return fmt.Errorf("ptrace DETACH %d: %w", h.Pid, err)
		}
		return nil
	})
	for _, s := range h.pending {
		_ = unix.Kill(h.Pid, unix.Signal(s))
	}
	return err
}

// Kill ends the process with SIGKILL and releases it. Its parent gets the
// status as usual (if this process is the parent, it reaps it itself).
func (h *Held) Kill() error {
	return h.letGo(func() error {
		return h.tr.do(func() error {
			if err := unix.Kill(h.Pid, unix.SIGKILL); err != nil {
				return fmt.Errorf("kill %d: %w", h.Pid, err)
			}
			reapTracee(h.Pid)
			return nil
		})
	})
}

// letGo releases h, once, with release: what Resume and Kill end with.
// The tracer thread is let go after release, whatever it returns.
func (h *Held) letGo(release func() error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return errReleased
	}
	h.released = true
	defer h.tr.release()
	return release()
}

// reapTracee waits, as its tracer, for a killed tracee to end, so that its
// real parent can reap it. Our own child is left for our caller to wait.
func reapTracee(pid int) {
	if st, err := readStatus(pid); err == nil && st.ppid == os.Getpid() {
		return
	}
	for {
		ws, err := waitStop(pid)
		if err != nil || ws.Exited() || ws.Signaled() {
			return
		}
	}
}

// TakeFile returns a duplicate of the process's descriptor fd
// (pidfd_getfd), e.g. its stdout, for the ghost's host to forward I/O.
func (h *Held) TakeFile(fd int) (*os.File, error) {
	return takeFile(h.Pid, fd)
}

func takeFile(pid, fd int) (*os.File, error) {
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(pfd)
	nfd, err := unix.PidfdGetfd(pfd, fd, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_getfd %d fd %d: %w", pid, fd, err)
	}
	return os.NewFile(uintptr(nfd), fmt.Sprintf("pid %d fd %d", pid, fd)), nil
}

// WaitExit blocks until pid, a child of this process, has ended, without
// reaping it or taking any of its stops: it polls a pidfd, which becomes
// readable only at exit. Then reap it as usual (cmd.Wait). A parent that
// may hold its own children (bproc's slave, whose jobs move) must wait
// this way: when the tracer is in the parent's process the kernel reports
// a traced child's ptrace stops to the parent's wait too, so a cmd.Wait
// already waiting would take the stop Held.Wait waits for and return
// "stop signal: trace/breakpoint trap".
func WaitExit(pid int) error {
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(pfd)
	for {
		fds := []unix.PollFd{{Fd: int32(pfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("poll pidfd of %d: %w", pid, err)
		}
		if n > 0 {
			return nil
		}
	}
}
