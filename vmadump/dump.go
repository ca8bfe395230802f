package vmadump

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DumpOptions tune Dump.
type DumpOptions struct {
	// Flags choose which file-backed regions travel in the image.
	Flags Flags
	// Leave keeps the process running after the dump; otherwise it is
	// killed once the image is complete (BProc's migration semantics).
	// On any error the process is left running.
	Leave bool
	// Stdio makes fd (any number, open or not) a dup of the restorer's
	// stdin, stdout or stderr (0, 1, 2) on restore, whatever it is now:
	// for I/O forwarding beyond fds 0-2. nil keeps the rule for 0-2.
	Stdio map[int]int
	// Mem makes fd a memfd holding the given bytes at offset 0 on
	// restore, readable and writable, with the fd's close-on-exec flag
	// (e.g. what a read of a ctl file must give the restored process).
	Mem map[int][]byte
}

// check refuses options that cannot be recorded.
func (o DumpOptions) check() error {
	for fd, from := range o.Stdio {
		if fd < 0 || fd > 1<<20 || from < 0 || from > 2 {
			return fmt.Errorf("dump option Stdio %d -> %d: want fd >= 0 -> 0, 1 or 2: %w", fd, from, unix.EINVAL)
		}
		if _, ok := o.Mem[fd]; ok {
			return fmt.Errorf("dump options: fd %d in both Stdio and Mem: %w", fd, unix.EINVAL)
		}
	}
	for fd, b := range o.Mem {
		if fd < 0 || fd > 1<<20 || len(b) > maxMemFD {
			return fmt.Errorf("dump option Mem fd %d (%d bytes): want fd >= 0 and at most %d bytes: %w", fd, len(b), maxMemFD, unix.EINVAL)
		}
	}
	return nil
}

// ErrThreaded is returned for a multi-threaded process.
var ErrThreaded = errors.New("multi-threaded processes cannot be dumped")

// Kernel return codes that ask for a syscall restart (include/linux/errno.h).
const (
	errRestartSys    = 512
	errRestartNoIntr = 513
	errRestartNoHand = 514
	errRestartBlock  = 516
)

// restartRegs rewrites the registers of a process stopped inside a system
// call so that, resumed elsewhere, it behaves as the kernel would have:
// the call is re-issued, or fails with EINTR where Linux cannot restart it
// (ERESTART_RESTARTBLOCK, e.g. a relative nanosleep).
func restartRegs(r *unix.PtraceRegs) {
	if int64(r.Orig_rax) >= 0 {
		switch -int64(r.Rax) {
		case errRestartSys, errRestartNoIntr, errRestartNoHand:
			r.Rax = r.Orig_rax
			r.Rip -= 2
		case errRestartBlock:
			r.Rax = uint64(^uint64(unix.EINTR) + 1) // -EINTR
		}
	}
	r.Orig_rax = ^uint64(0)
}

func threadCheck(pid int) error {
	st, err := readStatus(pid)
	if err != nil {
		return fmt.Errorf("process %d: %w", pid, err)
	}
	if st.threads > 1 {
		return fmt.Errorf("process %d has %d threads: %w", pid, st.threads, ErrThreaded)
	}
	return nil
}

