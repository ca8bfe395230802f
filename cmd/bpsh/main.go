// Command bpsh runs a program on one or more nodes of a bproc cluster,
// forwarding stdin to it and its stdout and stderr back, like rsh.
//
//	bpsh [-a|-A] [-n] [-N] [-L] [-p] [-s] [-d] [-g] [-u secs] [-x nodeset] [-l user] [-b size] [-I file] [-O file] [-E file] [-t] nodespec [options] command [args]
//
// The exit status is the highest exit status of the remote processes, or
// 255 when one ended abnormally (signal, lost node) or could not start;
// a usage error exits 1, as in BProc.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"bproc/client"
	"bproc/cmd/internal/cli"
)

// failStatus is bpsh's own failure, as ssh and rsh use it.
const failStatus = 255

type options struct {
	allUp, allNotDown bool
	nullIn, noIO      bool
	lineBuf, prefix   bool
	seq, divider      bool
	report, gather    bool
	bufSize           int
	timeout           int
	inFile, outFile   string
	errFile, keyFile  string
	user, exclude     string
}

func main() { cli.Main(run) }

// tracef prints the time since start of each step when $BPSH_TRACE is
// set, to see where a launch spends its time.
var (
	traceOn = os.Getenv("BPSH_TRACE") != ""
	t0      = time.Now()
)

func tracef(format string, args ...any) {
	if traceOn {
		fmt.Fprintf(os.Stderr, "bpsh: %8.3fms %s\n", float64(time.Since(t0).Microseconds())/1000, fmt.Sprintf(format, args...))
	}
}

// fixMasterSpec rewrites a nodespec "-1..." in the nodespec's position so
// the option parser leaves it alone; "-1" later on belongs to the command,
// as does one that is an option's value (c says which options take one).
func fixMasterSpec(c *cli.Command, args []string) []string {
	out := append([]string(nil), args...)
	for i := 0; i < len(out); i++ {
		a := out[i]
		switch {
		case a == "--":
			if i+1 < len(out) {
				out[i+1], _ = client.MasterArg(out[i+1])
			}
			return out
		case a == "-a" || a == "-A" || a == "--all" || a == "--all-notdown":
			return out // no nodespec: the first argument is the command
		case len(a) > 1 && a[0] == '-':
			if m, ok := client.MasterArg(a); ok {
				out[i] = m
				return out
			}
			if !strings.HasPrefix(a, "--") && strings.ContainsAny(a[1:], "aA") {
				return out
			}
			if c.TakesValue(a) {
				i++ // "-b" "4096": the value is the next argument
			}
		default:
			return out
		}
	}
	return out
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var o options
	c := newCommand(&o, stdout, stderr)
	args = fixMasterSpec(c, args)
	if code, done := c.Parse(args); done {
		return code
	}
	rest := c.Args()
	spec := ""
	switch {
	case o.allUp && o.allNotDown:
		return c.Usage("-a and -A exclude each other")
	case o.allUp:
		spec = "allup"
	case o.allNotDown:
		spec = "allnotdown"
	default:
		if len(rest) == 0 {
			return c.Usage("missing nodespec and command")
		}
		// BProc's getopt loop took options after the nodespec too
		// ("bpsh 3 -n cmd"); the command's own options stay its own.
		spec = rest[0]
		if code, done := c.Parse(rest[1:]); done {
			return code
		}
		rest = c.Args()
	}
	if len(rest) == 0 {
		return c.Usage("missing command")
	}
	if code := checkOptions(c, &o); code != 0 {
		return code
	}
	ns, err := client.ParseNodeSpec(spec)
	if err != nil {
		return c.Usage("%v", err)
	}
	var xs client.NodeSpec
	if o.exclude != "" {
		if xs, err = client.ParseNodeSpec(o.exclude); err != nil {
			return c.Usage("-x: %v", err)
		}
	}
	if o.user != "" { // looked up only when asked: a launch stays cheap
		if _, err := client.BecomeUser(o.user); err != nil {
			fmt.Fprintf(stderr, "bpsh: %v\n", err)
			return failStatus
		}
	}

	tracef("parsed")
	t, err := client.Connect(client.Options{KeyFile: o.keyFile})
	if err != nil {
		fmt.Fprintf(stderr, "bpsh: %v\n", err)
		return failStatus
	}
	defer t.Close()
	tracef("connected")
	if v, ok := os.LookupEnv(attachEnv); ok { // from the C front (attach.go)
		return attach(v, t, &o, stderr)
	}
	nodes, code := selectNodes(c, t, spec, ns, xs)
	if code != 0 {
		return code
	}
	if o.bufSize == 0 {
		o.bufSize = 1 << 20
		if len(nodes) > 8 {
			o.bufSize = 128 << 10
		}
	}
	return runJobs(t, nodes, rest, &o, stdin, stdout, stderr)
}

