package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bproc/cmd/internal/clitest"
	"bproc/mcast"
)

func TestPrologue(t *testing.T) {
	clitest.Prologue(t, "beostat", run, "--shm", []string{"extra"}, []string{"-v", "-x"})
	if code, out, _ := clitest.Call(run, "-v"); code != 0 || !strings.HasPrefix(out, "beostat (bproc) ") {
		t.Errorf("-v: exit %d, %q", code, out)
	}
}

func TestCommand(t *testing.T) {
	shm := filepath.Join(t.TempDir(), "beostat")
	w, err := mcast.CreateShm(shm)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s, err := mcast.ReadSample("../../mcast/testdata/arm64")
	if err != nil {
		t.Fatal(err)
	}
	w.Update(2, func(r *mcast.Record) {
		r.Flags = mcast.RecPresent
		r.Updated, r.Interval = time.Now().UnixNano(), int64(time.Second)
		r.NCPU = 4
		r.Load = [3]float64{s.Load.Load1, s.Load.Load5, s.Load.Load15}
		r.Running, r.Total, r.LastPID = s.Load.Running, s.Load.Total, s.Load.LastPID
	})
	tests := []struct {
		args []string
		rc   int
		want string
	}{
		{nil, 0, "    2 up        4   1.52"},
		{[]string{"-N", "2", "-f", "loadavg"}, 0, "1.52 0.98 0.41 3/211 10234\n"},
		{[]string{"-N", "2"}, 0, "==> node 2: stamp <==\nnode 2\nstate up\n"},
		{[]string{"-N", "5"}, 1, ""},
		{[]string{"-N", "2", "-f", "passwd"}, 1, ""},
		{[]string{"--counters"}, 0, "accepted       0\n"},
		{[]string{"--metrics"}, 0, "node_load1{node=\"2\"} 1.52\n"},
		{[]string{"-w", "--count", "2", "--interval", "10ms"}, 0, "\x1b[H"},
	}
	for _, tt := range tests {
		rc, out, errs := clitest.Call(run, append([]string{"--shm", shm}, tt.args...)...)
		if rc != tt.rc || !strings.Contains(out, tt.want) {
			t.Errorf("beostat %v: rc %d (want %d), output %q, stderr %q", tt.args, rc, tt.rc, out, errs)
		}
	}
}
