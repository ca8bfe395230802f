package pspace

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"

	"bproc/fs/nodespec"
	"bproc/fs/slaveproto"
	"bproc/fs/synth"
)

// BenchmarkExecSet is `bpsh -a /bin/true` on the master's side, without
// the transport: exec -i -n on node/all/ctl, N slaves that answer each
// start at once (started, then both streams' eof and exit 0 in one
// report, as bpslave writes them), and group/G/io read to its end. It
// reports the master's ns and allocations per node (go test -bench
// ExecSet -benchmem ./fs/pspace).
func BenchmarkExecSet(b *testing.B) {
	for _, n := range []int{64, 250} {
		b.Run(strconv.Itoa(n), func(b *testing.B) { benchExecSet(b, n) })
	}
}

func benchExecSet(b *testing.B, nodes int) {
	cfg := DefaultConfig()
	cfg.StateDir = b.TempDir()
	cfg.MaxProcs = 0
	m := NewMaster(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < nodes; i++ {
		benchSlave(b, ctx, m, fmt.Sprintf("10.0.%d.%d", i/250, i%250+1))
	}
	root := &synth.Caller{}
	spec, err := nodespec.Parse("all")
	if err != nil {
		b.Fatal(err)
	}
	args := []string{"-i", "-n", "-c", "/", "-e", "PATH=/bin:/usr/bin", "/bin/true"}
	launch := func() {
		answer, err := m.execSet(ctx, root, spec, append([]string(nil), args...))
		if err != nil {
			b.Fatal(err)
		}
		var g int
		if _, err := fmt.Sscanf(answer, "group %d\n", &g); err != nil {
			b.Fatalf("answer %q: %v", answer, err)
		}
		f, err := (&synth.Local{Root: m.Root(), Caller: root}).Open(fmt.Sprintf("group/%d/io", g), os.O_RDONLY)
		if err != nil {
			b.Fatal(err)
		}
		out, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		if ends := bytes.Count(out, []byte(" end exit 0\n")); ends != nodes {
			b.Fatalf("%d ends of %d: %q", ends, nodes, out)
		}
	}
	launch() // the binary's first load
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		launch()
	}
	b.StopTimer()
	per := float64(b.N * nodes)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/per, "ns/node")
}

// benchSlave registers a slave that answers every start message at once.
func benchSlave(b *testing.B, ctx context.Context, m *Master, addr string) {
	c := &synth.Caller{Slave: true, Addr: addr, Conn: ctx}
	sc, err := m.register(c)
	if err != nil {
		b.Fatal(err)
	}
	rh := &reportHandle{m: m, sc: sc}
	go func() {
		r := bufio.NewReader(readerOf(ctx, sc.jobs))
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			// A set's start message begins with its pid (startTemplate):
			// decoding the whole message is the slave's work, not the
			// master's this measures.
			pid, ok := benchPid(line)
			if !ok {
				continue
			}
			ref := slaveproto.FormatRef(pid, 0)
			go func() {
				rh.Write(ctx, []byte(ref+" started "+ref+"\n"), 0)
				rh.Write(ctx, []byte(ref+" eof stdout\n"+ref+" eof stderr\n"+ref+" exit 0\n"), 0)
			}()
		}
	}()
}

// benchPid is the pid of a start message spliced from a set's template.
func benchPid(line []byte) (int, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(`{"pid":`))
	if !ok {
		return 0, false
	}
	i := bytes.IndexByte(rest, ',')
	if i < 0 {
		return 0, false
	}
	pid, err := strconv.Atoi(string(rest[:i]))
	return pid, err == nil
}
