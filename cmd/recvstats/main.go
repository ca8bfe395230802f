// Command recvstats collects the statistics the nodes' sendstats multicast
// into the shm file /var/shm/beostat and the per-node text files under
// /var/shm/beostat.d (see bproc/mcast).
//
//	recvstats [-d, --debug] [-i IF, --interface=IF] [-p PORT, --port=PORT]
//	          [-k keyfile] [--shm FILE] [--files DIR] [--metrics ADDR]
//	          [-h, --help] [-v, --version]
//
// It forks into the background unless -d is given.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"bproc/beostat"
	"bproc/client"
	"bproc/cmd/internal/daemon"
	"bproc/key"
	"bproc/mcast"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("recvstats", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	debug := fs.BoolP("debug", "d", false, "stay in the foreground and log to stderr")
	iface := fs.StringP("interface", "i", "", "listen on interface `IF` (should always be given)")
	port := fs.IntP("port", "p", mcast.DefaultPort, "UDP `port`")
	keyFile := fs.StringP("key", "k", key.DefaultPath, "cluster key `file`")
	shm := fs.String("shm", mcast.DefaultShmPath, "the shared-memory stats `file`")
	files := fs.String("files", mcast.DefaultFilesDir, "per-node text files under `DIR` (\"-\": none)")
	filesCPU := fs.Float64("files-cpu", mcast.DefaultFilesCPU*100, "spend at most `PCT` percent of a core rewriting the per-node files (-1: rewrite at every packet); the shm file is always current")
	metrics := fs.String("metrics", "", "serve the stats in Prometheus text format at http://`ADDR`/metrics")
	forget := fs.Duration("forget", time.Hour, "clear a node silent this long (it shows stale long before)")
	requestEvery := fs.Duration("request-every", 30*time.Second, "ask every node for an update this often")
	help := fs.BoolP("help", "h", false, "show this help and exit")
	version := fs.BoolP("version", "v", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "recvstats: %v\nTry 'recvstats -h' for help.\n", err)
		return 2
	}
	if *help {
		fmt.Fprintf(stdout, "Usage: recvstats [options]\n\nCollect the nodes' statistics into %s.\n\nOptions:\n", mcast.DefaultShmPath)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return 0
	}
	if *version {
		fmt.Fprintln(stdout, "recvstats", client.Version)
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "recvstats: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	// Everything that can be checked is checked before forking, so the
	// user sees the mistake.
	if *port <= 0 || *port > 65535 {
		fmt.Fprintf(stderr, "recvstats: port %d: out of range\n", *port)
		return 2
	}
	k, err := key.Load(*keyFile)
	if err != nil {
		fmt.Fprintf(stderr, "recvstats: %v\n", err)
		return 1
	}
	if *iface != "" {
		if _, err := net.InterfaceByName(*iface); err != nil {
			fmt.Fprintf(stderr, "recvstats: interface %s: %v\n", *iface, err)
			return 1
		}
	}
	listenMetrics := func() (net.Listener, error) {
		if *metrics == "" {
			return nil, nil
		}
		ln, err := net.Listen("tcp", *metrics)
		if err != nil {
			return nil, fmt.Errorf("recvstats: metrics: %w", err)
		}
		return ln, nil
	}
	if !*debug {
		// Try the metrics address now (for the error message), then
		// free it for the detached child.
		if ln, err := listenMetrics(); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		} else if ln != nil {
			ln.Close()
		}
		if err := daemon.Detach(); err != nil {
			fmt.Fprintf(stderr, "recvstats: %v\n", err)
			return 1
		}
	}
	ln, err := listenMetrics()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	logger := daemon.Logger("recvstats", *debug, "daemon")
	// One goroutine does the work; more Ps only add scheduler spinning
	// at every wake-up (measured: a fifth of recvstats' CPU).
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	syscall.Umask(0o022) // the stats are for every user to read
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cfg := mcast.ReceiverConfig{Iface: *iface, Key: k, ShmPath: *shm, FilesDir: *files, FilesCPU: *filesCPU / 100,
		RequestEvery: *requestEvery, ForgetAfter: *forget, Log: logger}
	cfg.StatsAddr, cfg.RequestAddr = mcast.GroupAddrs(*port)
	if ln != nil {
		cfg.Ready = func() { go serveMetrics(ctx, ln, *shm, logger) }
	}
	if err := mcast.RunReceiver(ctx, cfg); err != nil {
		logger.Print(strings.TrimPrefix(err.Error(), "recvstats: ")) // the logger says who
		return 1
	}
	return 0
}

// serveMetrics answers GET /metrics with the table in Prometheus format.
func serveMetrics(ctx context.Context, ln net.Listener, shm string, logger *log.Logger) {
	r, err := beostat.Open(shm)
	if err != nil {
		logger.Printf("metrics: %v", err)
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
		logger.Printf("metrics: %v", err)
	}
}
