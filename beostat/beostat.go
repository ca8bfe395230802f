// Package beostat reads the cluster statistics recvstats keeps in its shm
// file (see bproc/mcast): the Go form of Scyld's libbeostat. A Reader is
// safe for concurrent use; every call reads the node's record afresh, and
// a record is never seen half written.
package beostat

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"bproc/mcast"
)

// DefaultPath is where recvstats writes the shm file.
const DefaultPath = mcast.DefaultShmPath

// ErrNoData says the node has not reported (never, or not since it was
// forgotten).
var ErrNoData = errors.New("no statistics")

// Reader reads the shm file.
type Reader struct {
	mu   sync.Mutex
	path string
	shm  *mcast.ShmReader // nil until the file could be opened (New)
	last time.Time        // of the last failed open
	rec  mcast.Record     // scratch, under mu
	now  func() time.Time
}

// Open maps the shm file at path ("" for DefaultPath); it fails when the
// file is missing or not a stats file.
func Open(path string) (*Reader, error) {
	r := New(path)
	if err := r.ensure(); err != nil {
		return nil, err
	}
	return r, nil
}

// New returns a Reader that maps the shm file at path ("" for DefaultPath)
// when it is first needed, and keeps trying (at most once a second) while
// it does not exist: for long-running programs such as bpmaster that may
// start before recvstats. Until then every call fails with an error
// wrapping ErrNoData and ENOENT.
func New(path string) *Reader {
	if path == "" {
		path = DefaultPath
	}
	return &Reader{path: path, now: time.Now}
}

// ensure opens the file if needed; r.mu must be held (or r unshared).
func (r *Reader) ensure() error {
	if r.shm != nil {
		return nil
	}
	if !r.last.IsZero() && time.Since(r.last) < time.Second {
		return fmt.Errorf("beostat: %s: %w: %w", r.path, ErrNoData, syscall.ENOENT)
	}
	shm, err := mcast.OpenShm(r.path)
	if err != nil {
		r.last = time.Now()
		return fmt.Errorf("beostat: %w: %w", ErrNoData, err)
	}
	r.shm = shm
	return nil
}

// Close unmaps the file.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shm == nil {
		return nil
	}
	err := r.shm.Close()
	r.shm = nil
	return err
}

// Nodes is one more than the highest node number the file has room for;
// nodes below it that never reported are StateDown.
func (r *Reader) Nodes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ensure() != nil {
		return 0
	}
	return r.shm.Nodes()
}

// with runs fn on a consistent copy of node's record, which must be present.
func (r *Reader) with(node int, fn func(rec *mcast.Record) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.ensure(); err != nil {
		return err
	}
	if !r.shm.Present(node) {
		return fmt.Errorf("beostat: node %d: %w", node, ErrNoData)
	}
	if err := r.shm.Read(node, &r.rec); err != nil {
		return fmt.Errorf("beostat: node %d: %w: %w", node, ErrNoData, err)
	}
	if r.rec.Flags&mcast.RecPresent == 0 {
		return fmt.Errorf("beostat: node %d: %w", node, ErrNoData)
	}
	return fn(&r.rec)
}

// Record returns a copy of node's whole record.
func (r *Reader) Record(node int) (*mcast.Record, error) {
	out := new(mcast.Record)
	err := r.with(node, func(rec *mcast.Record) error { *out = *rec; return nil })
	return out, err
}

// State is up, stale (packets stopped) or down (never reported).
func (r *Reader) State(node int) mcast.State {
	st := mcast.StateDown
	r.with(node, func(rec *mcast.Record) error { st = rec.State(r.now()); return nil })
	return st
}

// Available reports whether the node is up (beostat_is_node_available).
func (r *Reader) Available(node int) bool { return r.State(node) == mcast.StateUp }

// LastMulticast is when recvstats last accepted a packet from node
// (beostat_get_last_multicast).
func (r *Reader) LastMulticast(node int) (time.Time, error) {
	var t time.Time
	err := r.with(node, func(rec *mcast.Record) error { t = time.Unix(0, rec.Updated); return nil })
	return t, err
}

// CPUCount is the node's number of cpus (beostat_get_cpu_count).
func (r *Reader) CPUCount(node int) (int, error) {
	var n int
	err := r.with(node, func(rec *mcast.Record) error { n = int(rec.NCPU); return nil })
	return n, err
}

// CPUInfo is the node's cpu model, vendor, MHz and count
// (beostat_get_cpuinfo_x86).
func (r *Reader) CPUInfo(node int) (mcast.CPUInfo, error) {
	var ci mcast.CPUInfo
	err := r.with(node, func(rec *mcast.Record) error {
		if rec.Flags&mcast.RecStatic == 0 {
			return fmt.Errorf("beostat: node %d: cpu facts not received yet: %w", node, ErrNoData)
		}
		ci = rec.Sample().CPU
		return nil
	})
	return ci, err
}

// MHz is the node's cpu clock (beostat_get_MHz).
func (r *Reader) MHz(node int) (float64, error) {
	ci, err := r.CPUInfo(node)
	return ci.MHz, err
}

// CPUStat is the /proc/stat times of one cpu of node, or of all its cpus
// when cpu is -1 (beostat_get_stat_cpu).
func (r *Reader) CPUStat(node, cpu int) (mcast.CPUTimes, error) {
	var t mcast.CPUTimes
	err := r.with(node, func(rec *mcast.Record) error {
		if cpu == -1 {
			t = rec.CPU
			return nil
		}
		if cpu < 0 || cpu >= int(rec.NPerCPU) {
			return fmt.Errorf("beostat: node %d cpu %d: %w", node, cpu, syscall.ENOENT)
		}
		t = rec.PerCPU[cpu]
		return nil
	})
	return t, err
}