// Dump writes an image of process pid to w. The process is stopped with
// ptrace for the duration, then killed (or left running with opts.Leave).
func Dump(pid int, w io.Writer, opts DumpOptions) (err error) {
	if pid <= 0 || pid == os.Getpid() {
		return fmt.Errorf("cannot dump process %d", pid)
	}
	if err := opts.check(); err != nil {
		return err
	}
	if err := threadCheck(pid); err != nil {
		return err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	if err := ptrace(ptraceSeize, pid, 0, 0); err != nil {
		return fmt.Errorf("ptrace SEIZE %d: %w", pid, err)
	}
	pt := newPhaseTimer("dump")
	d := &dumper{pid: pid, opts: opts}
	defer func() {
		if err != nil || opts.Leave {
			d.release()
		}
	}()
	if err := d.stop(); err != nil {
		return err
	}
	pt.mark("stop")
	d.pt = pt
	if err := d.write(w); err != nil {
		return err
	}
	if !opts.Leave {
		d.kill()
	}
	pt.mark("end")
	return nil
}

// write checks, gathers and writes the image of the stopped process.
func (d *dumper) write(w io.Writer) error {
	if d.pt == nil {
		d.pt = newPhaseTimer("dump")
	}
	pt := d.pt
	if err := threadCheck(d.pid); err != nil {
		return err
	}
	if err := d.gather(); err != nil {
		return err
	}
	pt.mark("gather")
	enc := &encoder{w: w}
	if err := enc.header(); err != nil {
		return err
	}
	if err := enc.meta(d.meta); err != nil {
		return err
	}
	pt.mark("meta")
	if err := d.pages(enc); err != nil {
		return err
	}
	pt.mark("pages")
	return enc.end()
}

type dumper struct {
	pt      *phaseTimer
	pid     int
	opts    DumpOptions
	regs    unix.PtraceRegs // as stopped, restored before detaching
	haveReg bool
	pending []int
	meta    *Meta
	maps    []mapping
}

// stop interrupts the process and waits for the ptrace stop. Signals that
// arrive meanwhile are recorded and re-sent later.
func (d *dumper) stop() error {
	if err := ptrace(ptraceInterrupt, d.pid, 0, 0); err != nil {
		return fmt.Errorf("ptrace INTERRUPT %d: %w", d.pid, err)
	}
	return waitEventStop(d.pid, &d.pending, "process")
}

// release puts the registers back and lets the process run on.
func (d *dumper) release() {
	if d.haveReg {
		_ = setRegs(d.pid, &d.regs)
	}
	_ = ptrace(unix.PTRACE_DETACH, d.pid, 0, 0)
	for _, s := range d.pending {
		_ = unix.Kill(d.pid, unix.Signal(s))
	}
}

// kill ends the dumped process. A tracee that is not our child is reaped
// by us as its tracer so that its real parent gets the exit status.
func (d *dumper) kill() {
	_ = unix.Kill(d.pid, unix.SIGKILL)
	st, err := readStatus(d.pid)
	if err == nil && st.ppid == os.Getpid() {
		return // our own child: the caller waits for it
	}
	for {
		ws, err := waitStop(d.pid)
		if err != nil || ws.Exited() || ws.Signaled() {
			return
		}
	}
}

// gather collects everything but the page contents into d.meta.
func (d *dumper) gather() error {
	pid := d.pid
	var err error
	if d.regs, err = getRegs(pid); err != nil {
		return err
	}
	d.haveReg = true
	m := &Meta{Arch: "x86_64", Time: time.Now().UTC(), PID: pid, Flags: d.opts.Flags}
	d.meta = m
	if m.XState, err = getXState(pid); err != nil {
		return err
	}
	if m.SigMask, err = getSigmask(pid); err != nil {
		return err
	}
	if m.Rseq, err = getRseq(pid); err != nil {
		return err
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err == nil {
		m.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	m.Host, _ = os.Hostname()

	maps, err := readMaps(pid)
	if err != nil {
		return err
	}
	var vdso *mapping
	for i := range maps {
		if maps[i].path == "[vdso]" {
			vdso = &maps[i]
		}
	}
	if vdso == nil {
		return fmt.Errorf("process %d has no [vdso]; cannot inject system calls", pid)
	}
	mem, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", pid), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("opening memory of %d: %w", pid, err)
	}
	defer mem.Close()
	vbytes := make([]byte, vdso.size())
	if _, err := mem.ReadAt(vbytes, int64(vdso.start)); err != nil {
		return fmt.Errorf("reading [vdso] of %d: %w", pid, err)
	}
	m.VDSOCRC = crc32.Checksum(vbytes, castagnoli)
	off, err := syscallOffset(vbytes)
	if err != nil {
		return err
	}
	if err := d.inject(vdso.start+off, mem); err != nil {
		return err
	}
	// The process is as it was; read the layout now that the scratch page is gone.
	if d.maps, err = readMaps(pid); err != nil {
		return err
	}
	if err := d.procInfo(); err != nil {
		return err
	}
	m.Regs = d.regs
	restartRegs(&m.Regs)
	m.Pending = d.pending
	return d.regions()
}

// inject runs the system calls that read what ptrace cannot: brk and the
// signal handlers. They write into a scratch page mapped for the purpose.
func (d *dumper) inject(sysAddr uint64, mem *os.File) (err error) {
	t := &tracee{pid: d.pid, sysAddr: sysAddr, base: d.regs}
	defer func() {
		d.pending = append(d.pending, t.pending...)
		if e := setRegs(d.pid, &d.regs); err == nil {
			err = e
		}
	}()
	st, err := readStatus(d.pid)
	if err != nil {
		return err
	}
	// The scratch area: data the calls write at the start, the batch's
	// code from page 1, its results from page 3.
	const scratchLen, codeOff, resOff = 4 * pageSize, pageSize, 3 * pageSize
	scratch, err := t.check("mmap scratch area", unix.SYS_MMAP, 0, scratchLen,
		unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uint64(0), 0)
	if err != nil {
		return err
	}
	defer func() {
		if _, e := t.check("munmap scratch area", unix.SYS_MUNMAP, scratch, scratchLen); err == nil {
			err = e
		}
	}()
	var sigs []int
	for s := 1; s <= 64; s++ {
		if (st.sigCgt|st.sigIgn)&(1<<(s-1)) != 0 && s != int(unix.SIGKILL) && s != int(unix.SIGSTOP) {
			sigs = append(sigs, s)
		}
	}
	// brk, the alternate signal stack, the clear-child-tid address, the
	// interval timers and the handlers: only the process itself can tell.
	calls := []sysCall{
		sc("brk(0)", unix.SYS_BRK, 0),
		sc("sigaltstack", unix.SYS_SIGALTSTACK, 0, scratch+2048),
		{what: "prctl PR_GET_TID_ADDRESS", nr: unix.SYS_PRCTL, args: [6]uint64{unix.PR_GET_TID_ADDRESS, scratch + 2080}, opt: true},
	}
	for w := uint64(0); w < 3; w++ {
		calls = append(calls, sc("getitimer", unix.SYS_GETITIMER, w, scratch+3072+32*w))
	}
	for i, s := range sigs {
		calls = append(calls, sc("rt_sigaction "+strconv.Itoa(s), unix.SYS_RT_SIGACTION, uint64(s), 0, scratch+uint64(32*i), 8))
	}
	res, err := t.batch(mem, scratch+codeOff, scratch+resOff, calls)
	if err != nil {
		return err
	}
	d.meta.MM.Brk = res[0]
	data := make([]byte, 4096)
	if _, err := mem.ReadAt(data, int64(scratch)); err != nil {
		return fmt.Errorf("reading what the injected calls wrote: %w", err)
	}
	th := &d.meta.Thread
	le := binary.LittleEndian
	th.AltStackSP = le.Uint64(data[2048:])
	th.AltStackFlags = int32(le.Uint32(data[2056:]))
	th.AltStackSize = le.Uint64(data[2064:])
	if sysErr(res[2]) == nil {
		th.TidAddress = le.Uint64(data[2080:])
	}
	for i := range 12 {
		th.Itimers[i/4][i%4] = int64(le.Uint64(data[3072+8*i:]))
	}
	for i, s := range sigs {
		b := data[32*i:]
		d.meta.Sigaction = append(d.meta.Sigaction, Sigaction{
			Sig: s, Handler: le.Uint64(b), Flags: le.Uint64(b[8:]),
			Restorer: le.Uint64(b[16:]), Mask: le.Uint64(b[24:]),
		})
	}
	var head, hlen uint64
	if _, _, e := unix.Syscall(unix.SYS_GET_ROBUST_LIST, uintptr(d.pid), uintptr(unsafe.Pointer(&head)), uintptr(unsafe.Pointer(&hlen))); e == 0 {
		th.RobustList, th.RobustLen = head, hlen
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/personality", d.pid)); err == nil {
		p, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 16, 32)
		th.Personality = uint32(p)
	}
	return nil
}

// procInfo reads the layout, names, files and auxv from /proc.
func (d *dumper) procInfo() error {
	pid, m := d.pid, d.meta
	p := func(s string) string { return fmt.Sprintf("/proc/%d/%s", pid, s) }
	st, err := readStat(pid)
	if err != nil {
		return err
	}
	if status, err := readStatus(pid); err == nil {
		m.Umask = status.umask
	}
	m.MM = MM{StartCode: st.startCode, EndCode: st.endCode, StartData: st.startData, EndData: st.endData,
		StartBrk: st.startBrk, Brk: m.MM.Brk, StartStack: st.startStack,
		ArgStart: st.argStart, ArgEnd: st.argEnd, EnvStart: st.envStart, EnvEnd: st.envEnd}
	if m.Auxv, err = os.ReadFile(p("auxv")); err != nil {
		return fmt.Errorf("reading auxv: %w", err)
	}
	comm, err := os.ReadFile(p("comm"))
	if err != nil {
		return fmt.Errorf("reading comm: %w", err)
	}
	m.Comm = strings.TrimSuffix(string(comm), "\n")
	if m.Exe, err = os.Readlink(p("exe")); err != nil {
		return fmt.Errorf("reading exe: %w", err)
	}
	if m.Cwd, err = os.Readlink(p("cwd")); err != nil {
		return fmt.Errorf("reading cwd: %w", err)
	}
	if cl, err := os.ReadFile(p("cmdline")); err == nil {
		m.Cmdline = strings.Split(strings.TrimSuffix(string(cl), "\x00"), "\x00")
	}
	return d.fds()
}

// Character devices that are the same everywhere and may be reopened.
var portableDevs = map[string]bool{"/dev/null": true, "/dev/zero": true, "/dev/full": true, "/dev/random": true, "/dev/urandom": true}

func (d *dumper) fds() error {
	dir := fmt.Sprintf("/proc/%d/fd", d.pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("listing fds: %w", err)
	}
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		fi, _ := readFdInfo(d.pid, n)
		f := FD{FD: n, Path: target, Flags: fi.flags, Pos: fi.pos, Kind: FDClosed}
		var st unix.Stat_t
		statErr := unix.Stat(filepath.Join(dir, e.Name()), &st)
		deleted := strings.HasSuffix(target, " (deleted)")
		switch {
		case statErr != nil || deleted || !strings.HasPrefix(target, "/"):
			if n <= 2 && (strings.HasPrefix(target, "pipe:") || strings.HasPrefix(target, "socket:")) {
				f.Kind = FDStdio
			}
		case st.Mode&unix.S_IFMT == unix.S_IFREG:
			f.Kind = FDFile
		case st.Mode&unix.S_IFMT == unix.S_IFDIR:
			f.Kind = FDDir
		case st.Mode&unix.S_IFMT == unix.S_IFCHR && portableDevs[target]:
			f.Kind = FDFile
		case n <= 2 && (st.Mode&unix.S_IFMT == unix.S_IFCHR || st.Mode&unix.S_IFMT == unix.S_IFIFO || st.Mode&unix.S_IFMT == unix.S_IFSOCK):
			f.Kind = FDStdio // a terminal or named pipe
		}
		d.meta.FDs = append(d.meta.FDs, f)
	}
	d.optionFDs()
	sort.Slice(d.meta.FDs, func(i, j int) bool { return d.meta.FDs[i].FD < d.meta.FDs[j].FD })
	return nil
}