// newCommand declares bpsh's options.
func newCommand(o *options, stdout, stderr io.Writer) *cli.Command {
	c := cli.New("bpsh", "[options] nodespec [options] command [args...]\n-a|-A [options] command [args...]",
		"Run command on the nodes of nodespec (3, n3, .3, 0-7, 1,3,5-, n[0-3,7], node3, 10.0.0.3,\n"+
			"all, allup, allnotdown, master, -1; ^E excludes E, &E keeps only E: 2-&allup).", stdout, stderr)
	c.Footer = "Each process gets BPROC_RANK (its index in the node list), BPROC_NODE and BPROC_NPROCS.\n" +
		"Exit status: the highest exit status of the processes; 255 when one was killed,\n" +
		"lost with its node, or could not start; at least 124 when -u timed one out;\n" +
		"1 for a usage error.\n" +
		"The tree is the mount at $BPROC_MOUNT (default /bproc), else 9P to $BPROC_MASTER."
	c.VersionV() // BProc's bpsh -v
	flags := c.FlagSet
	flags.SetInterspersed(false) // options after the command belong to the command
	o.timeout = envInt("BPSH_TIMEOUT")
	c.Options([]cli.Option{
		{Short: "a", Long: "all", Value: &o.allUp, Usage: "run on all nodes that are up"},
		{Short: "A", Long: "all-notdown", Value: &o.allNotDown, Usage: "run on all nodes that are not down"},
		{Short: "n", Long: "null", Value: &o.nullIn, Usage: "stdin from /dev/null"},
		{Short: "N", Long: "no-io", Value: &o.noIO, Usage: "no I/O forwarding (output goes to the node's io file)"},
		{Short: "L", Long: "line", Value: &o.lineBuf, Usage: "line-buffer output (whole lines from each node)"},
		{Short: "p", Long: "prefix", Value: &o.prefix, Usage: "prefix each output line with the node number"},
		{Short: "s", Long: "sequential", Value: &o.seq, Usage: "show the output of each node in turn, in node order"},
		{Short: "d", Long: "divider", Value: &o.divider, Usage: "print a divider line before each node's output (implies -s)"},
		{Short: "g", Long: "gather", Value: &o.gather, Usage: "gather identical output: each distinct output once, under its folded node set"},
		{Short: "u", Long: "timeout", Value: &o.timeout, Usage: "kill the command on nodes where it runs longer than `secs` (default $BPSH_TIMEOUT, 0: none)"},
		{Short: "x", Long: "exclude", Value: &o.exclude, Usage: "leave out the nodes of `nodeset`"},
		{Short: "l", Long: "user", Value: &o.user, Usage: "run as `user`: the caller (root: anyone), for rsh compatibility"},
		{Short: "b", Long: "buffer", Value: &o.bufSize, Usage: "I/O buffer size in bytes (default 1 MiB, 128 KiB beyond 8 nodes)"},
		{Short: "I", Long: "stdin", Value: &o.inFile, Usage: "take stdin from `file` (also --input)"},
		{Short: "O", Long: "stdout", Value: &o.outFile, Usage: "write stdout to `file` (also --output)"},
		{Short: "E", Long: "stderr", Value: &o.errFile, Usage: "write stderr to `file` (also --error)"},
	})
	flags.StringVar(&o.inFile, "input", "", "")
	flags.StringVar(&o.outFile, "output", "", "")
	flags.StringVar(&o.errFile, "error", "", "")
	for _, n := range []string{"input", "output", "error"} {
		flags.MarkHidden(n)
	}
	flags.BoolVarP(&o.report, "time", "t", false, "report each node's end and run time on stderr")
	c.KeyOption(&o.keyFile)
	return c
}

