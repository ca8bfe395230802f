package main

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"bproc/mcast"
)

// shmStats renders node/N/stats/ files from recvstats's shm file. The file
// may appear after bpmaster starts, or be replaced by a restarted recvstats;
// the reader follows both.
type shmStats struct {
	path string
	mu   sync.Mutex
	r    *mcast.ShmReader
}

func (s *shmStats) file(node int, name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.r == nil {
		r, err := mcast.OpenShm(s.path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("no node statistics (is recvstats running?): %w", syscall.ENODATA)
			}
			return nil, err
		}
		s.r = r
	}
	var rec mcast.Record
	if err := s.r.Read(node, &rec); err != nil {
		if errors.Is(err, mcast.ErrNoNode) {
			return nil, fmt.Errorf("node %d: no statistics received: %w", node, syscall.ENODATA)
		}
		return nil, err
	}
	b, err := rec.File(name, time.Now())
	if errors.Is(err, syscall.ENOENT) {
		return nil, fmt.Errorf("node %d: no statistics received: %w", node, syscall.ENODATA)
	}
	return b, err
}
