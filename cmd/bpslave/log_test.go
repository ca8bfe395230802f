package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// The slave's messages as a journal would show them: master= always,
// node= once registered (once, where the message names the node itself),
// pid= for a job, Warn for an error, traces only at Debug.
func TestSlaveLogFields(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level: slog.LevelInfo,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
	sl := newSlaveLog(l, "10.77.0.1:2223")
	sl.Printf("connected to %s", "10.77.0.1:2223")
	sl.Printf("registered as node %d", 3)
	sl.setNode(3)
	sl.Printf("job %d: fetched library %s", 42, "/lib/x.so")
	sl.Printf("%v; reconnecting in %v", errors.New("lost the master: EOF"), "100ms")
	sl.Printf("registered as node %d", 4)
	sl.Debugf("<- %s", `{"op":"ping"}`)
	want := []string{
		`level=INFO msg="connected to 10.77.0.1:2223" master=10.77.0.1:2223`,
		`level=INFO msg="registered as node 3" master=10.77.0.1:2223 node=3`,
		`level=INFO msg="job 42: fetched library /lib/x.so" master=10.77.0.1:2223 node=3 pid=42`,
		`level=WARN msg="lost the master: EOF; reconnecting in 100ms" master=10.77.0.1:2223 node=3`,
		`level=INFO msg="registered as node 4" master=10.77.0.1:2223 node=4`,
	}
	got := strings.TrimSpace(buf.String())
	if got != strings.Join(want, "\n") {
		t.Errorf("logged:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}
