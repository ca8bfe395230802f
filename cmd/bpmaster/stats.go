package main

import (
	"errors"
	"fmt"
	"syscall"

	"bproc/beostat"
)

// statsFiles renders node/N/stats/ files from recvstats's shm file at
// path (which may appear after bpmaster starts, or be replaced by a
// restarted recvstats: the reader follows both).
func statsFiles(path string) func(node int, name string) ([]byte, error) {
	r := beostat.New(path)
	return func(node int, name string) ([]byte, error) {
		b, err := r.RenderFile(node, name)
		if errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("node %d: no statistics received (is recvstats running?): %w", node, syscall.ENODATA)
		}
		return b, err
	}
}
