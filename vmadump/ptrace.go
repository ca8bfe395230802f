package vmadump

// Low-level ptrace plumbing. Every function here must be called from the
// OS thread that attached to the tracee (callers hold runtime.LockOSThread).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	ptraceGetRegset     = 0x4204
	ptraceSetRegset     = 0x4205
	ptraceSeize         = 0x4206
	ptraceInterrupt     = 0x4207
	ptraceGetSigmask    = 0x420a
	ptraceSetSigmask    = 0x420b
	ptraceGetRseqConfig = 0x420f
	ntX86XState         = 0x202

	// maxXState bounds the xsave buffer; the kernel fills what it needs
	// (2696 bytes with AVX-512) and reports the size in the iovec.
	maxXState = 16 << 10
)

func ptrace(req int, pid int, addr, data uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(pid), addr, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// ptracePtr is ptrace with a pointer argument. The pointer must stay an
// unsafe.Pointer until the system call itself: converted to uintptr any
// earlier, a goroutine stack that moves in between leaves the kernel
// writing into the old stack.
func ptracePtr(req int, pid int, addr uintptr, data unsafe.Pointer) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(pid), addr, uintptr(data), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

type iovec struct {
	base *byte
	len  uint64
}

func getRegs(pid int) (unix.PtraceRegs, error) {
	var r unix.PtraceRegs
	err := ptracePtr(unix.PTRACE_GETREGS, pid, 0, unsafe.Pointer(&r))
	if err != nil {
		return r, fmt.Errorf("ptrace GETREGS %d: %w", pid, err)
	}
	return r, nil
}

func setRegs(pid int, r *unix.PtraceRegs) error {
	if err := ptracePtr(unix.PTRACE_SETREGS, pid, 0, unsafe.Pointer(r)); err != nil {
		return fmt.Errorf("ptrace SETREGS %d: %w", pid, err)
	}
	return nil
}

// getXState returns the full xsave area (x87, SSE, AVX, AVX-512 ...).
// PTRACE_GETFPREGS would lose everything above SSE.
func getXState(pid int) ([]byte, error) {
	buf := make([]byte, maxXState)
	iov := iovec{&buf[0], uint64(len(buf))}
	if err := ptracePtr(ptraceGetRegset, pid, ntX86XState, unsafe.Pointer(&iov)); err != nil {
		return nil, fmt.Errorf("ptrace GETREGSET NT_X86_XSTATE %d: %w", pid, err)
	}
	return buf[:iov.len:iov.len], nil
}

func setXState(pid int, xs []byte) error {
	if len(xs) == 0 {
		return nil
	}
	b := append([]byte(nil), xs...)
	iov := iovec{&b[0], uint64(len(b))}
	if err := ptracePtr(ptraceSetRegset, pid, ntX86XState, unsafe.Pointer(&iov)); err != nil {
		return fmt.Errorf("ptrace SETREGSET NT_X86_XSTATE %d (%d bytes): %w", pid, len(b), err)
	}
	return nil
}

func getSigmask(pid int) (uint64, error) {
	var m uint64
	if err := ptracePtr(ptraceGetSigmask, pid, 8, unsafe.Pointer(&m)); err != nil {
		return 0, fmt.Errorf("ptrace GETSIGMASK %d: %w", pid, err)
	}
	return m, nil
}

func setSigmask(pid int, m uint64) error {
	if err := ptracePtr(ptraceSetSigmask, pid, 8, unsafe.Pointer(&m)); err != nil {
		return fmt.Errorf("ptrace SETSIGMASK %d: %w", pid, err)
	}
	return nil
}

// rseqConfig mirrors struct ptrace_rseq_configuration.
type rseqConfig struct {
	Ptr   uint64
	Size  uint32
	Sig   uint32
	Flags uint32
	_     uint32
}

func getRseq(pid int) (*Rseq, error) {
	var c rseqConfig
	if err := ptracePtr(ptraceGetRseqConfig, pid, unsafe.Sizeof(c), unsafe.Pointer(&c)); err != nil {
		if errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) {
			return nil, nil // kernel without the request: nothing to keep
		}
		return nil, fmt.Errorf("ptrace GET_RSEQ_CONFIGURATION %d: %w", pid, err)
	}
	if c.Ptr == 0 {
		return nil, nil
	}
	return &Rseq{Addr: c.Ptr, Size: c.Size, Sig: c.Sig}, nil
}

