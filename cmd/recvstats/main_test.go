package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"bproc/cmd/internal/clitest"
)

func TestPrologue(t *testing.T) {
	clitest.Prologue(t, "recvstats", run, "--interface", []string{"extra"}, []string{"-p", "0"})
}

// Mistakes are reported before recvstats forks, with a clear message.
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("k3y-for-the-tests-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		rc   int
		want string
	}{
		{[]string{"-v"}, 0, "recvstats (bproc) "},
		{[]string{"extra"}, 1, "unexpected argument"},
		{[]string{"-p", "0", "-k", keyFile}, 1, "port 0"},
		{[]string{"-k", filepath.Join(dir, "none")}, 1, "cluster key"},
		{[]string{"-k", keyFile, "-i", "no-such-if0"}, 1, "interface no-such-if0"},
		{[]string{"-k", keyFile, "--metrics", "not an address"}, 1, "metrics"},
	}
	for _, tt := range tests {
		rc, out, errs := clitest.Call(run, tt.args...)
		if rc != tt.rc || !strings.Contains(out+errs, tt.want) {
			t.Errorf("recvstats %v: rc %d (want %d), out %q, err %q", tt.args, rc, tt.rc, out, errs)
		}
	}
}

// recvstats logs as bpmaster and bpslave do: key=value lines with a level
// and a time, but no time of its own under systemd's journal, which stamps
// each line. The receiver's failures are at WARN.
func TestLogLines(t *testing.T) {
	for _, tc := range []struct {
		journal string
		time    bool
	}{
		{"", true},
		{"8:12345", false},
	} {
		t.Setenv("JOURNAL_STREAM", tc.journal)
		logged := stderrOf(t, func() {
			logf, mlog := loggers(true)
			logf("metrics: %v", errors.New("listener closed"))
			mlog.Printf("recvstats: reading: %v", errors.New("socket closed"))
		})
		lines := strings.Split(strings.TrimSpace(logged), "\n")
		want := []string{`level=WARN msg="metrics: listener closed"`, `level=WARN msg="recvstats: reading: socket closed"`}
		if len(lines) != len(want) {
			t.Fatalf("JOURNAL_STREAM=%q: logged %d lines, want %d:\n%s", tc.journal, len(lines), len(want), logged)
		}
		for i, l := range lines {
			if !strings.Contains(l, want[i]) || strings.HasPrefix(l, "time=") != tc.time || strings.Contains(l, "time=") != tc.time {
				t.Errorf("JOURNAL_STREAM=%q: line %q, want %q and time= %v", tc.journal, l, want[i], tc.time)
			}
		}
	}
}

// stderrOf runs f and returns what it wrote to os.Stderr, where a daemon
// run with -d logs.
func stderrOf(t *testing.T, f func()) string {
	t.Helper()
	file, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	saved := os.Stderr
	os.Stderr = file
	defer func() { os.Stderr = saved }()
	f()
	b, err := os.ReadFile(file.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
