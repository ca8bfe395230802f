package beostat

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"bproc/mcast"
)

// fixture writes two nodes into a fresh shm file: node 1 from the x86
// capture (up, cpu 1 busy), node 4 from the arm64 capture (stale).
func fixture(t *testing.T) *Reader {
	path := filepath.Join(t.TempDir(), "beostat")
	w, err := mcast.CreateShm(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	now := time.Now()
	for _, n := range []struct {
		node    int
		dir     string
		updated time.Time
		pct     []float32
	}{
		{1, "../mcast/testdata/x86", now, []float32{5, 100}},
		{4, "../mcast/testdata/arm64", now.Add(-time.Minute), []float32{0, 0, 0, 0}},
	} {
		s, err := mcast.ReadSample(n.dir)
		if err != nil {
			t.Fatal(err)
		}
		w.Update(n.node, func(r *mcast.Record) {
			r.Flags = mcast.RecPresent | mcast.RecStatic
			r.Updated, r.Interval = n.updated.UnixNano(), int64(time.Second)
			r.NCPU, r.NPerCPU, r.NIf = uint32(s.CPU.Count), uint32(len(s.Stat.PerCPU)), uint32(len(s.Net))
			r.MHz = s.CPU.MHz
			copy(r.Model[:], s.CPU.Model)
			copy(r.Vendor[:], s.CPU.Vendor)
			r.Load = [3]float64{s.Load.Load1, s.Load.Load5, s.Load.Load15}
			r.Running, r.Total, r.LastPID = s.Load.Running, s.Load.Total, s.Load.LastPID
			r.Mem, r.MemHave = s.Mem.V, s.Mem.Have
			r.CPU, r.StatFields = s.Stat.CPU, uint32(s.Stat.Fields)
			copy(r.PerCPU[:], s.Stat.PerCPU)
			copy(r.PerCPUPct[:], n.pct)
			r.CPUPct = (n.pct[0] + n.pct[1]) / 2
			for i, ifc := range s.Net {
				copy(r.Net[i].Name[:], ifc.Name)
				r.Net[i].C = ifc.C
			}
			r.RxRate = 2048
		})
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestAPI(t *testing.T) {
	r := fixture(t)
	if r.State(1) != mcast.StateUp || r.State(4) != mcast.StateStale || r.State(2) != mcast.StateDown || r.State(99999) != mcast.StateDown {
		t.Errorf("states: %s %s %s", r.State(1), r.State(4), r.State(2))
	}
	if n, err := r.CPUCount(4); err != nil || n != 4 {
		t.Errorf("CPUCount(4) = %d, %v", n, err)
	}
	if mhz, err := r.MHz(1); err != nil || mhz != 2499.998 {
		t.Errorf("MHz(1) = %v, %v", mhz, err)
	}
	if p, err := r.CPUPercent(1, 1); err != nil || p != 100 {
		t.Errorf("CPUPercent(1,1) = %v, %v", p, err)
	}
	if _, err := r.CPUPercent(1, 2); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("CPUPercent of a missing cpu: %v", err)
	}
	if ts, err := r.CPUStat(1, -1); err != nil || ts[mcast.CPUIdle] == 0 {
		t.Errorf("CPUStat(1,-1) = %v, %v", ts, err)
	}
	if l, err := r.LoadAvg(4); err != nil || l.Load1 != 1.52 {
		t.Errorf("LoadAvg(4) = %+v, %v", l, err)
	}
	if m, err := r.MemInfo(1); err != nil || m.V[mcast.MemTotal] != 24684096 {
		t.Errorf("MemInfo(1) = %v", err)
	}
	if rx, _, err := r.NetRate(1); err != nil || rx != 2048 {
		t.Errorf("NetRate(1) = %v, %v", rx, err)
	}
	if _, err := r.LoadAvg(2); !errors.Is(err, ErrNoData) {
		t.Errorf("LoadAvg of a silent node: %v", err)
	}
	// Idle counting: node 1 has one idle cpu (5% busy) and one busy; the
	// stale node counts nothing.
	if n, _ := r.IdleCPUsOnNode(1, 0.9); n != 1 {
		t.Errorf("IdleCPUsOnNode(1, 0.9) = %d", n)
	}
	if n := r.IdleCPUs(0.9); n != 1 {
		t.Errorf("IdleCPUs(0.9) = %d", n)
	}
	if last, err := r.LastMulticast(4); err != nil || time.Since(last) < 59*time.Second {
		t.Errorf("LastMulticast(4) = %v, %v", last, err)
	}
}

// RenderFile and NodeFiles give the /proc text the master's tree serves.
func TestFiles(t *testing.T) {
	r := fixture(t)
	files, mtime, err := r.NodeFiles(4)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(mcast.FileNames) || time.Since(mtime) < 59*time.Second {
		t.Errorf("NodeFiles: %d files, mtime %v", len(files), mtime)
	}
	if l, err := mcast.ParseLoadAvg(files["loadavg"]); err != nil || l.Load1 != 1.52 || l.LastPID != 10234 {
		t.Errorf("loadavg %q: %+v %v", files["loadavg"], l, err)
	}
	if !strings.Contains(string(files["stamp"]), "state stale\n") {
		t.Errorf("stamp of a stale node:\n%s", files["stamp"])
	}
	st, err := mcast.ParseStat(files["stat"])
	if err != nil || st.NCPU != 4 {
		t.Errorf("stat: %+v %v", st, err)
	}
	net, err := r.RenderFile(1, "net")
	if ifs, perr := mcast.ParseNetDev(net); err != nil || perr != nil || len(ifs) != 4 || ifs[3].Name != "eth0" {
		t.Errorf("net: %v %v %+v", err, perr, ifs)
	}
	if _, err := r.RenderFile(1, "nosuch"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("unknown file: %v", err)
	}
	if _, err := r.RenderFile(2, "stat"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("silent node: %v", err)
	}
}

func TestTableAndMetrics(t *testing.T) {
	r := fixture(t)
	rows := r.Table()
	if len(rows) != 2 || rows[0].Node != 1 || rows[1].State != mcast.StateStale || rows[0].CPUPct != 52.5 {
		t.Fatalf("rows %+v", rows)
	}
	var b bytes.Buffer
	WriteTable(&b, rows)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], " stale ") || !strings.Contains(lines[1], "23.5G") {
		t.Errorf("table:\n%s", b.String())
	}
	b.Reset()
	if err := r.WriteMetrics(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"node_load1{node=\"4\"} 1.52\n",
		"node_memory_MemTotal_bytes{node=\"1\"} 2.5276514304e+10\n",
		"node_memory_Active_anon_bytes{node=\"1\"}",
		"node_memory_HugePages_Total{node=\"4\"} 0\n",
		"node_cpu_seconds_total{node=\"1\",cpu=\"0\",mode=\"idle\"} 463.42\n",
		"node_network_receive_bytes_total{node=\"4\",device=\"ens5\"} 987654321\n",
		"bproc_node_up{node=\"1\"} 1\n", "bproc_node_up{node=\"4\"} 0\n",
		"# TYPE node_cpu_seconds_total counter\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Every sample line is "name{labels} value".
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(l, "#") && (strings.Count(l, " ") != 1 || !strings.Contains(l, "}")) {
			t.Errorf("bad sample line %q", l)
		}
	}
}

// New waits for the file: bpmaster may start before recvstats.
func TestNewBeforeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "beostat")
	r := New(path)
	defer r.Close()
	if _, err := r.RenderFile(0, "stat"); !errors.Is(err, syscall.ENOENT) || !errors.Is(err, ErrNoData) {
		t.Errorf("before the file exists: %v", err)
	}
	if r.Nodes() != 0 {
		t.Error("nodes without a file")
	}
	w, err := mcast.CreateShm(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Update(0, func(rec *mcast.Record) {
		rec.Flags = mcast.RecPresent
		rec.Updated = time.Now().UnixNano()
		rec.Load[0] = 3
	})
	r.last = time.Time{} // skip the one-second retry pause
	if b, err := r.RenderFile(0, "loadavg"); err != nil || !strings.HasPrefix(string(b), "3.00 ") {
		t.Errorf("after the file appeared: %q %v", b, err)
	}
}
