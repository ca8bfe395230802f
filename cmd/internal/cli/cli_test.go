package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		vflag    bool
		code     int
		done     bool
		out, err string // substrings of stdout and stderr
	}{
		{[]string{"-h"}, false, 0, true, "Usage: x [-q] FILE\n       x -V\n\nDoes x.\n\nOptions:\n", ""},
		{[]string{"--help"}, false, 0, true, "--quiet", ""},
		{[]string{"-V"}, false, 0, true, "x (bproc) ", ""},
		{[]string{"--version"}, false, 0, true, "x (bproc) ", ""},
		{[]string{"-v"}, true, 0, true, "x (bproc) ", ""},
		{[]string{"-v"}, false, 1, true, "", "x: unknown shorthand flag: 'v' in -v\nTry 'x -h' for help.\n"},
		{[]string{"--bogus"}, false, 1, true, "", "unknown flag: --bogus"},
		{[]string{"-q", "file"}, false, 0, false, "", ""},
	} {
		var out, errb bytes.Buffer
		c := New("x", "[-q] FILE\n-V", "Does x.", &out, &errb)
		c.BoolP("quiet", "q", false, "say less")
		if tc.vflag {
			c.VersionV()
		}
		code, done := c.Parse(tc.args)
		if code != tc.code || done != tc.done {
			t.Errorf("%q: code %d done %v, want %d %v", tc.args, code, done, tc.code, tc.done)
		}
		if !strings.Contains(out.String(), tc.out) || (tc.out == "" && out.Len() > 0) {
			t.Errorf("%q: stdout %q, want %q", tc.args, out.String(), tc.out)
		}
		if !strings.Contains(errb.String(), tc.err) || (tc.err == "" && errb.Len() > 0) {
			t.Errorf("%q: stderr %q, want %q", tc.args, errb.String(), tc.err)
		}
	}
}

func TestVersion(t *testing.T) {
	if v := Version(); v == "" || v == "unknown" {
		t.Errorf("Version() = %q", v)
	}
	version = "1.2.3"
	defer func() { version = "" }()
	if v := Version(); v != "1.2.3" {
		t.Errorf("with the -X override: %q", v)
	}
}

func TestNoArgs(t *testing.T) {
	var out, errb bytes.Buffer
	c := New("x", "", "", &out, &errb)
	c.Parse([]string{"extra"})
	if code, done := c.NoArgs(); code != 1 || !done || !strings.Contains(errb.String(), `x: unexpected argument "extra"`) {
		t.Errorf("code %d done %v stderr %q", code, done, errb.String())
	}
}
