package mcast

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Limits on what one sample may hold. They bound the wire packet and the
// fixed-size shm record; a node with more CPUs still reports its true CPU
// count and total times, only the per-CPU detail is cut at MaxCPUs.
const (
	MaxCPUs    = 256 // per-CPU entries kept
	MaxIfaces  = 32  // network interfaces kept (in /proc/net/dev order)
	StatFields = 10  // user nice system idle iowait irq softirq steal guest guest_nice
	NetFields  = 16  // the 8 receive and 8 transmit columns of /proc/net/dev
	IfNameLen  = 16  // IFNAMSIZ

	maxProcFile = 8 << 20 // refuse /proc files larger than this (never seen in practice)
)

// CPU time fields of a /proc/stat "cpu" line, in file order.
const (
	CPUUser = iota
	CPUNice
	CPUSystem
	CPUIdle
	CPUIOWait
	CPUIRQ
	CPUSoftIRQ
	CPUSteal
	CPUGuest
	CPUGuestNice
)

// CPUTimes is one "cpu" line of /proc/stat, in clock ticks (USER_HZ).
type CPUTimes [StatFields]uint64

// Total is the sum of all fields except guest and guest_nice, which the
// kernel already counts inside user and nice.
func (t *CPUTimes) Total() uint64 {
	var s uint64
	for i := CPUUser; i <= CPUSteal; i++ {
		s += t[i]
	}
	return s
}

// Idle is the time the cpu had nothing to run (idle plus iowait).
func (t *CPUTimes) Idle() uint64 { return t[CPUIdle] + t[CPUIOWait] }

// CPUInfo is the static part of /proc/cpuinfo: what is shared by all cpus
// of a node (taken from the first processor) and how many there are.
type CPUInfo struct {
	Count    int     // "processor" entries
	Vendor   string  // vendor_id (x86) or "CPU implementer" (arm)
	Model    string  // model name (x86), "Model"/"Hardware" or "CPU part" elsewhere
	MHz      float64 // cpu MHz of the first processor, 0 when absent
	Cache    string  // cache size as written, e.g. "36608 KB"
	BogoMIPS float64
}

// LoadAvg is /proc/loadavg.
type LoadAvg struct {
	Load1, Load5, Load15 float64
	Running, Total       uint32 // the "1/89" field
	LastPID              uint32
}

// Stat is the part of /proc/stat bproc carries.
type Stat struct {
	CPU      CPUTimes   // the "cpu" line (all cpus)
	PerCPU   []CPUTimes // "cpuN" lines, at most MaxCPUs
	NCPU     int        // number of "cpuN" lines seen, even beyond MaxCPUs
	Fields   int        // fields present on the "cpu" line (older kernels: 4..9)
	Intr     uint64     // first number of the "intr" line
	Ctxt     uint64
	BootTime uint64
	Procs    uint64 // "processes": forks since boot
	Running  uint64 // procs_running
	Blocked  uint64 // procs_blocked
}

// Iface is one line of /proc/net/dev.
type Iface struct {
	Name string
	C    [NetFields]uint64 // rx bytes packets errs drop fifo frame compressed multicast, tx bytes packets errs drop fifo colls carrier compressed
}

// Indices into Iface.C.
const (
	NetRxBytes   = 0
	NetRxPackets = 1
	NetTxBytes   = 8
	NetTxPackets = 9
)

// MemFields is the table of /proc/meminfo fields bproc carries; the index in
// this table is the field's number on the wire and in the shm record, so
// entries may only be appended. KB tells whether the file writes " kB".
var MemFields = []struct {
	Name string
	KB   bool
}{
	{"MemTotal", true}, {"MemFree", true}, {"MemAvailable", true}, {"Buffers", true},
	{"Cached", true}, {"SwapCached", true}, {"Active", true}, {"Inactive", true},
	{"Active(anon)", true}, {"Inactive(anon)", true}, {"Active(file)", true}, {"Inactive(file)", true},
	{"Unevictable", true}, {"Mlocked", true}, {"SwapTotal", true}, {"SwapFree", true},
	{"Dirty", true}, {"Writeback", true}, {"AnonPages", true}, {"Mapped", true},
	{"Shmem", true}, {"KReclaimable", true}, {"Slab", true}, {"SReclaimable", true},
	{"SUnreclaim", true}, {"KernelStack", true}, {"PageTables", true}, {"CommitLimit", true},
	{"Committed_AS", true}, {"VmallocTotal", true}, {"VmallocUsed", true}, {"AnonHugePages", true},
	{"HugePages_Total", false}, {"HugePages_Free", false}, {"HugePages_Rsvd", false}, {"HugePages_Surp", false},
	{"Hugepagesize", true}, {"Hugetlb", true},
}

