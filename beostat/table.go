package beostat

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"

	"bproc/mcast"
)

// Row is one node's line of the status table.
type Row struct {
	Node          int
	State         mcast.State
	CPUs          int
	Load1         float64
	CPUPct        float64 // busy, all cpus, last interval
	MemUsed       uint64  // bytes
	MemTotal      uint64  // bytes
	RxRate        float64 // bytes/s
	TxRate        float64
	Age           time.Duration // since the last packet
	Model         string
	Last, Started time.Time
}

// Table returns a row for every node that has reported, by node number.
func (r *Reader) Table() []Row {
	var rows []Row
	now := r.now()
	for n := 0; n < r.Nodes(); n++ {
		r.with(n, func(rec *mcast.Record) error {
			m := mcast.MemInfo{V: rec.Mem, Have: rec.MemHave}
			total, _ := m.Get(mcast.MemTotal)
			rows = append(rows, Row{Node: n, State: rec.State(now), CPUs: int(rec.NCPU), Load1: rec.Load[0],
				CPUPct: float64(rec.CPUPct), MemUsed: m.Used() * 1024, MemTotal: total * 1024,
				RxRate: rec.RxRate, TxRate: rec.TxRate, Age: now.Sub(time.Unix(0, rec.Updated)),
				Model: strings.TrimRight(string(rec.Model[:]), "\x00"), Last: time.Unix(0, rec.Updated)})
			return nil
		})
	}
	return rows
}

// WriteTable prints rows as the beostat command shows them.
func WriteTable(w io.Writer, rows []Row) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%5s %-6s %4s %6s %6s %17s %19s %7s\n", "NODE", "STATE", "CPUS", "LOAD", "CPU%", "MEM USED/TOTAL", "NET RX/TX (B/s)", "AGE")
	for _, r := range rows {
		fmt.Fprintf(bw, "%5d %-6s %4d %6.2f %6.1f %17s %19s %7s\n", r.Node, r.State, r.CPUs, r.Load1, r.CPUPct,
			HumanBytes(float64(r.MemUsed))+"/"+HumanBytes(float64(r.MemTotal)),
			HumanBytes(r.RxRate)+"/"+HumanBytes(r.TxRate), fmtAge(r.Age))
	}
	return bw.Flush()
}

func fmtAge(d time.Duration) string {
	switch {
	case d < 0:
		return "0.0s"
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%.0fm", d.Minutes())
	}
	return fmt.Sprintf("%.0fh", d.Hours())
}

// HumanBytes writes n with a binary unit suffix: 0, 512, 1.5K, 23.5G.
func HumanBytes(n float64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%.0f", n)
	}
	i := -1
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	return fmt.Sprintf("%.1f%c", n, units[i])
}

// userHZ is the unit of /proc/stat times on every Linux architecture.
const userHZ = 100

var cpuModes = []string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}

var netMetrics = []struct {
	name string
	col  int
}{
	{"receive_bytes", 0}, {"receive_packets", 1}, {"receive_errs", 2}, {"receive_drop", 3},
	{"transmit_bytes", 8}, {"transmit_packets", 9}, {"transmit_errs", 10}, {"transmit_drop", 11},
}

