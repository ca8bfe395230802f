package vmadump

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// RestoreOptions tune Restore.
type RestoreOptions struct {
	// Stdin, Stdout and Stderr become fds 0-2 of the restored process
	// where the image has a pipe, socket or terminal there. nil means the
	// restorer's own.
	Stdin, Stdout, Stderr *os.File
	// Detach puts the process in a session of its own and lets go of it:
	// Process.Wait is then unavailable.
	Detach bool
	// Spawn, when set, starts the restore's stub for the caller, who may
	// give it what its processes get (credentials, a process group, a
	// parent-death signal: any SysProcAttr but Ptrace, which must stay).
	// It must call cmd.Start and then traced, which rebuilds the process,
	// on the same OS thread, locked from before the Start until traced
	// returns: the stub asks to be traced (PTRACE_TRACEME), which makes
	// the thread that forked it its tracer, and ptrace(2) takes requests
	// from the tracer thread only. If that thread ends while traced runs,
	// the stub is killed (PTRACE_O_EXITKILL); once traced returns the
	// process is let go, but its parent is still that thread, which its
	// Pdeathsig, if set, follows. Spawn returns Start's error or traced's;
	// if the stub started, Restore kills it on error. Without Spawn,
	// Restore starts the stub itself, locked to the calling thread.
	Spawn func(cmd *exec.Cmd, traced func() error) error
}

// Process is a restored, running process.
type Process struct {
	Pid  int
	Meta *Meta
	proc *os.Process
}

// Wait waits for the restored process to end (not after Detach).
func (p *Process) Wait() (*os.ProcessState, error) {
	if p.proc == nil {
		return nil, errors.New("restored process was detached")
	}
	return p.proc.Wait()
}

// Signal sends sig to the restored process.
func (p *Process) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("cannot send %v", sig)
	}
	return syscall.Kill(p.Pid, s)
}

// ErrVDSO is wrapped by the error for an image made on a host whose vDSO
// differs from this one's: glibc keeps pointers into it, so it cannot be
// swapped for another.
var ErrVDSO = errors.New("vDSO differs from the dumping host's")

// ErrFile is wrapped by the error for a referenced file that is missing or
// not the one the image was made with. The error wraps the errno too
// (ENOENT, EACCES... from the open; ESTALE for a file that changed), so
// the one who asked for the move learns which.
var ErrFile = errors.New("referenced file missing or changed")

// hostKernel describes this host's special mappings, once.
var hostKernel = sync.OnceValues(func() (*kernelInfo, error) {
	vdso, _, err := ownVDSO()
	if err != nil {
		return nil, err
	}
	off, err := syscallOffset(vdso)
	if err != nil {
		return nil, err
	}
	k := &kernelInfo{vdsoCRC: crc32.Checksum(vdso, castagnoli), sysOff: off, sizes: map[string]uint64{}}
	maps, err := readMaps(os.Getpid())
	if err != nil {
		return nil, err
	}
	for _, mp := range maps {
		if kind, ok := specialKinds[mp.path]; ok {
			k.sizes[kind] = mp.size()
		}
	}
	return k, nil
})

type kernelInfo struct {
	vdsoCRC uint32
	sysOff  uint64            // offset of a syscall instruction in [vdso]
	sizes   map[string]uint64 // kind -> size of [vdso], [vvar], [vvar_vclock]
}

var specialKinds = map[string]string{"[vdso]": KindVDSO, "[vvar]": KindVVar, "[vvar_vclock]": KindVVarClock}

// checkHost refuses an image this host cannot give the same kernel mappings.
func checkHost(m *Meta) error {
	k, err := hostKernel()
	if err != nil {
		return err
	}
	if k.vdsoCRC != m.VDSOCRC {
		return fmt.Errorf("%w (image from %s, kernel %s): restore on a node running the same kernel on the same kind of CPU", ErrVDSO, m.Host, m.Kernel)
	}
	seen := map[string]bool{}
	for _, r := range m.Regions {
		if r.Travel != TravelKernel {
			continue
		}
		seen[r.Kind] = true
		if k.sizes[r.Kind] != r.Size() {
			return fmt.Errorf("%w: [%s] is %d bytes here, %d in the image", ErrVDSO, r.Kind, k.sizes[r.Kind], r.Size())
		}
	}
	for kind := range k.sizes {
		if !seen[kind] {
			return fmt.Errorf("%w: the image has no [%s]", ErrVDSO, kind)
		}
	}
	return nil
}

