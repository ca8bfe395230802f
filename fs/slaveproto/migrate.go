package slaveproto

import (
	"encoding/json"
	"fmt"
	"syscall"
)

// A migration (a process written `move`, `rfork` or `execmove` to a
// node's ctl) is run by the master between two slaves: the source, on the
// node where the process runs, and the destination. The master sends the
// source "seize"; the source stops the process and tells how it goes on
// slave/mig/MIG/ctl, one MigReport per line:
//
//	seized   the process is seized: it stops when its write(2) returns
//	stopped  it has stopped (Argv: its command line; Child: for rfork,
//	         the pid of its ghost child on the node)
//	dumped   its image is complete on slave/mig/MIG/image
//	failed   it cannot go (Errno, Text); it carries on where it is
//
// The destination restores the image (a "start" message with Mig) and
// reports as for any job; the master then sends the source "migrated".

// Migration kinds.
const (
	MigMove     = "move"
	MigRfork    = "rfork"
	MigExecmove = "execmove"
)

// MigReport is one line of slave/mig/MIG/ctl.
type MigReport struct {
	Ev    string   `json:"ev"`
	Argv  []string `json:"argv,omitempty"`
	Child int      `json:"child,omitempty"`
	Errno int      `json:"errno,omitempty"`
	Text  string   `json:"text,omitempty"`
}

// ParseMigReport decodes and checks one report line.
func ParseMigReport(line []byte) (MigReport, error) {
	var r MigReport
	if err := json.Unmarshal(line, &r); err != nil {
		return r, fmt.Errorf("bad migration report %q: %v: %w", line, err, syscall.EINVAL)
	}
	switch r.Ev {
	case "seized", "dumped":
	case "stopped":
		if r.Child < 0 {
			return r, fmt.Errorf("bad child %d in migration report: %w", r.Child, syscall.EINVAL)
		}
	case "failed":
		if r.Errno <= 0 || r.Errno > 4095 {
			return r, fmt.Errorf("bad errno %d in migration report: %w", r.Errno, syscall.EINVAL)
		}
	default:
		return r, fmt.Errorf("unknown migration report %q: %w", r.Ev, syscall.EINVAL)
	}
	return r, nil
}
