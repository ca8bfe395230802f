package mcast

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Shm file constants; the layout is described in doc.go.
const (
	DefaultShmPath  = "/var/shm/beostat"
	DefaultFilesDir = "/var/shm/beostat.d"
	ShmMagic        = "BEOSTAT\x00"
	ShmVersion      = 1
	ShmHeaderSize   = 4096
	ShmMaxNodes     = 65536 // node numbers 0..ShmMaxNodes-1
	StaleIntervals  = 3     // a node is stale after this many intervals without a packet
)

// Record flags.
const (
	RecPresent = 1 << 0 // the slot has held a node since the file was created
	RecStatic  = 1 << 1 // the static facts (cpuinfo) are known
	RecStale   = 1 << 2 // recvstats marked the node stale
)

// Header counter indices (ShmHeader.Counters).
const (
	CtrReceived  = iota // datagrams read
	CtrAccepted         // stats packets stored
	CtrShort            // truncated or length mismatch
	CtrOversized        // larger than MaxPacket
	CtrBadMagic         // not our magic or an unknown version
	CtrBadMAC           // MAC did not verify (wrong key, spoofed, corrupted)
	CtrMalformed        // signed but undecodable payload
	CtrReplayed         // sequence not newer than the last accepted
	CtrBadNode          // node number out of range, or unexpected type
	CtrRequests         // update requests sent
	NumCounters  = 16
)

// CounterNames name the counters for displays and metrics.
var CounterNames = [...]string{"received", "accepted", "short", "oversized", "bad_magic", "bad_mac", "malformed", "replayed", "bad_node", "requests_sent"}

// ShmHeader is the first page of the shm file.
type ShmHeader struct {
	Magic      [8]byte // ShmMagic
	Version    uint32  // ShmVersion
	HeaderSize uint32  // offset of record 0
	RecordSize uint32  // distance between records
	Nodes      uint32  // record slots in the file (nodes 0..Nodes-1); only grows
	MaxCPUs    uint32
	MaxIfaces  uint32
	MaxMem     uint32
	PID        uint32 // recvstats' pid
	Started    int64  // recvstats' start, unix ns
	Updated    int64  // last record write, unix ns
	Counters   [NumCounters]uint64
}

// Iface slot of a Record.
type RecIface struct {
	Name   [IfNameLen]byte
	RxRate float64 // bytes/s over the last interval
	TxRate float64
	C      [NetFields]uint64
}

// Record is one node's slot in the shm file, in host byte order with
// natural alignment (the same layout a C struct of these types has).
// Offsets are listed in doc.go and checked by TestRecordLayout.
type Record struct {
	Seq        uint64 // seqlock: odd while recvstats writes the record
	Flags      uint32 // Rec* bits
	Node       int32
	Updated    int64  // receiver's clock at the last accepted packet, unix ns
	SentTime   int64  // sender's clock when it read /proc, unix ns
	Start      int64  // sender's start, unix ns
	SenderSeq  uint64 // sender's packet counter
	Interval   int64  // sender's interval, ns
	StaticTime int64  // receiver's clock when static facts last arrived
	Addr       [16]byte
	NCPU       uint32 // cpu count
	NPerCPU    uint32 // valid entries of PerCPU and PerCPUPct
	StatFields uint32 // fields on the node's /proc/stat cpu lines
	NIf        uint32 // valid entries of Net
	MHz        float64
	BogoMIPS   float64
	Vendor     [16]byte
	Model      [64]byte
	Cache      [16]byte
	Load       [3]float64
	Running    uint32
	Total      uint32
	LastPID    uint32
	CPUPct     float32 // busy percent of all cpus over the last interval
	MemHave    uint64
	Mem        [MaxMemFields]uint64
	Intr       uint64
	Ctxt       uint64
	BootTime   uint64
	Procs      uint64
	ProcsRun   uint64
	ProcsBlk   uint64
	RxRate     float64 // bytes/s, all interfaces but loopback
	TxRate     float64
	CPU        CPUTimes
	Net        [MaxIfaces]RecIface
	PerCPUPct  [MaxCPUs]float32
	PerCPU     [MaxCPUs]CPUTimes
}

// RecordSize is the distance between records: Record rounded up to pages,
// so a record never shares a page with its neighbour.
var RecordSize = (int(unsafe.Sizeof(Record{})) + 4095) &^ 4095

// offPerCPU is where the per-cpu times start: copies stop after the used ones.
var offPerCPU = int(unsafe.Offsetof(Record{}.PerCPU))

// State of a node as displays show it.
type State string

const (
	StateUp    State = "up"
	StateStale State = "stale" // packets stopped
	StateDown  State = "down"  // never seen
)

