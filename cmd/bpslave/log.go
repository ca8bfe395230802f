package main

import (
	"log/slog"
	"strings"
	"sync/atomic"

	"bproc/cmd/internal/daemon"
)

// slaveLog is the slave's log: printf-style calls (job.Slave's Logf and
// Trace, the slave's own) to the structured log, through the fields table
// the master uses (pid= for "job %d"), with master= on every message and,
// once the master has numbered this node, node=N.
type slaveLog struct {
	base *slog.Logger
	node atomic.Int64 // -1 until the first hello
}

func newSlaveLog(l *slog.Logger, master string) *slaveLog {
	sl := &slaveLog{base: l.With("master", master)}
	sl.node.Store(-1)
	return sl
}

// setNode is called at every hello: from then on messages carry node=N.
func (sl *slaveLog) setNode(n int) { sl.node.Store(int64(n)) }

// logger is the logger for format: with node= unless the node is not
// known yet or the message names it itself (PrintfTo reads it from there).
func (sl *slaveLog) logger(format string) *slog.Logger {
	n := sl.node.Load()
	if n < 0 || strings.Contains(format, "node %d") {
		return sl.base
	}
	return sl.base.With("node", n)
}

// Printf logs at Info (Warn when an argument is an error).
func (sl *slaveLog) Printf(format string, args ...any) {
	daemon.PrintfTo(sl.logger(format), slog.LevelInfo)(format, args...)
}

// Debugf logs at Debug, which only -v shows.
func (sl *slaveLog) Debugf(format string, args ...any) {
	daemon.PrintfTo(sl.logger(format), slog.LevelDebug)(format, args...)
}
