// loadgen stands in for many bpslaves against a real bpmaster, so the
// master can be measured at a thousand nodes on one machine (t/bench-scale.sh).
// Each fake node is what bpslave is to the master: its own TCP connection
// from its own source address (the master numbers nodes by address), the
// keyed handshake and sealed 9P of srv's client, registration by opening
// slave/jobs, pings on slave/ping, and answers on slave/report. Only the
// job itself is missing: a start is answered "started" then "exit 0"
// without forking, with its empty output streams ended as bpslave ends
// them. The binary is fetched from slave/bin/HASH once per node, as
// bpslave's cache does.
//
//	loadgen -k KEY -n N -from IP [-dial K] [-ctl FIFO] [-streams eof|files] [-fetch=false] [-hold] MASTER[:PORT]
//	loadgen time -o FILE CMD [ARGS...]
//
// The first form connects N fake nodes from N consecutive addresses
// starting at IP (they must be local addresses), prints "ready N in S s, K
// failed" once the master has said hello to every one (or it failed), and
// serves until killed. Lines written to the -ctl FIFO steer it:
//
//	silence I   fake node I stops pinging (its connection stays open);
//	            prints "silenced I last-ping UNIX_MS"
//	release     jobs held by -hold exit now (and later ones at once)
//	count       prints "starts K exits K lost K fetches K" (totals so far)
//
// The second form runs CMD and writes "wall_us CPU_us" of it (CPU: user
// plus system time of CMD and its children, from the kernel) to FILE; its
// exit status is CMD's.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"bproc/fs/slaveproto"
	"bproc/key"
	"bproc/srv"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "time" {
		os.Exit(timeCmd(os.Args[2:]))
	}
	os.Exit(run(os.Args[1:]))
}

// totals are counted over every fake node.
type totals struct {
	starts, exits, lost, fetches atomic.Int64
}

type gen struct {
	master  string
	key     []byte
	streams string        // "eof": end empty streams in the exit report; "files": open and close them
	fetch   bool          // fetch binaries (once per node and hash)
	release chan struct{} // jobs exit once it is closed (-hold: by "release")
	relOnce sync.Once
	tot     totals
	out     sync.Mutex // one line at a time on stdout
}

func (g *gen) say(format string, args ...any) {
	g.out.Lock()
	defer g.out.Unlock()
	fmt.Printf(format+"\n", args...)
}

func run(args []string) int {
	fl := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	keyFile := fl.String("k", "/etc/bproc/cluster.key", "cluster key file")
	n := fl.Int("n", 1000, "fake nodes")
	from := fl.String("from", "", "first source address; node I uses the I-th address after it")
	dial := fl.Int("dial", 32, "connections in the handshake at once (the master keeps 1024 pending)")
	ctlPath := fl.String("ctl", "", "FIFO to read commands from")
	hold := fl.Bool("hold", false, `jobs keep running until "release" is written to -ctl`)
	fetch := fl.Bool("fetch", true, "fetch each binary from slave/bin once per node, as bpslave's cache does")
	streams := fl.String("streams", "eof", `how a job's empty stdout and stderr end: "eof" lines in the exit report (bpslave's way), or "files" (open and close slave/proc/PID/stdout, stderr)`)
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "loadgen: want the master's address")
		return 2
	}
	first, err := netip.ParseAddr(*from)
	if err != nil || !first.Is4() {
		fmt.Fprintf(os.Stderr, "loadgen: -from %q: want an IPv4 address\n", *from)
		return 2
	}
	if *n < 1 || *dial < 1 || (*streams != "eof" && *streams != "files") {
		fmt.Fprintln(os.Stderr, "loadgen: -n and -dial must be positive, -streams eof or files")
		return 2
	}
	k, err := key.Load(*keyFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		return 1
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()

	g := &gen{master: srv.WithPort(fl.Arg(0)), key: k, streams: *streams, fetch: *fetch, release: make(chan struct{})}
	if !*hold {
		close(g.release)
	}
	began := time.Now()
	nodes := g.connect(ctx, first, *n, *dial)
	if ctx.Err() != nil {
		return 0
	}
	g.say("ready %d in %.2f s, %d failed", len(nodes), time.Since(began).Seconds(), g.tot.lost.Load())
	if *ctlPath != "" {
		go g.control(ctx, *ctlPath, nodes)
	}
	<-ctx.Done()
	return 0
}

