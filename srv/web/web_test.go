package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"bproc/beostat"
	"bproc/fs/pspace"
	"bproc/fs/slaveproto"
	"bproc/fs/synth"
	"bproc/internal/treetest"
	"bproc/job"
	"bproc/srv"
)

// cluster is a real master with node -1 and node 0 served in-process by
// the slave code bpslave runs; node 1 is configured but never connects.
type cluster struct {
	m       *pspace.Master
	root    *synth.Local
	stop0   context.CancelFunc // node 0's connection ends
	handler http.Handler
}

func startCluster(t *testing.T, token string) *cluster {
	t.Helper()
	cfg := pspace.DefaultConfig()
	cfg.Nodes = map[int]string{0: "10.0.0.10", 1: "10.0.0.11"}
	m := pspace.NewMaster(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go m.Run(ctx)
	ctx0, stop0 := context.WithCancel(ctx)
	for _, c := range []*synth.Caller{
		{Slave: true, Addr: slaveproto.LocalAddr, Host: "master", Conn: ctx},
		{Slave: true, Addr: "10.0.0.10", Host: "n0", Conn: ctx0},
	} {
		s := &job.Slave{Tree: &synth.Local{Root: m.Root(), Caller: c}}
		go s.Run(c.Conn)
		t.Cleanup(func() { s.Close() })
	}
	cl := &cluster{m: m, root: &synth.Local{Root: m.Root(), Caller: &synth.Caller{}}, stop0: stop0,
		handler: Handler(Source{Master: m, Server: &srv.Stats{}}, token)}
	cl.waitFor(t, "nodes -1 and 0 up", func() bool {
		return strings.Contains(cl.read(t, "node/-1/status"), " up ") && strings.Contains(cl.read(t, "node/0/status"), " up ")
	})
	return cl
}

func (c *cluster) read(t *testing.T, name string) string {
	t.Helper()
	return treetest.Read(t, c.root.Open, name)
}

func (c *cluster) exec(t *testing.T, node, cmd string) (string, error) {
	t.Helper()
	f, err := c.root.Open("node/"+node+"/ctl", os.O_RDWR)
	if err != nil {
		t.Fatalf("open ctl: %v", err)
	}
	defer f.Close()
	_, werr := f.Write([]byte(cmd + "\n")) // a command is a line
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(b)), werr
}

func (c *cluster) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (c *cluster) get(t *testing.T, path string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	c.handler.ServeHTTP(w, req)
	return w
}

