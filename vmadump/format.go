package vmadump

// The image format.
//
//	image  = header record* end
//	header = "VMADUMP\x00" version:u32le reserved:u32le
//	record = kind:u32le length:u32le payload[length] crc:u32le
//
// crc is CRC-32C over kind, length and payload. The first record is the
// metadata (JSON, kind 1), then page records (kind 2), then one end record
// (kind 3) holding the page count and a CRC-32C over the header and the crc
// of every record before it, so a missing, reordered or truncated record is
// detected without checksumming the bulk of the data twice. A page record is
//
//	nruns:u32le 0:u32le (addr:u64le npages:u64le)*nruns data
//
// with the pages of each run in order. Records are read and checked one at a
// time, so an image streams through a pipe with bounded memory.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	imageMagic    = "VMADUMP\x00"
	formatVersion = 1

	recMeta  = 1
	recPages = 2
	recEnd   = 3

	// maxRecord bounds a record so a corrupt length cannot make us
	// allocate without limit.
	maxRecord = 64 << 20
	// pagesPerRecord is how many pages the dumper puts in one record:
	// 1 MiB, small enough to pipeline a small process, large enough that
	// per-record costs vanish.
	pagesPerRecord = 256
	// userTop is the end of the x86_64 user address space (4-level paging).
	userTop = 1 << 47
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Flags choose which file-backed regions travel inside the image; the
// others are recorded as a reference to the file. The values are BProc's.
type Flags uint32

const (
	DumpLibs  Flags = 1 << iota // shared libraries (*.so*)
	DumpExec                    // the program's executable
	DumpOther                   // any other mapped file
	DumpAll   = DumpLibs | DumpExec | DumpOther
)

var flagNames = []struct {
	f    Flags
	name string
}{{DumpLibs, "libs"}, {DumpExec, "exec"}, {DumpOther, "other"}}

