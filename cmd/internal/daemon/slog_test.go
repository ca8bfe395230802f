package daemon

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestPrintfToFields(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, handlerOptions(false, true)))
	logf := PrintfTo(l, slog.LevelInfo)
	logf("node %d down: %s", 3, "no ping for 2s")
	logf("9p: %s connected: %s uid %d", "10.77.0.13", "slave", 0)
	logf("9p: %v", errors.New("handshake with 10.77.0.13:1234: cluster key mismatch"))
	logf("exec of process %d on node %d: 100%% done", 42, 7)
	logf("signal %d to job %d: %v", 9, 42, "no such process")
	PrintfTo(l, slog.LevelDebug)("node %d <- %s", 1, "{}")
	want := []string{
		`level=INFO msg="node 3 down: no ping for 2s" node=3`,
		`level=INFO msg="9p: 10.77.0.13 connected: slave uid 0" peer=10.77.0.13`,
		`level=WARN msg="9p: handshake with 10.77.0.13:1234: cluster key mismatch"`,
		`level=INFO msg="exec of process 42 on node 7: 100% done" node=7 pid=42`,
		`level=INFO msg="signal 9 to job 42: no such process" pid=42`,
	}
	got := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("logged:\n%s\nwant:\n%s", buf.String(), strings.Join(want, "\n"))
	}
}

func TestVerboseAndTime(t *testing.T) {
	for _, tc := range []struct {
		verbose, stamped bool
		debug, time      bool
	}{
		{false, false, false, true},
		{true, false, true, true},
		{false, true, false, false}, // under the journal or syslog: no double timestamp
	} {
		var buf bytes.Buffer
		logf := PrintfTo(slog.New(slog.NewTextHandler(&buf, handlerOptions(tc.verbose, tc.stamped))), slog.LevelDebug)
		logf("node %d: trace", 1)
		PrintfTo(slog.New(slog.NewTextHandler(&buf, handlerOptions(tc.verbose, tc.stamped))), slog.LevelInfo)("info")
		out := buf.String()
		if strings.Contains(out, "level=DEBUG") != tc.debug || strings.Contains(out, "time=") != tc.time || !strings.Contains(out, `msg=info`) {
			t.Errorf("verbose %v stamped %v: %q", tc.verbose, tc.stamped, out)
		}
	}
}
