// Command sendstats multicasts a node's /proc statistics for recvstats on
// the master (see bproc/mcast).
//
//	sendstats [-i IF] [-p PORT] [-r RATE] [-n NODE] [-k keyfile] [--procfs DIR]
//
// bpslave starts it on every node with the node's number; it also runs on
// its own. It stays in the foreground and stops on SIGTERM or SIGINT.
package main

import (
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"time"

	"bproc/cmd/internal/cli"
	"bproc/cmd/internal/daemon"
	"bproc/key"
	"bproc/mcast"
)

// options are sendstats's command line.
type options struct {
	iface, keyFile, procfs string
	port, node, simulate   int
	rate                   float64
}

func main() { cli.Main(run) }

func run(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	c := cli.New("sendstats", "[options]", "Multicast this node's /proc statistics to recvstats.", stdout, stderr)
	c.VersionV()
	var o options
	c.StringVarP(&o.iface, "interface", "i", "", "send by (and take requests on) interface `IF` (default: the multicast route)")
	c.IntVarP(&o.port, "port", "p", mcast.DefaultPort, "UDP `port`")
	c.Float64VarP(&o.rate, "rate", "r", 1, "samples per second (`RATE` 5 sends every 200 ms)")
	c.IntVarP(&o.node, "node", "n", -1, "this node's `number` (default: the digits ending the hostname, e.g. node12)")
	c.StringVarP(&o.keyFile, "key", "k", key.DefaultPath, "cluster key `file`")
	c.StringVar(&o.procfs, "procfs", "/proc", "read the /proc files from `DIR`")
	c.IntVar(&o.simulate, "simulate", 0, "load generator: send for `N` simulated nodes numbered from -n")
	c.Lookup("node").DefValue = "0" // keeps the sentinel -1 out of the help
	c.MarkHidden("simulate")
	if code, done := c.Parse(args); done {
		return code
	}
	if code, done := c.NoArgs(); done {
		return code
	}
	cfg, err := config(o)
	if err != nil {
		return c.Fail(err)
	}
	cfg.Log = senderLog()
	ctx, stop := cli.StopContext()
	defer stop()
	if o.simulate > 0 {
		if err := mcast.Simulate(ctx, cfg, o.simulate); err != nil {
			return c.Fail(err)
		}
		return 0
	}
	if err := mcast.RunSender(ctx, cfg); err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	return 0
}

// senderLog is sendstats's log on its own, as bpslave's (daemon.Slog, to
// stderr: it stays in the foreground): key=value with a level, no time of
// its own under systemd's journal. The sender logs only its failures and
// their end, so at Warn, as under bpslave.
func senderLog() *log.Logger {
	return slog.NewLogLogger(daemon.Slog("sendstats", true, false, "daemon").Handler(), slog.LevelWarn)
}

// config checks the options before anything starts, so mistakes are
// reported at once.
func config(o options) (mcast.SenderConfig, error) {
	var cfg mcast.SenderConfig
	if o.port <= 0 || o.port > 65535 {
		return cfg, fmt.Errorf("port %d: out of range", o.port)
	}
	if !(o.rate > 0 && o.rate <= 100) {
		return cfg, fmt.Errorf("rate %v: want 0 < RATE <= 100 samples per second", o.rate)
	}
	node := o.node
	if node < 0 {
		n, err := nodeFromHostname()
		if err != nil {
			return cfg, err
		}
		node = n
	}
	k, err := key.Load(o.keyFile)
	if err != nil {
		return cfg, err
	}
	if _, err := mcast.ReadSample(o.procfs); err != nil {
		return cfg, err
	}
	cfg.StatsAddr, cfg.RequestAddr = mcast.GroupAddrs(o.port)
	cfg.Node, cfg.Iface, cfg.Key, cfg.Procfs = node, o.iface, k, o.procfs
	cfg.Interval = time.Duration(float64(time.Second) / o.rate)
	return cfg, nil
}

var trailingDigits = regexp.MustCompile(`([0-9]+)$`)

func nodeFromHostname() (int, error) {
	h, err := os.Hostname()
	if err != nil {
		return 0, fmt.Errorf("no -n and no hostname: %w", err)
	}
	m := trailingDigits.FindString(h)
	if m == "" {
		return 0, errors.New("no -n NODE, and hostname " + strconv.Quote(h) + " does not end in a node number")
	}
	n, err := strconv.Atoi(m)
	if err != nil || n >= mcast.ShmMaxNodes {
		return 0, fmt.Errorf("hostname %q: node number out of range", h)
	}
	return n, nil
}
