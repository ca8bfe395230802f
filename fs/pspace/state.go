package pspace

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The master's state directory keeps what must survive a restart: the pid
// high-water mark, so that no pid is ever issued twice (a slave may still
// run a job of an earlier master under its pid). The file holds a pid no
// master has issued nor will issue below it without writing a higher one
// first; a master reserves pids in blocks, so the file is written once per
// block, by fsync and rename, and a crash never loses a reservation.

const pidBlock = 1024

type pidState struct {
	path  string // "" when there is no state directory
	first int    // the first pid this master issued: lower ones are an earlier master's
	limit int    // pids below this are reserved in the file
}

// UseStateDir keeps the master's state in dir (created if need be):
// pids continue above every pid an earlier master issued from it.
func (m *Master) UseStateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if err := m.bins.useDir(filepath.Join(dir, "binspool")); err != nil {
		return err
	}
	path := filepath.Join(dir, "nextpid")
	next := 1
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		next, err = strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || next < 1 {
			return fmt.Errorf("state %s: bad pid high-water mark %q", path, strings.TrimSpace(string(b)))
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return fmt.Errorf("state: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nextPid = max(m.nextPid, next)
	m.pids = pidState{path: path, first: m.nextPid}
	return m.pids.reserve(m.nextPid + pidBlock)
}

// pidIssuedLocked reserves the next block once m.nextPid reaches the end
// of the reserved one; called with m.mu held after m.nextPid moves.
func (m *Master) pidIssuedLocked() {
	if m.pids.path == "" || m.nextPid < m.pids.limit {
		return
	}
	if err := m.pids.reserve(m.nextPid + pidBlock); err != nil {
		// Pids keep coming (refusing every exec would be worse); a crash
		// now could reuse up to a block of them.
		m.Logf("%v", err)
	}
}

func (ps *pidState) reserve(limit int) error {
	tmp := ps.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("reserving pids: %w", err)
	}
	_, err = fmt.Fprintf(f, "%d\n", limit)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, ps.path)
	}
	if err == nil {
		// The rename itself must be on disk before any pid of the block
		// is handed out.
		if d, derr := os.Open(filepath.Dir(ps.path)); derr == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("reserving pids in %s: %w", ps.path, err)
	}
	ps.limit = limit
	return nil
}
