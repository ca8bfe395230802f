package main

import (
	"strings"
	"testing"

	"bproc/cmd/internal/clitest"
)

// BProc's single-dash long options and GNU double-dash ones parse alike.
func TestParseSingleDash(t *testing.T) {
	cases := []struct {
		args  []string
		leave bool
		flags string
		rest  []string
	}{
		{[]string{"-leave", "-flags", "all", "12", "f"}, true, "all", []string{"12", "f"}},
		{[]string{"--leave", "--flags=libs,exec", "12", "-"}, true, "libs,exec", []string{"12", "-"}},
		{[]string{"-l", "-f", "other", "12", "f"}, true, "other", []string{"12", "f"}},
		{[]string{"-flags=exec", "12", "f"}, false, "exec", []string{"12", "f"}},
		{[]string{"12", "--", "-x"}, false, "none", []string{"12", "-x"}},
	}
	for _, c := range cases {
		flags := newFlags("dump")
		leave := flags.BoolP("leave", "l", false, "")
		regions := flags.StringP("flags", "f", "none", "")
		if err := parse(flags, c.args); err != nil {
			t.Errorf("%v: %v", c.args, err)
			continue
		}
		if *leave != c.leave || *regions != c.flags || len(flags.Args()) != len(c.rest) {
			t.Errorf("%v: leave=%v flags=%q args=%q", c.args, *leave, *regions, flags.Args())
			continue
		}
		for i := range c.rest {
			if flags.Arg(i) != c.rest[i] {
				t.Errorf("%v: args %q, want %q", c.args, flags.Args(), c.rest)
			}
		}
	}
	flags := newFlags("dump")
	flags.Bool("leave", false, "")
	if err := parse(flags, []string{"-bogus"}); err == nil {
		t.Error("unknown option accepted")
	}
}

func TestPrologue(t *testing.T) {
	clitest.Prologue(t, "vmadump", run, "restore [-detach]",
		[]string{}, []string{"frobnicate"}, []string{"dump"}, []string{"dump", "x", "f"}, []string{"dump", "-flags", "bogus", "1", "f"},
		[]string{"restore"}, []string{"restore", "a", "b"}, []string{"info"}, []string{"bench"}, []string{"info", "-bogus", "f"})
	for _, args := range [][]string{{"help"}, {"dump", "-h"}, {"info", "--help"}} {
		if code, out, _ := clitest.Call(run, args...); code != 0 || !strings.HasPrefix(out, "Usage: vmadump dump ") {
			t.Errorf("vmadump %q: exit %d, %q", args, code, out)
		}
	}
	for _, sub := range []string{"restore", "info"} {
		if code, _, errs := clitest.Call(run, sub, "a", "b"); code != 1 || !strings.HasPrefix(errs, "vmadump: "+sub+" takes FILE") {
			t.Errorf("%s with two files: exit %d, %q, want 1 and what %s takes", sub, code, errs, sub)
		}
	}
	if code, _, errs := clitest.Call(run, "info", "/nonexistent/image"); code != 1 || !strings.Contains(errs, "vmadump: opening image") {
		t.Errorf("info of a missing file: exit %d, %q, want 1", code, errs)
	}
}
