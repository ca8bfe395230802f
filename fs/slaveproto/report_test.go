package slaveproto

import (
	"errors"
	"syscall"
	"testing"
)

func TestParseRef(t *testing.T) {
	for _, tc := range []struct {
		ref      string
		pid, inc int
		ok       bool
	}{
		{"7", 7, 0, true},
		{"7.1", 7, 1, true},
		{"123.45", 123, 45, true},
		{"7.0", 0, 0, false}, // incarnation 0 is spelled "7"
		{"7.", 0, 0, false},
		{".1", 0, 0, false},
		{"0", 0, 0, false},
		{"-7", 0, 0, false},
		{"+7", 0, 0, false},
		{"07", 0, 0, false},
		{"7.01", 0, 0, false},
		{"7.-1", 0, 0, false},
		{"7.1.2", 0, 0, false},
		{"7.x", 0, 0, false},
		{"99999999999999999999", 0, 0, false},
		{"", 0, 0, false},
	} {
		pid, inc, err := ParseRef(tc.ref)
		if (err == nil) != tc.ok || pid != tc.pid || inc != tc.inc {
			t.Errorf("%q: %d, %d, %v; want %d, %d, ok=%v", tc.ref, pid, inc, err, tc.pid, tc.inc, tc.ok)
		}
		if err != nil && !errors.Is(err, syscall.EINVAL) {
			t.Errorf("%q: %v, want EINVAL", tc.ref, err)
		}
	}
}

// FuzzParseRef: a slave's report line starts with a ref from the wire;
// what parses is a positive pid and incarnation, spelt one way only.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"7", "7.1", "7.0", "07", "-1", "1.2.3", "", "9223372036854775807.9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pid, inc, err := ParseRef(s)
		if err != nil {
			if !errors.Is(err, syscall.EINVAL) {
				t.Fatalf("%q: %v, not EINVAL", s, err)
			}
			return
		}
		if pid <= 0 || inc < 0 || FormatRef(pid, inc) != s {
			t.Fatalf("%q parsed as %d.%d, which formats as %q", s, pid, inc, FormatRef(pid, inc))
		}
	})
}
