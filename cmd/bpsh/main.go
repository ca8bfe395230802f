// Command bpsh runs a program on one or more nodes of a bproc cluster,
// forwarding stdin to it and its stdout and stderr back, like rsh.
//
//	bpsh [-a|-A] [-n] [-N] [-L] [-p] [-s] [-d] [-b size] [-I file] [-O file] [-E file] [-t] nodespec command [args]
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
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

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
	report            bool
	bufSize           int
	inFile, outFile   string
	errFile, keyFile  string
}

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

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
// the option parser leaves it alone; "-1" later on belongs to the command.
func fixMasterSpec(args []string) []string {
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
			if strings.HasPrefix(a, "--") {
				if !strings.Contains(a, "=") && valueLong[a[2:]] {
					i++
				}
			} else if strings.ContainsAny(a[1:], "aA") {
				return out
			} else if strings.ContainsRune(valueShort, rune(a[len(a)-1])) && !strings.ContainsAny(a[1:len(a)-1], valueShort) {
				i++ // "-b" "4096": the value is the next argument
			}
		default:
			return out
		}
	}
	return out
}

// Options that take a value, for fixMasterSpec.
const valueShort = "bIOEk"

var valueLong = map[string]bool{"buffer": true, "input": true, "output": true, "error": true, "key": true}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	args = fixMasterSpec(args)
	var o options
	c := cli.New("bpsh", "[options] nodespec command [args...]\n-a|-A [options] command [args...]",
		"Run command on the nodes of nodespec (3, n3, 0-7, 1,3,5-, all, allup, allnotdown, master, -1).", stdout, stderr)
	c.Footer = "Exit status: the highest exit status of the processes; 255 when one was killed,\n" +
		"lost with its node, or could not start; 1 for a usage error.\n" +
		"The tree is the mount at $BPROC_MOUNT (default /bproc), else 9P to $BPROC_MASTER."
	c.VersionV() // BProc's bpsh -v
	flags := c.FlagSet
	flags.SetInterspersed(false) // options after the nodespec belong to the command
	flags.BoolVarP(&o.allUp, "all", "a", false, "run on all nodes that are up")
	flags.BoolVarP(&o.allNotDown, "all-notdown", "A", false, "run on all nodes that are not down")
	flags.BoolVarP(&o.nullIn, "null", "n", false, "stdin from /dev/null")
	flags.BoolVarP(&o.noIO, "no-io", "N", false, "no I/O forwarding (output goes to the node's io file)")
	flags.BoolVarP(&o.lineBuf, "line", "L", false, "line-buffer output (whole lines from each node)")
	flags.BoolVarP(&o.prefix, "prefix", "p", false, "prefix each output line with the node number")
	flags.BoolVarP(&o.seq, "sequential", "s", false, "show the output of each node in turn, in node order")
	flags.BoolVarP(&o.divider, "divider", "d", false, "print a divider line between the nodes' output (implies -s)")
	flags.IntVarP(&o.bufSize, "buffer", "b", 0, "I/O buffer size in bytes (default 1 MiB, 128 KiB beyond 8 nodes)")
	flags.StringVarP(&o.inFile, "input", "I", "", "take stdin from `file`")
	flags.StringVarP(&o.outFile, "output", "O", "", "write stdout to `file`")
	flags.StringVarP(&o.errFile, "error", "E", "", "write stderr to `file`")
	flags.BoolVarP(&o.report, "time", "t", false, "report each node's end and run time on stderr")
	flags.StringVarP(&o.keyFile, "key", "k", "", "cluster key `file` for 9P (default $BPROC_KEY or /etc/bproc/cluster.key)")
	if code, done := c.Parse(args); done {
		return code
	}
	rest := flags.Args()
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
		spec, rest = rest[0], rest[1:]
		if len(rest) > 0 && rest[0] == "--" { // "bpsh 3 -- cmd": the usual end of options
			rest = rest[1:]
		}
	}
	if len(rest) == 0 {
		return c.Usage("missing command")
	}
	if o.bufSize < 0 || o.bufSize > 64<<20 {
		return c.Usage("-b %d: buffer size must be between 1 and 64 MiB", o.bufSize)
	}
	if o.nullIn && o.inFile != "" {
		return c.Usage("-n and -I exclude each other")
	}
	if o.divider {
		o.seq = true
	}
	ns, err := client.ParseNodeSpec(spec)
	if err != nil {
		return c.Usage("%v", err)
	}

	tracef("parsed")
	t, err := client.Connect(client.Options{KeyFile: o.keyFile})
	if err != nil {
		fmt.Fprintf(stderr, "bpsh: %v\n", err)
		return failStatus
	}
	defer t.Close()
	tracef("connected")
	var cluster []client.NodeStatus
	if ns.NeedsList() {
		if cluster, err = client.ListComputeNodes(t); err != nil {
			fmt.Fprintf(stderr, "bpsh: %v\n", err)
			return failStatus
		}
	}
	nodes := ns.Expand(cluster)
	if len(nodes) == 0 {
		fmt.Fprintf(stderr, "bpsh: no nodes in %q\n", spec)
		return failStatus
	}
	if o.bufSize == 0 {
		o.bufSize = 1 << 20
		if len(nodes) > 8 {
			o.bufSize = 128 << 10
		}
	}
	return runJobs(t, nodes, rest, &o, stdin, stdout, stderr)
}