// WriteMetrics writes every reporting node in the Prometheus text format
// with node_exporter's metric names, each series labelled node="N"; plus
// bproc_node_up and recvstats' packet counters.
func (r *Reader) WriteMetrics(w io.Writer) error {
	var recs []*mcast.Record
	for n := 0; n < r.Nodes(); n++ {
		if rec, err := r.Record(n); err == nil {
			recs = append(recs, rec)
		}
	}
	now := r.now()
	bw := bufio.NewWriter(w)
	family := func(name, typ, help string, each func(rec *mcast.Record, lbl string)) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, rec := range recs {
			each(rec, fmt.Sprintf(`node="%d"`, rec.Node))
		}
	}
	gauge := func(name, help string, v func(rec *mcast.Record) float64) {
		family(name, "gauge", help, func(rec *mcast.Record, lbl string) {
			fmt.Fprintf(bw, "%s{%s} %g\n", name, lbl, v(rec))
		})
	}
	gauge("bproc_node_up", "1 if the node's statistics are current, 0 if stale.", func(rec *mcast.Record) float64 {
		if rec.State(now) == mcast.StateUp {
			return 1
		}
		return 0
	})
	gauge("bproc_node_last_update_timestamp_seconds", "When recvstats last heard from the node.", func(rec *mcast.Record) float64 { return float64(rec.Updated) / 1e9 })
	gauge("bproc_node_cpu_busy_percent", "Busy percentage of all cpus over the node's last interval.", func(rec *mcast.Record) float64 { return float64(rec.CPUPct) })
	gauge("node_load1", "1m load average.", func(rec *mcast.Record) float64 { return rec.Load[0] })
	gauge("node_load5", "5m load average.", func(rec *mcast.Record) float64 { return rec.Load[1] })
	gauge("node_load15", "15m load average.", func(rec *mcast.Record) float64 { return rec.Load[2] })
	for i, f := range mcast.MemFields {
		name := "node_memory_" + strings.NewReplacer("(", "_", ")", "").Replace(f.Name)
		scale := 1.0
		if f.KB {
			name += "_bytes"
			scale = 1024
		}
		family(name, "gauge", "Memory information field "+f.Name+".", func(rec *mcast.Record, lbl string) {
			if rec.MemHave&(1<<uint(i)) != 0 {
				fmt.Fprintf(bw, "%s{%s} %g\n", name, lbl, float64(rec.Mem[i])*scale)
			}
		})
	}
	family("node_cpu_seconds_total", "counter", "Seconds the cpus spent in each mode.", func(rec *mcast.Record, lbl string) {
		for c := 0; c < int(rec.NPerCPU); c++ {
			for m, mode := range cpuModes {
				fmt.Fprintf(bw, "node_cpu_seconds_total{%s,cpu=\"%d\",mode=\"%s\"} %g\n", lbl, c, mode, float64(rec.PerCPU[c][m])/userHZ)
			}
		}
	})
	for _, nm := range netMetrics {
		name := "node_network_" + nm.name + "_total"
		family(name, "counter", "Network device statistic "+nm.name+".", func(rec *mcast.Record, lbl string) {
			for i := 0; i < int(rec.NIf); i++ {
				fmt.Fprintf(bw, "%s{%s,device=\"%s\"} %d\n", name, lbl, strings.TrimRight(string(rec.Net[i].Name[:]), "\x00"), rec.Net[i].C[nm.col])
			}
		})
	}
	for _, c := range []struct {
		name, typ, help string
		v               func(rec *mcast.Record) uint64
	}{
		{"node_boot_time_seconds", "gauge", "Node boot time, in unixtime.", func(rec *mcast.Record) uint64 { return rec.BootTime }},
		{"node_context_switches_total", "counter", "Total number of context switches.", func(rec *mcast.Record) uint64 { return rec.Ctxt }},
		{"node_forks_total", "counter", "Total number of forks.", func(rec *mcast.Record) uint64 { return rec.Procs }},
		{"node_intr_total", "counter", "Total number of interrupts serviced.", func(rec *mcast.Record) uint64 { return rec.Intr }},
		{"node_procs_running", "gauge", "Number of processes in runnable state.", func(rec *mcast.Record) uint64 { return rec.ProcsRun }},
		{"node_procs_blocked", "gauge", "Number of processes blocked waiting for I/O to complete.", func(rec *mcast.Record) uint64 { return rec.ProcsBlk }},
	} {
		family(c.name, c.typ, c.help, func(rec *mcast.Record, lbl string) {
			fmt.Fprintf(bw, "%s{%s} %d\n", c.name, lbl, c.v(rec))
		})
	}
	fmt.Fprintf(bw, "# HELP bproc_recvstats_packets_total Datagrams recvstats read, by outcome.\n# TYPE bproc_recvstats_packets_total counter\n")
	ctr := r.Counters()
	for _, name := range mcast.CounterNames {
		fmt.Fprintf(bw, "bproc_recvstats_packets_total{result=\"%s\"} %d\n", name, ctr[name])
	}
	return bw.Flush()
}