// MaxMemFields bounds MemFields (the shm record has room for this many).
const MaxMemFields = 48

// Mem field numbers used by the API.
const (
	MemTotal     = 0
	MemFree      = 1
	MemAvailable = 2
	MemBuffers   = 3
	MemCached    = 4
	MemSwapTotal = 14
	MemSwapFree  = 15
)

var memIndex = func() map[string]int {
	if len(MemFields) > MaxMemFields {
		panic("mcast: MemFields outgrew MaxMemFields")
	}
	m := make(map[string]int, len(MemFields))
	for i, f := range MemFields {
		m[f.Name] = i
	}
	return m
}()

// MemInfo holds the MemFields values (in kB, or pages for HugePages_*);
// Have has bit i set when field i was present.
type MemInfo struct {
	V    [MaxMemFields]uint64
	Have uint64
}

// Get returns field i and whether the node reported it.
func (m *MemInfo) Get(i int) (uint64, bool) {
	if i < 0 || i >= MaxMemFields || m.Have&(1<<uint(i)) == 0 {
		return 0, false
	}
	return m.V[i], true
}

// Used is memory in use the way free(1) counts it: total - available (or,
// on kernels without MemAvailable, total - free - buffers - cached).
func (m *MemInfo) Used() uint64 {
	total, _ := m.Get(MemTotal)
	if avail, ok := m.Get(MemAvailable); ok {
		return sub(total, avail)
	}
	free, _ := m.Get(MemFree)
	buf, _ := m.Get(MemBuffers)
	cached, _ := m.Get(MemCached)
	return sub(total, free+buf+cached)
}

func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

// Sample is one reading of a node's /proc.
type Sample struct {
	CPU  CPUInfo
	Mem  MemInfo
	Load LoadAvg
	Stat Stat
	Net  []Iface
}

// ReadSample reads the five files under procfs (normally "/proc"). A file
// that is missing or unreadable is an error; fields missing inside a file
// are left zero.
func ReadSample(procfs string) (*Sample, error) {
	s := new(Sample)
	p := filepath.Join(procfs, "cpuinfo")
	b, err := ReadProcFile(p)
	if err != nil {
		return nil, err
	}
	if s.CPU, err = ParseCPUInfo(b); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", p, err)
	}
	if err := readDynamic(procfs, s); err != nil {
		return nil, err
	}
	return s, nil
}

// ReadProcFile reads a whole /proc file. /proc reports size 0 (or a wrong
// size) for its files, so it reads until EOF, up to maxProcFile bytes.
func ReadProcFile(path string) ([]byte, error) { return readProcInto(path, nil) }

// readProcInto is ReadProcFile reusing buf's storage (the sender reads the
// same files every second).
func readProcInto(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading proc file: %w", err)
	}
	defer f.Close()
	b := buf[:0]
	if cap(b) == 0 {
		b = make([]byte, 0, 4096)
	}
	for {
		if len(b) == cap(b) {
			if len(b) > maxProcFile {
				return nil, fmt.Errorf("reading %s: larger than %d bytes", path, maxProcFile)
			}
			b = append(b, 0)[:len(b)] // grow
		}
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
	}
}

// keyValue splits a "key<tab>: value" or "Key:   value" line.
func keyValue(line string) (string, string, bool) {
	k, v, ok := strings.Cut(line, ":")
	if !ok {
		return "", "", false
	}
	return strings.TrimSpace(k), strings.TrimSpace(v), true
}

// lineScanner walks the lines of a file already in memory (bufio.Scanner
// would allocate a 64 KiB buffer per file, every second).
type lineScanner struct{ b, line []byte }

func lines(b []byte) *lineScanner { return &lineScanner{b: b} }

func (s *lineScanner) Scan() bool {
	if len(s.b) == 0 {
		return false
	}
	if i := bytes.IndexByte(s.b, '\n'); i >= 0 {
		s.line, s.b = s.b[:i], s.b[i+1:]
	} else {
		s.line, s.b = s.b, nil
	}
	return true
}