// State says whether the node is up at now: stale when recvstats marked
// it or when StaleIntervals intervals passed without a packet (which also
// covers a recvstats that is no longer running).
func (r *Record) State(now time.Time) State {
	if r.Flags&RecPresent == 0 {
		return StateDown
	}
	if r.Flags&RecStale != 0 || now.UnixNano()-r.Updated > r.StaleAfter() {
		return StateStale
	}
	return StateUp
}

// StaleAfter is how long after its last packet the node counts as stale.
func (r *Record) StaleAfter() int64 {
	iv := r.Interval
	if iv <= 0 {
		iv = int64(time.Second)
	}
	return StaleIntervals * iv
}

// Address returns the sender's address.
func (r *Record) Address() netip.Addr { return netip.AddrFrom16(r.Addr).Unmap() }

// Sample rebuilds the node's parsed /proc from the record.
func (r *Record) Sample() *Sample {
	s := &Sample{
		CPU: CPUInfo{Count: int(r.NCPU), Vendor: cstr(r.Vendor[:]), Model: cstr(r.Model[:]), MHz: r.MHz, Cache: cstr(r.Cache[:]), BogoMIPS: r.BogoMIPS},
		Mem: MemInfo{V: r.Mem, Have: r.MemHave},
		Load: LoadAvg{Load1: r.Load[0], Load5: r.Load[1], Load15: r.Load[2],
			Running: r.Running, Total: r.Total, LastPID: r.LastPID},
		Stat: Stat{CPU: r.CPU, NCPU: int(r.NCPU), Fields: int(r.StatFields), Intr: r.Intr, Ctxt: r.Ctxt,
			BootTime: r.BootTime, Procs: r.Procs, Running: r.ProcsRun, Blocked: r.ProcsBlk},
	}
	n := min(int(r.NPerCPU), MaxCPUs)
	s.Stat.PerCPU = append([]CPUTimes(nil), r.PerCPU[:n]...)
	for i := 0; i < min(int(r.NIf), MaxIfaces); i++ {
		s.Net = append(s.Net, Iface{Name: cstr(r.Net[i].Name[:]), C: r.Net[i].C})
	}
	return s
}

func cstr(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func setStr(dst []byte, s string) {
	n := copy(dst, s)
	clear(dst[n:])
}

// usedSize is how many leading bytes of r hold data (the rest is unused
// per-cpu slots), bounded by the record.
func (r *Record) usedSize() int {
	n := min(int(r.NPerCPU), MaxCPUs)
	return offPerCPU + n*int(unsafe.Sizeof(CPUTimes{}))
}

func recordBytes(r *Record) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(r)), unsafe.Sizeof(*r))
}

// ShmWriter owns the shm file (recvstats). One goroutine uses it.
type ShmWriter struct {
	path string
	f    *os.File
	mem  []byte
	hdr  *ShmHeader
}

// CreateShm opens path for writing, creating its directory (0755) and the
// file (0644: every user may read the cluster's state). A compatible file
// left by an earlier recvstats is reused, so readers keep their mapping
// and the last known figures (stale by then) survive a restart; anything
// else is replaced atomically.
func CreateShm(path string) (*ShmWriter, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating shm directory: %w", err)
	}
	w := &ShmWriter{path: path}
	if f, err := os.OpenFile(path, os.O_RDWR, 0); err == nil {
		// One writer per file: a second recvstats would fight the
		// first over every record.
		if err := lockShm(f); err != nil {
			f.Close()
			return nil, err
		}
		if err := w.attach(f); err == nil {
			// A writer that died mid-update left an odd sequence:
			// make it even so the seqlock works again.
			for i := 0; i < w.Nodes(); i++ {
				if s := w.slot(i); atomic.LoadUint64(&s.Seq)&1 != 0 {
					atomic.AddUint64(&s.Seq, 1)
				}
			}
			w.hdr.PID = uint32(os.Getpid())
			w.hdr.Started = time.Now().UnixNano()
			return w, nil
		}
		f.Close()
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating shm file: %w", err)
	}
	f.Chmod(0o644) // despite the umask
	lockShm(f)
	h := ShmHeader{Version: ShmVersion, HeaderSize: ShmHeaderSize, RecordSize: uint32(RecordSize),
		MaxCPUs: MaxCPUs, MaxIfaces: MaxIfaces, MaxMem: MaxMemFields,
		PID: uint32(os.Getpid()), Started: time.Now().UnixNano()}
	copy(h.Magic[:], ShmMagic)
	page := make([]byte, ShmHeaderSize)
	copy(page, unsafe.Slice((*byte)(unsafe.Pointer(&h)), unsafe.Sizeof(h)))
	if _, err := f.Write(page); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("writing shm header: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("installing shm file: %w", err)
	}
	if err := w.attach(f); err != nil {
		f.Close()
		return nil, err
	}
	return w, nil
}

