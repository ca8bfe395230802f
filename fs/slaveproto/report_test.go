package slaveproto

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

func TestParseRef(t *testing.T) {
	for _, tc := range []struct {
		ref      string
		pid, inc int
	}{
		{"7", 7, 0},
		{"7.1", 7, 1},
		{"123.45", 123, 45},
	} {
		pid, inc, err := ParseRef(tc.ref)
		if err != nil || pid != tc.pid || inc != tc.inc {
			t.Errorf("%q: %d, %d, %v; want %d, %d", tc.ref, pid, inc, err, tc.pid, tc.inc)
		}
	}
	for _, ref := range []string{
		"7.0", // incarnation 0 is spelled "7"
		"7.", ".1", "0", "-7", "+7", "07", "7.01", "7.-1", "7.1.2", "7.x",
		"99999999999999999999", "",
	} {
		pid, inc, err := ParseRef(ref)
		if err == nil || pid != 0 || inc != 0 {
			t.Errorf("%q: %d, %d, %v; want 0, 0 and an error", ref, pid, inc, err)
		}
		if err != nil && !errors.Is(err, syscall.EINVAL) {
			t.Errorf("%q: %v, want EINVAL", ref, err)
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

// fields splits a report's words as strings.Fields does, whatever the
// bytes (ASCII split in place, the rest by strings.Fields).
func FuzzFieldsLikeStrings(f *testing.F) {
	for _, s := range []string{"", " ", "exit 0", "  started\t12 ", "failed 2 no such\vfile\r\n", "eof\fstdout", "a\u00a0b", "x\u0085y z", "\xff 1", "exit  0  "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, want := fields(nil, s), strings.Fields(s)
		if len(got) != len(want) {
			t.Fatalf("fields(%q) = %q, strings.Fields %q", s, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("fields(%q) = %q, strings.Fields %q", s, got, want)
			}
		}
	})
}
