package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
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
	if fs, ok := liveMount(nm.dir); ok && strings.HasPrefix(fs, "fuse.bproc") {
		// The master's own, or another slave's on this host (-s): ours
		// on top would hide it from everyone here.
		nm.logf("not mounting the master's tree: %s already has one (%s); use --mount elsewhere or --no-mount", nm.dir, fs)
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

// liveMount reports the file system type of the mount at dir, if dir is
// a mount point that answers (a dead FUSE mount, ENOTCONN, is replaced).
func liveMount(dir string) (string, bool) {
	if _, err := os.Stat(dir); err != nil {
		return "", false
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", false
	}
	defer f.Close()
	fstype, found := "", false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT DEV ROOT POINT OPTS... - TYPE SOURCE SUPER
		before, after, ok := strings.Cut(sc.Text(), " - ")
		fields, rest := strings.Fields(before), strings.Fields(after)
		if !ok || len(fields) < 5 || len(rest) < 1 || unescapeMount(fields[4]) != filepath.Clean(dir) {
			continue
		}
		fstype, found = rest[0], true // the last one listed is on top
	}
	return fstype, found
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range []byte(s[i+1 : i+4]) {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + c - '0'
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
