package pspace

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"

	"bproc/fs/synth"
)

func newTestProc() *Proc {
	return &Proc{pid: 1, state: "starting",
		stdout: synth.NewStream(streamSize, true), stderr: synth.NewStream(streamSize, true), stdin: synth.NewStream(streamSize, false),
		started: make(chan error, 1), done: make(chan struct{})}
}

func TestSlaveReports(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{"started 1234", true},
		{"failed 2 no such file", true},
		{"exit 0", true},
		{"exit 255", true},
		{"signal 9", true},
		{"eof stdout", true},
		{"eof stderr", true},
		{"failed 0 looks like success", false},
		{"failed -5 negative", false},
		{"failed 99999 huge", false},
		{"exit 256", false},
		{"exit -1", false},
		{"signal 0", false},
		{"signal 65", false},
		{"started 0", false},
		{"started 12 extra", false},
		{"eof stdin", false},
		{"eof", false},
		{"frobnicate 1", false},
		{"exit 1e3", false},
	} {
		err := newTestProc().slaveReport(tc.line)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err = %v, want ok=%v", tc.line, err, tc.ok)
		}
		if err != nil && !errors.Is(err, syscall.EINVAL) {
			t.Errorf("%q: err = %v, want EINVAL", tc.line, err)
		}
	}
	p := newTestProc()
	p.slaveReport("failed 13 not yours")
	if err := <-p.started; !errors.Is(err, syscall.EACCES) || !strings.Contains(err.Error(), "not yours") {
		t.Errorf("failed start: %v", err)
	}
}

// FuzzSlaveReport: report lines come from a slave over the wire; the
// master's parser must refuse what it does not know with EINVAL, never
// panic, and never let a failed start carry errno 0.
func FuzzSlaveReport(f *testing.F) {
	for _, s := range []string{"started 1234", "failed 2 no such file", "exit 0", "signal 9", "eof stdout",
		"failed 0 x", "exit 256", "signal -1", "eof", "", " \t", "started 99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		p := newTestProc()
		err := p.slaveReport(line)
		if err != nil {
			if !errors.Is(err, syscall.EINVAL) {
				t.Fatalf("%q: %v, not EINVAL", line, err)
			}
			return
		}
		select {
		case serr := <-p.started:
			if serr != nil && synth.Errno(serr) == 0 {
				t.Fatalf("%q: a failed start with errno 0", line)
			}
		default:
		}
	})
}

// A process that started and ended before its exec looked at its start
// (a quick one, a busy master) has started: not "node went down".
func TestAwaitStartAfterTheEnd(t *testing.T) {
	m := &Master{}
	for i := 0; i < 100; i++ {
		p := newTestProc()
		for _, line := range []string{"started 12", "exit 0"} {
			if err := p.slaveReport(line); err != nil {
				t.Fatal(err)
			}
		}
		job := &execJob{path: "/bin/true", release: func() {}}
		if err := m.awaitStart(context.Background(), p, &node{num: 3}, nil, job); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
}
