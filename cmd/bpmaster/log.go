package main

import (
	"log/slog"

	"bproc/cmd/internal/daemon"
)

// traceTo is where traces of commands and slave messages go: the -m file,
// and with -v the log too, at Debug, with their fields (node=N).
func traceTo(t *daemon.Tracer, l *slog.Logger, verbose bool) func(string, ...any) {
	if !verbose {
		return t.Printf
	}
	debug := daemon.PrintfTo(l, slog.LevelDebug)
	return func(format string, args ...any) {
		t.Printf(format, args...)
		debug(format, args...)
	}
}