// optionFDs applies DumpOptions.Stdio and Mem to the recorded fds: each
// replaces the fd it names (keeping its path, for info, and its
// close-on-exec flag) or is added.
func (d *dumper) optionFDs() {
	at := map[int]int{}
	for i, f := range d.meta.FDs {
		at[f.FD] = i
	}
	set := func(f FD) {
		if i, ok := at[f.FD]; ok {
			old := d.meta.FDs[i]
			f.Path, f.Flags = old.Path, old.Flags&unix.O_CLOEXEC
			d.meta.FDs[i] = f
			return
		}
		at[f.FD] = len(d.meta.FDs)
		d.meta.FDs = append(d.meta.FDs, f)
	}
	for fd, from := range d.opts.Stdio {
		set(FD{FD: fd, Kind: FDRestorer, From: from})
	}
	for fd, b := range d.opts.Mem {
		set(FD{FD: fd, Kind: FDMem, Data: append([]byte{}, b...)})
	}
}

// isLib tells shared libraries (BPROC_DUMP_LIBS) from other mapped files.
func isLib(path string) bool {
	b := filepath.Base(path)
	return strings.HasSuffix(b, ".so") || strings.Contains(b, ".so.")
}

// regions classifies every mapping and decides how it travels.
func (d *dumper) regions() error {
	m := d.meta
	for _, mp := range d.maps {
		r := Region{Start: mp.start, End: mp.end, Perms: mp.perms, Offset: mp.offset, Path: mp.path}
		shared := mp.perms[3] == 's'
		switch {
		case mp.path == "[vsyscall]":
			continue // fixed, the same in every process
		case mp.path == "[vdso]":
			r.Kind, r.Travel = KindVDSO, TravelKernel
		case mp.path == "[vvar]":
			r.Kind, r.Travel = KindVVar, TravelKernel
		case mp.path == "[vvar_vclock]":
			r.Kind, r.Travel = KindVVarClock, TravelKernel
		case mp.path == "[heap]":
			r.Kind, r.Travel = KindHeap, TravelImage
		case mp.path == "[stack]":
			r.Kind, r.Travel = KindStack, TravelImage
		case shared && (mp.path == "" || strings.HasPrefix(mp.path, "/dev/zero") || strings.HasPrefix(mp.path, "/SYSV") || strings.HasPrefix(mp.path, "[anon_shmem:")):
			r.Kind, r.Travel, r.Path = KindSharedAnon, TravelImage, ""
		case mp.path == "" || strings.HasPrefix(mp.path, "[anon:"):
			r.Kind, r.Travel = KindAnon, TravelImage
		case strings.HasPrefix(mp.path, "["):
			return fmt.Errorf("process %d has a special mapping %s that cannot be dumped", d.pid, mp.path)
		case shared:
			r.Kind, r.Travel = KindSharedFile, TravelFile
			if err := d.fileRef(&r, mp); err != nil {
				return err
			}
			if r.Travel != TravelFile {
				return fmt.Errorf("shared mapping of %s: the file is gone or changed", mp.path)
			}
		default:
			r.Kind = KindFile
			switch {
			case mp.path == m.Exe:
				r.Class = "exec"
			case isLib(mp.path):
				r.Class = "libs"
			default:
				r.Class = "other"
			}
			cls := map[string]Flags{"exec": DumpExec, "libs": DumpLibs, "other": DumpOther}[r.Class]
			r.Travel = TravelImage
			if m.Flags&cls == 0 {
				if err := d.fileRef(&r, mp); err != nil {
					return err
				}
			}
		}
		m.Regions = append(m.Regions, r)
	}
	if fi, err := os.Stat(m.Exe); err == nil {
		m.ExeFile = &FileID{Size: fi.Size(), Mtime: fi.ModTime().UTC()}
	}
	return nil
}