// CPUPercent is how busy one cpu (or all, cpu -1) was over the node's last
// interval, 0..100 (beostat_get_cpu_percent).
func (r *Reader) CPUPercent(node, cpu int) (float64, error) {
	var p float64
	err := r.with(node, func(rec *mcast.Record) error {
		if cpu == -1 {
			p = float64(rec.CPUPct)
			return nil
		}
		if cpu < 0 || cpu >= int(rec.NPerCPU) {
			return fmt.Errorf("beostat: node %d cpu %d: %w", node, cpu, syscall.ENOENT)
		}
		p = float64(rec.PerCPUPct[cpu])
		return nil
	})
	return p, err
}

// MemInfo is the node's /proc/meminfo (beostat_get_meminfo).
func (r *Reader) MemInfo(node int) (mcast.MemInfo, error) {
	var m mcast.MemInfo
	err := r.with(node, func(rec *mcast.Record) error { m = mcast.MemInfo{V: rec.Mem, Have: rec.MemHave}; return nil })
	return m, err
}

// LoadAvg is the node's /proc/loadavg (beostat_get_loadavg).
func (r *Reader) LoadAvg(node int) (mcast.LoadAvg, error) {
	var l mcast.LoadAvg
	err := r.with(node, func(rec *mcast.Record) error { l = rec.Sample().Load; return nil })
	return l, err
}

// NetRate is the node's network traffic in bytes per second over its last
// interval, all interfaces but loopback (beostat_get_net_rate).
func (r *Reader) NetRate(node int) (rx, tx float64, err error) {
	err = r.with(node, func(rec *mcast.Record) error { rx, tx = rec.RxRate, rec.TxRate; return nil })
	return rx, tx, err
}

// NetIface is one interface of a node with its rates.
type NetIface struct {
	mcast.Iface
	RxRate, TxRate float64 // bytes/s
}

// NetDev is the node's /proc/net/dev with per-interface rates
// (beostat_get_net_dev).
func (r *Reader) NetDev(node int) ([]NetIface, error) {
	var out []NetIface
	err := r.with(node, func(rec *mcast.Record) error {
		for i, ifc := range rec.Sample().Net {
			out = append(out, NetIface{Iface: ifc, RxRate: rec.Net[i].RxRate, TxRate: rec.Net[i].TxRate})
		}
		return nil
	})
	return out, err
}

// IdleCPUsOnNode counts the cpus of node that were idle at least the
// fraction threshold (0..1) of its last interval
// (beostat_count_idle_cpus_on_node). A node that is not up has none.
func (r *Reader) IdleCPUsOnNode(node int, threshold float64) (int, error) {
	n := 0
	err := r.with(node, func(rec *mcast.Record) error {
		if rec.State(r.now()) != mcast.StateUp {
			return nil
		}
		for i := 0; i < int(rec.NPerCPU); i++ {
			if 1-float64(rec.PerCPUPct[i])/100 >= threshold {
				n++
			}
		}
		return nil
	})
	return n, err
}

// IdleCPUs counts idle cpus over all up nodes (beostat_count_idle_cpus).
func (r *Reader) IdleCPUs(threshold float64) int {
	total := 0
	for n := 0; n < r.Nodes(); n++ {
		c, _ := r.IdleCPUsOnNode(n, threshold)
		total += c
	}
	return total
}

// RenderFile returns one of the node's stats files (mcast.FileNames:
// cpuinfo, meminfo, loadavg, net, stat, stamp) as recvstats writes them
// beside the shm file: the node's /proc file in the kernel's text format,
// or the freshness stamp. A node that never reported gives an error
// wrapping ENOENT; an unknown name too.
func (r *Reader) RenderFile(node int, name string) ([]byte, error) {
	var b []byte
	err := r.with(node, func(rec *mcast.Record) (err error) { b, err = rec.File(name, r.now()); return })
	if errors.Is(err, ErrNoData) {
		err = fmt.Errorf("%w: %w", err, syscall.ENOENT)
	}
	return b, err
}

// NodeFiles returns all of node's stats files, rendered from one
// consistent copy of its record, and the time of its last packet (for the
// files' mtime).
func (r *Reader) NodeFiles(node int) (map[string][]byte, time.Time, error) {
	files := make(map[string][]byte, len(mcast.FileNames))
	var t time.Time
	err := r.with(node, func(rec *mcast.Record) error {
		now := r.now()
		for _, name := range mcast.FileNames {
			b, err := rec.File(name, now)
			if err != nil {
				return err
			}
			files[name] = b
		}
		t = time.Unix(0, rec.Updated)
		return nil
	})
	if errors.Is(err, ErrNoData) {
		err = fmt.Errorf("%w: %w", err, syscall.ENOENT)
	}
	return files, t, err
}

// Counters returns recvstats' packet counters by name.
func (r *Reader) Counters() map[string]uint64 {
	r.mu.Lock()
	var h mcast.ShmHeader
	if r.ensure() == nil {
		h = r.shm.Header()
	}
	r.mu.Unlock()
	out := make(map[string]uint64, len(mcast.CounterNames))
	for i, name := range mcast.CounterNames {
		out[name] = h.Counters[i]
	}
	return out
}
