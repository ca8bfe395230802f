package cli

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// Run is a command's body: its arguments after the name, its streams,
// and the exit code it returns (tests call it directly).
type Run func(args []string, stdin io.Reader, stdout, stderr io.Writer) int

// Main runs run on the process's arguments and streams and exits with
// its code: every command's func main.
func Main(run Run) { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

// StopContext is the context a long-running command (a daemon, a live
// view) runs under: done on SIGINT or SIGTERM, after which the signals
// act as usual again; stop releases it.
func StopContext() (ctx context.Context, stop context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

// UsableStdin reports whether a command that forwards its stdin (bpsh,
// bprsh) should read f: not when it is /dev/null (nothing to forward),
// nor a terminal whose foreground is another process group (reading
// would stop us).
func UsableStdin(f *os.File) bool {
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