func (s *lineScanner) Text() string { return string(s.line) }
func (s *lineScanner) Err() error   { return nil }

// ParseCPUInfo reads /proc/cpuinfo in its x86, arm and powerpc layouts.
// Per-cpu facts come from the first processor's block; machine-wide lines
// (arm's "Hardware" and "Model") may come anywhere.
func ParseCPUInfo(b []byte) (CPUInfo, error) {
	var ci CPUInfo
	first := map[string]string{} // keys of the first block (and any preamble)
	global := map[string]string{}
	sc := lines(b)
	for sc.Scan() {
		k, v, ok := keyValue(sc.Text())
		if !ok {
			continue
		}
		switch {
		case k == "processor":
			if _, err := strconv.Atoi(v); err == nil {
				ci.Count++
			}
		case k == "Hardware" || k == "Model":
			global[k] = v
		case ci.Count <= 1:
			if _, seen := first[k]; !seen {
				first[k] = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return ci, fmt.Errorf("cpuinfo: %w", err)
	}
	pick := func(m map[string]string, keys ...string) string {
		for _, k := range keys {
			if v := m[k]; v != "" {
				return v
			}
		}
		return ""
	}
	ci.Vendor = pick(first, "vendor_id", "CPU implementer")
	ci.Model = pick(first, "model name", "Processor", "cpu")
	if ci.Model == "" {
		ci.Model = pick(global, "Model", "Hardware")
	}
	if ci.Model == "" && first["CPU part"] != "" {
		ci.Model = "CPU part " + first["CPU part"]
	}
	ci.Cache = first["cache size"]
	ci.MHz, _ = strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(pick(first, "cpu MHz", "clock"), "MHz")), 64)
	ci.BogoMIPS, _ = strconv.ParseFloat(pick(first, "bogomips", "BogoMIPS"), 64)
	if ci.MHz < 0 || ci.MHz > 1e7 {
		ci.MHz = 0
	}
	return ci, nil
}

// ParseMemInfo reads /proc/meminfo; fields not in MemFields are ignored.
func ParseMemInfo(b []byte) (MemInfo, error) {
	var m MemInfo
	sc := lines(b)
	for sc.Scan() {
		k, v, ok := keyValue(sc.Text())
		if !ok {
			continue
		}
		i, known := memIndex[k]
		if !known {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(v, "kB")), 10, 64)
		if err != nil {
			return m, fmt.Errorf("meminfo %s: %w", k, err)
		}
		m.V[i] = n
		m.Have |= 1 << uint(i)
	}
	if err := sc.Err(); err != nil {
		return m, fmt.Errorf("meminfo: %w", err)
	}
	return m, nil
}

// ParseLoadAvg reads /proc/loadavg: "0.19 0.07 0.02 1/89 5179".
func ParseLoadAvg(b []byte) (LoadAvg, error) {
	var l LoadAvg
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return l, fmt.Errorf("loadavg: %d fields, want at least 3", len(f))
	}
	for i, p := range []*float64{&l.Load1, &l.Load5, &l.Load15} {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil || !(v >= 0 && v <= 1e9) { // also refuses NaN
			return l, fmt.Errorf("loadavg: bad load %q", f[i])
		}
		*p = v
	}
	if len(f) >= 4 {
		r, t, _ := strings.Cut(f[3], "/")
		l.Running = parseU32(r)
		l.Total = parseU32(t)
	}
	if len(f) >= 5 {
		l.LastPID = parseU32(f[4])
	}
	return l, nil
}

func parseU32(s string) uint32 {
	v, _ := strconv.ParseUint(s, 10, 32)
	return uint32(v)
}

// statScalars are the /proc/stat lines of one number that Stat keeps, by
// the line's name.
var statScalars = map[string]func(*Stat) *uint64{
	"intr":          func(st *Stat) *uint64 { return &st.Intr },
	"ctxt":          func(st *Stat) *uint64 { return &st.Ctxt },
	"btime":         func(st *Stat) *uint64 { return &st.BootTime },
	"processes":     func(st *Stat) *uint64 { return &st.Procs },
	"procs_running": func(st *Stat) *uint64 { return &st.Running },
	"procs_blocked": func(st *Stat) *uint64 { return &st.Blocked },
}

