// Package cli is the prologue every bproc command shares: GNU-style
// options with -h/--help and -V/--version, one usage and help layout, and
// one convention for exit codes.
//
//	0  success, -h, -V
//	1  a usage error (bad option, missing or extra argument), as in BProc,
//	   or the command failed
//
// Commands add their own codes beyond these (bpsh: the remote exit
// status, 255 for a killed or lost process).
package cli

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	flag "github.com/spf13/pflag"
)

// Exit codes shared by all commands.
const (
	ExitOK    = 0
	ExitFail  = 1
	ExitUsage = 1
)

// version overrides the build's version: go build -ldflags
// "-X bproc/cmd/internal/cli.version=..." (the Makefile sets it from git).
var version string

// Version is the version of this build: the -X override, else the main
// module's version, else the VCS revision the go tool recorded.
func Version() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "devel"
	}
	return "devel-" + rev[:min(len(rev), 12)] + dirty
}

// Command is one program's options and the streams it reports on.
type Command struct {
	*flag.FlagSet
	Name string
	// Synopsis are the usage lines after the name; Summary says what the
	// command does; Footer (optional) ends the help.
	Synopsis, Summary, Footer string
	Stdout, Stderr            io.Writer

	help, version, versionV *bool
}

// New starts the options of command name, with -h and -V.
func New(name, synopsis, summary string, stdout, stderr io.Writer) *Command {
	flags := flag.NewFlagSet(name, flag.ContinueOnError)
	flags.SortFlags = false
	flags.Usage = func() {}
	flags.SetOutput(io.Discard)
	c := &Command{FlagSet: flags, Name: name, Synopsis: synopsis, Summary: summary, Stdout: stdout, Stderr: stderr}
	c.help = flags.BoolP("help", "h", false, "show this help and exit")
	c.version = flags.BoolP("version", "V", false, "print the version and exit")
	return c
}

// VersionV makes -v another spelling of -V, for commands where BProc had
// it (bpsh, the stats tools).
func (c *Command) VersionV() {
	c.versionV = c.FlagSet.BoolP("version-v", "v", false, "print the version and exit (as -V)")
	c.FlagSet.MarkHidden("version-v")
	c.Lookup("version").Usage = "print the version and exit (also -v)"
}

// Parse parses args. When done is set the command ends at once with
// code: after -h or -V (0, on stdout) or a bad option (1, on stderr).
func (c *Command) Parse(args []string) (code int, done bool) {
	if err := c.FlagSet.Parse(args); err != nil {
		return c.Usage("%v", err), true
	}
	switch {
	case *c.help:
		c.PrintHelp(c.Stdout)
		return ExitOK, true
	case *c.version || (c.versionV != nil && *c.versionV):
		fmt.Fprintln(c.Stdout, c.Name, "(bproc)", Version())
		return ExitOK, true
	}
	return ExitOK, false
}

// PrintHelp writes the usage lines, the summary and the options to w.
func (c *Command) PrintHelp(w io.Writer) {
	for i, line := range strings.Split(c.Synopsis, "\n") {
		lead := "Usage: "
		if i > 0 {
			lead = "       "
		}
		fmt.Fprintf(w, "%s%s %s\n", lead, c.Name, line)
	}
	if c.Summary != "" {
		fmt.Fprintf(w, "\n%s\n", c.Summary)
	}
	fmt.Fprintf(w, "\nOptions:\n")
	c.SetOutput(w)
	c.PrintDefaults()
	c.SetOutput(io.Discard)
	if c.Footer != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(c.Footer, "\n"))
	}
}

// Usage reports a usage error on stderr, with the way to the help, and
// returns ExitUsage.
func (c *Command) Usage(format string, args ...any) int {
	fmt.Fprintf(c.Stderr, "%s: %s\nTry '%s -h' for help.\n", c.Name, fmt.Sprintf(format, args...), c.Name)
	return ExitUsage
}

// Fail reports err on stderr and returns ExitFail.
func (c *Command) Fail(err error) int {
	fmt.Fprintf(c.Stderr, "%s: %v\n", c.Name, err)
	return ExitFail
}

// Errorf reports a failure on stderr and returns ExitFail.
func (c *Command) Errorf(format string, args ...any) int {
	return c.Fail(fmt.Errorf(format, args...))
}

// NoArgs is a usage error when arguments are left after the options.
func (c *Command) NoArgs() (code int, done bool) {
	if c.NArg() > 0 {
		return c.Usage("unexpected argument %q", c.Arg(0)), true
	}
	return ExitOK, false
}