func (c *cluster) metrics(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	w := c.get(t, "/metrics")
	if w.Code != 200 {
		t.Fatalf("/metrics: %d %s", w.Code, w.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(w.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return mfs
}

// value is the sample of family name whose labels are exactly labels
// ("k", "v", ...); ok false when there is none.
func value(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.Metric {
		if len(m.Label) != len(labels)/2 {
			continue
		}
		match := true
		for _, l := range m.Label {
			found := false
			for i := 0; i+1 < len(labels); i += 2 {
				found = found || (labels[i] == l.GetName() && labels[i+1] == l.GetValue())
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		}
	}
	return 0, false
}

func want(t *testing.T, mfs map[string]*dto.MetricFamily, v float64, name string, labels ...string) {
	t.Helper()
	got, ok := value(mfs, name, labels...)
	if !ok {
		t.Errorf("%s%v: missing", name, labels)
	} else if got != v {
		t.Errorf("%s%v = %v, want %v", name, labels, got, v)
	}
}

func TestMetricsMatchTheTree(t *testing.T) {
	c := startCluster(t, "")
	// Node 0: one job that exits having printed, one that cannot start
	// (not an executable format), one that will be lost with the node.
	pid, err := c.exec(t, "0", "exec -i /bin/echo hello")
	if err != nil {
		t.Fatalf("exec echo: %v (%s)", err, pid)
	}
	if out := c.read(t, "proc/"+pid+"/stdout"); out != "hello\n" {
		t.Fatalf("stdout %q", out)
	}
	if w := c.read(t, "proc/"+pid+"/wait"); w != "exit 0\n" {
		t.Fatalf("wait %q", w)
	}
	bad := filepath.Join(t.TempDir(), "garbage")
	if err := os.WriteFile(bad, []byte("\x00\x01 not a program"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := c.exec(t, "0", "exec "+bad); err == nil {
		t.Fatalf("exec of garbage succeeded: %s", out)
	}
	lost, err := c.exec(t, "0", "exec -n /bin/sleep 100")
	if err != nil {
		t.Fatalf("exec sleep: %v (%s)", err, lost)
	}
	// Node -1: one job that keeps running.
	if out, err := c.exec(t, "-1", "exec -n /bin/sleep 100"); err != nil {
		t.Fatalf("exec sleep on -1: %v (%s)", err, out)
	}
	c.stop0()
	c.waitFor(t, "node 0 down", func() bool { return strings.Contains(c.read(t, "node/0/status"), " down ") })
	c.waitFor(t, "the lost job", func() bool { return strings.HasPrefix(c.read(t, "proc/"+lost+"/wait"), "lost") })

	mfs := c.metrics(t)
	for name, mf := range mfs {
		if mf.GetHelp() == "" {
			t.Errorf("%s has no HELP", name)
		}
	}
	// Node states, against node/N/status and status.
	perState := map[string]float64{}
	for _, n := range []string{"-1", "0", "1"} {
		state := strings.Fields(c.read(t, "node/"+n+"/status"))[1]
		for _, s := range pspace.NodeStates {
			want(t, mfs, b2f(s == state), "bproc_node_state", "node", n, "state", s)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(c.read(t, "status")), "\n") {
		perState[strings.Fields(line)[1]]++
	}
	if perState["down"] != 2 || perState["up"] != 0 {
		t.Fatalf("status shows %v, want nodes 0 and 1 down", perState)
	}
	for _, s := range pspace.NodeStates {
		want(t, mfs, perState[s], "bproc_nodes", "state", s)
	}
	// Processes by state and by user, against proc/*/status.
	ents, err := c.m.Root().Lookup(&synth.Caller{}, "proc")
	if err != nil {
		t.Fatal(err)
	}
	list, err := ents.(synth.Dir).List(&synth.Caller{})
	if err != nil {
		t.Fatal(err)
	}
	byState, live := map[string]float64{}, 0.0
	for _, e := range list {
		st := strings.Fields(c.read(t, "proc/"+e.Name+"/status"))[2]
		byState[st]++
		if st != "exited" {
			live++
		}
	}
	if byState["running"] != 1 || byState["exited"] != 2 {
		t.Fatalf("proc/ shows %v, want 1 running, 2 exited", byState)
	}
	for _, s := range procStates {
		want(t, mfs, byState[s], "bproc_processes", "state", s)
	}
	want(t, mfs, live, "bproc_user_processes", "user", (&userNames{names: map[uint32]string{}}).name(0))
	// Job events per node.
	for _, tc := range []struct {
		node, name string
		v          float64
	}{
		{"0", "bproc_jobs_started_total", 2}, {"0", "bproc_jobs_exited_total", 1},
		{"0", "bproc_jobs_failed_total", 1}, {"0", "bproc_jobs_lost_total", 1},
		{"-1", "bproc_jobs_started_total", 1}, {"-1", "bproc_jobs_exited_total", 0},
		{"1", "bproc_jobs_started_total", 0},
	} {
		want(t, mfs, tc.v, tc.name, "node", tc.node)
	}
	want(t, mfs, float64(len("hello\n")), "bproc_streamed_bytes_total", "stream", "stdout")
	want(t, mfs, 0, "bproc_streamed_bytes_total", "stream", "stderr")
	want(t, mfs, 0, "bproc_9p_clients", "role", "slave")
	want(t, mfs, 0, "bproc_handshakes_refused_total", "cause", "key")
}

func TestStateJSON(t *testing.T) {
	c := startCluster(t, "")
	if out, err := c.exec(t, "0", "exec -n /bin/sleep 100"); err != nil {
		t.Fatalf("exec: %v (%s)", err, out)
	}
	w := c.get(t, "/state.json")
	var s stateView
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
		t.Fatalf("state.json: %v: %s", err, w.Body)
	}
	if len(s.Nodes) != 2 || s.Nodes[0].Num != 0 || s.Nodes[0].State != "up" || s.Nodes[0].Procs != 1 ||
		s.Nodes[1].State != "down" || s.Master == nil || s.Master.Num != -1 {
		t.Errorf("state.json = %s", w.Body)
	}
	page := c.get(t, "/")
	if page.Code != 200 || !strings.Contains(page.Body.String(), "state.json") {
		t.Errorf("/: %d %.200s", page.Code, page.Body)
	}
	if nf := c.get(t, "/nothing"); nf.Code != 404 {
		t.Errorf("/nothing: %d", nf.Code)
	}
}

func TestToken(t *testing.T) {
	const tok = "0123456789abcdef-secret"
	c := startCluster(t, tok)
	for _, tc := range []struct {
		path string
		hdr  []string
		code int
	}{
		{"/metrics", nil, 401},
		{"/metrics?token=wrong", nil, 401},
		{"/state.json", []string{"Authorization", "Bearer " + tok + "x"}, 401},
		{"/", nil, 401},
		{"/metrics?token=" + tok, nil, 200},
		{"/state.json", []string{"Authorization", "Bearer " + tok}, 200},
		{"/?token=" + tok, nil, 200},
	} {
		if w := c.get(t, tc.path, tc.hdr...); w.Code != tc.code {
			t.Errorf("GET %s %v: %d, want %d", tc.path, tc.hdr, w.Code, tc.code)
		}
	}
	req := httptest.NewRequest("POST", "/state.json?token="+tok, nil)
	w := httptest.NewRecorder()
	c.handler.ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405 (read-only)", w.Code)
	}
}

func TestCheckListen(t *testing.T) {
	for _, tc := range []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:2224", "", true},
		{"[::1]:2224", "", true},
		{"localhost:2224", "", true},
		{":2224", "", false},
		{"10.0.0.1:2224", "", false},
		{"10.0.0.1:2224", "short", false},
		{"10.0.0.1:2224", "0123456789abcdef", true},
		{"nonsense", "", false},
	} {
		if err := CheckListen(tc.addr, tc.token); (err == nil) != tc.ok {
			t.Errorf("CheckListen(%q, %q) = %v", tc.addr, tc.token, err)
		}
	}
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "tok")
	os.WriteFile(good, []byte("  s3cret-token-value \nignored\n"), 0o600)
	open := filepath.Join(dir, "open")
	os.WriteFile(open, []byte("x\n"), 0o644)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	if got, err := ReadToken(good); err != nil || got != "s3cret-token-value" {
		t.Errorf("ReadToken(file) = %q, %v", got, err)
	}
	if got, err := ReadToken("literal"); err != nil || got != "literal" {
		t.Errorf("ReadToken(literal) = %q, %v", got, err)
	}
	for _, p := range []string{open, empty, filepath.Join(dir, "missing")} {
		if _, err := ReadToken(p); err == nil {
			t.Errorf("ReadToken(%s) succeeded", p)
		}
	}
}

// Node statistics reach the page and /metrics when recvstats has them.
func TestNodeStats(t *testing.T) {
	c := startCluster(t, "")
	c.handler = Handler(Source{Master: c.m, NodeStats: func() []beostat.Row {
		return []beostat.Row{{Node: 0, Load1: 0.25, MemUsed: 1 << 20, MemTotal: 4 << 20}}
	}}, "")
	var s stateView
	if err := json.Unmarshal(c.get(t, "/state.json").Body.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	n0, n1 := s.Nodes[0], s.Nodes[1]
	if n0.Load == nil || *n0.Load != 0.25 || n0.MemUsed != 1<<20 || n0.MemTotal != 4<<20 || n1.Load != nil || n1.MemTotal != 0 {
		t.Errorf("state.json nodes = %+v", s.Nodes)
	}
	mfs := c.metrics(t)
	want(t, mfs, 0.25, "bproc_node_load1", "node", "0")
	want(t, mfs, 4<<20, "bproc_node_memory_total_bytes", "node", "0")
	if _, ok := value(mfs, "bproc_node_load1", "node", "1"); ok {
		t.Error("a load for node 1, which sent no statistics")
	}
}

// BenchmarkScrape1000: /metrics of a master with 1000 configured nodes.
func BenchmarkScrape1000(b *testing.B) {
	cfg := pspace.DefaultConfig()
	for i := 0; i < 1000; i++ {
		cfg.Nodes[i] = fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)
	}
	h := Handler(Source{Master: pspace.NewMaster(cfg), Server: &srv.Stats{}}, "")
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