// job is the command on one node.
type job struct {
	k     *killer
	idx   int
	node  int
	proc  *client.Proc
	err   error
	st    client.Status
	werr  error
	start time.Time
	end   time.Time
}

// runJobs runs argv on the nodes; stdin is forwarded when it is a file
// worth reading (see usableStdin), stderr gets bpsh's own messages.
func runJobs(t client.Tree, nodes []int, argv []string, o *options, stdin io.Reader, stdout, stderr io.Writer) int {
	msgs := stderr
	// Where stdin comes from; nil means /dev/null.
	var in *os.File
	switch {
	case o.noIO || o.nullIn:
	case o.inFile != "":
		f, err := os.Open(o.inFile)
		if err != nil {
			fmt.Fprintf(msgs, "bpsh: %s\n", client.ErrText(err))
			return failStatus
		}
		defer f.Close()
		in = f
	default:
		if f, ok := stdin.(*os.File); ok && usableStdin(f) {
			in = f
		}
	}
	if !o.noIO {
		for _, s := range []struct {
			name string
			w    *io.Writer
		}{{o.outFile, &stdout}, {o.errFile, &stderr}} {
			if s.name == "" {
				continue
			}
			f, err := os.Create(s.name)
			if err != nil {
				fmt.Fprintf(msgs, "bpsh: %s\n", client.ErrText(err))
				return failStatus
			}
			defer f.Close()
			*s.w = f
		}
	}
	// EPIPE instead of death on a closed stdout, so the remote side is
	// told (below) instead of running on unread.
	signal.Ignore(syscall.SIGPIPE)

	jobs := make([]*job, len(nodes))
	for i, n := range nodes {
		jobs[i] = &job{idx: i, node: n}
	}
	ex := client.ExecOptions{NullStdin: in == nil, Detached: o.noIO}

	k := newKiller()
	defer k.stop()
	for _, j := range jobs {
		j.k = k
	}

	out := newOutput(len(jobs), stdout, stderr, o)
	out.setNodes(nodes)
	var wg, startWG sync.WaitGroup
	var inputs []*stdinDest
	var inMu sync.Mutex
	for _, j := range jobs {
		wg.Add(1)
		startWG.Add(1)
		go func(j *job) {
			defer wg.Done()
			j.start = time.Now()
			p, err := client.Exec(t, j.node, argv, ex)
			if err != nil {
				j.err = err
				startWG.Done()
				out.done(j.idx)
				return
			}
			j.proc = p
			tracef("node %d: started pid %d", j.node, p.Pid)
			k.add(p)
			if in != nil {
				inMu.Lock()
				inputs = append(inputs, &stdinDest{proc: p})
				inMu.Unlock()
			}
			startWG.Done()
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
	out.finish()

	code := 0
	for _, j := range jobs {
		switch {
		case j.err != nil:
			fmt.Fprintf(msgs, "bpsh: node %d: %v\n", j.node, j.err)
			code = failStatus
		case j.werr != nil:
			fmt.Fprintf(msgs, "bpsh: node %d: waiting: %v\n", j.node, client.ErrText(j.werr))
			code = failStatus
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
	if !o.noIO {
		wg.Add(2)
		go func() {
			defer wg.Done()
			j.copyStream(j.proc.Stdout, out, 1, o)
		}()
		go func() {
			defer wg.Done()
			j.copyStream(j.proc.Stderr, out, 2, o)
		}()
	}
	j.st, j.werr = j.proc.Wait()
	tracef("node %d: wait: %v", j.node, j.st)
	wg.Wait()
	tracef("node %d: output done", j.node)
	out.done(j.idx)
}

// copyStream moves one output stream to its sink: whole reads on the
// plain path, whole lines when prefixing or line-buffering.
func (j *job) copyStream(open func() (io.ReadCloser, error), out *output, fd int, o *options) {
	r, err := open()
	tracef("node %d: opened fd %d", j.node, fd)
	if err != nil {
		out.fail(fmt.Errorf("node %d: opening %s: %s", j.node, [3]string{"", "stdout", "stderr"}[fd], client.ErrText(err)))
		return
	}
	defer r.Close()
	var lw *lineWriter
	if o.prefix || o.lineBuf {
		lw = &lineWriter{}
		if o.prefix {
			lw.prefix = []byte(fmt.Sprintf("%3d: ", j.node))
		}
	}
	buf := make([]byte, o.bufSize)
	broken := false
	for {
		n, rerr := r.Read(buf)
		if n > 0 && !broken {
			var werr error
			if lw != nil {
				werr = lw.write(buf[:n], func(p []byte) error { return out.write(j.idx, fd, p) })
			} else {
				werr = out.write(j.idx, fd, buf[:n])
			}
			if werr != nil {
				// Our reader is gone: stop the remote writer like a local
				// pipeline would, and drain what is in flight.
				broken = true
				j.k.mark(syscall.SIGPIPE)
				j.proc.Kill(syscall.SIGPIPE)
			}
		}
		if rerr != nil {
			if rerr != io.EOF {
				out.fail(fmt.Errorf("node %d: reading %s: %s", j.node, [3]string{"", "stdout", "stderr"}[fd], client.ErrText(rerr)))
			}
			break
		}
	}
	if lw != nil && !broken {
		lw.flush(func(p []byte) error { return out.write(j.idx, fd, p) })
	}
}

// usableStdin reports whether bpsh should read its stdin f: not when it
// is /dev/null (the node gets -n instead, saving a stream), nor a terminal
// whose foreground is another process group (reading would stop us).
func usableStdin(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	if fi.Mode()&os.ModeCharDevice != 0 {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			var null unix.Stat_t
			if unix.Stat("/dev/null", &null) == nil && uint64(st.Rdev) == uint64(null.Rdev) {
				return false
			}
		}
		if pg, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPGRP); err == nil && pg != unix.Getpgrp() {
			return false
		}
	}
	return true
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
// every started process.
type killer struct {
	mu    sync.Mutex
	procs []*client.Proc
	sent  map[int]bool // signals forwarded from the user
	quiet map[int]bool // signals bpsh sent for its own reasons
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
			ps := append([]*client.Proc(nil), k.procs...)
			k.mu.Unlock()
			for _, p := range ps {
				go p.Kill(sig)
			}
		}
	}()
	return k
}

func (k *killer) add(p *client.Proc) {
	k.mu.Lock()
	k.procs = append(k.procs, p)
	var late []int
	for s := range k.sent {
		late = append(late, s)
	}
	k.mu.Unlock()
	// A signal that came while this process was starting reaches it too.
	for _, s := range late {
		go p.Kill(syscall.Signal(s))
	}
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