// ParseFlags reads "libs,exec,other", "all" or "none".
func ParseFlags(s string) (Flags, error) {
	var f Flags
	for _, w := range strings.Split(s, ",") {
		w = strings.TrimSpace(strings.ToLower(w))
		switch w {
		case "", "none":
			continue
		case "all":
			f |= DumpAll
			continue
		}
		found := false
		for _, n := range flagNames {
			if n.name == w {
				f |= n.f
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown dump flag %q (want libs, exec, other, all or none)", w)
		}
	}
	return f, nil
}

func (f Flags) String() string {
	var out []string
	for _, n := range flagNames {
		if f&n.f != 0 {
			out = append(out, n.name)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}

// How a region's contents travel.
const (
	TravelImage  = "image"  // every non-zero page is in the image
	TravelFile   = "file"   // mapped from Path again; pages that differ from the file are in the image
	TravelKernel = "kernel" // [vdso] and [vvar*]: the restorer's own, moved to the same address
)

// Region kinds.
const (
	KindAnon       = "anon"
	KindHeap       = "heap"
	KindStack      = "stack"
	KindFile       = "file"
	KindSharedFile = "shared-file"
	KindSharedAnon = "shared-anon"
	KindVDSO       = "vdso"
	KindVVar       = "vvar"
	KindVVarClock  = "vvar_vclock"
)

// FileID identifies the bytes of a mapped file at dump time.
type FileID struct {
	Size  int64     `json:"size"`
	Mtime time.Time `json:"mtime"`
	// CRC is the CRC-32C of the file's bytes that the region maps.
	CRC uint32 `json:"crc"`
}

// Region is one mapping of the dumped process.
type Region struct {
	Start  uint64  `json:"start"`
	End    uint64  `json:"end"`
	Perms  string  `json:"perms"` // as /proc/PID/maps shows them, e.g. "r-xp"
	Offset uint64  `json:"offset,omitempty"`
	Path   string  `json:"path,omitempty"`
	Kind   string  `json:"kind"`
	Class  string  `json:"class,omitempty"` // exec, libs or other, for file mappings
	Travel string  `json:"travel"`
	File   *FileID `json:"file,omitempty"`
}

// Size is the length of the region in bytes.
func (r Region) Size() uint64 { return r.End - r.Start }

func (r Region) prot() int {
	p := 0
	if r.Perms[0] == 'r' {
		p |= unix.PROT_READ
	}
	if r.Perms[1] == 'w' {
		p |= unix.PROT_WRITE
	}
	if r.Perms[2] == 'x' {
		p |= unix.PROT_EXEC
	}
	return p
}

// FD kinds.
const (
	FDFile   = "file"   // reopened by path, same flags and offset
	FDDir    = "dir"    // reopened by path
	FDStdio  = "stdio"  // pipe, socket or terminal at 0-2: the restorer's own
	FDClosed = "closed" // cannot travel: closed in the restored process
	// FDRestorer is a dup of the restorer's stdin, stdout or stderr (FD.From)
	// at this fd number: DumpOptions.Stdio, the hook for forwarding any fd.
	FDRestorer = "restorer"
	// FDMem is a memfd holding FD.Data at offset 0 (DumpOptions.Mem).
	FDMem = "memfd"
)

// maxMemFD bounds the content of one FDMem descriptor.
const maxMemFD = 1 << 20

// FD is one open file descriptor of the dumped process.
type FD struct {
	FD    int    `json:"fd"`
	Kind  string `json:"kind"`
	Path  string `json:"path"` // the /proc/PID/fd link target
	Flags int    `json:"flags,omitempty"`
	Pos   int64  `json:"pos,omitempty"`
	From  int    `json:"from,omitempty"` // FDRestorer: the restorer's fd (0, 1 or 2)
	Data  []byte `json:"data,omitempty"` // FDMem: the content
}

// Sigaction is a kernel struct sigaction (x86_64).
type Sigaction struct {
	Sig      int    `json:"sig"`
	Handler  uint64 `json:"handler"`
	Flags    uint64 `json:"flags"`
	Restorer uint64 `json:"restorer"`
	Mask     uint64 `json:"mask"`
}

// Rseq is the process's restartable-sequences registration.
type Rseq struct {
	Addr uint64 `json:"addr"`
	Size uint32 `json:"size"`
	Sig  uint32 `json:"sig"`
}

// Thread is per-thread kernel state glibc sets up at start: the alternate
// signal stack, the address cleared at exit (set_tid_address), the robust
// futex list; and the process's personality and interval timers (alarm).
type Thread struct {
	AltStackSP    uint64 `json:"altstack_sp,omitempty"`
	AltStackSize  uint64 `json:"altstack_size,omitempty"`
	AltStackFlags int32  `json:"altstack_flags,omitempty"`
	TidAddress    uint64 `json:"tid_address,omitempty"`
	RobustList    uint64 `json:"robust_list,omitempty"`
	RobustLen     uint64 `json:"robust_len,omitempty"`
	Personality   uint32 `json:"personality,omitempty"`
	// Itimers are ITIMER_REAL, _VIRTUAL and _PROF as struct itimerval
	// (interval and value, seconds and microseconds).
	Itimers [3][4]int64 `json:"itimers"`
}

// MM is the memory-layout part of the kernel's mm_struct (PR_SET_MM_MAP).
type MM struct {
	StartCode  uint64 `json:"start_code"`
	EndCode    uint64 `json:"end_code"`
	StartData  uint64 `json:"start_data"`
	EndData    uint64 `json:"end_data"`
	StartBrk   uint64 `json:"start_brk"`
	Brk        uint64 `json:"brk"`
	StartStack uint64 `json:"start_stack"`
	ArgStart   uint64 `json:"arg_start"`
	ArgEnd     uint64 `json:"arg_end"`
	EnvStart   uint64 `json:"env_start"`
	EnvEnd     uint64 `json:"env_end"`
}

// Meta is everything in an image except the page contents.
type Meta struct {
	Arch      string          `json:"arch"`
	Kernel    string          `json:"kernel"`
	Host      string          `json:"host"`
	Time      time.Time       `json:"time"`
	PID       int             `json:"pid"`
	Flags     Flags           `json:"flags"`
	Comm      string          `json:"comm"`
	Exe       string          `json:"exe"`
	ExeFile   *FileID         `json:"exe_file,omitempty"`
	Cwd       string          `json:"cwd"`
	Umask     int             `json:"umask"`
	Cmdline   []string        `json:"cmdline"`
	MM        MM              `json:"mm"`
	Auxv      []byte          `json:"auxv"`
	Regs      unix.PtraceRegs `json:"regs"`
	XState    []byte          `json:"xstate"`
	SigMask   uint64          `json:"sigmask"`
	Sigaction []Sigaction     `json:"sigaction,omitempty"`
	Pending   []int           `json:"pending,omitempty"` // signals that arrived during the dump
	Rseq      *Rseq           `json:"rseq,omitempty"`
	Thread    Thread          `json:"thread"`
	VDSOCRC   uint32          `json:"vdso_crc"`
	FDs       []FD            `json:"fds"`
	Regions   []Region        `json:"regions"`
}

var knownKinds = map[string]string{
	KindAnon: TravelImage, KindHeap: TravelImage, KindStack: TravelImage,
	KindSharedAnon: TravelImage, KindFile: "", KindSharedFile: TravelFile,
	KindVDSO: TravelKernel, KindVVar: TravelKernel, KindVVarClock: TravelKernel,
}

// validate checks what the restorer relies on, so that hostile metadata
// yields an error rather than a wild mapping or a panic.
func (m *Meta) validate() error {
	if m.Arch != "x86_64" {
		return fmt.Errorf("image is for %q; this restorer handles x86_64", m.Arch)
	}
	if len(m.XState) > maxXState {
		return fmt.Errorf("xsave area of %d bytes is too large", len(m.XState))
	}
	if len(m.Auxv) > 1024 || len(m.Auxv)%16 != 0 {
		return fmt.Errorf("auxv of %d bytes is malformed", len(m.Auxv))
	}
	var prev uint64
	for i, r := range m.Regions {
		if r.Start%pageSize != 0 || r.End%pageSize != 0 || r.Start >= r.End || r.End > userTop || r.Start < prev {
			return fmt.Errorf("region %d [%#x-%#x) is misaligned, empty, out of range or overlaps", i, r.Start, r.End)
		}
		prev = r.End
		if len(r.Perms) != 4 {
			return fmt.Errorf("region %d: bad permissions %q", i, r.Perms)
		}
		travel, ok := knownKinds[r.Kind]
		if !ok {
			return fmt.Errorf("region %d: unknown kind %q", i, r.Kind)
		}
		if travel != "" && r.Travel != travel || travel == "" && r.Travel != TravelImage && r.Travel != TravelFile {
			return fmt.Errorf("region %d: kind %s cannot travel as %q", i, r.Kind, r.Travel)
		}
		if r.Travel == TravelFile && (r.Path == "" || r.Path[0] != '/' || r.File == nil || r.Offset%pageSize != 0) {
			return fmt.Errorf("region %d: file reference without absolute path or identity", i)
		}
	}
	for _, s := range m.Sigaction {
		if s.Sig < 1 || s.Sig > 64 || s.Sig == int(unix.SIGKILL) || s.Sig == int(unix.SIGSTOP) {
			return fmt.Errorf("sigaction for invalid signal %d", s.Sig)
		}
	}
	for _, s := range m.Pending {
		if s < 1 || s > 64 {
			return fmt.Errorf("invalid pending signal %d", s)
		}
	}
	seenFD := map[int]bool{}
	for _, f := range m.FDs {
		if f.FD < 0 || f.FD > 1<<20 {
			return fmt.Errorf("invalid fd %d", f.FD)
		}
		if seenFD[f.FD] {
			return fmt.Errorf("fd %d listed twice", f.FD)
		}
		seenFD[f.FD] = true
		switch f.Kind {
		case FDFile, FDDir:
			if f.Path == "" || f.Path[0] != '/' || strings.IndexByte(f.Path, 0) >= 0 {
				return fmt.Errorf("fd %d: path %q is not absolute", f.FD, f.Path)
			}
		case FDStdio, FDClosed:
		case FDRestorer:
			if f.From < 0 || f.From > 2 {
				return fmt.Errorf("fd %d: dup of the restorer's fd %d (want 0, 1 or 2)", f.FD, f.From)
			}
		case FDMem:
			if len(f.Data) > maxMemFD {
				return fmt.Errorf("fd %d: memfd of %d bytes (at most %d)", f.FD, len(f.Data), maxMemFD)
			}
		default:
			return fmt.Errorf("fd %d: unknown kind %q", f.FD, f.Kind)
		}
	}
	for _, s := range []string{m.Cwd, m.Exe, m.Comm} {
		if strings.IndexByte(s, 0) >= 0 {
			return fmt.Errorf("NUL byte in a path or name")
		}
	}
	if m.Rseq != nil && (m.Rseq.Size < 32 || m.Rseq.Size > 4096) {
		return fmt.Errorf("rseq area of %d bytes", m.Rseq.Size)
	}
	return nil
}

// regionAt returns the index of the region holding [addr, addr+n).
func (m *Meta) regionAt(addr, n uint64) int {
	i := sort.Search(len(m.Regions), func(i int) bool { return m.Regions[i].End > addr })
	if i < len(m.Regions) && m.Regions[i].Start <= addr && addr+n <= m.Regions[i].End && addr+n > addr {
		return i
	}
	return -1
}

// encoder writes records and keeps the running checksum of the stream.
type encoder struct {
	w     io.Writer
	crc   uint32 // chain: over the header and every record's crc so far
	n     int64
	pages uint64
}

func (e *encoder) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n, err := e.w.Write(b)
	e.n += int64(n)
	if err != nil {
		return fmt.Errorf("writing image: %w", err)
	}
	return nil
}

func (e *encoder) header() error {
	var h [16]byte
	copy(h[:], imageMagic)
	binary.LittleEndian.PutUint32(h[8:], formatVersion)
	e.crc = crc32.Update(0, castagnoli, h[:])
	return e.write(h[:])
}

// record writes one record whose payload is the concatenation of parts.
func (e *encoder) record(kind uint32, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n > maxRecord {
		return fmt.Errorf("record of %d bytes exceeds the format's limit", n)
	}
	var h [8]byte
	binary.LittleEndian.PutUint32(h[0:], kind)
	binary.LittleEndian.PutUint32(h[4:], uint32(n))
	c := crc32.Update(0, castagnoli, h[:])
	for _, p := range parts {
		c = crc32.Update(c, castagnoli, p)
	}
	if err := e.write(h[:]); err != nil {
		return err
	}
	for _, p := range parts {
		if err := e.write(p); err != nil {
			return err
		}
	}
	var t [4]byte
	binary.LittleEndian.PutUint32(t[:], c)
	if kind != recEnd {
		e.crc = crc32.Update(e.crc, castagnoli, t[:])
	}
	return e.write(t[:])
}

func (e *encoder) meta(m *Meta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding metadata: %w", err)
	}
	return e.record(recMeta, b)
}

// recordBuf is the size of a buffer that holds any full page record the
// dumper writes, with its crc.
const recordBuf = pagesPerRecord*pageSize + 8 + 16*pagesPerRecord + 4

// bufFree recycles record buffers between dumps and restores: a fresh
// buffer costs page faults or zeroing every time. Unlike a sync.Pool it
// survives garbage collections; it holds at most cap(bufFree) buffers
// (8 MiB).
var bufFree = make(chan []byte, 8)

func getBuf() []byte {
	select {
	case b := <-bufFree:
		return b
	default:
		return make([]byte, recordBuf)
	}
}

func putBuf(b []byte) {
	if cap(b) < recordBuf {
		return
	}
	select {
	case bufFree <- b[:cap(b)]:
	default:
	}
}

// pageRun is a run of consecutive pages.
type pageRun struct{ addr, npages uint64 }

func (e *encoder) pageRecord(runs []pageRun, data []byte) error {
	tab := make([]byte, 8+16*len(runs))
	binary.LittleEndian.PutUint32(tab, uint32(len(runs)))
	for i, r := range runs {
		binary.LittleEndian.PutUint64(tab[8+16*i:], r.addr)
		binary.LittleEndian.PutUint64(tab[16+16*i:], r.npages)
		e.pages += r.npages
	}
	return e.record(recPages, tab, data)
}

func (e *encoder) end() error {
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:], e.pages)
	binary.LittleEndian.PutUint32(b[8:], e.crc)
	return e.record(recEnd, b[:])
}

