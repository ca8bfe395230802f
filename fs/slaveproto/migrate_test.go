package slaveproto

import (
	"errors"
	"syscall"
	"testing"
)

func TestParseMigReport(t *testing.T) {
	for _, ok := range []string{`{"ev":"seized"}`, `{"ev":"stopped","argv":["a","b"],"child":12}`, `{"ev":"dumped"}`,
		`{"ev":"failed","errno":1,"text":"ptrace: not permitted"}`} {
		if _, err := ParseMigReport([]byte(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{``, `{}`, `{"ev":"moved"}`, `{"ev":"failed"}`, `{"ev":"failed","errno":99999}`,
		`{"ev":"stopped","child":-1}`, `[1]`, `{"ev":"seized"`} {
		if _, err := ParseMigReport([]byte(bad)); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("%q: %v, want EINVAL", bad, err)
		}
	}
}

// FuzzParseMigReport: whatever a source slave writes to slave/mig/MIG/ctl
// is a report that passes the checks, or EINVAL; never a panic.
func FuzzParseMigReport(f *testing.F) {
	f.Add([]byte(`{"ev":"stopped","argv":["/bin/sh","-c","x"],"child":501}`))
	f.Add([]byte(`{"ev":"failed","errno":22,"text":"threads"}`))
	f.Add([]byte(`{"ev":"dumped","child":1e99}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseMigReport(b)
		if err != nil {
			if !errors.Is(err, syscall.EINVAL) {
				t.Fatalf("%q: %v, not EINVAL", b, err)
			}
			return
		}
		if r.Child < 0 || (r.Ev == "failed") != (r.Errno > 0) && r.Ev == "failed" || r.Errno > 4095 {
			t.Fatalf("accepted %q as %+v", b, r)
		}
	})
}
