// bpmaster serves the cluster's process space: the bproc tree over
// 9P2000.L to the slaves and tools (cluster key required), and the same
// tree mounted with FUSE on the master.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"syscall"

	"bproc/cmd/internal/cli"
	"bproc/cmd/internal/daemon"
	"bproc/fs/pspace"
	"bproc/fs/slaveproto"
	"bproc/fs/synth"
	"bproc/job"
	"bproc/key"
	"bproc/mcast"
	"bproc/srv"
	"bproc/srv/fusemount"
)

func main() {
	job.RunReaperIfAsked() // the binary doubles as the jobs' reaper
	cli.Main(run)
}

func run(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	c := cli.New("bpmaster", "[-d] [-v] [-i] [-c config] [-m tracefile] [-k keyfile]", "Serve the cluster's process space: 9P to the slaves and tools, FUSE at the mount point.", stdout, stderr)
	debug := c.BoolP("debug", "d", false, "stay in the foreground and log to stderr")
	verbose := c.BoolP("verbose", "v", false, "log more")
	c.BoolP("ignore-version", "i", false, "accepted for compatibility with BProc (versions are checked by the handshake)")
	config := c.StringP("config", "c", "/etc/bproc/config", "configuration file (optional when it does not exist)")
	trace := c.StringP("trace", "m", "", "trace every command and slave message to this file")
	keyFile := c.StringP("key", "k", "", "cluster key file (default: the config's keyfile, /etc/bproc/cluster.key)")
	if code, done := c.Parse(args); done {
		return code
	}
	if code, done := c.NoArgs(); done {
		return code
	}
	configGiven := c.Changed("config")
	cfg, err := loadConfig(*config, configGiven)
	if err != nil {
		return c.Fail(err)
	}
	if *keyFile != "" {
		cfg.KeyFile = *keyFile
	}
	k, err := key.LoadOrCreate(cfg.KeyFile)
	if err != nil {
		return c.Fail(err)
	}
	// Bind before detaching so a busy port is reported to the user; the
	// daemon inherits the listener.
	ln, err := daemon.Listen(0, ":"+strconv.Itoa(cfg.Port))
	if err != nil {
		return c.Fail(err)
	}
	httpd, err := bindHTTP(cfg.HTTP, cfg.HTTPToken)
	if err != nil {
		return c.Fail(err)
	}
	if !*debug {
		if err := daemon.Detach(append([]net.Listener{ln}, httpd.listeners()...)...); err != nil {
			return c.Fail(err)
		}
	}
	slogger := daemon.Slog("bpmaster", *debug, *verbose, "daemon")
	logger := daemon.PrintfTo(slogger, slog.LevelInfo)
	tracer, err := daemon.OpenTrace(*trace)
	if err != nil {
		logger.Printf("%v", err)
		return cli.ExitFail
	}
	if err := serve(cfg, k, ln, httpd, slogger, tracer, *verbose, *config, configGiven); err != nil {
		logger.Printf("%v", err)
		return cli.ExitFail
	}
	return cli.ExitOK
}

