// Command bprsh is an rsh/ssh-compatible front end to bproc, for the tools
// that start remote work through such an agent (MPI launchers, pdsh,
// ClusterShell): the words of COMMAND are joined with spaces and run by
// /bin/sh -c on HOST, as ssh does.
//
//	bprsh [-l user] [-n] [-o option]... HOST COMMAND [ARG...]
//
// The exit status is the remote command's; 255 when it was killed by a
// signal, lost with its node or could not start, or bprsh could not reach
// the tree (ssh's convention); 1 for a usage error.
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

	"bproc/client"
	"bproc/cmd/internal/cli"
)

const failStatus = 255

// ssh's and rsh's options: those without a value and those with one.
// Launchers add some (-x, -T, -q, -o BatchMode=yes, -p PORT); bprsh takes
// them all and uses only -l, -n and -V.
const (
	sshFlags  = "1246AaCfGgKkMNnqsTtvXxYy"
	sshValued = "BbcDEeFIiJLlmOoPpQRSWw"
)

const synopsis = "[-l user] [-n] [-o option]... HOST COMMAND [ARG...]"

type options struct {
	user    string
	nullIn  bool
	host    string
	command string
}

func main() { cli.Main(run) }

func usage(stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "bprsh: %s\nTry 'bprsh -h' for help.\n", fmt.Sprintf(format, args...))
	return cli.ExitUsage
}

func help(w io.Writer) {
	fmt.Fprintf(w, `Usage: bprsh %s

Run COMMAND on node HOST with /bin/sh -c, the words of COMMAND joined with
spaces (as ssh does), as the calling user, in the user's home directory,
with stdin, stdout and stderr forwarded. HOST is a node number, nN, .N, the
hostname or address the node reported, or the master's own name.

Options:
  -l user     the remote user: the caller's own name (root may name anyone)
  -n          stdin from /dev/null
  -V          print the version and exit
  -h, --help  show this help and exit
ssh's and rsh's other options (-o option, -p port, -x, -T, -q, ...) are
accepted and ignored, for the launchers that add them.

Exit status: the remote command's; 255 when it was killed by a signal, lost
with its node or could not start, or the tree could not be reached.
`, synopsis)
}

// parse reads ssh-style options up to HOST (a user@HOST form names the
// user too), then the command words.
func parse(args []string, stdout, stderr io.Writer) (o options, code int, done bool) {
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if a == "--help" {
			help(stdout)
			return o, 0, true
		}
		if a == "--version" {
			fmt.Fprintln(stdout, "bprsh (bproc)", cli.Version())
			return o, 0, true
		}
		if len(a) < 2 || a[0] != '-' || strings.HasPrefix(a, "--") {
			if strings.HasPrefix(a, "--") {
				return o, usage(stderr, "unknown flag: %s", a), true
			}
			break
		}
		for j := 1; j < len(a); j++ {
			c := a[j]
			switch {
			case c == 'h':
				help(stdout)
				return o, 0, true
			case c == 'V':
				fmt.Fprintln(stdout, "bprsh (bproc)", cli.Version())
				return o, 0, true
			case strings.IndexByte(sshFlags, c) >= 0:
				if c == 'n' {
					o.nullIn = true
				}
			case strings.IndexByte(sshValued, c) >= 0:
				val := a[j+1:]
				if val == "" {
					if i+1 >= len(args) {
						return o, usage(stderr, "option -%c needs a value", c), true
					}
					i++
					val = args[i]
				}
				if c == 'l' {
					o.user = val
				}
				j = len(a)
			default:
				return o, usage(stderr, "unknown shorthand flag: '%c' in %s", c, a), true
			}
		}
	}
	if i >= len(args) {
		return o, usage(stderr, "missing host and command"), true
	}
	o.host = args[i]
	if u, h, ok := strings.Cut(o.host, "@"); ok {
		o.host = h
		if o.user == "" {
			o.user = u
		}
	}
	if o.host == "" {
		return o, usage(stderr, "empty host"), true
	}
	words := args[i+1:]
	if len(words) == 0 {
		return o, usage(stderr, "missing command (bprsh runs commands; it has no login shell)"), true
	}
	o.command = strings.Join(words, " ")
	return o, 0, false
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, code, done := parse(args, stdout, stderr)
	if done {
		return code
	}
	home, err := client.BecomeUser(o.user)
	if err != nil {
		fmt.Fprintf(stderr, "bprsh: %v\n", err)
		return failStatus
	}
	t, err := client.Connect(client.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "bprsh: %v\n", err)
		return failStatus
	}
	defer t.Close()
	node, err := resolveHost(t, o.host)
	if err != nil {
		fmt.Fprintf(stderr, "bprsh: %s: %v\n", o.host, err)
		return failStatus
	}
	var in *os.File
	if f, ok := stdin.(*os.File); ok && !o.nullIn && cli.UsableStdin(f) {
		in = f
	}
	opts := client.ExecOptions{Dir: home, NullStdin: in == nil, NoLookPath: true}
	var p *client.Proc
	if words := directWords(o.command); words != nil {
		p, err = client.Exec(t, node, words, opts) // direct.go; the shell if it fails
	}
	if p == nil {
		p, err = client.Exec(t, node, []string{"/bin/sh", "-c", o.command}, opts)
	}
	if err != nil {
		fmt.Fprintf(stderr, "bprsh: %s: %v\n", o.host, err)
		return failStatus
	}
	return attach(p, in, stdout, stderr, o.host)
}

