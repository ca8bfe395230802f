package slaveproto

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"
)

// A report line begins with the process it is about: "PID" for the
// process's first incarnation (0), "PID.INC" for a later one. A process
// that moves to another node gets the next incarnation, and the master
// refuses reports naming an older one, so the node it left cannot end it.
// A slave that knows nothing of incarnations writes "PID", which stands
// for incarnation 0 and is refused once the process has moved.

// FormatRef is the start of a report line about incarnation inc of pid.
func FormatRef(pid, inc int) string {
	if inc == 0 {
		return strconv.Itoa(pid)
	}
	return strconv.Itoa(pid) + "." + strconv.Itoa(inc)
}

// ParseRef reads what FormatRef writes, and only that: no signs, no
// leading zeros, no ".0" (one spelling per incarnation).
func ParseRef(s string) (pid, inc int, err error) {
	pidText, incText, dotted := strings.Cut(s, ".")
	pid, ok := canonical(pidText)
	if !ok || pid <= 0 {
		return 0, 0, fmt.Errorf("bad pid %q in report: %w", s, syscall.EINVAL)
	}
	if dotted {
		if inc, ok = canonical(incText); !ok || inc <= 0 {
			return 0, 0, fmt.Errorf("bad incarnation %q in report: %w", s, syscall.EINVAL)
		}
	}
	return pid, inc, nil
}

// canonical parses a decimal number without sign or leading zeros.
func canonical(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil && strconv.Itoa(n) == s
}

// Report is one parsed line of slave/report, after its pid.
type Report struct {
	Kind string // started, failed, exit, signal, eof
	N    int    // the OS pid, errno, exit status or signal number
	What string // failed: the text; eof: stdout or stderr
}

// reportKinds bound each report's number: a slave's word must not become
// an errno of 0 (a failed start that looks like success) or out of range.
var reportKinds = map[string]struct{ lo, hi int }{
	"started": {1, 1<<31 - 1},
	"failed":  {1, 4095},
	"exit":    {0, 255},
	"signal":  {1, 64},
}

// ParseReport reads "started OSPID", "failed ERRNO TEXT", "exit N",
// "signal N" or "eof stdout|stderr".
func ParseReport(line string) (Report, error) {
	var words [4]string // most reports: two words, split without allocating
	f := fields(words[:0], line)
	if len(f) < 2 {
		return Report{}, fmt.Errorf("bad report %q: %w", line, syscall.EINVAL)
	}
	if f[0] == "eof" { // an output stream ended without a byte
		if len(f) != 2 || (f[1] != "stdout" && f[1] != "stderr") {
			return Report{}, fmt.Errorf("bad stream in report %q: %w", line, syscall.EINVAL)
		}
		return Report{Kind: "eof", What: f[1]}, nil
	}
	bounds, ok := reportKinds[f[0]]
	if !ok {
		return Report{}, fmt.Errorf("unknown report %q: %w", f[0], syscall.EINVAL)
	}
	n, err := strconv.Atoi(f[1])
	if err != nil || n < bounds.lo || n > bounds.hi {
		return Report{}, fmt.Errorf("bad number in report %q: %w", line, syscall.EINVAL)
	}
	if f[0] != "failed" && len(f) != 2 {
		return Report{}, fmt.Errorf("bad report %q: %w", line, syscall.EINVAL)
	}
	return Report{Kind: f[0], N: n, What: strings.Join(f[2:], " ")}, nil
}

// fields is strings.Fields(s) appended to f, split in place when s is
// ASCII (then Fields's spaces are these six).
func fields(f []string, s string) []string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return append(f, strings.Fields(s)...)
		}
	}
	start := -1
	for i := 0; i <= len(s); i++ {
		space := i == len(s)
		if !space {
			switch s[i] {
			case ' ', '\t', '\n', '\v', '\f', '\r':
				space = true
			}
		}
		switch {
		case space && start >= 0:
			f = append(f, s[start:i])
			start = -1
		case !space && start < 0:
			start = i
		}
	}
	return f
}