// connect starts n fake nodes from n consecutive addresses from first and
// returns once the master has said hello to each (or it failed, or ctx
// ended). The connections are set up dial at a time: the master holds at
// most 1024 in the handshake, and a full pool evicts pending ones.
func (g *gen) connect(ctx context.Context, first netip.Addr, n, dial int) []*fake {
	nodes := make([]*fake, n)
	addr := first
	for i := range nodes {
		nodes[i] = &fake{g: g, i: i, src: addr.String()}
		addr = addr.Next()
	}
	var ready sync.WaitGroup
	ready.Add(n)
	sem := make(chan struct{}, dial)
	for _, f := range nodes {
		go f.run(ctx, sem, sync.OnceFunc(ready.Done))
	}
	done := make(chan struct{})
	go func() { ready.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nodes
}

// control reads commands from the FIFO at path, reopening it after each
// writer is done, until ctx ends.
func (g *gen) control(ctx context.Context, path string, nodes []*fake) {
	for ctx.Err() == nil {
		f, err := os.Open(path)
		if err != nil {
			g.say("ctl: %v", err)
			return
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			g.command(strings.Fields(sc.Text()), nodes)
		}
		f.Close()
	}
}

func (g *gen) command(w []string, nodes []*fake) {
	switch {
	case len(w) == 2 && w[0] == "silence":
		i, err := strconv.Atoi(w[1])
		if err != nil || i < 0 || i >= len(nodes) {
			g.say("ctl: no fake node %q", w[1])
			return
		}
		f := nodes[i]
		f.pingMu.Lock()
		f.silent = true
		last := f.lastPing
		f.pingMu.Unlock()
		g.say("silenced %d last-ping %d", i, last.UnixMilli())
	case len(w) == 1 && w[0] == "release":
		g.relOnce.Do(func() { close(g.release) })
		g.say("released")
	case len(w) == 1 && w[0] == "count":
		g.say("starts %d exits %d lost %d fetches %d", g.tot.starts.Load(), g.tot.exits.Load(), g.tot.lost.Load(), g.tot.fetches.Load())
	default:
		g.say("ctl: unknown command %q", strings.Join(w, " "))
	}
}

// fake is one fake node: one connection, as bpslave -s SRC has.
type fake struct {
	g   *gen
	i   int
	src string

	c        *srv.Client
	reportMu sync.Mutex
	report   io.Writer

	pingMu   sync.Mutex
	silent   bool
	lastPing time.Time

	binMu sync.Mutex
	bins  map[string]bool // hashes fetched, as bpslave's cache keeps them
}

// run serves the master until the connection or ctx ends; hello is called
// once the node is registered, or has failed to.
func (f *fake) run(ctx context.Context, sem chan struct{}, hello func()) {
	err := f.serve(ctx, sem, hello)
	if ctx.Err() != nil {
		return
	}
	f.g.tot.lost.Add(1)
	f.g.say("node %d (%s): %v", f.i, f.src, err)
	hello() // a node that never registered does not hold "ready" forever
}

func (f *fake) serve(ctx context.Context, sem chan struct{}, hello func()) error {
	sem <- struct{}{}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	c, err := srv.DialFrom(dctx, f.src, f.g.master, f.g.key,
		srv.Hello{Role: srv.RoleSlave, Uid: uint32(os.Geteuid()), Gid: uint32(os.Getegid()), Host: fmt.Sprintf("fake%d", f.i)})
	cancel()
	if err != nil {
		<-sem
		return err
	}
	defer c.Close()
	f.c = c
	go func() {
		select {
		case <-ctx.Done():
			c.Close()
		case <-c.Done():
		}
	}()
	jobs, err := c.Open("slave/jobs", os.O_RDONLY)
	if err != nil {
		<-sem
		return fmt.Errorf("registering: %w", err)
	}
	defer jobs.Close()
	report, err := c.Open("slave/report", os.O_WRONLY)
	<-sem // registered: the next one may connect
	if err != nil {
		return fmt.Errorf("opening report: %w", err)
	}
	defer report.Close()
	f.report = report
	r := bufio.NewReader(jobs)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return fmt.Errorf("reading jobs: %w", err)
		}
		var m slaveproto.Msg
		if err := json.Unmarshal(line, &m); err != nil {
			return fmt.Errorf("bad job message %q: %w", line, err)
		}
		switch m.Op {
		case "hello":
			go f.pinger(ctx, time.Duration(m.PingTimeout)*time.Millisecond)
			hello()
		case "start":
			go f.answer(&m)
		}
		// signal, ack, forget, state: a job that has already exited
		// has nothing to do with them.
	}
}