func loadConfig(path string, required bool) (*pspace.Config, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) && !required {
		return pspace.DefaultConfig(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	cfg, err := pspace.ParseConfig(f)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

func serve(cfg *pspace.Config, k []byte, ln net.Listener, httpd *httpSide, slogger *slog.Logger, tracer *daemon.Tracer, verbose bool, cfgPath string, cfgGiven bool) error {
	logger, trace := daemon.PrintfTo(slogger, slog.LevelInfo), traceTo(tracer, slogger, verbose)
	defer cpuProfile()()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	m := pspace.NewMaster(cfg)
	m.Logf = logger.Printf
	m.Trace = trace
	// Before serving: the slaves' surviving jobs keep their pids, new
	// jobs get pids above every earlier master's.
	if err := m.UseStateDir(cfg.StateDir); err != nil {
		return err
	}
	m.Stats, m.StatsFiles = statsFiles(cfg.StatsFile), mcast.FileNames
	m.SetDirectKey(k, cfg.Plain)
	go m.Run(ctx)

	server := &srv.Server{Key: k, Root: m.Root(), Logf: logger.Printf, Plain: cfg.Plain, Stats: &srv.Stats{}}
	httpd.serve(ctx, webSource(m, server, cfg), logger.Printf)
	serveErr := make(chan error, 1)
	go func() { serveErr <- server.Serve(ctx, ln) }()
	logger.Printf("serving 9P on %s", ln.Addr())

	// The master is node -1: it runs its jobs with the slave code, in-process.
	host, _ := os.Hostname()
	local := &synth.Caller{Slave: true, Addr: slaveproto.LocalAddr, Host: host, Conn: ctx}
	slave := &job.Slave{Tree: &synth.Local{Root: m.Root(), Caller: local}, Logf: logger.Printf, Trace: trace, Reaper: true}
	defer slave.Close()
	go func() {
		if err := slave.Run(ctx); err != nil && ctx.Err() == nil {
			logger.Printf("node -1: %v", err)
		}
	}()

	var mnt *fusemount.Mounted
	if cfg.Mount != "" && cfg.Mount != "none" {
		var err error
		if mnt, err = mount(cfg.Mount, m.Root(), verbose); err != nil {
			return err
		}
		logger.Printf("tree mounted at %s", cfg.Mount)
	}
	// Only now is the master of use to anyone: systemd may start what
	// waits for it.
	notifyLog(logger.Printf, "READY=1", "STATUS=serving 9P on "+ln.Addr().String())
	// Shut down in order: first stop serving 9P, so no slave registers with
	// a master that is going away; then end blocked readers, without which
	// the unmount cannot finish.
	shutdown := func() error {
		cancel()
		<-serveErr
		m.Shutdown()
		if mnt != nil {
			if err := mnt.Unmount(); err != nil {
				return fmt.Errorf("shutting down: %w", err)
			}
		}
		return nil
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	for {
		select {
		case err := <-serveErr:
			serveErr <- err
			if uerr := shutdown(); uerr != nil {
				logger.Printf("%v", uerr)
			}
			return fmt.Errorf("serving: %w", err)
		case sig := <-sigs:
			if sig != syscall.SIGHUP {
				logger.Printf("%v: shutting down", sig)
				notifyLog(logger.Printf, "STOPPING=1")
				return shutdown()
			}
			notifyLog(logger.Printf, "RELOADING=1", monotonicUsec())
			newCfg, err := loadConfig(cfgPath, cfgGiven)
			if err != nil {
				logger.Printf("SIGHUP: keeping the old configuration: %v", err)
				notifyLog(logger.Printf, "READY=1", "STATUS=SIGHUP: kept the old configuration")
				continue
			}
			if newCfg.Port != cfg.Port || newCfg.Mount != cfg.Mount || newCfg.Plain != cfg.Plain || newCfg.StatsFile != cfg.StatsFile ||
				newCfg.StateDir != cfg.StateDir || newCfg.HTTP != cfg.HTTP || newCfg.HTTPToken != cfg.HTTPToken {
				logger.Printf("SIGHUP: bprocport, mount, statsfile, seal, statedir, http and httptoken changes take effect at restart")
			}
			newCfg.KeyFile = cfg.KeyFile
			m.SetConfig(newCfg)
			logger.Printf("SIGHUP: configuration re-read")
			notifyLog(logger.Printf, "READY=1", "STATUS=serving 9P on "+ln.Addr().String())
		}
	}
}

// cpuProfile is for developers: BPROC_CPUPROFILE=FILE profiles the
// master until the returned function runs.
func cpuProfile() func() {
	path := os.Getenv("BPROC_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil || pprof.StartCPUProfile(f) != nil {
		return func() {}
	}
	return pprof.StopCPUProfile
}

// mount mounts the tree at dir (fusemount clears a stale mount left by a
// master that died).
func mount(dir string, root synth.Dir, debug bool) (*fusemount.Mounted, error) {
	mnt, err := fusemount.Mount(dir, root, fusemount.MountOptions{AllowOther: true, Debug: debug, Name: "bproc"})
	if err != nil {
		return nil, fmt.Errorf("mounting the tree at %s: %w", dir, err)
	}
	return mnt, nil
}