// lockShm takes the writer's lock on f (released when f is closed).
func lockShm(f *os.File) error {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == unix.EWOULDBLOCK {
		var h ShmHeader
		f.ReadAt(unsafe.Slice((*byte)(unsafe.Pointer(&h)), unsafe.Sizeof(h)), 0)
		return fmt.Errorf("%s: another recvstats (pid %d) writes it", f.Name(), h.PID)
	}
	if err != nil {
		return fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return nil
}

// attach maps f after checking it is a shm file of this version and layout.
func (w *ShmWriter) attach(f *os.File) error {
	hdr, err := checkHeader(f)
	if err != nil {
		return err
	}
	w.f = f
	return w.mapFile(int(hdr.Nodes))
}

func checkHeader(f *os.File) (*ShmHeader, error) {
	var h ShmHeader
	if _, err := f.ReadAt(unsafe.Slice((*byte)(unsafe.Pointer(&h)), unsafe.Sizeof(h)), 0); err != nil {
		return nil, fmt.Errorf("reading shm header of %s: %w", f.Name(), err)
	}
	if string(h.Magic[:]) != ShmMagic || h.Version != ShmVersion {
		return nil, fmt.Errorf("%s: not a version %d beostat file", f.Name(), ShmVersion)
	}
	if h.HeaderSize != ShmHeaderSize || h.RecordSize != uint32(RecordSize) || h.MaxCPUs != MaxCPUs ||
		h.MaxIfaces != MaxIfaces || h.MaxMem != MaxMemFields || h.Nodes > ShmMaxNodes {
		return nil, fmt.Errorf("%s: record layout differs from this program's", f.Name())
	}
	return &h, nil
}

func (w *ShmWriter) mapFile(nodes int) error {
	size := ShmHeaderSize + nodes*RecordSize
	if err := w.f.Truncate(int64(size)); err != nil {
		return fmt.Errorf("sizing shm file: %w", err)
	}
	mem, err := unix.Mmap(int(w.f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mapping shm file: %w", err)
	}
	if w.mem != nil {
		unix.Munmap(w.mem)
	}
	w.mem = mem
	w.hdr = (*ShmHeader)(unsafe.Pointer(&mem[0]))
	atomic.StoreUint32(&w.hdr.Nodes, uint32(nodes))
	return nil
}

// Grow makes room for node numbers below n.
func (w *ShmWriter) Grow(n int) error {
	if n <= int(w.hdr.Nodes) {
		return nil
	}
	if n > ShmMaxNodes {
		return fmt.Errorf("node %d: beyond the shm file's %d slots", n-1, ShmMaxNodes)
	}
	// Grow in steps so a cluster coming up does not remap per node.
	return w.mapFile(min(ShmMaxNodes, max(n, 2*int(w.hdr.Nodes), 64)))
}

func (w *ShmWriter) slot(node int) *Record {
	return (*Record)(unsafe.Pointer(&w.mem[ShmHeaderSize+node*RecordSize]))
}

// Update changes node's record under its seqlock: readers see the record
// before or after fn, never in between.
func (w *ShmWriter) Update(node int, fn func(r *Record)) error {
	if node < 0 {
		return fmt.Errorf("node %d: negative node number", node)
	}
	if err := w.Grow(node + 1); err != nil {
		return err
	}
	r := w.slot(node)
	atomic.AddUint64(&r.Seq, 1)
	fn(r)
	r.Node = int32(node)
	atomic.AddUint64(&r.Seq, 1)
	atomic.StoreInt64(&w.hdr.Updated, time.Now().UnixNano())
	return nil
}

// Count adds d to counter i of the header.
func (w *ShmWriter) Count(i int, d uint64) { atomic.AddUint64(&w.hdr.Counters[i], d) }

// Nodes is the number of slots in the file.
func (w *ShmWriter) Nodes() int { return int(w.hdr.Nodes) }

// Read copies node's record (the writer's own view, no seqlock needed).
func (w *ShmWriter) Read(node int, dst *Record) bool {
	if node < 0 || node >= int(w.hdr.Nodes) {
		return false
	}
	src := w.slot(node)
	copy(recordBytes(dst)[:src.usedSize()], recordBytes(src))
	return true
}

// Close unmaps the file; the file stays for readers.
func (w *ShmWriter) Close() error {
	if w.mem != nil {
		unix.Munmap(w.mem)
		w.mem = nil
	}
	return w.f.Close()
}

// ShmReader reads the shm file; many readers in many processes may use
// it while recvstats writes. A ShmReader is not safe for concurrent use.
type ShmReader struct {
	path    string
	f       *os.File
	mem     []byte
	ino     uint64
	checked time.Time
}

// ErrNoNode says the node has no slot in the shm file.
var ErrNoNode = errors.New("no such node in the stats file")

// OpenShm maps the shm file at path read-only.
func OpenShm(path string) (*ShmReader, error) {
	r := &ShmReader{path: path}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *ShmReader) open() error {
	f, err := os.Open(r.path)
	if err != nil {
		return fmt.Errorf("opening stats file: %w", err)
	}
	if _, err := checkHeader(f); err != nil {
		f.Close()
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return fmt.Errorf("stat %s: %w", r.path, err)
	}
	if r.f != nil {
		r.Close()
	}
	r.f, r.ino, r.checked = f, st.Ino, time.Now()
	return r.remap()
}

func (r *ShmReader) remap() error {
	var st unix.Stat_t
	if err := unix.Fstat(int(r.f.Fd()), &st); err != nil {
		return fmt.Errorf("stat %s: %w", r.path, err)
	}
	if r.mem != nil {
		unix.Munmap(r.mem)
		r.mem = nil
	}
	mem, err := unix.Mmap(int(r.f.Fd()), 0, int(st.Size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mapping %s: %w", r.path, err)
	}
	r.mem = mem
	return nil
}

// Header returns a copy of the file's header.
func (r *ShmReader) Header() ShmHeader {
	if r.mem == nil {
		return ShmHeader{} // closed
	}
	r.refresh()
	h := *(*ShmHeader)(unsafe.Pointer(&r.mem[0]))
	for i := range h.Counters {
		h.Counters[i] = atomic.LoadUint64(&(*ShmHeader)(unsafe.Pointer(&r.mem[0])).Counters[i])
	}
	return h
}

// Nodes is the number of node slots (node numbers 0..Nodes-1).
func (r *ShmReader) Nodes() int {
	if r.mem == nil {
		return 0 // closed
	}
	r.refresh()
	n := int(atomic.LoadUint32(&(*ShmHeader)(unsafe.Pointer(&r.mem[0])).Nodes))
	if max := (len(r.mem) - ShmHeaderSize) / RecordSize; n > max {
		if r.remap() != nil {
			return max
		}
		n = min(n, (len(r.mem)-ShmHeaderSize)/RecordSize)
	}
	return n
}

// refresh follows a recvstats that replaced the file, checking at most
// once a second.
func (r *ShmReader) refresh() {
	if time.Since(r.checked) < time.Second {
		return
	}
	r.checked = time.Now()
	var st unix.Stat_t
	if unix.Stat(r.path, &st) == nil && st.Ino != r.ino {
		r.open() // on failure keep the old mapping
	}
}

// Present tells cheaply whether node's slot holds a node, without copying
// the record (Read still decides, consistently).
func (r *ShmReader) Present(node int) bool {
	if node < 0 || node >= r.Nodes() {
		return false
	}
	src := (*Record)(unsafe.Pointer(&r.mem[ShmHeaderSize+node*RecordSize]))
	return atomic.LoadUint32(&src.Flags)&RecPresent != 0
}

var fenceWord uint32

// Read copies node's record into dst, consistent: it retries while
// recvstats is writing that record.
func (r *ShmReader) Read(node int, dst *Record) error {
	if node < 0 || node >= r.Nodes() {
		return fmt.Errorf("node %d: %w", node, ErrNoNode)
	}
	src := (*Record)(unsafe.Pointer(&r.mem[ShmHeaderSize+node*RecordSize]))
	for try := 0; ; try++ {
		s1 := atomic.LoadUint64(&src.Seq)
		if s1&1 == 0 {
			n := min(int(atomic.LoadUint32(&src.NPerCPU)), MaxCPUs)
			copy(recordBytes(dst)[:offPerCPU+n*int(unsafe.Sizeof(CPUTimes{}))], recordBytes(src))
			// A full barrier so the copy's loads happen before the
			// second read of the sequence (needed on weakly ordered cpus).
			atomic.AddUint32(&fenceWord, 0)
			if atomic.LoadUint64(&src.Seq) == s1 {
				dst.Seq = s1
				return nil
			}
		}
		switch {
		case try < 100:
			runtime.Gosched()
		case try < 20000: // ~1 s: a writer needs microseconds per record
			time.Sleep(50 * time.Microsecond)
		default:
			return fmt.Errorf("node %d: record keeps changing (writer stuck mid-update?)", node)
		}
	}
}

// Close unmaps the file.
func (r *ShmReader) Close() error {
	if r.mem != nil {
		unix.Munmap(r.mem)
		r.mem = nil
	}
	if r.f != nil {
		err := r.f.Close()
		r.f = nil
		return err
	}
	return nil
}
