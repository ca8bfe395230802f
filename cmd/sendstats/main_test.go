package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bproc/cmd/internal/clitest"
)

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("k3y-for-the-tests-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	procfs := "../../mcast/testdata/x86"
	cfg, err := config(options{port: 3040, rate: 5, node: 7, keyFile: keyFile, procfs: procfs})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Interval != 200*time.Millisecond || cfg.Node != 7 || string(cfg.Key) != "k3y-for-the-tests-0123" ||
		cfg.StatsAddr != "239.2.11.72:3040" || cfg.RequestAddr != "239.2.11.73:3040" {
		t.Errorf("config %+v", cfg)
	}
	good := options{port: 3040, rate: 1, node: 1, keyFile: keyFile, procfs: procfs}
	bad := []struct {
		name string
		set  func(*options)
		want string
	}{
		{"port", func(o *options) { o.port = 70000 }, "port"},
		{"rate zero", func(o *options) { o.rate = 0 }, "rate"},
		{"rate NaN", func(o *options) { o.rate = nanRate() }, "rate"},
		{"no key", func(o *options) { o.keyFile = filepath.Join(dir, "none") }, "cluster key"},
		{"no procfs", func(o *options) { o.procfs = filepath.Join(dir, "none") }, "cpuinfo"},
	}
	for _, b := range bad {
		o := good
		b.set(&o)
		if _, err := config(o); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: %v, want an error about %s", b.name, err, b.want)
		}
	}
}

func nanRate() float64 { z := 0.0; return z / z }

func TestPrologue(t *testing.T) {
	clitest.Prologue(t, "sendstats", run, "--procfs", []string{"extra"})
}

// sendstats on its own logs as bpslave does: a level and a time, no time
// of its own under systemd's journal.
func TestLogLines(t *testing.T) {
	for _, tc := range []struct {
		journal string
		time    bool
	}{{"", true}, {"8:12345", false}} {
		t.Setenv("JOURNAL_STREAM", tc.journal)
		file, err := os.CreateTemp(t.TempDir(), "stderr")
		if err != nil {
			t.Fatal(err)
		}
		saved := os.Stderr
		os.Stderr = file
		senderLog().Printf("sendstats: node %d: %s", 3, "sending: network is unreachable")
		os.Stderr = saved
		file.Close()
		b, err := os.ReadFile(file.Name())
		if err != nil {
			t.Fatal(err)
		}
		l := strings.TrimSpace(string(b))
		if !strings.Contains(l, `level=WARN msg="sendstats: node 3: sending: network is unreachable"`) ||
			strings.Contains(l, "\n") || strings.HasPrefix(l, "time=") != tc.time {
			t.Errorf("JOURNAL_STREAM=%q: logged %q, want one WARN line, time= %v", tc.journal, l, tc.time)
		}
	}
}
