package web

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"bproc/fs/pspace"
	"bproc/srv"
)

// The metrics, read from a snapshot of the master at every scrape (no
// gauges to keep in sync). Migrations are not counted: bproc has none yet.
var (
	descNodeState = desc("bproc_node_state", "1 for the state a node is in, 0 for the others (node -1 is the master).", "node", "state")
	descNodes     = desc("bproc_nodes", "Compute nodes in each state (the master, node -1, is not counted).", "state")
	descProcs     = desc("bproc_processes", "Processes in the process space (proc/) by state; exited ones stay 10 minutes.", "state")
	descUserProcs = desc("bproc_user_processes", "Live (not exited) processes by user.", "user")
	descJobs      = map[string]*prometheus.Desc{
		"started": desc("bproc_jobs_started_total", "Jobs started on a node.", "node"),
		"exited":  desc("bproc_jobs_exited_total", "Jobs that ended on a node by exit or signal.", "node"),
		"failed":  desc("bproc_jobs_failed_total", "Jobs that a node could not start.", "node"),
		"lost":    desc("bproc_jobs_lost_total", "Jobs lost because their node went down.", "node"),
	}
	descStreamed = desc("bproc_streamed_bytes_total", "Bytes of process output (stdout, stderr) and input (stdin) that passed through the master.", "stream")
	descBinSent  = desc("bproc_binary_sent_bytes_total", "Bytes of shipped binaries the master sent to slaves (the rest came from peers).")
	descBinFall  = desc("bproc_binary_peer_fallbacks_total", "Binary fetches from the master by slaves whose peers failed them.")
	descClients  = desc("bproc_9p_clients", "9P clients connected now, by the role their handshake claimed.", "role")
	descRefused  = desc("bproc_handshakes_refused_total", "9P connections refused at the handshake, by cause.", "cause")
	descLoad     = desc("bproc_node_load1", "A node's 1-minute load average, from its statistics (absent when none arrived).", "node")
	descMemUsed  = desc("bproc_node_memory_used_bytes", "A node's memory in use, from its statistics.", "node")
	descMemTotal = desc("bproc_node_memory_total_bytes", "A node's memory, from its statistics.", "node")
)

var (
	procStates = []string{"starting", "running", "stopped", "exited"}
	jobEvents  = []string{"started", "exited", "failed", "lost"}
	streams    = []string{"stdout", "stderr", "stdin"}
	refusals   = []string{srv.RefusedKey, srv.RefusedGreeting, srv.RefusedHello, srv.RefusedTimeout,
		srv.RefusedClosed, srv.RefusedBusy, srv.RefusedOther}
)

type collector struct {
	src   Source
	users *userNames
}

// descs are all the metrics, as desc defines them, for Describe.
var descs []*prometheus.Desc

func desc(name, help string, labels ...string) *prometheus.Desc {
	d := prometheus.NewDesc(name, help, labels, nil)
	descs = append(descs, d)
	return d
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	s := c.src.Master.Snapshot()

	perState := map[string]int{}
	for _, n := range s.Nodes {
		num := strconv.Itoa(n.Num)
		for _, st := range pspace.NodeStates {
			gauge(descNodeState, b2f(n.State == st), num, st)
		}
		if n.Num >= 0 {
			perState[n.State]++
		}
		// Every node gets every job series, zero included, so that
		// rate() and alerts work from the first job on.
		for _, ev := range jobEvents {
			counter(descJobs[ev], float64(s.Jobs[pspace.JobKey{Node: n.Num, Event: ev}]), num)
		}
	}
	for _, st := range pspace.NodeStates {
		gauge(descNodes, float64(perState[st]), st)
	}

	byState, byUser := map[string]int{}, map[string]int{}
	for _, p := range s.Procs {
		byState[p.State]++
		if p.State != "exited" {
			byUser[c.users.name(p.Uid)]++
		}
	}
	for _, st := range procStates {
		gauge(descProcs, float64(byState[st]), st)
	}
	for u, n := range byUser {
		gauge(descUserProcs, float64(n), u)
	}
	for _, name := range streams {
		counter(descStreamed, float64(s.Streamed[name]), name)
	}
	counter(descBinSent, float64(s.Binaries.Sent))
	counter(descBinFall, float64(s.Binaries.Fallbacks))

	if c.src.Server != nil {
		for role, n := range c.src.Server.Connected() {
			gauge(descClients, float64(n), role)
		}
		refused := c.src.Server.Refused()
		for _, cause := range refusals {
			counter(descRefused, float64(refused[cause]), cause)
		}
	}
	if c.src.NodeStats != nil {
		for _, r := range c.src.NodeStats() {
			num := strconv.Itoa(r.Node)
			gauge(descLoad, r.Load1, num)
			gauge(descMemUsed, float64(r.MemUsed), num)
			gauge(descMemTotal, float64(r.MemTotal), num)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
