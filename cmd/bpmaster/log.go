package main

import (
	"log/slog"

	"bproc/cmd/internal/daemon"
)

// traceTo is where traces of commands and slave messages go: the -m file,
// and with -v the log too, at Debug, with their fields (node=N).
func traceTo(t *daemon.Tracer, l *slog.Logger, verbose bool) func(string, ...any) {
	return daemon.TraceTo(t, daemon.PrintfTo(l, slog.LevelDebug), verbose)
}
