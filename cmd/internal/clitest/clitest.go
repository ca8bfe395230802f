// Package clitest checks the prologue every command shares (see cli):
// -h, -V and a bad option, through the command's run function.
package clitest

import (
	"bytes"
	"strings"
	"testing"

	"bproc/cmd/internal/cli"
)

// Run is a command's run function, as cli.Main takes it.
type Run = cli.Run

// Call runs args through run and returns its exit code and output.
func Call(run Run, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// Prologue checks that -h and --help print the help (with wantHelp in
// it) on stdout, -V and --version the version, and that a bad option
// exits 1 with the way to the help on stderr; extra names more usage
// errors (argument lists) that must exit 1 the same way.
func Prologue(t *testing.T, name string, run Run, wantHelp string, extra ...[]string) {
	t.Helper()
	for _, args := range [][]string{{"-h"}, {"--help"}} {
		code, out, errs := Call(run, args...)
		if code != 0 || !strings.HasPrefix(out, "Usage: "+name+" ") || !strings.Contains(out, wantHelp) || errs != "" {
			t.Errorf("%s %q: exit %d, stdout %q, stderr %q; want 0 and the help", name, args, code, out, errs)
		}
	}
	for _, args := range [][]string{{"-V"}, {"--version"}} {
		code, out, errs := Call(run, args...)
		if code != 0 || !strings.HasPrefix(out, name+" (bproc) ") || errs != "" {
			t.Errorf("%s %q: exit %d, stdout %q, stderr %q; want 0 and the version", name, args, code, out, errs)
		}
	}
	for _, args := range append([][]string{{"--no-such-option"}}, extra...) {
		code, out, errs := Call(run, args...)
		if code != 1 || out != "" || !strings.HasPrefix(errs, name+": ") || !strings.HasSuffix(errs, "Try '"+name+" -h' for help.\n") {
			t.Errorf("%s %q: exit %d, stdout %q, stderr %q; want 1 and a usage error", name, args, code, out, errs)
		}
	}
}
