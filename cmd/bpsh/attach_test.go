package main

import (
	"strings"
	"testing"
)

func TestParseAttach(t *testing.T) {
	// 0, 1 and 2 are open in any test process.
	for _, tc := range []struct {
		v, err string
	}{
		{"1 42 0 1 2 -1 -1 -1 1 2 1048576 0 /bin/cat", ""},
		{"1 42 0 -1 -1 0 -1 -1 1 2 0 4 /bin/a b c", ""}, // the path keeps its spaces
		{"1 2 3", "want 13 fields"},
		{"1 42 0 1 2 -1 -1 -1 1 2 0 0 ", "want 13 fields"},
		{"x 42 0 1 2 -1 -1 -1 1 2 0 0 /p", `field 1: "x" is not a number`},
		{"1 0 0 1 2 -1 -1 -1 1 2 0 0 /p", "bad node, pid or count"},
		{"-1 42 0 1 2 -1 -1 -1 1 2 0 0 /p", "bad node, pid or count"},
		{"1 42 -1 1 2 -1 -1 -1 1 2 0 0 /p", "descriptor -1 is not open"}, // ctl is required
		{"1 42 0 1 2 -1 -1 -1 -1 2 0 0 /p", "descriptor -1 is not open"}, // so is stdout
		{"1 42 0 1 2 -1 -1 -1 1 9999 0 0 /p", "descriptor 9999 is not open"},
		{"1 42 0 1 -7 -1 -1 -1 1 2 0 0 /p", "descriptor -7 is not open"},
	} {
		a, err := parseAttach(tc.v)
		if tc.err == "" {
			if err != nil || a == nil {
				t.Errorf("parseAttach(%q): %v", tc.v, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("parseAttach(%q) = %v, want an error with %q", tc.v, err, tc.err)
		}
	}
	a, err := parseAttach("3 42 0 1 2 -1 -1 -1 1 2 7 4 /bin/a b")
	if err != nil || a.node != 3 || a.pid != 42 || a.seen != 7 || a.signals != 4 || a.path != "/bin/a b" {
		t.Fatalf("parseAttach: %+v, %v", a, err)
	}
}

// FuzzParseAttach: whatever BPSH_ATTACH holds, parseAttach answers an
// error or a state with open descriptors, never a panic.
func FuzzParseAttach(f *testing.F) {
	for _, s := range []string{
		"1 42 0 1 2 -1 -1 -1 1 2 1048576 0 /bin/cat",
		"1 42 0 -1 -1 0 -1 -1 1 2 0 4 /bin/a b c",
		"", "1 2 3", "99999999999999999999 1 0 1 2 -1 -1 -1 1 2 0 0 /p",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		a, err := parseAttach(v)
		if err == nil && (a.pid <= 0 || a.node < 0 || a.path == "") {
			t.Fatalf("parseAttach(%q) accepted %+v", v, a)
		}
	})
}