// ParseStat reads /proc/stat. Lines with fewer time fields (old kernels)
// leave the rest zero.
func ParseStat(b []byte) (Stat, error) {
	var st Stat
	sawCPU := false
	sc := lines(b)
	for sc.Scan() {
		line := sc.line
		// Only cpu lines are split into fields: the intr line has
		// thousands of numbers and bproc keeps the first.
		var f []string
		if bytes.HasPrefix(line, []byte("cpu")) {
			f = strings.Fields(string(line))
		} else {
			name, rest, _ := bytes.Cut(line, []byte(" "))
			first, _, _ := bytes.Cut(bytes.TrimLeft(rest, " "), []byte(" "))
			f = []string{string(name), string(first)}
		}
		if len(f) < 2 {
			continue
		}
		name := f[0]
		switch {
		case name == "cpu":
			n, err := parseTimes(&st.CPU, f[1:])
			if err != nil {
				return st, fmt.Errorf("stat cpu: %w", err)
			}
			st.Fields, sawCPU = n, true
		case strings.HasPrefix(name, "cpu"):
			if _, err := strconv.Atoi(name[3:]); err != nil {
				continue
			}
			st.NCPU++
			if len(st.PerCPU) >= MaxCPUs {
				continue
			}
			var t CPUTimes
			if _, err := parseTimes(&t, f[1:]); err != nil {
				return st, fmt.Errorf("stat %s: %w", name, err)
			}
			st.PerCPU = append(st.PerCPU, t)
		default:
			v, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				continue // a line bproc does not use, or a future format
			}
			if field := statScalars[name]; field != nil {
				*field(&st) = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return st, fmt.Errorf("stat: %w", err)
	}
	if !sawCPU {
		return st, errors.New("stat: no cpu line")
	}
	return st, nil
}

func parseTimes(t *CPUTimes, f []string) (int, error) {
	if len(f) > StatFields {
		f = f[:StatFields]
	}
	for i, s := range f {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("field %d: %w", i+1, err)
		}
		t[i] = v
	}
	return len(f), nil
}

// ParseNetDev reads /proc/net/dev (two header lines, then one interface
// per line; "name:" may touch the first number on old kernels).
func ParseNetDev(b []byte) ([]Iface, error) {
	var out []Iface
	sc := lines(b)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.Contains(name, "|") {
			continue
		}
		name = strings.TrimSpace(name)
		if name == "" || len(name) >= IfNameLen {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < NetFields {
			return out, fmt.Errorf("net/dev %s: %d fields, want %d", name, len(f), NetFields)
		}
		ifc := Iface{Name: name}
		for i := 0; i < NetFields; i++ {
			v, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return out, fmt.Errorf("net/dev %s field %d: %w", name, i+1, err)
			}
			ifc.C[i] = v
		}
		if len(out) < MaxIfaces {
			out = append(out, ifc)
		}
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("net/dev: %w", err)
	}
	return out, nil
}

// Clamp makes s's counters monotonic against prev (the previous sample of
// the same node): a counter that went backwards keeps its previous value,
// so rates never go negative or jump by 2^64. Interfaces are matched by
// name, cpus by position.
func (s *Sample) Clamp(prev *Sample) {
	if prev == nil {
		return
	}
	clampTimes(&s.Stat.CPU, &prev.Stat.CPU)
	for i := range s.Stat.PerCPU {
		if i < len(prev.Stat.PerCPU) {
			clampTimes(&s.Stat.PerCPU[i], &prev.Stat.PerCPU[i])
		}
	}
	for _, p := range []struct{ cur, old *uint64 }{
		{&s.Stat.Intr, &prev.Stat.Intr}, {&s.Stat.Ctxt, &prev.Stat.Ctxt}, {&s.Stat.Procs, &prev.Stat.Procs},
	} {
		*p.cur = max(*p.cur, *p.old)
	}
	for i := range s.Net {
		for j := range prev.Net {
			if prev.Net[j].Name == s.Net[i].Name {
				for k := range s.Net[i].C {
					s.Net[i].C[k] = max(s.Net[i].C[k], prev.Net[j].C[k])
				}
				break
			}
		}
	}
}

func clampTimes(cur, old *CPUTimes) {
	for i := range cur {
		cur[i] = max(cur[i], old[i])
	}
}
