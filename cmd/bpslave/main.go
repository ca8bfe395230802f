// bpslave connects a compute node to its master: it proves it holds the
// cluster key, registers through the master's tree and runs the jobs it
// receives there.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"bproc/cmd/internal/cli"
	"bproc/cmd/internal/daemon"
	"bproc/job"
	"bproc/key"
	"bproc/mcast"
	"bproc/srv"
)

type options struct {
	reconnect bool
	source    string
	cacheDir  string
	port      string
	peerPort  int
	trace     string
	keyFile   string
	verbose   bool
	master    string

	noStats       bool
	statsIface    string
	statsInterval time.Duration
	procfs        string

	mount   string // where to mount the master's tree on this node
	noMount bool

	dataPort int // direct streams' port (0: none)
}

func main() {
	job.RunReaperIfAsked() // the binary doubles as the jobs' reaper
	cli.Main(run)
}

func run(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	c := cli.New("bpslave", "[-l logfacility] [-r] [-i] [-d] [-s addr] [-c dir] [-p port] [--peer-port port] [-m file] [-v] [-k keyfile] [--mount path] [--no-mount] masterhost [port]", "Connect this node to the master and run the jobs it sends.", stdout, stderr)
	var o options
	facility := c.StringP("log-facility", "l", "daemon", "syslog facility")
	c.BoolVarP(&o.reconnect, "reconnect", "r", false, "reconnect on error or lost connection")
	c.BoolP("ignore-version", "i", false, "accepted for compatibility with BProc (versions are checked by the handshake)")
	debug := c.BoolP("debug", "d", false, "stay in the foreground and log to stderr")
	c.StringVarP(&o.source, "source", "s", "", "bind the connection's source address to addr")
	c.StringVarP(&o.cacheDir, "cache", "c", "", "cache shipped binaries by content in dir")
	c.StringVarP(&o.port, "port", "p", srv.DefaultPort, "master's port")
	c.IntVar(&o.peerPort, "peer-port", job.DefaultPeerPort, "serve cached binaries to other slaves on this port (0: off)")
	c.StringVarP(&o.trace, "trace", "m", "", "trace every message to this file")
	c.BoolVarP(&o.verbose, "verbose", "v", false, "log more: level DEBUG, with the traces of messages")
	c.StringVarP(&o.keyFile, "key", "k", key.DefaultPath, "cluster key file")
	c.BoolVar(&o.noStats, "no-stats", false, "do not multicast node statistics (sendstats)")
	c.StringVar(&o.statsIface, "stats-interface", "", "interface for node statistics multicast (default: the route's)")
	c.DurationVar(&o.statsInterval, "stats-interval", time.Second, "node statistics interval")
	c.StringVar(&o.procfs, "procfs", "/proc", "where to read node statistics from")
	c.StringVar(&o.mount, "mount", "/bproc", "mount the master's tree at this path on the node")
	c.BoolVar(&o.noMount, "no-mount", false, "do not mount the master's tree on the node")
	c.IntVar(&o.dataPort, "data-port", job.DefaultDataPort, "serve direct output streams on this TCP port (0: off)")
	if code, done := c.Parse(args); done {
		return code
	}
	if c.NArg() < 1 || c.NArg() > 2 {
		return c.Usage("want masterhost and an optional port, got %q", c.Args())
	}
	o.master = c.Arg(0)
	if c.NArg() == 2 {
		o.port = c.Arg(1)
	}
	if p, err := strconv.Atoi(o.port); err != nil || p <= 0 || p > 65535 {
		return c.Usage("bad port %q", o.port)
	}
	if o.peerPort < 0 || o.peerPort > 65535 {
		return c.Usage("bad --peer-port %d", o.peerPort)
	}
	if o.dataPort < 0 || o.dataPort > 65535 {
		return c.Usage("bad --data-port %d", o.dataPort)
	}
	if o.source != "" && net.ParseIP(o.source) == nil {
		return c.Usage("-s %q is not an IP address", o.source)
	}
	if !o.noMount && !filepath.IsAbs(o.mount) {
		return c.Usage("--mount %q is not an absolute path", o.mount)
	}
	if err := daemon.CheckFacility(*facility); err != nil {
		return c.Usage("%v", err)
	}
	k, err := key.Load(o.keyFile)
	if err != nil {
		return c.Fail(err)
	}
	if !*debug {
		if err := daemon.Detach(); err != nil {
			return c.Fail(err)
		}
	}
	slogger := daemon.Slog("bpslave", *debug, o.verbose, *facility)
	logger := newSlaveLog(slogger, net.JoinHostPort(o.master, o.port))
	tracer, err := daemon.OpenTrace(o.trace)
	if err != nil {
		logger.Printf("%v", err)
		return cli.ExitFail
	}
	ctx, cancel := cli.StopContext()
	defer cancel()
	if err := serve(ctx, &o, k, logger, tracer); err != nil {
		logger.Printf("%v", err)
		return cli.ExitFail
	}
	return cli.ExitOK
}

