package slaveproto

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"syscall"
)

// Jobs outlive their master: a slave that lost its master keeps its jobs
// and, registering again, writes one Adopt record per job to slave/adopt
// (the master's side: pspace's adopt.go).

// Adopt is a slave's account of a job it kept while it had no master.
type Adopt struct {
	Pid      int          `json:"pid"`
	Inc      int          `json:"inc,omitempty"` // the incarnation its start message gave
	Uid      uint32       `json:"uid"`
	Gid      uint32       `json:"gid"`
	Argv     []string     `json:"argv"`
	Attached bool         `json:"attached,omitempty"`
	State    string       `json:"state"`            // running, stopped, exited
	Status   string       `json:"status,omitempty"` // when exited: "exit N" or "signal N", as reported
	Stdout   AdoptedAhead `json:"stdout"`
	Stderr   AdoptedAhead `json:"stderr"`
}

// AdoptedAhead is where an output stream stands: Off is the offset of the
// first byte the master has not acknowledged (what the slave sends next),
// Done that the stream has ended with nothing left to send.
type AdoptedAhead struct {
	Off  int64 `json:"off"`
	Done bool  `json:"done,omitempty"`
}

// maxAdoptRecord bounds one record (argv included).
const maxAdoptRecord = 1 << 20

// ParseAdopt decodes and checks one record from a slave.
func ParseAdopt(b []byte) (*Adopt, error) {
	if len(b) > maxAdoptRecord {
		return nil, fmt.Errorf("adopt record of %d bytes: %w", len(b), syscall.E2BIG)
	}
	var a Adopt
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("bad adopt record: %v: %w", err, syscall.EINVAL)
	}
	switch {
	case a.Pid <= 0:
		return nil, fmt.Errorf("adopt record: bad pid %d: %w", a.Pid, syscall.EINVAL)
	case a.Inc < 0:
		return nil, fmt.Errorf("adopt record %d: bad incarnation %d: %w", a.Pid, a.Inc, syscall.EINVAL)
	case len(a.Argv) == 0:
		return nil, fmt.Errorf("adopt record %d: no argv: %w", a.Pid, syscall.EINVAL)
	case a.Stdout.Off < 0 || a.Stderr.Off < 0:
		return nil, fmt.Errorf("adopt record %d: negative output offset: %w", a.Pid, syscall.EINVAL)
	}
	switch a.State {
	case "running", "stopped":
		if a.Status != "" {
			return nil, fmt.Errorf("adopt record %d: %s with a status: %w", a.Pid, a.State, syscall.EINVAL)
		}
	case "exited":
		f := strings.Fields(a.Status)
		if len(f) != 2 || (f[0] != "exit" && f[0] != "signal") {
			return nil, fmt.Errorf("adopt record %d: bad status %q: %w", a.Pid, a.Status, syscall.EINVAL)
		}
		if n, err := strconv.Atoi(f[1]); err != nil || n < 0 || n > 255 || strconv.Itoa(n) != f[1] {
			return nil, fmt.Errorf("adopt record %d: bad status %q: %w", a.Pid, a.Status, syscall.EINVAL)
		}
	default:
		return nil, fmt.Errorf("adopt record %d: bad state %q: %w", a.Pid, a.State, syscall.EINVAL)
	}
	return &a, nil
}