// waitStop waits for the next stop (or death) of pid, with __WALL so that
// non-child tracees are seen too.
func waitStop(pid int) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return ws, fmt.Errorf("wait4 %d: %w", pid, err)
		}
		return ws, nil
	}
}

// waitEventStop waits for pid's PTRACE_EVENT_STOP (what PTRACE_INTERRUPT
// or a seized fork brings). Signals that come first are appended to pending
// (to be re-sent later) and let through; what names pid if it ends instead.
func waitEventStop(pid int, pending *[]int, what string) error {
	for {
		ws, err := waitStop(pid)
		if err != nil {
			return err
		}
		if !ws.Stopped() {
			return fmt.Errorf("%s %d ended (%s)", what, pid, describeWait(ws))
		}
		if uint32(ws)>>16 == unix.PTRACE_EVENT_STOP {
			return nil
		}
		*pending = append(*pending, int(ws.StopSignal()))
		if err := ptrace(unix.PTRACE_CONT, pid, 0, 0); err != nil {
			return fmt.Errorf("ptrace CONT %d: %w", pid, err)
		}
	}
}

// exitKill has pid die with SIGKILL if its tracer (this process) dies.
func exitKill(pid int) error {
	if err := ptrace(unix.PTRACE_SETOPTIONS, pid, 0, unix.PTRACE_O_EXITKILL); err != nil {
		return fmt.Errorf("ptrace SETOPTIONS %d: %w", pid, err)
	}
	return nil
}

// tracee is a stopped process we may inject system calls into.
type tracee struct {
	pid     int
	sysAddr uint64          // address of a "syscall" instruction (0f 05) in the tracee
	base    unix.PtraceRegs // registers to start each injected call from
	pending []int           // signals that arrived while we had it stopped
}

// sysErr turns a raw syscall return value into an error, if it is one.
func sysErr(ret uint64) error {
	if int64(ret) < 0 && int64(ret) > -4096 {
		return syscall.Errno(-int64(ret))
	}
	return nil
}

// call runs one system call inside the tracee: RIP is pointed at a syscall
// instruction and the tracee single-steps over it. orig_rax = -1 keeps the
// kernel from applying syscall-restart logic to the stop we resume from.
func (t *tracee) call(nr uintptr, args ...uint64) (uint64, error) {
	r := t.base
	r.Rip = t.sysAddr
	r.Rax = uint64(nr)
	r.Orig_rax = ^uint64(0)
	var a [6]uint64
	copy(a[:], args)
	r.Rdi, r.Rsi, r.Rdx, r.R10, r.R8, r.R9 = a[0], a[1], a[2], a[3], a[4], a[5]
	if err := setRegs(t.pid, &r); err != nil {
		return 0, err
	}
	for {
		if err := ptrace(unix.PTRACE_SINGLESTEP, t.pid, 0, 0); err != nil {
			return 0, fmt.Errorf("ptrace SINGLESTEP %d: %w", t.pid, err)
		}
		ws, err := waitStop(t.pid)
		if err != nil {
			return 0, err
		}
		if !ws.Stopped() {
			return 0, fmt.Errorf("process %d died during injected syscall %d (%s)", t.pid, nr, describeWait(ws))
		}
		if ws.StopSignal() == unix.SIGTRAP && ws.TrapCause() <= 0 {
			break
		}
		if ws.StopSignal() != unix.SIGTRAP {
			t.pending = append(t.pending, int(ws.StopSignal()))
		}
		// Some other stop (a signal, a group-stop event): the syscall
		// has not run yet if RIP is unchanged; step again.
		cur, err := getRegs(t.pid)
		if err != nil {
			return 0, err
		}
		if cur.Rip != t.sysAddr {
			return cur.Rax, nil
		}
	}
	out, err := getRegs(t.pid)
	if err != nil {
		return 0, err
	}
	if out.Rip != t.sysAddr+2 {
		return 0, fmt.Errorf("injected syscall %d in %d: stopped at %#x, want %#x", nr, t.pid, out.Rip, t.sysAddr+2)
	}
	return out.Rax, nil
}

// check runs call and converts a -errno result into an error naming what.
func (t *tracee) check(what string, nr uintptr, args ...uint64) (uint64, error) {
	ret, err := t.call(nr, args...)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if err := sysErr(ret); err != nil {
		return 0, fmt.Errorf("%s in process %d: %w", what, t.pid, err)
	}
	return ret, nil
}