// checkFiles verifies every file the image refers to, before any memory is
// laid out, and names the first one that is missing or different.
func checkFiles(m *Meta) error {
	for _, r := range m.Regions {
		if r.Travel != TravelFile {
			continue
		}
		id, err := fileIdentity(r.Path, r.Offset, r.Size())
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrFile, r.Path, err)
		}
		switch {
		case id.Size != r.File.Size:
			return fmt.Errorf("%w: %s is not the file that was mapped: %d bytes, was %d (modified %s, was %s): %w",
				ErrFile, r.Path, id.Size, r.File.Size, id.Mtime.Format(time.RFC3339), r.File.Mtime.Format(time.RFC3339), unix.ESTALE)
		case id.CRC != r.File.CRC:
			return fmt.Errorf("%w: %s is not the file that was mapped: its bytes at offset %#x differ (modified %s, was %s): %w",
				ErrFile, r.Path, r.Offset, id.Mtime.Format(time.RFC3339), r.File.Mtime.Format(time.RFC3339), unix.ESTALE)
		}
	}
	return nil
}

// Restore reads an image from r and recreates the process, which is left
// running. The image is consumed as a stream, record by record.
func Restore(r io.Reader, opts RestoreOptions) (*Process, error) {
	pt := newPhaseTimer("restore")
	stub, err := stubExecutable()
	if err != nil {
		return nil, err
	}
	// The stub starts while the image's metadata is still on its way: for a
	// small process that is a good part of a migration's latency.
	cmd := &exec.Cmd{
		Path:        stub,
		Args:        []string{"vmadump-stub"},
		Stdin:       orFile(opts.Stdin, os.Stdin),
		Stdout:      orFile(opts.Stdout, os.Stdout),
		Stderr:      orFile(opts.Stderr, os.Stderr),
		SysProcAttr: &syscall.SysProcAttr{Ptrace: true, Setsid: opts.Detach},
	}
	spawn := opts.Spawn
	if spawn == nil {
		spawn = spawnLocked
	}
	var rs *restorer
	err = spawn(cmd, func() error {
		pt.mark("start stub")
		rs = &restorer{pid: cmd.Process.Pid, pt: pt}
		return rs.restore(r)
	})
	if err == nil && rs == nil {
		err = errors.New("restore: Spawn returned without tracing the stub")
	}
	if err != nil {
		if cmd.Process == nil {
			return nil, fmt.Errorf("starting restore stub: %w", err)
		}
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		return nil, err
	}
	p := &Process{Pid: rs.pid, Meta: rs.m, proc: cmd.Process}
	if opts.Detach {
		_ = cmd.Process.Release()
		p.proc = nil
	}
	return p, nil
}

// spawnLocked is Restore's own Spawn: the calling thread forks and traces.
func spawnLocked(cmd *exec.Cmd, traced func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		return err
	}
	return traced()
}

// restore rebuilds the image read from r in the stub, on the tracer thread.
func (rs *restorer) restore(r io.Reader) error {
	if err := rs.attach(); err != nil {
		return err
	}
	ir, err := openImage(r)
	if err != nil {
		return err
	}
	rs.pt.mark("meta")
	rs.m, rs.ir = ir.Meta, ir
	if err := checkHost(rs.m); err != nil {
		return err
	}
	if err := checkFiles(rs.m); err != nil {
		return err
	}
	rs.pt.mark("checks")
	return rs.run()
}

func orFile(f, def *os.File) *os.File {
	if f != nil {
		return f
	}
	return def
}