// fileRef makes r a reference to its file if the file on disk is still the
// one mapped (same device and inode); otherwise r travels in the image.
func (d *dumper) fileRef(r *Region, mp mapping) error {
	var st unix.Stat_t
	if strings.HasSuffix(mp.path, " (deleted)") || unix.Stat(mp.path, &st) != nil ||
		st.Ino != mp.inode || devString(st.Dev) != mp.dev {
		r.Travel = TravelImage
		return nil
	}
	// Read the bytes through /proc/PID/map_files: the very file mapped,
	// even if the process sees another mount namespace than ours.
	mf := fmt.Sprintf("/proc/%d/map_files/%x-%x", d.pid, mp.start, mp.end)
	if _, err := os.Stat(mf); err != nil {
		mf = mp.path
	}
	id, err := fileIdentity(mf, mp.offset, mp.size())
	if err != nil {
		return err
	}
	r.Travel, r.File = TravelFile, id
	return nil
}

func devString(dev uint64) string {
	return fmt.Sprintf("%02x:%02x", unix.Major(dev), unix.Minor(dev))
}

// identCache remembers the CRCs of mapped file ranges: a node dumps and
// restores the same programs and libraries over and over. An entry is only
// used while the file's inode, size, mtime and ctime are unchanged (ctime
// cannot be set back by a user).
var identCache = struct {
	sync.Mutex
	m map[identKey]uint32
}{m: map[identKey]uint32{}}

