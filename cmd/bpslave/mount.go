package main

import (
	"sync"

	"bproc/srv"
	"bproc/srv/fusemount"
)

// nodeMount is the master's tree mounted on this node for the life of
// one connection: every request goes to the master over the slave's own
// connection as the calling process (srv.Client.RemoteTree), so a
// process on the node sees what its user may, and node/self is this node.
// When the connection ends the mount goes with it (a reconnect mounts it
// again): while the master is away the path is the plain directory.
type nodeMount struct {
	dir  string
	logf func(format string, args ...any)

	mu sync.Mutex
	m  *fusemount.Mounted
}

// mount mounts c's tree once; a failure is logged, and the slave serves
// its jobs all the same.
func (nm *nodeMount) mount(c *srv.Client) {
	nm.mu.Lock()
	defer nm.mu.Unlock()
	if nm.m != nil {
		return
	}
	m, err := fusemount.Mount(nm.dir, c.RemoteTree(), fusemount.MountOptions{AllowOther: true})
	if err != nil {
		nm.logf("not mounting the master's tree: %v", err)
		return
	}
	nm.m = m
	nm.logf("mounted the master's tree at %s", nm.dir)
}

func (nm *nodeMount) unmount() {
	nm.mu.Lock()
	defer nm.mu.Unlock()
	if nm.m == nil {
		return
	}
	if err := nm.m.Unmount(); err != nil {
		nm.logf("unmounting %s: %v", nm.dir, err)
	} else {
		nm.logf("unmounted %s", nm.dir)
	}
	nm.m = nil
}
