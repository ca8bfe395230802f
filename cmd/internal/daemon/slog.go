package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"os"
	"strings"
)

// Slog is a daemon's structured logger (log/slog, key=value text): to
// stderr when debug is set, else to syslog with facility (stderr when
// there is no syslog daemon). Info and above; Debug too when verbose. The
// time is left out where the log already stamps it: syslog, and systemd's
// journal (JOURNAL_STREAM set: stderr is the journal).
func Slog(tag string, debug, verbose bool, facility string) *slog.Logger {
	var w io.Writer = os.Stderr
	stamped := os.Getenv("JOURNAL_STREAM") != ""
	if !debug {
		if sw, err := syslog.New(facilities[strings.ToLower(facility)]|syslog.LOG_INFO, tag); err == nil {
			w, stamped = sw, true
		}
	}
	return slog.New(slog.NewTextHandler(w, handlerOptions(verbose, stamped)))
}

func handlerOptions(verbose, stamped bool) *slog.HandlerOptions {
	o := &slog.HandlerOptions{Level: slog.LevelInfo}
	if verbose {
		o.Level = slog.LevelDebug
	}
	if stamped {
		o.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	return o
}

// Logf is a printf-style log call, the form fs.Master, srv.Server and
// job.Slave take (Logf fields); Printf lets it stand for a *log.Logger.
type Logf func(format string, args ...any)

// Printf logs one message.
func (f Logf) Printf(format string, args ...any) { f(format, args...) }

// logFields are the structured fields read out of printf-style messages:
// the argument that fills the verb after each prefix.
var logFields = []struct{ prefix, key string }{
	{"node %d", "node"},
	{"process %d", "pid"},
	{"pid %d", "pid"},
	{"job %d", "pid"}, // the slave's name for the master's process
	{"9p: %s", "peer"},
	{"9p: %v", "peer"},
}

// PrintfTo adapts printf-style calls to l at level: the message as
// formatted, with the fields its format names (node=3 for "node %d ...",
// pid=, peer=), at Warn when an argument is an error.
func PrintfTo(l *slog.Logger, level slog.Level) Logf {
	return func(format string, args ...any) {
		lv := level
		var attrs []slog.Attr
		for _, f := range logFields {
			i := strings.Index(format, f.prefix)
			if i < 0 {
				continue
			}
			n := verbsBefore(format[:i+len(f.prefix)]) - 1
			if n < 0 || n >= len(args) {
				continue
			}
			if _, isErr := args[n].(error); !isErr { // an error is the message, not a field
				attrs = append(attrs, slog.Any(f.key, args[n]))
			}
		}
		for _, a := range args {
			if _, ok := a.(error); ok && lv < slog.LevelWarn {
				lv = slog.LevelWarn
			}
		}
		ctx := context.Background()
		if !l.Enabled(ctx, lv) {
			return
		}
		l.LogAttrs(ctx, lv, strings.TrimRight(fmt.Sprintf(format, args...), "\n"), attrs...)
	}
}

// verbsBefore counts the formatting verbs in s (%% is not one).
func verbsBefore(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			if i+1 < len(s) && s[i+1] == '%' {
				i++
				continue
			}
			n++
		}
	}
	return n
}

// TraceTo is where a daemon's traces of messages go: the -m file t, and
// with -v (verbose) debug too, the log at level Debug.
func TraceTo(t *Tracer, debug Logf, verbose bool) Logf {
	if !verbose {
		return t.Printf
	}
	return func(format string, args ...any) {
		t.Printf(format, args...)
		debug(format, args...)
	}
}
