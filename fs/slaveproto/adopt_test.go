package slaveproto

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

func TestParseAdopt(t *testing.T) {
	for _, tc := range []struct {
		rec  string
		want string // "" ok, else part of the error
	}{
		{`{"pid":7,"uid":1,"gid":2,"argv":["/bin/sh","-c","x"],"state":"running","stdout":{"off":10},"stderr":{"off":0}}`, ""},
		{`{"pid":7,"argv":["a"],"state":"stopped"}`, ""},
		{`{"pid":7,"argv":["a"],"state":"exited","status":"exit 3","stdout":{"off":5,"done":true}}`, ""},
		{`{"pid":7,"argv":["a"],"state":"exited","status":"signal 9"}`, ""},
		{`{"pid":0,"argv":["a"],"state":"running"}`, "bad pid"},
		{`{"pid":-3,"argv":["a"],"state":"running"}`, "bad pid"},
		{`{"pid":7,"inc":2,"argv":["a"],"state":"running"}`, ""},
		{`{"pid":7,"inc":-1,"argv":["a"],"state":"running"}`, "bad incarnation"},
		{`{"pid":7,"state":"running"}`, "no argv"},
		{`{"pid":7,"argv":["a"],"state":"zombie"}`, "bad state"},
		{`{"pid":7,"argv":["a"],"state":"running","status":"exit 1"}`, "with a status"},
		{`{"pid":7,"argv":["a"],"state":"exited"}`, "bad status"},
		{`{"pid":7,"argv":["a"],"state":"exited","status":"exit 256"}`, "bad status"},
		{`{"pid":7,"argv":["a"],"state":"exited","status":"exit 03"}`, "bad status"},
		{`{"pid":7,"argv":["a"],"state":"exited","status":"lost node 3 down"}`, "bad status"},
		{`{"pid":7,"argv":["a"],"state":"running","stdout":{"off":-1}}`, "negative"},
		{`{"pid":7,`, "bad adopt record"},
		{``, "bad adopt record"},
	} {
		_, err := ParseAdopt([]byte(tc.rec))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.rec, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, syscall.EINVAL)):
			t.Errorf("%s: got %v, want EINVAL with %q", tc.rec, err, tc.want)
		}
	}
	if _, err := ParseAdopt(make([]byte, maxAdoptRecord+1)); !errors.Is(err, syscall.E2BIG) {
		t.Errorf("huge record: %v", err)
	}
}

// FuzzParseAdopt: whatever a slave writes to slave/adopt gets a record
// that passes the checks, or an error; never a panic.
func FuzzParseAdopt(f *testing.F) {
	f.Add([]byte(`{"pid":7,"uid":1,"gid":2,"argv":["/bin/sh","-c","x"],"state":"running","stdout":{"off":10},"stderr":{"off":0}}`))
	f.Add([]byte(`{"pid":7,"argv":["a"],"state":"exited","status":"exit 3","stdout":{"off":5,"done":true}}`))
	f.Add([]byte(`{"pid":1e99,"argv":[""],"state":"exited","status":"signal 300"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAdopt(b)
		if err != nil {
			return
		}
		if a.Pid <= 0 || a.Inc < 0 || len(a.Argv) == 0 || a.Stdout.Off < 0 || a.Stderr.Off < 0 {
			t.Fatalf("accepted %q as %+v", b, a)
		}
		if (a.State == "exited") != (a.Status != "") {
			t.Fatalf("accepted %q: state %s, status %q", b, a.State, a.Status)
		}
	})
}