// envInt reads a number from the environment; a bad one is -1, which
// checkOptions reports.
func envInt(name string) int {
	v := os.Getenv(name)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// checkOptions refuses contradictory or out-of-range options.
func checkOptions(c *cli.Command, o *options) int {
	switch {
	case o.bufSize < 0 || o.bufSize > 64<<20:
		return c.Usage("-b %d: buffer size must be between 1 and 64 MiB", o.bufSize)
	case o.nullIn && o.inFile != "":
		return c.Usage("-n and -I exclude each other")
	case o.timeout < 0:
		return c.Usage("-u or $BPSH_TIMEOUT: the timeout must be a whole number of seconds")
	case o.gather && (o.seq || o.divider || o.noIO):
		return c.Usage("-g excludes -s, -d and -N")
	}
	if o.divider {
		o.seq = true
	}
	return 0
}

// selectNodes expands the nodespec, less -x's nodes. A hostname no node
// has is a usage error, as an unknown word is.
func selectNodes(c *cli.Command, t client.Tree, spec string, ns, xs client.NodeSpec) ([]int, int) {
	var cluster []client.NodeStatus
	if ns.NeedsList() || xs.NeedsList() {
		var err error
		if cluster, err = client.ListNodes(t); err != nil {
			fmt.Fprintf(c.Stderr, "bpsh: %v\n", err)
			return nil, failStatus
		}
	}
	nodes, err := ns.Resolve(cluster)
	if err != nil {
		return nil, c.Usage("%s: %v", spec, err)
	}
	if xs != nil {
		drop, err := xs.Resolve(cluster)
		if err != nil {
			return nil, c.Usage("-x %v", err)
		}
		out := nodes[:0]
		for _, n := range nodes {
			if !slices.Contains(drop, n) {
				out = append(out, n)
			}
		}
		nodes = out
	}
	if len(nodes) == 0 {
		fmt.Fprintf(c.Stderr, "bpsh: no nodes in %q\n", spec)
		return nil, failStatus
	}
	return nodes, 0
}

// job is the command on one node.
type job struct {
	k        *killer
	idx      int
	node     int
	proc     *client.Proc
	err      error
	st       client.Status
	werr     error
	start    time.Time
	end      time.Time
	timedOut atomic.Bool
	ended    atomic.Bool // set path: its end was read (-u's deadline spares it)
	direct   bool        // try the node's data port for the output (direct.go)
	// Handed over by the C front (attach.go): the open tree streams and
	// the output bytes they gave so far.
	streams [2]io.ReadCloser
	seen    int64
}

// firstBuf is the size of a stream's first read buffer.
const firstBuf = 16 << 10

// Exit status when -u killed a command (timeout(1)'s).
const timeoutStatus = 124

// runJobs runs argv on the nodes; stdin is forwarded when it is a file
// worth reading (see cli.UsableStdin), stderr gets bpsh's own messages.
func runJobs(t client.Tree, nodes []int, argv []string, o *options, stdin io.Reader, stdout, stderr io.Writer) int {
	msgs := stderr
	in, stdout, stderr, closeAll, err := openIO(o, stdin, stdout, stderr)
	defer closeAll()
	if err != nil {
		fmt.Fprintf(msgs, "bpsh: %s\n", client.ErrText(err))
		return failStatus
	}
	// EPIPE instead of death on a closed stdout, so the remote side is
	// told (below) instead of running on unread.
	signal.Ignore(syscall.SIGPIPE)

	k := newKiller()
	defer k.stop()
	jobs := make([]*job, len(nodes))
	for i, n := range nodes {
		jobs[i] = &job{idx: i, node: n, k: k, direct: len(nodes) == 1}
	}
	out := newOutput(len(jobs), stdout, stderr, o)
	out.setNodes(nodes)
	if set, ok := setName(nodes); !ok || !startSet(t, set, jobs, argv, o, in, out) {
		startJobs(t, jobs, argv, o, in, out)
	}
	out.finish()
	return report(jobs, k, o, out, msgs)
}

// openIO opens -I, -O and -E; in is nil for /dev/null. closeAll closes
// what it opened.
func openIO(o *options, stdin io.Reader, stdout, stderr io.Writer) (in *os.File, so, se io.Writer, closeAll func(), err error) {
	var opened []*os.File
	closeAll = func() {
		for _, f := range opened {
			f.Close()
		}
	}
	so, se = stdout, stderr
	switch {
	case o.noIO || o.nullIn:
	case o.inFile != "":
		f, err := os.Open(o.inFile)
		if err != nil {
			return nil, so, se, closeAll, err
		}
		opened = append(opened, f)
		in = f
	default:
		if f, ok := stdin.(*os.File); ok && cli.UsableStdin(f) {
			in = f
		}
	}
	if o.noIO {
		return in, so, se, closeAll, nil
	}
	for _, s := range []struct {
		name string
		w    *io.Writer
	}{{o.outFile, &so}, {o.errFile, &se}} {
		if s.name == "" {
			continue
		}
		f, err := os.Create(s.name)
		if err != nil {
			return nil, so, se, closeAll, err
		}
		opened = append(opened, f)
		*s.w = f
	}
	return in, so, se, closeAll, nil
}

// jobEnv is the environment of the process of rank i of n on node: the
// caller's, with BProc's BPROC_RANK and the node and count beside it.
func jobEnv(base []string, i, node, n int) []string {
	env := make([]string, 0, len(base)+3)
	for _, e := range base {
		if !strings.HasPrefix(e, "BPROC_RANK=") && !strings.HasPrefix(e, "BPROC_NODE=") && !strings.HasPrefix(e, "BPROC_NPROCS=") {
			env = append(env, e)
		}
	}
	return append(env, "BPROC_RANK="+strconv.Itoa(i), "BPROC_NODE="+strconv.Itoa(node), "BPROC_NPROCS="+strconv.Itoa(n))
}

// startJobs starts every job, forwards stdin once all starts were tried,
// and returns when every job has ended and its output is copied.
func startJobs(t client.Tree, jobs []*job, argv []string, o *options, in *os.File, out *output) {
	var wg, startWG sync.WaitGroup
	var inputs []*stdinDest
	var inMu sync.Mutex
	base := os.Environ()
	// A file of the mount cannot be polled: each job's blocked reads of
	// stdout, stderr and wait hold a thread each, and Go dies past 10000
	// threads (bpsh -a on 3500 nodes did). Allow them, with room for the
	// ctl writes and the runtime's own.
	if need := 4*len(jobs) + 1000; need > 10000 {
		debug.SetMaxThreads(need)
	}
	for _, j := range jobs {
		wg.Add(1)
		startWG.Add(1)
		go func(j *job) {
			defer wg.Done()
			j.start = time.Now()
			// Early: the pid comes at once and the streams are opened
			// while the node forks; the end (or a start that failed
			// there) comes on the same ctl file.
			ex := client.ExecOptions{NullStdin: in == nil, Detached: o.noIO, Env: jobEnv(base, j.idx, j.node, len(jobs)), Early: true}
			p, err := client.Exec(t, j.node, argv, ex)
			if err != nil {
				j.err = err
				startWG.Done()
				out.done(j.idx)
				return
			}
			j.proc = p
			tracef("node %d: pid %d (starting)", j.node, p.Pid)
			j.k.add(p)
			if in != nil {
				inMu.Lock()
				inputs = append(inputs, &stdinDest{proc: p})
				inMu.Unlock()
			}
			startWG.Done()
			if o.timeout > 0 {
				tm := time.AfterFunc(time.Duration(o.timeout)*time.Second, func() {
					j.timedOut.Store(true)
					p.Kill(syscall.SIGKILL)
				})
				defer tm.Stop()
			}
			j.attach(out, o)
			j.end = time.Now()
		}(j)
	}
	if in != nil {
		// Forward stdin once every start has been tried, so all processes
		// see the same bytes from the first one. It is not waited for: a
		// process may end without reading, leaving us blocked in read.
		go func() {
			client.BlockInterrupts()
			startWG.Wait()
			forwardStdin(in, inputs, o.bufSize)
		}()
	}
	wg.Wait()
}

// report tells how the jobs ended and returns bpsh's exit status.
func report(jobs []*job, k *killer, o *options, out *output, msgs io.Writer) int {
	code := 0
	var timedOut []int
	for _, j := range jobs {
		switch {
		case j.err != nil:
			fmt.Fprintf(msgs, "bpsh: node %d: %v\n", j.node, j.err)
			code = failStatus
		case j.werr != nil:
			fmt.Fprintf(msgs, "bpsh: node %d: waiting: %v\n", j.node, client.ErrText(j.werr))
			code = failStatus
		case j.timedOut.Load() && j.st.Kind == client.Signaled:
			timedOut = append(timedOut, j.node)
			code = max(code, timeoutStatus)
		default:
			if o.report {
				fmt.Fprintf(msgs, "bpsh: node %d: %s (%.3fs)\n", j.node, j.st.Describe(), j.end.Sub(j.start).Seconds())
			} else if !j.st.Success() && j.st.Kind != client.Exited && !k.forwarded(j.st.Signal) {
				fmt.Fprintf(msgs, "bpsh: node %d: %s\n", j.node, j.st.Describe())
			}
			if c := j.st.ExitCode(); c < 0 {
				code = failStatus
			} else if c > code {
				code = c
			}
		}
	}
	if len(timedOut) > 0 {
		fmt.Fprintf(msgs, "bpsh: %s: command timeout\n", client.FoldNodes(timedOut))
	}
	if err := out.err(); err != nil && !errors.Is(err, syscall.EPIPE) {
		fmt.Fprintf(msgs, "bpsh: writing output: %v\n", client.ErrText(err))
		if code == 0 {
			code = failStatus
		}
	}
	return code
}

// attach copies the process's output and waits for it, concurrently.
func (j *job) attach(out *output, o *options) {
	var wg sync.WaitGroup
	sw := j.directSwitch()
	if !o.noIO {
		wg.Add(1)
		go func() {
			defer wg.Done()
			so, se, err := j.streams[0], j.streams[1], error(nil)
			if so == nil {
				so, se, err = j.proc.Streams()
			}
			tracef("node %d: opened stdout and stderr", j.node)
			if err != nil {
				out.fail(fmt.Errorf("node %d: opening its output: %s", j.node, client.ErrText(err)))
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				j.copyStream(sw.wrap(se, 2), out, 2, o)
			}()
			j.copyStream(sw.wrap(so, 1), out, 1, o)
		}()
	}
	j.st, j.werr = j.proc.Wait()
	var ee *client.ExecError
	if errors.As(j.werr, &ee) { // it did not start on the node
		j.err, j.werr = ee, nil
	}
	tracef("node %d: wait: %v", j.node, j.st)
	sw.lost(j)
	wg.Wait()
	tracef("node %d: output done", j.node)
	out.done(j.idx)
}

// copyStream moves one output stream to its sink: whole reads on the
// plain path, whole lines when prefixing or line-buffering.
func (j *job) copyStream(r io.ReadCloser, out *output, fd int, o *options) {
	defer r.Close()
	sk := newSink(j, out, fd, o)
	// Small at first, doubling up to -b's size while reads fill it: a
	// direct-I/O read pins (and faults in) its whole buffer, and most
	// streams end in a read of 0 bytes.
	buf := make([]byte, min(o.bufSize, firstBuf))
	sr, _ := r.(*switchReader)
	var sd *client.SpliceDest
	if sr != nil && sk.lw == nil {
		sd = out.spliceDest(fd) // splice.go
		defer func() {
			if sd != nil {
				tracef("node %d: %d bytes of %s spliced", j.node, sd.Spliced(), [3]string{"", "stdout", "stderr"}[fd])
				sd.Close()
			}
		}()
	}
	for {
		if sd != nil {
			if done, ok := j.splice(sr, sd, sk); done {
				return
			} else if ok {
				continue
			}
		}
		n, rerr := r.Read(buf)
		sk.write(buf[:n])
		if rerr != nil {
			if rerr != io.EOF {
				out.fail(fmt.Errorf("node %d: reading %s: %s", j.node, [3]string{"", "stdout", "stderr"}[fd], client.ErrText(rerr)))
			}
			break
		}
		if n == len(buf) && len(buf) < o.bufSize {
			buf = make([]byte, min(2*len(buf), o.bufSize))
		}
	}
	sk.flush()
}

// stdinDest is one process's stdin, opened on the first byte (or EOF) so
// that a run that never reads costs nothing.
type stdinDest struct {
	proc *client.Proc
	w    io.WriteCloser
	dead bool
}

func (d *stdinDest) write(p []byte) {
	if d.dead {
		return
	}
	if d.w == nil {
		w, err := d.proc.Stdin()
		if err != nil {
			d.dead = true
			return
		}
		d.w = w
	}
	if _, err := d.w.Write(p); err != nil {
		// The process closed its stdin or ended; it gets no more.
		d.dead = true
		d.w.Close()
	}
}

func (d *stdinDest) close() {
	if d.dead {
		return
	}
	if d.w == nil {
		w, err := d.proc.Stdin()
		if err != nil {
			return
		}
		d.w = w
	}
	d.w.Close()
}

// forwardStdin copies in to every process's stdin, then closes them all.
func forwardStdin(in *os.File, dests []*stdinDest, size int) {
	if len(dests) == 0 {
		return
	}
	buf := make([]byte, size)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			alive := false
			for _, d := range dests {
				d.write(buf[:n])
				alive = alive || !d.dead
			}
			if !alive {
				return
			}
		}
		if err != nil {
			break
		}
	}
	for _, d := range dests {
		d.close()
	}
}