type identKey struct {
	dev, ino           uint64
	size, mtime, ctime int64
	off, n             uint64
}

// fileIdentity returns the size, mtime and CRC-32C of the bytes of path
// in [off, off+n) (clipped to the file's end).
func fileIdentity(path string, off, n uint64) (*FileID, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening mapped file: %w", err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	id := &FileID{Size: st.Size, Mtime: time.Unix(st.Mtim.Unix()).UTC()}
	if int64(off) >= st.Size {
		return id, nil
	}
	if rest := uint64(st.Size) - off; n > rest {
		n = rest
	}
	key := identKey{st.Dev, st.Ino, st.Size, st.Mtim.Nano(), st.Ctim.Nano(), off, n}
	identCache.Lock()
	c, ok := identCache.m[key]
	identCache.Unlock()
	if ok {
		id.CRC = c
		return id, nil
	}
	h := crc32.New(castagnoli)
	if _, err := io.Copy(h, io.NewSectionReader(f, int64(off), int64(n))); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	id.CRC = h.Sum32()
	identCache.Lock()
	if len(identCache.m) > 4096 {
		clear(identCache.m)
	}
	identCache.m[key] = id.CRC
	identCache.Unlock()
	return id, nil
}

// pages writes the contents of every region as page records: only pages
// that exist (pagemap), differ from the file for file references, and are
// not all zero.
func (d *dumper) pages(enc *encoder) error {
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", d.pid))
	if err != nil {
		return fmt.Errorf("opening pagemap: %w", err)
	}
	defer pm.Close()
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", d.pid))
	if err != nil {
		return fmt.Errorf("opening memory of %d: %w", d.pid, err)
	}
	defer mem.Close()
	// This thread finds and reads pages; a goroutine checksums and writes
	// the records, so reading the next batch overlaps writing this one.
	const depth = 3
	b := &batcher{pid: d.pid, mem: mem, out: make(chan pageBatch, depth), free: make(chan []byte, depth)}
	for i := 0; i < depth; i++ {
		b.free <- getBuf()
	}
	defer func() {
		for i := 0; i < depth; i++ {
			putBuf(<-b.free)
		}
	}()
	werr := make(chan error, 1)
	go func() {
		var err error
		for rec := range b.out {
			if err == nil {
				err = enc.pageRecord(rec.runs, rec.data)
				if err != nil {
					b.failed.Store(true)
				}
			}
			b.free <- rec.buf
		}
		werr <- err
	}()
	err = func() error {
		for _, r := range d.meta.Regions {
			if r.Travel == TravelKernel || r.Kind == KindSharedFile {
				continue
			}
			b.boundary = true
			if err := d.regionPages(b, pm, r); err != nil {
				return fmt.Errorf("region %#x-%#x %s: %w", r.Start, r.End, r.Path, err)
			}
		}
		return b.flush()
	}()
	close(b.out)
	if e := <-werr; e != nil {
		return e
	}
	return err
}

