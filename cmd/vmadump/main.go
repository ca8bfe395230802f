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
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"bproc/vmadump"
)

const usage = `usage: vmadump dump [-leave] [-flags libs,exec,other|all] PID FILE|-
       vmadump restore [-detach] FILE|-
       vmadump info [-json] FILE|-
`

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	cmds := map[string]func([]string) int{"dump": dump, "restore": restore, "info": info, "bench": bench}
	c, ok := cmds[args[0]]
	if !ok {
		if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			fmt.Print(usage)
			return 0
		}
		fmt.Fprintf(os.Stderr, "vmadump: unknown command %q\n%s", args[0], usage)
		return 2
	}
	return c(args[1:])
}

func fail(err error) int {
	fmt.Fprintf(os.Stderr, "vmadump: %v\n", err)
	return 1
}

func usageErr(msg string) int {
	fmt.Fprintf(os.Stderr, "vmadump: %s\n%s", msg, usage)
	return 2
}

// newFlags returns a flag set that also accepts BProc's single-dash long
// options (-leave as --leave).
func newFlags(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parse(fs *pflag.FlagSet, args []string) error {
	var out []string
	for i, a := range args {
		if a == "--" {
			out = append(out, args[i:]...)
			break
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if fs.Lookup(name) != nil {
				a = "-" + a
			}
		}
		out = append(out, a)
	}
	return fs.Parse(out)
}

func dump(args []string) int {
	fs := newFlags("dump")
	leave := fs.BoolP("leave", "l", false, "leave the process running after the dump")
	flagStr := fs.StringP("flags", "f", "none", "file-backed regions that travel in the image: libs,exec,other, all or none")
	if err := parse(fs, args); err != nil {
		return usageErr(err.Error())
	}
	if fs.NArg() != 2 {
		return usageErr("dump takes PID and FILE (or - for stdout)")
	}
	pid, err := strconv.Atoi(fs.Arg(0))
	if err != nil || pid <= 0 {
		return usageErr(fmt.Sprintf("bad pid %q", fs.Arg(0)))
	}
	flags, err := vmadump.ParseFlags(*flagStr)
	if err != nil {
		return usageErr(err.Error())
	}
	opts := vmadump.DumpOptions{Flags: flags, Leave: *leave}
	out := os.Stdout
	if fs.Arg(1) != "-" {
		// A fifo, a device or a socket is written as it is.
		if fi, err := os.Stat(fs.Arg(1)); err == nil && !fi.Mode().IsRegular() {
			if out, err = os.OpenFile(fs.Arg(1), os.O_WRONLY, 0); err != nil {
				return fail(fmt.Errorf("opening image: %w", err))
			}
			defer out.Close()
		} else {
			out = nil
		}
	}
	if out != nil {
		bw := bufio.NewWriterSize(out, 1<<20)
		if err := vmadump.Dump(pid, bw, opts); err != nil {
			return fail(err)
		}
		if err := bw.Flush(); err != nil {
			return fail(fmt.Errorf("writing image: %w", err))
		}
		return 0
	}
	// Write beside the target and rename, so a failed dump leaves no
	// half image under the final name.
	path := fs.Arg(1)
	f, err := os.CreateTemp(filepath.Dir(path), ".vmadump-*")
	if err != nil {
		return fail(fmt.Errorf("creating image: %w", err))
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
		return fail(err)
	}
	return 0
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

func restore(args []string) int {
	fs := newFlags("restore")
	detach := fs.BoolP("detach", "d", false, "leave the restored process running on its own and print its pid")
	if err := parse(fs, args); err != nil {
		return usageErr(err.Error())
	}
	if fs.NArg() != 1 {
		return usageErr("restore takes FILE (or - for stdin)")
	}
	rc, err := openImage(fs.Arg(0))
	if err != nil {
		return fail(err)
	}
	var r io.Reader = rc
	if fs.Arg(0) != "-" {
		r = bufio.NewReaderSize(rc, 1<<20)
	}
	// Signals meant for the restored process while vmadump waits for it.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	p, err := vmadump.Restore(r, vmadump.RestoreOptions{Detach: *detach})
	rc.Close()
	if err != nil {
		return fail(err)
	}
	if *detach {
		fmt.Println(p.Pid)
		return 0
	}
	go func() {
		for s := range sigs {
			_ = p.Signal(s)
		}
	}()
	st, err := p.Wait()
	if err != nil {
		return fail(err)
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

func info(args []string) int {
	fs := newFlags("info")
	asJSON := fs.Bool("json", false, "print the image's metadata as JSON")
	if err := parse(fs, args); err != nil {
		return usageErr(err.Error())
	}
	if fs.NArg() != 1 {
		return usageErr("info takes FILE (or - for stdin)")
	}
	rc, err := openImage(fs.Arg(0))
	if err != nil {
		return fail(err)
	}
	defer rc.Close()
	inf, err := vmadump.ReadInfo(bufio.NewReaderSize(rc, 1<<20))
	if err != nil {
		return fail(err)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(inf)
	} else {
		err = inf.WriteText(os.Stdout)
	}
	if err != nil && !errors.Is(err, syscall.EPIPE) {
		return fail(err)
	}
	return 0
}
