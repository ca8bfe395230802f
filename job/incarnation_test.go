package job

import (
	"bytes"
	"fmt"
	"syscall"
	"testing"

	"bproc/fs/slaveproto"
)

// errWriter refuses every write with err.
type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

// Every report line names the incarnation the start message gave (none
// for incarnation 0), and the adopt record keeps it for the next master.
func TestReportsCarryIncarnation(t *testing.T) {
	s := &Slave{}
	var buf bytes.Buffer
	l := &link{report: &buf, fail: func(err error) { t.Errorf("link failed: %v", err) }}
	for _, inc := range []int{0, 3} {
		buf.Reset()
		j := newRunning(&slaveproto.Msg{Op: "start", Pid: 7, Inc: inc, Argv: []string{"x"}})
		if err := s.report(l, j.pid, j.inc, "eof stdout", "exit 0"); err != nil {
			t.Fatal(err)
		}
		ref := slaveproto.FormatRef(7, inc)
		if want := ref + " eof stdout\n" + ref + " exit 0\n"; buf.String() != want {
			t.Errorf("incarnation %d: reported %q, want %q", inc, buf.String(), want)
		}
		if a := s.record(j); a.Inc != inc {
			t.Errorf("adopt record of incarnation %d says %d", inc, a.Inc)
		}
	}
}

// A master refusing a report as stale (the process moved on) or as about
// an unknown process is no reason to drop the connection; other errors are.
func TestStaleReportKeepsLink(t *testing.T) {
	s := &Slave{}
	for _, tc := range []struct {
		err  error
		fail bool
	}{
		{fmt.Errorf("moved: %w", syscall.ESTALE), false},
		{fmt.Errorf("unknown: %w", syscall.ESRCH), false},
		{fmt.Errorf("broken: %w", syscall.EIO), true},
	} {
		failed := false
		l := &link{report: errWriter{tc.err}, fail: func(error) { failed = true }}
		if err := s.report(l, 7, 1, "exit 0"); err == nil {
			t.Errorf("%v: no error", tc.err)
		}
		if failed != tc.fail {
			t.Errorf("%v: link failed %v, want %v", tc.err, failed, tc.fail)
		}
	}
}
