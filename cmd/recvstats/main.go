// Command recvstats collects the statistics the nodes' sendstats multicast
// into the shm file /var/shm/beostat and the per-node text files under
// /var/shm/beostat.d (see bproc/mcast).
//
//	recvstats [-d, --debug] [-i IF, --interface=IF] [-p PORT, --port=PORT]
//	          [-k keyfile] [--shm FILE] [--files DIR] [--metrics ADDR]
//	          [-h, --help] [-V, -v, --version]
//
// It forks into the background unless -d is given.
package main

import (
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"

	"bproc/beostat"
	"bproc/cmd/internal/cli"
	"bproc/cmd/internal/daemon"
	"bproc/key"
	"bproc/mcast"
)

// options are recvstats's command line.
type options struct {
	debug                               bool
	iface, keyFile, shm, files, metrics string
	port                                int
	filesCPU                            float64
	forget, requestEvery                time.Duration
}

func main() { cli.Main(run) }

func run(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	c := cli.New("recvstats", "[options]", "Collect the nodes' statistics into "+mcast.DefaultShmPath+".", stdout, stderr)
	c.VersionV()
	var o options
	c.BoolVarP(&o.debug, "debug", "d", false, "stay in the foreground and log to stderr")
	c.StringVarP(&o.iface, "interface", "i", "", "listen on interface `IF` (should always be given)")
	c.IntVarP(&o.port, "port", "p", mcast.DefaultPort, "UDP `port`")
	c.StringVarP(&o.keyFile, "key", "k", key.DefaultPath, "cluster key `file`")
	c.StringVar(&o.shm, "shm", mcast.DefaultShmPath, "the shared-memory stats `file`")
	c.StringVar(&o.files, "files", mcast.DefaultFilesDir, "per-node text files under `DIR` (\"-\": none)")
	c.Float64Var(&o.filesCPU, "files-cpu", mcast.DefaultFilesCPU*100, "spend at most `PCT` percent of a core rewriting the per-node files (-1: rewrite at every packet); the shm file is always current")
	c.StringVar(&o.metrics, "metrics", "", "serve the stats in Prometheus text format at http://`ADDR`/metrics")
	c.DurationVar(&o.forget, "forget", time.Hour, "clear a node silent this long (it shows stale long before)")
	c.DurationVar(&o.requestEvery, "request-every", 30*time.Second, "ask every node for an update this often")
	if code, done := c.Parse(args); done {
		return code
	}
	if code, done := c.NoArgs(); done {
		return code
	}
	// Everything that can be checked is checked before forking, so the
	// user sees the mistake.
	if o.port <= 0 || o.port > 65535 {
		return c.Usage("port %d: out of range", o.port)
	}
	k, err := key.Load(o.keyFile)
	if err != nil {
		return c.Fail(err)
	}
	if o.iface != "" {
		if _, err := net.InterfaceByName(o.iface); err != nil {
			return c.Errorf("interface %s: %w", o.iface, err)
		}
	}
	// The metrics address is bound before forking, and the daemon
	// inherits the listener.
	var ln net.Listener
	var keep []net.Listener
	if o.metrics != "" {
		if ln, err = daemon.Listen(0, o.metrics); err != nil {
			return c.Errorf("metrics: %w", err)
		}
		keep = append(keep, ln)
	}
	if !o.debug {
		if err := daemon.Detach(keep...); err != nil {
			return c.Fail(err)
		}
	}
	logf, mlog := loggers(o.debug)
	// One goroutine does the work; more Ps only add scheduler spinning
	// at every wake-up (measured: a fifth of recvstats' CPU).
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	syscall.Umask(0o022) // the stats are for every user to read
	ctx, stop := cli.StopContext()
	defer stop()
	cfg := mcast.ReceiverConfig{Iface: o.iface, Key: k, ShmPath: o.shm, FilesDir: o.files, FilesCPU: o.filesCPU / 100,
		RequestEvery: o.requestEvery, ForgetAfter: o.forget, Log: mlog}
	cfg.StatsAddr, cfg.RequestAddr = mcast.GroupAddrs(o.port)
	if ln != nil {
		cfg.Ready = func() { go serveMetrics(ctx, ln, o.shm, logf) }
	}
	if err := mcast.RunReceiver(ctx, cfg); err != nil {
		logf("%v", errors.New(strings.TrimPrefix(err.Error(), "recvstats: "))) // the log says who; an error: at Warn
		return 1
	}
	return 0
}

// loggers are recvstats's logs, as bpmaster's and bpslave's (daemon.Slog):
// logf for its own messages, and the one mcast's receiver takes. The
// receiver logs only failures and their end, so at Warn. -v is the
// version here (as BProc's), so there is no verbose: nothing logs at Debug.
func loggers(debug bool) (daemon.Logf, *log.Logger) {
	l := daemon.Slog("recvstats", debug, false, "daemon")
	return daemon.PrintfTo(l, slog.LevelInfo), slog.NewLogLogger(l.Handler(), slog.LevelWarn)
}

// serveMetrics answers GET /metrics with the table in Prometheus format.
func serveMetrics(ctx context.Context, ln net.Listener, shm string, logf daemon.Logf) {
	r, err := beostat.Open(shm)
	if err != nil {
		logf("metrics: %v", err)
		ln.Close()
		return
	}
	defer r.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		r.WriteMetrics(w)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logf("metrics: %v", err)
	}
}