type restorer struct {
	pid     int
	m       *Meta
	ir      *imageReader
	t       *tracee
	mem     *os.File
	scratch uint64
	dataOff uint64 // next free byte of the scratch data (alloc)
	pt      *phaseTimer

	// The page reader (startReader).
	free chan []byte
	work chan restoreBatch
	done chan struct{}
}

// The scratch area in the target: data for system calls in its first
// half, then the code of a syscall batch, then the batch's results.
const (
	scratchSize   = 16 * pageSize
	scratchCode   = 8 * pageSize
	scratchResult = 12 * pageSize
	maxBatch      = 150 // calls per batch: their code fits in 4 pages
)

// attach waits for the stub to stop at its first instruction.
func (rs *restorer) attach() error {
	ws, err := waitStop(rs.pid)
	if err != nil {
		return err
	}
	if !ws.Stopped() || ws.StopSignal() != unix.SIGTRAP {
		return fmt.Errorf("restore stub %d: unexpected %s", rs.pid, describeWait(ws))
	}
	return exitKill(rs.pid)
}

func (rs *restorer) run() error {
	pid := rs.pid
	regs, err := getRegs(pid)
	if err != nil {
		return err
	}
	xs, err := getXState(pid)
	if err != nil {
		return err
	}
	if len(rs.m.XState) != len(xs) {
		return fmt.Errorf("xsave area is %d bytes in the image, %d here: a different CPU", len(rs.m.XState), len(xs))
	}
	if rs.mem, err = os.OpenFile(fmt.Sprintf("/proc/%d/mem", pid), os.O_RDWR, 0); err != nil {
		return fmt.Errorf("opening memory of %d: %w", pid, err)
	}
	defer rs.mem.Close()
	k, _ := hostKernel()
	maps, err := readMaps(pid)
	if err != nil {
		return err
	}
	special := map[string]mapping{}
	for _, mp := range maps {
		if kind, ok := specialKinds[mp.path]; ok {
			special[kind] = mp
		}
	}
	rs.t = &tracee{pid: pid, sysAddr: special[KindVDSO].start + k.sysOff, base: regs}
	rs.startReader()
	defer close(rs.done)
	steps := []func() error{
		func() error { return rs.mapScratch(maps) },
		func() error { return rs.clear(maps, special) },
		rs.mapRegions, rs.pages, rs.files, rs.mmState, rs.signals, rs.finish,
	}
	for i, s := range steps {
		if err := s(); err != nil {
			return err
		}
		rs.pt.mark([]string{"scratch", "clear", "map", "pages", "files", "mm", "signals", "finish"}[i])
	}
	return nil
}

func overlaps(a0, a1, b0, b1 uint64) bool { return a0 < b1 && b0 < a1 }

// clear unmaps everything of the stub but its kernel mappings and the
// scratch area, and puts [vvar], [vvar_vclock] and [vdso] where the image
// had them (glibc caches pointers into the vDSO), in one batch. Each is
// moved whole; if a destination overlaps a current position, all go
// through a free area first.
func (rs *restorer) clear(maps []mapping, cur map[string]mapping) error {
	keep := []mapping{{start: rs.scratch, end: rs.scratch + scratchSize}}
	for _, mp := range maps {
		if _, ok := specialKinds[mp.path]; ok {
			keep = append(keep, mp)
		}
	}
	sort.Slice(keep, func(i, j int) bool { return keep[i].start < keep[j].start })
	var calls []sysCall
	from := uint64(0)
	for _, mp := range append(keep, mapping{start: userTop - pageSize, end: userTop}) { // TASK_SIZE
		if mp.start > from {
			calls = append(calls, sc("munmap stub", unix.SYS_MUNMAP, from, mp.start-from))
		}
		from = max(from, mp.end)
	}
	nUnmap := len(calls)

	type move struct {
		kind           string
		from, to, size uint64
	}
	var moves []move
	for _, r := range rs.m.Regions {
		if r.Travel == TravelKernel {
			moves = append(moves, move{r.Kind, cur[r.Kind].start, r.Start, r.Size()})
		}
	}
	clash := false
	var lo uint64 = userTop
	for _, a := range moves {
		lo = min(lo, a.from)
		for _, b := range moves {
			if a.to != a.from && overlaps(a.to, a.to+a.size, b.from, b.from+b.size) {
				clash = true
			}
		}
	}
	var targets []uint64
	add := func(mv *move, to uint64) {
		if mv.from != to {
			calls = append(calls, sc("mremap ["+mv.kind+"]", unix.SYS_MREMAP, mv.from, mv.size, mv.size, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, to))
			targets = append(targets, to)
			mv.from = to
		}
	}
	if clash || detourSpecials {
		tmp := rs.freeArea(1<<30, keep)
		for i := range moves {
			add(&moves[i], tmp+moves[i].from-lo)
		}
	}
	for i := range moves {
		add(&moves[i], moves[i].to)
	}
	res, err := rs.runBatch(calls)
	if err != nil {
		return err
	}
	for i, to := range targets {
		if got := res[nUnmap+i]; got != to {
			return fmt.Errorf("%s to %#x landed at %#x", calls[nUnmap+i].what, to, got)
		}
	}
	// Single-stepped calls go through the vDSO's syscall instruction.
	rs.t.sysAddr += rs.vdsoAt() - cur[KindVDSO].start
	return nil
}