// pinger pings four times per ping timeout, as bpslave does, until the
// node is silenced or the connection ends.
func (f *fake) pinger(ctx context.Context, timeout time.Duration) {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	p, err := f.c.Open("slave/ping", os.O_WRONLY)
	if err != nil {
		f.g.say("node %d: opening ping: %v", f.i, err)
		f.c.Close()
		return
	}
	defer p.Close()
	t := time.NewTicker(timeout / 4)
	defer t.Stop()
	for {
		f.pingMu.Lock()
		silent := f.silent
		f.pingMu.Unlock()
		if silent {
			return
		}
		if _, err := p.Write([]byte("ping\n")); err != nil {
			return // the connection is gone: serve says why
		}
		f.pingMu.Lock()
		f.lastPing = time.Now()
		f.pingMu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-f.c.Done():
			return
		case <-t.C:
		}
	}
}

// answer plays a job that exits at once with status 0 and prints nothing.
func (f *fake) answer(m *slaveproto.Msg) {
	f.g.tot.starts.Add(1)
	if err := f.fetch(m.Hash); err != nil {
		f.reportLines(m, fmt.Sprintf("failed %d fetching %s: %v", int(syscall.EIO), m.Path, err))
		return
	}
	ref := slaveproto.FormatRef(m.Pid, m.Inc)
	// The fake's "OS pid" is the master's pid: any positive number will do.
	if err := f.reportLines(m, fmt.Sprintf("started %d", m.Pid)); err != nil {
		return
	}
	<-f.g.release
	var lines []string
	if f.g.streams == "files" {
		for _, s := range []string{"stdout", "stderr"} {
			o, err := f.c.Open(fmt.Sprintf("slave/proc/%d/%s", m.Pid, s), os.O_WRONLY)
			if err != nil {
				f.g.say("node %d: job %s: %v", f.i, ref, err)
				continue
			}
			o.Close()
		}
	} else {
		lines = []string{"eof stdout", "eof stderr"}
	}
	if f.reportLines(m, append(lines, "exit 0")...) == nil {
		f.g.tot.exits.Add(1)
	}
}

// fetch reads the binary with that hash from the master once per node.
func (f *fake) fetch(hash string) error {
	if hash == "" || !f.g.fetch {
		return nil
	}
	f.binMu.Lock()
	defer f.binMu.Unlock()
	if f.bins[hash] {
		return nil
	}
	b, err := f.c.Open("slave/bin/"+hash, os.O_RDONLY)
	if err != nil {
		return err
	}
	defer b.Close()
	if _, err := io.Copy(io.Discard, b); err != nil {
		return err
	}
	if f.bins == nil {
		f.bins = map[string]bool{}
	}
	f.bins[hash] = true
	f.g.tot.fetches.Add(1)
	return nil
}

// reportLines writes lines about m's process in one write, as bpslave does.
func (f *fake) reportLines(m *slaveproto.Msg, lines ...string) error {
	var b []byte
	for _, l := range lines {
		b = fmt.Appendf(b, "%s %s\n", slaveproto.FormatRef(m.Pid, m.Inc), l)
	}
	f.reportMu.Lock()
	_, err := f.report.Write(b)
	f.reportMu.Unlock()
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		f.g.say("node %d: reporting %q: %v", f.i, b, err)
	}
	return err
}

// timeCmd runs a command and writes its wall time and CPU time.
func timeCmd(args []string) int {
	if len(args) < 3 || args[0] != "-o" {
		fmt.Fprintln(os.Stderr, "usage: loadgen time -o FILE CMD [ARGS...]")
		return 2
	}
	out := args[1]
	cmd := exec.Command(args[2], args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	t0 := time.Now()
	err := cmd.Run()
	wall := time.Since(t0)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintf(os.Stderr, "loadgen time: %v\n", err)
		return 127
	}
	st := cmd.ProcessState
	cpu := st.UserTime() + st.SystemTime()
	if werr := os.WriteFile(out, fmt.Appendf(nil, "%d %d\n", wall.Microseconds(), cpu.Microseconds()), 0o644); werr != nil {
		fmt.Fprintf(os.Stderr, "loadgen time: %v\n", werr)
		return 1
	}
	return st.ExitCode()
}