// killer forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to
// every started process: one write per process on the per-node path, one
// to the group's ctl for a set launch.
type killer struct {
	mu    sync.Mutex
	kills []func(syscall.Signal) error // a process's or a group's Kill
	sent  map[int]bool                 // signals forwarded from the user
	quiet map[int]bool                 // signals bpsh sent for its own reasons
	ch    chan os.Signal
}

func newKiller() *killer {
	k := &killer{sent: map[int]bool{}, quiet: map[int]bool{}, ch: make(chan os.Signal, 4)}
	signal.Notify(k.ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for s := range k.ch {
			sig := s.(syscall.Signal)
			k.mu.Lock()
			k.sent[int(sig)] = true
			ks := append([]func(syscall.Signal) error(nil), k.kills...)
			k.mu.Unlock()
			tracef("forwarding %s: %d writes", client.SignalName(sig), len(ks))
			for _, kill := range ks {
				go sendOnce(kill, sig)
			}
		}
	}()
	return k
}

// add makes p a target of the forwarded signals.
func (k *killer) add(p *client.Proc) { k.addKill(p.Kill) }

// addKill adds a target; a signal that came while it was starting
// reaches it too.
func (k *killer) addKill(kill func(syscall.Signal) error) {
	k.mu.Lock()
	k.kills = append(k.kills, kill)
	var late []int
	for s := range k.sent {
		late = append(late, s)
	}
	k.mu.Unlock()
	for _, s := range late {
		go sendOnce(kill, syscall.Signal(s))
	}
}

// sendOnce runs kill with signals kept off its thread: an interrupted
// ctl write is retried whole, and the processes would get sig twice.
func sendOnce(kill func(syscall.Signal) error, sig syscall.Signal) {
	client.BlockInterrupts() // for this goroutine's life: its thread ends with it
	kill(sig)
}

// mark records that bpsh itself sent sig.
func (k *killer) mark(sig syscall.Signal) {
	k.mu.Lock()
	k.quiet[int(sig)] = true
	k.mu.Unlock()
}

// forwarded reports whether bpsh passed signal sig on itself, so the
// resulting deaths need no message.
func (k *killer) forwarded(sig int) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.sent[sig] || k.quiet[sig]
}

func (k *killer) stop() { signal.Stop(k.ch) }
