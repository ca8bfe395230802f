package main

import (
	"io"
	"os"

	"bproc/client"
)

// directOff: $BPROC_DIRECT=0 keeps the output on the tree (to compare).
var directOff = client.DirectOff(os.Getenv("BPROC_DIRECT"))

// streams are the opens of the job's stdout and stderr: straight from its
// node's data port when it has one and we reach it (a single node's job),
// else through the tree, silently. lost ends the direct connection of a
// process whose node was lost: nothing else would.
func (j *job) streams() (stdout, stderr func() (io.ReadCloser, error), lost func(*job)) {
	stdout, stderr, lost = j.proc.Stdout, j.proc.Stderr, func(*job) {}
	if !j.direct || directOff {
		return
	}
	d, err := client.OpenDirect(j.proc.T, j.proc.Pid)
	if err != nil {
		tracef("node %d: no direct stream: %v", j.node, err)
		return
	}
	tracef("node %d: direct stream", j.node)
	return d.Stdout, d.Stderr, func(j *job) {
		if j.werr != nil || j.st.Kind == client.Lost {
			d.Close()
		}
	}
}