func describeWait(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("signal %v", ws.Signal())
	case ws.Stopped():
		return fmt.Sprintf("stopped %v", ws.StopSignal())
	}
	return fmt.Sprintf("status %#x", uint32(ws))
}

// sysCall is one system call for tracee.batch.
type sysCall struct {
	what string
	nr   uintptr
	args [6]uint64
	opt  bool // a failure is the caller's to judge, not an error of the batch
}

func sc(what string, nr uintptr, args ...uint64) sysCall {
	c := sysCall{what: what, nr: nr}
	copy(c.args[:], args)
	return c
}

// batchCode is the machine code that makes calls one after the other,
// storing each result at results+8*i, and ends in int3.
func batchCode(calls []sysCall, results uint64) []byte {
	var b []byte
	imm := func(prefix ...byte) func(v uint64) {
		return func(v uint64) {
			b = append(b, prefix...)
			b = binary.LittleEndian.AppendUint64(b, v)
		}
	}
	movRax, movRdi, movRsi, movRdx := imm(0x48, 0xb8), imm(0x48, 0xbf), imm(0x48, 0xbe), imm(0x48, 0xba)
	movR10, movR8, movR9 := imm(0x49, 0xba), imm(0x49, 0xb8), imm(0x49, 0xb9)
	storeRax := imm(0x48, 0xa3) // mov [moffs64], rax
	for i, c := range calls {
		movRax(uint64(c.nr))
		movRdi(c.args[0])
		movRsi(c.args[1])
		movRdx(c.args[2])
		movR10(c.args[3])
		movR8(c.args[4])
		movR9(c.args[5])
		b = append(b, 0x0f, 0x05) // syscall
		storeRax(results + 8*uint64(i))
	}
	return append(b, 0xcc) // int3
}

// batch runs many independent system calls in one round trip: it writes a
// little code into the tracee at code (a writable, executable scratch
// area), lets the tracee run it up to its final int3, and reads each
// result back from results. It returns the first error, naming its call.
func (t *tracee) batch(mem *os.File, code, results uint64, calls []sysCall) ([]uint64, error) {
	if len(calls) == 0 {
		return nil, nil
	}
	prog := batchCode(calls, results)
	if _, err := mem.WriteAt(prog, int64(code)); err != nil {
		return nil, fmt.Errorf("writing syscall batch into %d: %w", t.pid, err)
	}
	r := t.base
	r.Rip = code
	r.Orig_rax = ^uint64(0)
	if err := setRegs(t.pid, &r); err != nil {
		return nil, err
	}
	end := code + uint64(len(prog))
	sig := 0
	for {
		if err := ptrace(unix.PTRACE_CONT, t.pid, 0, uintptr(sig)); err != nil {
			return nil, fmt.Errorf("ptrace CONT %d: %w", t.pid, err)
		}
		ws, err := waitStop(t.pid)
		if err != nil {
			return nil, err
		}
		if !ws.Stopped() {
			return nil, fmt.Errorf("process %d died during injected system calls (%s)", t.pid, describeWait(ws))
		}
		s := ws.StopSignal()
		if s == unix.SIGTRAP && ws.TrapCause() <= 0 {
			break
		}
		if s == unix.SIGSEGV || s == unix.SIGBUS || s == unix.SIGILL {
			cur, _ := getRegs(t.pid)
			return nil, fmt.Errorf("injected system calls faulted in %d (%v at %#x)", t.pid, s, cur.Rip)
		}
		if uint32(ws)>>16 == 0 { // a signal for the process: keep it for later
			t.pending = append(t.pending, int(s))
		}
	}
	cur, err := getRegs(t.pid)
	if err != nil {
		return nil, err
	}
	if cur.Rip != end {
		return nil, fmt.Errorf("injected system calls in %d stopped at %#x, want %#x", t.pid, cur.Rip, end)
	}
	raw := make([]byte, 8*len(calls))
	if _, err := mem.ReadAt(raw, int64(results)); err != nil {
		return nil, fmt.Errorf("reading syscall results of %d: %w", t.pid, err)
	}
	out := make([]uint64, len(calls))
	var first error
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(raw[8*i:])
		if err := sysErr(out[i]); err != nil && first == nil && !calls[i].opt {
			first = fmt.Errorf("%s in process %d: %w", calls[i].what, t.pid, err)
		}
	}
	return out, first
}