// serve serves the master, reconnecting with backoff when -r is given.
func serve(ctx context.Context, o *options, k []byte, logger *slaveLog, tracer *daemon.Tracer) error {
	host, _ := os.Hostname()
	hello := srv.Hello{Role: "slave", Uid: uint32(os.Geteuid()), Gid: uint32(os.Getegid()), Host: host}
	addr := net.JoinHostPort(o.master, o.port)
	// A cache directory others could fill is refused before anything
	// runs (job.Slave checks it again at every start).
	if err := job.CheckCacheDir(o.cacheDir); err != nil {
		return err
	}
	// One Slave for every connection: its cache of shipped binaries
	// outlives a reconnect.
	// With -r its jobs also outlive a lost master, for the grace period
	// the master gave, so that a restarted master can take them back.
	s := &job.Slave{CacheDir: o.cacheDir, Logf: logger.Printf,
		Trace: daemon.TraceTo(tracer, logger.Debugf, o.verbose), Reaper: true, KeepJobs: o.reconnect}
	defer s.Close()
	servePeers(ctx, s, o, k, hello, logger)
	serveData(ctx, s, o, k, logger)
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

func serveOnce(ctx context.Context, s *job.Slave, o *options, addr string, k []byte, hello srv.Hello, logger *slaveLog) error {
	// Unmounted last, once the connection is closed: requests still in
	// flight on the mount have failed by then, and it is not busy.
	nm := &nodeMount{dir: o.mount, logf: logger.Printf}
	defer nm.unmount()
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
	s.OnHello = func(node int) {
		logger.setNode(node)
		if !o.noMount {
			nm.mount(c) // once registered: the master answers for the node's processes only then
		}
		if o.noStats {
			return
		}
		// Once the master has told us our node number, multicast this
		// node's statistics under it for as long as the connection lasts.
		// The sender logs only its failures (and their end): at Warn.
		slogger := slog.NewLogLogger(logger.logger("").Handler(), slog.LevelWarn)
		go func() {
			err := mcast.RunSender(sctx, mcast.SenderConfig{Node: node, Iface: o.statsIface,
				Interval: o.statsInterval, Key: k, Procfs: o.procfs, Log: slogger})
			if err != nil && sctx.Err() == nil {
				logger.Printf("sendstats: %v", err)
			}
		}()
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

// servePeers starts the peer listener (--peer-port), which serves the
// binaries in s's cache to other slaves for as long as ctx lasts (across
// reconnects), and lets s fetch from other slaves' listeners. A port it
// cannot bind is logged: the slave serves on, without peers.
func servePeers(ctx context.Context, s *job.Slave, o *options, k []byte, hello srv.Hello, logger *slaveLog) {
	s.DialPeer = func(ctx context.Context, addr string) (job.PeerConn, error) {
		c, err := srv.DialFrom(ctx, o.source, addr, k, hello)
		if err != nil {
			return nil, err
		}
		return peerConn{opener{c}}, nil
	}
	if o.peerPort == 0 {
		return
	}
	// BPSLAVE_TEST_CORRUPT_PEER=1 makes this a bad peer, for the suite.
	s.CorruptPeer = os.Getenv("BPSLAVE_TEST_CORRUPT_PEER") == "1"
	addr := net.JoinHostPort(o.source, strconv.Itoa(o.peerPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		// As with a failed mount, the slave serves on: its peers fetch
		// from the master instead.
		logger.Printf("peer listener: %v (serving no peers)", err)
		return
	}
	s.PeerPort = ln.Addr().(*net.TCPAddr).Port
	server := &srv.Server{Key: k, Root: s.PeerTree(), Logf: logger.Printf}
	go func() {
		if err := server.Serve(ctx, ln); err != nil && ctx.Err() == nil {
			logger.Printf("peer listener: %v", err)
		}
	}()
	logger.Printf("serving cached binaries to peers on %s", ln.Addr())
}

type peerConn struct{ opener }

func (p peerConn) Close() error { return p.c.Close() }