// ErrCorrupt is wrapped by every error about a malformed image.
var ErrCorrupt = errors.New("corrupt image")

func corrupt(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, a...))
}

// decoder reads and checks records one at a time.
type decoder struct {
	r     io.Reader
	crc   uint32 // chain over the header and the records' crcs, as the encoder's
	n     int64
	buf   []byte
	pages uint64
	done  bool
}

func (d *decoder) read(b []byte) error {
	n, err := io.ReadFull(d.r, b)
	d.n += int64(n)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return corrupt("truncated at byte %d", d.n)
	}
	if err != nil {
		return fmt.Errorf("reading image: %w", err)
	}
	return nil
}

func (d *decoder) header() error {
	var h [16]byte
	if err := d.read(h[:]); err != nil {
		return err
	}
	d.crc = crc32.Update(0, castagnoli, h[:])
	if string(h[:8]) != imageMagic {
		return corrupt("not a vmadump image (bad magic)")
	}
	if v := binary.LittleEndian.Uint32(h[8:]); v != formatVersion {
		return fmt.Errorf("image format version %d; this vmadump reads version %d", v, formatVersion)
	}
	return nil
}

// next returns the next record's kind and payload; the payload is valid
// until the following call.
func (d *decoder) next() (uint32, []byte, error) {
	before := d.crc
	var h [8]byte
	if err := d.read(h[:]); err != nil {
		return 0, nil, err
	}
	kind := binary.LittleEndian.Uint32(h[0:])
	n := binary.LittleEndian.Uint32(h[4:])
	if n > maxRecord {
		return 0, nil, corrupt("record of %d bytes at byte %d", n, d.n-8)
	}
	// Grow the buffer as bytes actually arrive, so a lying length in a
	// short or hostile stream cannot make us allocate 64 MiB up front.
	b := d.buf[:0]
	for need := int(n) + 4; len(b) < need; {
		step := min(need-len(b), 1<<20)
		if cap(b)-len(b) < step {
			nb := make([]byte, len(b), max(2*cap(b), len(b)+step))
			copy(nb, b)
			b = nb
		}
		if err := d.read(b[len(b) : len(b)+step]); err != nil {
			return 0, nil, err
		}
		b = b[:len(b)+step]
	}
	d.buf = b
	c := crc32.Update(crc32.Update(0, castagnoli, h[:]), castagnoli, b[:n])
	if c != binary.LittleEndian.Uint32(b[n:]) {
		return 0, nil, corrupt("checksum mismatch in record at byte %d", d.n-int64(n)-12)
	}
	if kind != recEnd {
		d.crc = crc32.Update(d.crc, castagnoli, b[n:])
	}
	if kind == recEnd {
		if n != 12 {
			return 0, nil, corrupt("end record of %d bytes", n)
		}
		if binary.LittleEndian.Uint32(b[8:]) != before {
			return 0, nil, corrupt("stream checksum mismatch")
		}
		if binary.LittleEndian.Uint64(b) != d.pages {
			return 0, nil, corrupt("image announces %d pages, holds %d", binary.LittleEndian.Uint64(b), d.pages)
		}
		d.done = true
	}
	return kind, b[:n], nil
}