// detourSpecials makes clear always move the kernel mappings through a
// free area, as it must when they clash; a test sets it.
var detourSpecials = false

// vdsoAt is where the image has [vdso].
func (rs *restorer) vdsoAt() uint64 {
	for _, r := range rs.m.Regions {
		if r.Kind == KindVDSO {
			return r.Start
		}
	}
	return 0
}

// freeArea returns a 1 GiB-aligned address with size free bytes, clear
// of every region of the image and of the given mappings.
func (rs *restorer) freeArea(size uint64, avoid []mapping) uint64 {
	for a := uint64(0x200000000000); a+size < userTop; a += 1 << 30 {
		free := true
		for _, r := range rs.m.Regions {
			if overlaps(a, a+size, r.Start, r.End) {
				free = false
				break
			}
		}
		for _, m := range avoid {
			if overlaps(a, a+size, m.start, m.end) {
				free = false
			}
		}
		if free {
			return a
		}
	}
	return 0x10000000
}

func (rs *restorer) mapScratch(stub []mapping) error {
	a := rs.freeArea(scratchSize, stub)
	got, err := rs.t.check("mmap scratch", unix.SYS_MMAP, a, scratchSize, unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE, ^uint64(0), 0)
	if err != nil {
		return err
	}
	rs.scratch = got
	return nil
}

// alloc writes b into the data half of the scratch area, after what the
// previous allocs since the last reset put there, and returns its address.
func (rs *restorer) alloc(b []byte) (uint64, error) {
	a, err := rs.put(rs.dataOff, b)
	rs.dataOff += (uint64(len(b)) + 7) &^ 7
	return a, err
}