// resolveHost finds the node HOST names: one element of a nodespec (a
// number, nN, .N, a reported hostname or address), or the master by its
// own name.
func resolveHost(t client.Tree, host string) (int, error) {
	if m, ok := client.MasterArg(host); ok {
		host = m
	}
	if self, err := os.Hostname(); err == nil && (host == self || host == strings.Split(self, ".")[0]) || host == "localhost" {
		return client.Master, nil
	}
	ns, err := client.ParseNodeSpec(host)
	if err != nil || strings.ContainsAny(host, ",&^[") {
		return 0, fmt.Errorf("not a node (want a node number, nN, .N, a node's hostname or address, or master)")
	}
	var cluster []client.NodeStatus
	if ns.NeedsList() {
		if cluster, err = client.ListNodes(t); err != nil {
			return 0, err
		}
	}
	nodes, err := ns.Resolve(cluster)
	if err != nil {
		return 0, err
	}
	if len(nodes) != 1 {
		return 0, fmt.Errorf("names %d nodes, not one", len(nodes))
	}
	return nodes[0], nil
}

// attach forwards stdin, copies stdout and stderr, forwards signals, and
// returns the exit status ssh would.
func attach(p *client.Proc, in *os.File, stdout, stderr io.Writer, host string) int {
	signal.Ignore(syscall.SIGPIPE)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	var mu sync.Mutex
	forwarded := map[int]bool{}
	go func() {
		for s := range sigs {
			mu.Lock()
			forwarded[int(s.(syscall.Signal))] = true
			mu.Unlock()
			go p.Kill(s.(syscall.Signal))
		}
	}()
	if in != nil {
		// Not waited for: the command may end without reading its stdin.
		go func() {
			client.BlockInterrupts()
			w, err := p.Stdin()
			if err != nil {
				return
			}
			client.Copy(w, in, 256<<10)
			w.Close()
		}()
	}
	var wg sync.WaitGroup
	var copyErr error
	for _, s := range []struct {
		open func() (io.ReadCloser, error)
		w    io.Writer
	}{{p.Stdout, stdout}, {p.Stderr, stderr}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.open()
			if err != nil {
				mu.Lock()
				copyErr = err
				mu.Unlock()
				return
			}
			defer r.Close()
			if _, err := client.Copy(s.w, r, 256<<10); err != nil {
				// Our reader went away: stop the remote writer as a
				// local pipeline would.
				mu.Lock()
				forwarded[int(syscall.SIGPIPE)] = true
				if !errors.Is(err, syscall.EPIPE) {
					copyErr = err
				}
				mu.Unlock()
				p.Kill(syscall.SIGPIPE)
				io.Copy(io.Discard, r)
			}
		}()
	}
	st, werr := p.Wait()
	wg.Wait()
	signal.Stop(sigs)
	mu.Lock()
	defer mu.Unlock()
	if werr != nil {
		fmt.Fprintf(stderr, "bprsh: %s: waiting: %s\n", host, client.ErrText(werr))
		return failStatus
	}
	if copyErr != nil {
		fmt.Fprintf(stderr, "bprsh: %s: %s\n", host, client.ErrText(copyErr))
	}
	if c := st.ExitCode(); c >= 0 {
		if copyErr != nil && c == 0 {
			return failStatus
		}
		return c
	}
	if st.Kind != client.Signaled || !forwarded[st.Signal] {
		fmt.Fprintf(stderr, "bprsh: %s: %s\n", host, st.Describe())
	}
	return failStatus
}