func (d *dumper) regionPages(b *batcher, pm *os.File, r Region) error {
	// Pages of a file that travels in the image: everything inside the file,
	// read through the mapping. Beyond the end of the file only private copies.
	var fileEnd uint64
	if r.Kind == KindFile && r.Travel == TravelImage && r.prot() != 0 {
		if fi, err := os.Stat(r.Path); err == nil && uint64(fi.Size()) > r.Offset {
			fileEnd = r.Start + (uint64(fi.Size())-r.Offset+pageSize-1)/pageSize*pageSize
		} else if strings.HasSuffix(r.Path, " (deleted)") {
			fileEnd = r.End // gone: read what the mapping holds
		}
	}
	const chunk = 1 << 16 // pagemap entries per read
	for start := r.Start; start < r.End; start += chunk * pageSize {
		end := min(r.End, start+chunk*pageSize)
		ents, err := readPagemap(pm, start, end)
		if err != nil {
			return err
		}
		for i, e := range ents {
			addr := start + uint64(i)*pageSize
			var want bool
			switch {
			case r.Kind == KindFile && r.Travel == TravelFile:
				want = e&pmSwapped != 0 || e&pmPresent != 0 && e&pmFile == 0
			case addr < fileEnd:
				want = true
			default:
				want = e&(pmPresent|pmSwapped) != 0
			}
			if want {
				if err := b.add(addr); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// batcher gathers pages, reads them in one go and writes the non-zero ones.
type batcher struct {
	pid    int
	mem    *os.File
	out    chan pageBatch // to the writer
	free   chan []byte    // buffers back from the writer
	failed atomic.Bool    // the writer failed: stop reading
	spans  []span
	n      int // pages gathered
	// boundary keeps the next page out of the current span: a run of
	// pages never crosses from one region into the next.
	boundary bool
}

func (b *batcher) add(addr uint64) error {
	if k := len(b.spans) - 1; k >= 0 && !b.boundary && b.spans[k].addr+b.spans[k].len == addr {
		b.spans[k].len += pageSize
	} else {
		b.spans = append(b.spans, span{addr, pageSize})
	}
	b.boundary = false
	b.n++
	if b.n == pagesPerRecord {
		return b.flush()
	}
	return nil
}

func (b *batcher) flush() error {
	if b.n == 0 {
		return nil
	}
	if b.failed.Load() {
		return errors.New("writing image failed")
	}
	buf := <-b.free
	data := buf[:b.n*pageSize]
	if err := remoteIO(b.pid, b.mem, data, b.spans, false); err != nil {
		b.free <- buf
		return err
	}
	// Drop zero pages, compacting the buffer and splitting runs.
	var runs []pageRun
	w, rd := 0, 0
	for _, s := range b.spans {
		fresh := true
		for a := s.addr; a < s.addr+s.len; a += pageSize {
			p := data[rd : rd+pageSize]
			rd += pageSize
			if isZero(p) {
				continue
			}
			if w != rd-pageSize {
				copy(data[w:], p)
			}
			w += pageSize
			if k := len(runs) - 1; k >= 0 && !fresh && runs[k].addr+runs[k].npages*pageSize == a {
				runs[k].npages++
			} else {
				runs = append(runs, pageRun{a, 1})
			}
			fresh = false
		}
	}
	b.spans, b.n = b.spans[:0], 0
	if len(runs) == 0 {
		b.free <- buf
		return nil
	}
	b.out <- pageBatch{runs, data[:w], buf}
	return nil
}

// pageBatch is one page record on its way to the writer.
type pageBatch struct {
	runs []pageRun
	data []byte
	buf  []byte // to hand back to the batcher
}
