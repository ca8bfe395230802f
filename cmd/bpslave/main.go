// bpslave connects a compute node to its master: it proves it holds the
// cluster key, registers through the master's tree and runs the jobs it
// receives there.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"bproc/cmd/internal/daemon"
	"bproc/job"
	"bproc/key"
	"bproc/mcast"
	"bproc/srv"
)

const version = "bproc 0.1"

type options struct {
	reconnect bool
	source    string
	cacheDir  string
	port      string
	trace     string
	keyFile   string
	verbose   bool
	master    string

	noStats       bool
	statsIface    string
	statsInterval time.Duration
	procfs        string
}

func main() {
	job.RunReaperIfAsked()
	fl := daemon.NewOptions("bpslave", "[-h] [-V] [-l logfacility] [-r] [-i] [-d] [-s addr] [-c dir] [-p port] [-m file] [-v] [-k keyfile] masterhost [port]", version)
	var o options
	facility := fl.StringP("log-facility", "l", "daemon", "syslog facility")
	fl.BoolVarP(&o.reconnect, "reconnect", "r", false, "reconnect on error or lost connection")
	fl.BoolP("ignore-version", "i", false, "accepted for compatibility with BProc (versions are checked by the handshake)")
	debug := fl.BoolP("debug", "d", false, "stay in the foreground and log to stderr")
	fl.StringVarP(&o.source, "source", "s", "", "bind the connection's source address to addr")
	fl.StringVarP(&o.cacheDir, "cache", "c", "", "cache shipped binaries by content in dir")
	fl.StringVarP(&o.port, "port", "p", srv.DefaultPort, "master's port")
	fl.StringVarP(&o.trace, "trace", "m", "", "trace every message to this file")
	fl.BoolVarP(&o.verbose, "verbose", "v", false, "log more")
	fl.StringVarP(&o.keyFile, "key", "k", key.DefaultPath, "cluster key file")
	fl.BoolVar(&o.noStats, "no-stats", false, "do not multicast node statistics (sendstats)")
	fl.StringVar(&o.statsIface, "stats-interface", "", "interface for node statistics multicast (default: the route's)")
	fl.DurationVar(&o.statsInterval, "stats-interval", time.Second, "node statistics interval")
	fl.StringVar(&o.procfs, "procfs", "/proc", "where to read node statistics from")
	fl.Parse(os.Args[1:], func(n int) bool { return n == 1 || n == 2 })
	o.master = fl.Arg(0)
	if fl.NArg() == 2 {
		o.port = fl.Arg(1)
	}
	if p, err := strconv.Atoi(o.port); err != nil || p <= 0 || p > 65535 {
		fmt.Fprintf(os.Stderr, "bpslave: bad port %q\n", o.port)
		os.Exit(2)
	}
	if o.source != "" && net.ParseIP(o.source) == nil {
		fmt.Fprintf(os.Stderr, "bpslave: -s %q is not an IP address\n", o.source)
		os.Exit(2)
	}
	if err := daemon.CheckFacility(*facility); err != nil {
		fmt.Fprintf(os.Stderr, "bpslave: %v\n", err)
		os.Exit(2)
	}
	k, err := key.Load(o.keyFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bpslave: %v\n", err)
		os.Exit(1)
	}
	if !*debug {
		if err := daemon.Detach(); err != nil {
			fmt.Fprintf(os.Stderr, "bpslave: %v\n", err)
			os.Exit(1)
		}
	}
	logger := daemon.Logger("bpslave", *debug, *facility)
	tracer, err := daemon.OpenTrace(o.trace)
	if err != nil {
		logger.Fatalf("%v", err)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, &o, k, logger, tracer); err != nil {
		logger.Fatalf("%v", err)
	}
}

// run serves the master, reconnecting with backoff when -r is given.
func run(ctx context.Context, o *options, k []byte, logger *log.Logger, tracer *daemon.Tracer) error {
	host, _ := os.Hostname()
	hello := srv.Hello{Role: "slave", Uid: uint32(os.Geteuid()), Gid: uint32(os.Getegid()), Host: host}
	addr := net.JoinHostPort(o.master, o.port)
	// One Slave for every connection: its cache of shipped binaries
	// outlives a reconnect.
	// With -r its jobs also outlive a lost master, for the grace period
	// the master gave, so that a restarted master can take them back.
	s := &job.Slave{CacheDir: o.cacheDir, Logf: logger.Printf, Trace: tracer.Printf, Reaper: true, KeepJobs: o.reconnect}
	defer s.Close()
	const minBackoff, maxBackoff = 100 * time.Millisecond, 2 * time.Second
	backoff := minBackoff
	for {
		began := time.Now()
		err := serveOnce(ctx, s, o, addr, k, hello, logger)
		if ctx.Err() != nil {
			return nil
		}
		if !o.reconnect {
			return err
		}
		if time.Since(began) > maxBackoff {
			backoff = minBackoff // it had been working: retry soon
		}
		logger.Printf("%v; reconnecting in %v", err, backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

func serveOnce(ctx context.Context, s *job.Slave, o *options, addr string, k []byte, hello srv.Hello, logger *log.Logger) error {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, err := srv.DialFrom(dctx, o.source, addr, k, hello)
	cancel()
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", addr, err)
	}
	defer c.Close()
	logger.Printf("connected to %s", addr)
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		// Whichever ends first, the connection or the serving, ends the
		// other: closing the client is what unblocks pending 9P reads.
		select {
		case <-c.Done():
			stop()
		case <-sctx.Done():
			c.Close()
		}
	}()
	s.Tree = opener{c}
	s.OnHello = nil
	if !o.noStats {
		// Once the master has told us our node number, multicast this
		// node's statistics under it for as long as the connection lasts.
		s.OnHello = func(node int) {
			go func() {
				err := mcast.RunSender(sctx, mcast.SenderConfig{Node: node, Iface: o.statsIface,
					Interval: o.statsInterval, Key: k, Procfs: o.procfs, Log: logger})
				if err != nil && sctx.Err() == nil {
					logger.Printf("sendstats: %v", err)
				}
			}()
		}
	}
	err = s.Run(sctx)
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("lost the master: %w", err)
}

// opener adapts the 9P client to job.Opener.
type opener struct{ c *srv.Client }

func (o opener) Open(name string, flag int) (io.ReadWriteCloser, error) {
	return o.c.Open(name, flag)
}
