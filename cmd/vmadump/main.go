// Command vmadump dumps a running process to an image and restores it,
// here or on another node running the same kernel (BProc's VMAdump, in
// user space).
//
//	vmadump dump [-leave] [-flags libs,exec,other|all] PID FILE|-
//	vmadump restore [-detach] FILE|-
//	vmadump info [-json] FILE|-
//
// dump stops the process, writes the image and kills the process (it keeps
// running with -leave, and always when the dump fails). FILE may be a fifo
// that a restore elsewhere reads at the same time. The flags choose
// which mapped files travel inside the image; the others are referenced by
// path and must be the same file where the image is restored.
//
// restore recreates the process as a child of vmadump, connected to
// vmadump's stdin, stdout and stderr where the dumped process had pipes,
// sockets or terminals there, waits for it and exits with its status
// (128+N for signal N). With -detach it prints the pid and leaves it
// running in a session of its own.
//
// info checks the image and describes it: kernel, registers, files, and
// every region with its size and how it travels.
//
// Options are written -leave or --leave alike.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"bproc/cmd/internal/cli"
	"bproc/vmadump"
)

func main() { cli.Main(run) }

// run dispatches to the subcommand. A subcommand's image on stdin ("-")
// is read from the process's own standard input (see openImage).
func run(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	c := cli.New("vmadump", "dump [-leave] [-flags libs,exec,other|all] PID FILE|-\nrestore [-detach] FILE|-\ninfo [-json] FILE|-",
		"Dump a running process to an image, restore it, describe an image.", stdout, stderr)
	c.SetInterspersed(false) // options after the subcommand are its own
	if code, done := c.Parse(args); done {
		return code
	}
	if c.NArg() == 0 {
		return c.Usage("missing command: dump, restore or info")
	}
	cmds := map[string]func(*cli.Command, []string) int{"dump": dump, "restore": restore, "info": info, "bench": bench}
	name, rest := c.Arg(0), c.Args()[1:]
	if name == "help" || slices.ContainsFunc(rest, func(a string) bool { return a == "-h" || a == "-help" || a == "--help" }) {
		c.PrintHelp(stdout)
		return cli.ExitOK
	}
	sub, ok := cmds[name]
	if !ok {
		return c.Usage("unknown command %q", name)
	}
	return sub(c, rest)
}

// newFlags returns a flag set that also accepts BProc's single-dash long
// options (-leave as --leave).
func newFlags(name string) *pflag.FlagSet {
	flags := pflag.NewFlagSet(name, pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	return flags
}

func parse(flags *pflag.FlagSet, args []string) error {
	var out []string
	for i, a := range args {
		if a == "--" {
			out = append(out, args[i:]...)
			break
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if flags.Lookup(name) != nil {
				a = "-" + a
			}
		}
		out = append(out, a)
	}
	return flags.Parse(out)
}

func dump(c *cli.Command, args []string) int {
	flags := newFlags("dump")
	leave := flags.BoolP("leave", "l", false, "leave the process running after the dump")
	flagStr := flags.StringP("flags", "f", "none", "file-backed regions that travel in the image: libs,exec,other, all or none")
	if err := parse(flags, args); err != nil {
		return c.Usage("%v", err)
	}
	if flags.NArg() != 2 {
		return c.Usage("dump takes PID and FILE (or - for stdout)")
	}
	pid, err := strconv.Atoi(flags.Arg(0))
	if err != nil || pid <= 0 {
		return c.Usage("bad pid %q", flags.Arg(0))
	}
	regions, err := vmadump.ParseFlags(*flagStr)
	if err != nil {
		return c.Usage("%v", err)
	}
	opts := vmadump.DumpOptions{Flags: regions, Leave: *leave}
	out := os.Stdout
	if flags.Arg(1) != "-" {
		// A fifo, a device or a socket is written as it is.
		if fi, err := os.Stat(flags.Arg(1)); err == nil && !fi.Mode().IsRegular() {
			if out, err = os.OpenFile(flags.Arg(1), os.O_WRONLY, 0); err != nil {
				return c.Fail(fmt.Errorf("opening image: %w", err))
			}
			defer out.Close()
		} else {
			out = nil
		}
	}
	if out != nil {
		bw := bufio.NewWriterSize(out, 1<<20)
		if err := vmadump.Dump(pid, bw, opts); err != nil {
			return c.Fail(err)
		}
		if err := bw.Flush(); err != nil {
			return c.Fail(fmt.Errorf("writing image: %w", err))
		}
		return 0
	}
	// Write beside the target and rename, so a failed dump leaves no
	// half image under the final name.
	path := flags.Arg(1)
	f, err := os.CreateTemp(filepath.Dir(path), ".vmadump-*")
	if err != nil {
		return c.Fail(fmt.Errorf("creating image: %w", err))
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = vmadump.Dump(pid, bw, opts)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("writing image: %w", cerr)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return c.Fail(err)
	}
	return 0
}

// parseImage parses the options of restore or info and opens their one
// argument, the image; when done is set the subcommand ends with code.
func parseImage(c *cli.Command, flags *pflag.FlagSet, args []string) (rc io.ReadCloser, code int, done bool) {
	if err := parse(flags, args); err != nil {
		return nil, c.Usage("%v", err), true
	}
	if flags.NArg() != 1 {
		return nil, c.Usage("%s takes FILE (or - for stdin)", flags.Name()), true
	}
	rc, err := openImage(flags.Arg(0))
	if err != nil {
		return nil, c.Fail(err), true
	}
	return rc, 0, false
}

func openImage(name string) (io.ReadCloser, error) {
	if name == "-" {
		// Unbuffered on purpose: the decoder reads exactly the image, so
		// whatever follows it on stdin is left for the restored process.
		return io.NopCloser(os.Stdin), nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("opening image: %w", err)
	}
	return f, nil
}

func restore(c *cli.Command, args []string) int {
	flags := newFlags("restore")
	detach := flags.BoolP("detach", "d", false, "leave the restored process running on its own and print its pid")
	rc, code, done := parseImage(c, flags, args)
	if done {
		return code
	}
	var r io.Reader = rc
	if flags.Arg(0) != "-" {
		r = bufio.NewReaderSize(rc, 1<<20)
	}
	// Signals meant for the restored process while vmadump waits for it.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	p, err := vmadump.Restore(r, vmadump.RestoreOptions{Detach: *detach})
	rc.Close()
	if err != nil {
		return c.Fail(err)
	}
	if *detach {
		fmt.Fprintln(c.Stdout, p.Pid)
		return 0
	}
	go func() {
		for s := range sigs {
			_ = p.Signal(s)
		}
	}()
	st, err := p.Wait()
	if err != nil {
		return c.Fail(err)
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

func info(c *cli.Command, args []string) int {
	flags := newFlags("info")
	asJSON := flags.Bool("json", false, "print the image's metadata as JSON")
	rc, code, done := parseImage(c, flags, args)
	if done {
		return code
	}
	defer rc.Close()
	inf, err := vmadump.ReadInfo(bufio.NewReaderSize(rc, 1<<20))
	if err != nil {
		return c.Fail(err)
	}
	if *asJSON {
		enc := json.NewEncoder(c.Stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(inf)
	} else {
		err = inf.WriteText(c.Stdout)
	}
	if err != nil && !errors.Is(err, syscall.EPIPE) {
		return c.Fail(err)
	}
	return 0
}