// imageReader walks an image: metadata first, then batches of pages.
type imageReader struct {
	d    decoder
	Meta *Meta
}

func openImage(r io.Reader) (*imageReader, error) {
	ir := &imageReader{d: decoder{r: r}}
	if err := ir.d.header(); err != nil {
		return nil, err
	}
	kind, b, err := ir.d.next()
	if err != nil {
		return nil, err
	}
	if kind != recMeta {
		return nil, corrupt("first record is of kind %d, not metadata", kind)
	}
	m := new(Meta)
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(m); err != nil {
		return nil, corrupt("metadata: %v", err)
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	ir.Meta = m
	return ir, nil
}

// nextPages returns the next batch of pages, each run inside one region
// that may carry pages; io.EOF after a valid end record.
func (ir *imageReader) nextPages() ([]pageRun, []byte, error) {
	if ir.d.done {
		return nil, nil, io.EOF
	}
	kind, b, err := ir.d.next()
	if err != nil {
		return nil, nil, err
	}
	switch kind {
	case recEnd:
		return nil, nil, io.EOF
	case recPages:
	default:
		return nil, nil, corrupt("unexpected record of kind %d", kind)
	}
	if len(b) < 8 {
		return nil, nil, corrupt("short page record")
	}
	nr := uint64(binary.LittleEndian.Uint32(b))
	if nr == 0 || nr > uint64(len(b)-8)/16 {
		return nil, nil, corrupt("page record with %d runs in %d bytes", nr, len(b))
	}
	data := b[8+16*nr:]
	runs := make([]pageRun, nr)
	var total uint64
	for i := range runs {
		r := pageRun{binary.LittleEndian.Uint64(b[8+16*i:]), binary.LittleEndian.Uint64(b[16+16*i:])}
		if r.addr%pageSize != 0 || r.npages == 0 || r.npages > maxRecord/pageSize {
			return nil, nil, corrupt("bad page run %#x+%d", r.addr, r.npages)
		}
		ri := ir.Meta.regionAt(r.addr, r.npages*pageSize)
		if ri < 0 || ir.Meta.Regions[ri].Travel == TravelKernel {
			return nil, nil, corrupt("page run %#x+%d outside any region that holds pages", r.addr, r.npages)
		}
		total += r.npages
		runs[i] = r
	}
	if total*pageSize != uint64(len(data)) {
		return nil, nil, corrupt("page record announces %d pages, holds %d bytes", total, len(data))
	}
	ir.d.pages += total
	return runs, data, nil
}
