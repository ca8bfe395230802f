// Command beostat shows the statistics recvstats collects from the nodes.
//
//	beostat [--shm FILE]                    a table of all nodes
//	beostat -w [--interval D] [--count N]   the same, redrawn (a live view)
//	beostat -N NODE [-f NAME]...            a node's files: cpuinfo, meminfo,
//	                                        loadavg, net, stat, stamp
//	beostat --metrics                       the table in Prometheus text format
//	beostat --counters                      recvstats' packet counters
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"slices"
	"time"

	"bproc/beostat"
	"bproc/cmd/internal/cli"
	"bproc/mcast"
)

// options are beostat's command line.
type options struct {
	shm                      string
	watch, metrics, counters bool
	interval                 time.Duration
	redraws, node            int
	names                    []string
}

func main() { cli.Main(run) }

func run(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	c := cli.New("beostat", "[options]", "Show the cluster's node statistics (collected by recvstats).", stdout, stderr)
	c.VersionV()
	var o options
	c.StringVar(&o.shm, "shm", mcast.DefaultShmPath, "recvstats' shared-memory `file`")
	c.BoolVarP(&o.watch, "watch", "w", false, "live view: redraw the table every interval until interrupted")
	c.DurationVar(&o.interval, "interval", time.Second, "redraw interval of -w")
	c.IntVar(&o.redraws, "count", 0, "with -w, stop after `N` redraws (0: never)")
	c.IntVarP(&o.node, "node", "N", -1, "print the stats files of node `NODE`")
	c.Lookup("node").DefValue = "0" // keeps the sentinel -1 out of the help
	c.StringArrayVarP(&o.names, "file", "f", nil, "with -N, only the file `NAME` (repeatable): cpuinfo, meminfo, loadavg, net, stat, stamp")
	c.BoolVar(&o.metrics, "metrics", false, "print the stats in Prometheus text format")
	c.BoolVar(&o.counters, "counters", false, "print recvstats' packet counters")
	if code, done := c.Parse(args); done {
		return code
	}
	if code, done := c.NoArgs(); done {
		return code
	}
	for _, n := range o.names {
		if !slices.Contains(mcast.FileNames, n) {
			return c.Usage("no stats file %q (have %v)", n, mcast.FileNames)
		}
	}
	r, err := beostat.Open(o.shm)
	if err != nil {
		fmt.Fprintf(stderr, "%v (is recvstats running?)\n", err)
		return 1
	}
	defer r.Close()
	switch {
	case o.node >= 0:
		return printFiles(r, o.node, o.names, stdout, stderr)
	case o.metrics:
		r.WriteMetrics(stdout)
	case o.counters:
		c := r.Counters()
		for _, name := range mcast.CounterNames {
			fmt.Fprintf(stdout, "%-14s %d\n", name, c[name])
		}
	case o.watch:
		return live(r, o.interval, o.redraws, stdout)
	default:
		beostat.WriteTable(stdout, r.Table())
	}
	return 0
}

func printFiles(r *beostat.Reader, node int, names []string, stdout, stderr io.Writer) int {
	files, _, err := r.NodeFiles(node)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if len(names) == 0 {
		names = mcast.FileNames
	}
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	for _, n := range names {
		if len(names) > 1 {
			fmt.Fprintf(w, "==> node %d: %s <==\n", node, n)
		}
		w.Write(files[n])
	}
	return 0
}

// live redraws the table in place: home the cursor, draw, clear the rest,
// so the screen does not flicker.
func live(r *beostat.Reader, interval time.Duration, count int, stdout io.Writer) int {
	if interval < 10*time.Millisecond {
		interval = 10 * time.Millisecond
	}
	ctx, stop := cli.StopContext()
	defer stop()
	t := time.NewTicker(interval)
	defer t.Stop()
	for i := 0; count == 0 || i < count; i++ {
		var b bytes.Buffer
		b.WriteString("\x1b[H")
		fmt.Fprintf(&b, "beostat  %s  every %v\x1b[K\n", time.Now().Format("15:04:05"), interval)
		beostat.WriteTable(&lineClear{&b}, r.Table())
		b.WriteString("\x1b[J")
		stdout.Write(b.Bytes())
		if count != 0 && i == count-1 {
			break
		}
		select {
		case <-ctx.Done():
			return 0
		case <-t.C:
		}
	}
	return 0
}

// lineClear ends each line with "clear to end of line", so a shorter line
// never leaves the tail of a longer one.
type lineClear struct{ w *bytes.Buffer }

func (l *lineClear) Write(p []byte) (int, error) {
	l.w.Write(bytes.ReplaceAll(p, []byte("\n"), []byte("\x1b[K\n")))
	return len(p), nil
}