// runBatch runs calls in the target, maxBatch at a time, and frees the
// data allocated for them.
func (rs *restorer) runBatch(calls []sysCall) ([]uint64, error) {
	defer func() { rs.dataOff = 0 }()
	var out []uint64
	for len(calls) > 0 {
		n := min(len(calls), maxBatch)
		res, err := rs.t.batch(rs.mem, rs.scratch+scratchCode, rs.scratch+scratchResult, calls[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, res...)
		calls = calls[n:]
	}
	return out, nil
}

// put writes b into the scratch area at off and returns its address.
func (rs *restorer) put(off uint64, b []byte) (uint64, error) {
	if off+uint64(len(b)) > scratchCode {
		return 0, fmt.Errorf("%d bytes do not fit the scratch area", len(b))
	}
	if _, err := rs.mem.WriteAt(b, int64(rs.scratch+off)); err != nil {
		return 0, fmt.Errorf("writing scratch of %d: %w", rs.pid, err)
	}
	return rs.scratch + off, nil
}

func cstring(s string) []byte { return append([]byte(s), 0) }

// open opens path inside the target and returns the new fd.
func (rs *restorer) open(path string, flags int) (uint64, error) {
	a, err := rs.put(0, cstring(path))
	if err != nil {
		return 0, err
	}
	fd, err := rs.t.check("open "+path, unix.SYS_OPENAT, atFdcwd, a, uint64(flags), 0)
	return fd, err
}

func (rs *restorer) mapRegions() error {
	fds := map[string]uint64{}
	var calls []sysCall
	for _, r := range rs.m.Regions {
		if r.Travel == TravelKernel {
			continue
		}
		flags := uint64(unix.MAP_FIXED | unix.MAP_PRIVATE)
		fd, off := ^uint64(0), uint64(0)
		switch {
		case r.Kind == KindSharedAnon:
			flags = unix.MAP_FIXED | unix.MAP_SHARED | unix.MAP_ANONYMOUS
		case r.Travel == TravelFile:
			if r.Kind == KindSharedFile {
				flags = unix.MAP_FIXED | unix.MAP_SHARED
			}
			mode := unix.O_RDONLY
			if r.Kind == KindSharedFile && r.Perms[1] == 'w' {
				mode = unix.O_RDWR
			}
			key := fmt.Sprint(mode, r.Path)
			f, ok := fds[key]
			if !ok {
				var err error
				if f, err = rs.open(r.Path, mode|unix.O_CLOEXEC); err != nil {
					return fmt.Errorf("%w: %w", ErrFile, err)
				}
				fds[key] = f
			}
			fd, off = f, r.Offset
		case r.Kind == KindStack:
			flags |= unix.MAP_ANONYMOUS | unix.MAP_GROWSDOWN
		default:
			flags |= unix.MAP_ANONYMOUS
		}
		calls = append(calls, sc(fmt.Sprintf("mmap %#x-%#x %s", r.Start, r.End, r.Path), unix.SYS_MMAP,
			r.Start, r.Size(), uint64(r.prot()), flags, fd, off))
	}
	for _, f := range fds {
		calls = append(calls, sc("close", unix.SYS_CLOSE, f))
	}
	_, err := rs.runBatch(calls)
	return err
}

// pageBatch is one decoded page record, or the error that ended reading.
type restoreBatch struct {
	runs []pageRun
	data []byte
	buf  []byte
	err  error
}

const readDepth = 3

// startReader starts the goroutine that reads and checks the page records,
// each decoded straight into one of a few rotating buffers. It starts as
// soon as the metadata is in, so that the first records arrive while the
// process is still being laid out.
func (rs *restorer) startReader() {
	rs.free = make(chan []byte, readDepth)
	for i := 0; i < readDepth; i++ {
		rs.free <- getBuf()[:0]
	}
	rs.work = make(chan restoreBatch, readDepth)
	rs.done = make(chan struct{})
	go func() {
		defer close(rs.work)
		for {
			var buf []byte
			select {
			case buf = <-rs.free:
			case <-rs.done:
				return
			}
			rs.ir.d.buf = buf
			runs, data, err := rs.ir.nextPages()
			if err == io.EOF {
				rs.free <- rs.ir.d.buf
				return
			}
			select {
			case rs.work <- restoreBatch{runs, data, rs.ir.d.buf, err}:
			case <-rs.done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
}

// pages writes the records the reader hands over into the target's memory
// (process_vm_writev needs no ptrace thread, but it is this one anyway).
func (rs *restorer) pages() error {
	var spans []span
	for b := range rs.work {
		if b.err != nil {
			return b.err
		}
		spans = spans[:0]
		for _, r := range b.runs {
			spans = append(spans, span{r.addr, r.npages * pageSize})
		}
		if err := remoteIO(rs.pid, rs.mem, b.data, spans, true); err != nil {
			return err
		}
		rs.free <- b.buf
	}
	for i := 0; i < readDepth; i++ {
		putBuf(<-rs.free)
	}
	return nil
}

// files recreates the descriptors: regular files and directories are
// reopened at the same number, flags and offset; stdio ones are the stub's
// (the restorer's); restorer ones dups of the stub's 0-2; memfd ones
// created with their content; everything else is closed.
func (rs *restorer) files() error {
	t := rs.t
	have := map[int]FD{}
	top := 2
	for _, f := range rs.m.FDs {
		have[f.FD] = f
		top = max(top, f.FD)
	}
	// The stub's 0-2 that restorer fds dup are set aside first, above
	// every fd of the image, since 0-2 themselves may be replaced.
	aside := map[int]uint64{}
	for _, f := range rs.m.FDs {
		if _, ok := aside[f.From]; f.Kind != FDRestorer || ok {
			continue
		}
		fd, err := t.check(fmt.Sprintf("fcntl F_DUPFD_CLOEXEC %d", f.From), unix.SYS_FCNTL, uint64(f.From), unix.F_DUPFD_CLOEXEC, uint64(top+1))
		if err != nil {
			return err
		}
		aside[f.From] = fd
	}
	for fd := 0; fd <= 2; fd++ {
		if f, ok := have[fd]; !ok || f.Kind != FDStdio {
			if _, err := t.check("close stdio", unix.SYS_CLOSE, uint64(fd)); err != nil && !errors.Is(err, unix.EBADF) {
				return err
			}
		}
	}
	for _, f := range rs.m.FDs {
		if f.Kind != FDRestorer {
			continue
		}
		if _, err := t.check(fmt.Sprintf("dup3 fd %d", f.FD), unix.SYS_DUP3, aside[f.From], uint64(f.FD), uint64(f.Flags&unix.O_CLOEXEC)); err != nil {
			return err
		}
	}
	for _, fd := range aside {
		if _, err := t.check("close", unix.SYS_CLOSE, fd); err != nil {
			return err
		}
	}
	for _, f := range rs.m.FDs {
		if f.Kind == FDMem {
			if err := rs.memFD(f); err != nil {
				return err
			}
		}
	}
	for _, f := range rs.m.FDs {
		if f.Kind != FDFile && f.Kind != FDDir {
			continue
		}
		flags := f.Flags &^ (unix.O_CREAT | unix.O_TRUNC | unix.O_EXCL | unix.O_CLOEXEC | unix.O_NOCTTY)
		got, err := rs.open(f.Path, flags|unix.O_NOCTTY)
		if err != nil {
			return fmt.Errorf("%w: fd %d: %w", ErrFile, f.FD, err)
		}
		cloexec := uint64(f.Flags & unix.O_CLOEXEC)
		if got != uint64(f.FD) {
			if _, err := t.check("dup3", unix.SYS_DUP3, got, uint64(f.FD), cloexec); err != nil {
				return err
			}
			if _, err := t.check("close", unix.SYS_CLOSE, got); err != nil {
				return err
			}
		} else if cloexec != 0 {
			if _, err := t.check("fcntl FD_CLOEXEC", unix.SYS_FCNTL, got, unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
				return err
			}
		}
		if f.Pos != 0 {
			if _, err := t.check(fmt.Sprintf("lseek fd %d", f.FD), unix.SYS_LSEEK, uint64(f.FD), uint64(f.Pos), 0); err != nil && f.Kind == FDFile {
				return err
			}
		}
	}
	return nil
}

// memFD creates f's memfd in the target, writes its content and puts it
// at its number.
func (rs *restorer) memFD(f FD) error {
	t := rs.t
	name, err := rs.put(0, cstring(fmt.Sprintf("vmadump-fd%d", f.FD)))
	if err != nil {
		return err
	}
	got, err := t.check("memfd_create", unix.SYS_MEMFD_CREATE, name, unix.MFD_CLOEXEC)
	if err != nil {
		return err
	}
	const chunk = scratchCode / 2
	for off := 0; off < len(f.Data); off += chunk {
		b := f.Data[off:min(off+chunk, len(f.Data))]
		a, err := rs.put(0, b)
		if err != nil {
			return err
		}
		n, err := t.check("pwrite memfd", unix.SYS_PWRITE64, got, a, uint64(len(b)), uint64(off))
		if err != nil {
			return err
		}
		if n != uint64(len(b)) {
			return fmt.Errorf("pwrite memfd fd %d: %d of %d bytes", f.FD, n, len(b))
		}
	}
	cloexec := uint64(f.Flags & unix.O_CLOEXEC)
	if got == uint64(f.FD) {
		if cloexec == 0 {
			_, err = t.check("fcntl F_SETFD", unix.SYS_FCNTL, got, unix.F_SETFD, 0)
		}
		return err
	}
	if _, err := t.check(fmt.Sprintf("dup3 memfd to %d", f.FD), unix.SYS_DUP3, got, uint64(f.FD), cloexec); err != nil {
		return err
	}
	_, err = t.check("close", unix.SYS_CLOSE, got)
	return err
}

// mmState sets cwd, the mm layout (brk, args, env, auxv, exe) and comm.
func (rs *restorer) mmState() error {
	m := rs.m
	exeFd := ^uint32(0)
	if m.Exe != "" && m.ExeFile != nil {
		if fi, err := os.Stat(m.Exe); err == nil && fi.Mode().IsRegular() && fi.Size() == m.ExeFile.Size {
			fd, err := rs.open(m.Exe, unix.O_RDONLY|unix.O_CLOEXEC)
			if err != nil {
				return err
			}
			exeFd = uint32(fd)
		}
	}
	var calls []sysCall
	// The stub inherited the restorer's cwd: often already the right one.
	if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", rs.pid)); m.Cwd != "" && cwd != m.Cwd {
		a, err := rs.alloc(cstring(m.Cwd))
		if err != nil {
			return err
		}
		calls = append(calls, sc("chdir "+m.Cwd, unix.SYS_CHDIR, a))
	}
	auxv, err := rs.alloc(m.Auxv)
	if err != nil {
		return err
	}
	mm := m.MM
	var b [104]byte
	le := binary.LittleEndian
	for i, v := range []uint64{mm.StartCode, mm.EndCode, mm.StartData, mm.EndData, mm.StartBrk, mm.Brk,
		mm.StartStack, mm.ArgStart, mm.ArgEnd, mm.EnvStart, mm.EnvEnd, auxv} {
		le.PutUint64(b[8*i:], v)
	}
	le.PutUint32(b[96:], uint32(len(m.Auxv)))
	le.PutUint32(b[100:], exeFd)
	a, err := rs.alloc(b[:])
	if err != nil {
		return err
	}
	calls = append(calls, sc("prctl PR_SET_MM_MAP", unix.SYS_PRCTL, unix.PR_SET_MM, unix.PR_SET_MM_MAP, a, uint64(len(b))))
	if exeFd != ^uint32(0) {
		calls = append(calls, sc("close exe", unix.SYS_CLOSE, uint64(exeFd)))
	}
	name, err := rs.alloc(cstring(m.Comm))
	if err != nil {
		return err
	}
	calls = append(calls, sc("prctl PR_SET_NAME", unix.SYS_PRCTL, unix.PR_SET_NAME, name))
	_, err = rs.runBatch(calls)
	if errors.Is(err, unix.EPERM) && exeFd != ^uint32(0) {
		// Changing exe needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE; a
		// user restoring their own process keeps the stub as exe.
		le.PutUint32(b[100:], ^uint32(0))
		if _, err = rs.put(0, b[:]); err != nil {
			return err
		}
		_, err = rs.t.check("prctl PR_SET_MM_MAP", unix.SYS_PRCTL, unix.PR_SET_MM, unix.PR_SET_MM_MAP, rs.scratch, uint64(len(b)))
	}
	return err
}

// signals restores the handlers, umask, per-thread state, timers,
// personality and the rseq registration, in one batch. Signals the stub
// inherited as ignored from the restorer (exec keeps SIG_IGN) go back to
// their default unless the image says otherwise.
func (rs *restorer) signals() error {
	st, err := readStatus(rs.pid)
	if err != nil {
		return err
	}
	var calls []sysCall
	add := func(what string, nr uintptr, data []byte, args ...uint64) error {
		if data != nil {
			a, err := rs.alloc(data)
			if err != nil {
				return err
			}
			args = append([]uint64{args[0], a}, args[1:]...)
		}
		calls = append(calls, sc(what, nr, args...))
		return nil
	}
	words := func(v ...uint64) []byte {
		b := make([]byte, 8*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint64(b[8*i:], x)
		}
		return b
	}
	set := map[int]bool{}
	for _, s := range rs.m.Sigaction {
		set[s.Sig] = true
	}
	for sig := 1; sig <= 64; sig++ {
		if st.sigIgn&(1<<(sig-1)) != 0 && !set[sig] {
			if err := add(fmt.Sprintf("rt_sigaction %d SIG_DFL", sig), unix.SYS_RT_SIGACTION, make([]byte, 32), uint64(sig), 0, 8); err != nil {
				return err
			}
		}
	}
	for _, s := range rs.m.Sigaction {
		if err := add(fmt.Sprintf("rt_sigaction %d", s.Sig), unix.SYS_RT_SIGACTION, words(s.Handler, s.Flags, s.Restorer, s.Mask), uint64(s.Sig), 0, 8); err != nil {
			return err
		}
	}
	if st.umask != rs.m.Umask&0o777 {
		calls = append(calls, sc("umask", unix.SYS_UMASK, uint64(rs.m.Umask&0o777)))
	}
	th := rs.m.Thread
	const ssDisable, ssOnStack = 2, 1
	if th.AltStackFlags&ssDisable == 0 && th.AltStackSize > 0 {
		ss := words(th.AltStackSP, uint64(uint32(th.AltStackFlags&^ssOnStack)), th.AltStackSize)
		a, err := rs.alloc(ss)
		if err != nil {
			return err
		}
		calls = append(calls, sc("sigaltstack", unix.SYS_SIGALTSTACK, a, 0))
	}
	if th.TidAddress != 0 {
		calls = append(calls, sc("set_tid_address", unix.SYS_SET_TID_ADDRESS, th.TidAddress))
	}
	if th.RobustList != 0 {
		calls = append(calls, sc("set_robust_list", unix.SYS_SET_ROBUST_LIST, th.RobustList, th.RobustLen))
	}
	for w, it := range th.Itimers {
		if it != [4]int64{} {
			v := words(uint64(it[0]), uint64(it[1]), uint64(it[2]), uint64(it[3]))
			if err := add("setitimer", unix.SYS_SETITIMER, v, uint64(w), 0); err != nil {
				return err
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/personality", rs.pid)); err != nil || strings.TrimSpace(string(b)) != fmt.Sprintf("%08x", th.Personality) {
		calls = append(calls, sc("personality", unix.SYS_PERSONALITY, uint64(th.Personality)))
	}
	if r := rs.m.Rseq; r != nil {
		calls = append(calls, sc("rseq", unix.SYS_RSEQ, r.Addr, uint64(r.Size), 0, uint64(r.Sig)))
	}
	_, err = rs.runBatch(calls)
	return err
}

// finish drops the scratch area, loads the registers and lets go.
func (rs *restorer) finish() error {
	if _, err := rs.t.check("munmap scratch", unix.SYS_MUNMAP, rs.scratch, scratchSize); err != nil {
		return err
	}
	regs := rs.m.Regs
	if err := setRegs(rs.pid, &regs); err != nil {
		return err
	}
	if err := setXState(rs.pid, rs.m.XState); err != nil {
		return err
	}
	if err := setSigmask(rs.pid, rs.m.SigMask); err != nil {
		return err
	}
	if err := ptrace(unix.PTRACE_DETACH, rs.pid, 0, 0); err != nil {
		return fmt.Errorf("ptrace DETACH %d: %w", rs.pid, err)
	}
	for _, s := range append(rs.m.Pending, rs.t.pending...) {
		_ = unix.Kill(rs.pid, unix.Signal(s))
	}
	return nil
}

// atFdcwd is AT_FDCWD (-100) as a register value.
const atFdcwd = ^uint64(99)
