package job

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"bproc/fs/pspace"
	"bproc/fs/synth"
	"bproc/internal/treetest"
)

// cluster is a master with one compute node (node 0) whose slave runs
// in-process; restart replaces the master as a crash would.
type cluster struct {
	t     *testing.T
	state string
	grace time.Duration
	slave *Slave
	m     *pspace.Master
	user  *synth.Local
	stop  context.CancelFunc
	ran   chan struct{}
}

func newCluster(t *testing.T, grace time.Duration) *cluster {
	c := &cluster{t: t, state: t.TempDir(), grace: grace, slave: &Slave{KeepJobs: true}}
	t.Cleanup(func() { c.stop(); <-c.ran; c.slave.Close() })
	c.startMaster()
	c.connect()
	return c
}

func (c *cluster) startMaster() {
	cfg := pspace.DefaultConfig()
	cfg.Grace = c.grace
	c.m = pspace.NewMaster(cfg)
	if err := c.m.UseStateDir(c.state); err != nil {
		c.t.Fatal(err)
	}
	c.user = &synth.Local{Root: c.m.Root(), Caller: &synth.Caller{}}
}

// connect runs the slave against the current master until crash.
func (c *cluster) connect() {
	ctx, cancel := context.WithCancel(context.Background())
	go c.m.Run(ctx)
	c.stop, c.ran = cancel, make(chan struct{})
	c.slave.Tree = &synth.Local{Root: c.m.Root(), Caller: &synth.Caller{Slave: true, Addr: "10.0.0.5", Host: "n0", Conn: ctx}}
	go func() { defer close(c.ran); c.slave.Run(ctx) }()
	c.waitFor("node 0 up", func() bool {
		return c.exists("node/0/status") && strings.Contains(treetest.Read(c.t, c.user.Open, "node/0/status"), " up ")
	})
}

// crash ends the master's side of everything at once.
func (c *cluster) crash() {
	c.stop()
	<-c.ran
}

func (c *cluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (c *cluster) exists(name string) bool {
	f, err := c.user.Open(name, os.O_RDONLY)
	if err == nil {
		f.Close()
	}
	return err == nil
}

func TestJobSurvivesMasterRestart(t *testing.T) {
	c := newCluster(t, time.Minute)
	gate := filepath.Join(t.TempDir(), "gate")
	pid := mustExec(t, c.user, "0", "exec /bin/sh -c 'echo one; while ! test -e "+gate+"; do sleep 0.02; done; echo two; exit 3'")
	// The node's io shows the line without taking it from stdout.
	io := treetest.Open(t, c.user.Open, "node/0/io", os.O_RDONLY)
	buf := make([]byte, 100)
	if n, err := io.Read(buf); err != nil || string(buf[:n]) != "one\n" {
		t.Fatalf("node io: %q, %v", buf[:n], err)
	}
	io.Close()
	before := treetest.Read(t, c.user.Open, "proc/"+pid+"/status")
	c.crash()
	c.startMaster()
	c.connect()
	c.waitFor("the job adopted", func() bool { return c.exists("proc/" + pid + "/status") })
	if after := treetest.Read(t, c.user.Open, "proc/"+pid+"/status"); after != before {
		t.Errorf("status %q after the restart, %q before", after, before)
	}
	os.WriteFile(gate, nil, 0o600)
	treetest.Want(t, c.user.Open, "proc/"+pid+"/stdout", "one\ntwo\n")
	treetest.Want(t, c.user.Open, "proc/"+pid+"/wait", "exit 3\n")
	next := mustExec(t, c.user, "0", "exec /bin/true")
	if a, b := atoi(t, next), atoi(t, pid); a <= b {
		t.Errorf("new pid %d after the restart, not above %d", a, b)
	}
}

func TestGraceEndKillsJobs(t *testing.T) {
	c := newCluster(t, 200*time.Millisecond)
	pidFile := filepath.Join(t.TempDir(), "pid")
	pid := mustExec(t, c.user, "0", "exec /bin/sh -c 'echo $$ >"+pidFile+"; exec sleep 300'")
	var ospid int
	c.waitFor("the job's pid", func() bool {
		b, _ := os.ReadFile(pidFile)
		ospid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return ospid > 0
	})
	c.crash()
	start := time.Now()
	c.waitFor("the job killed", func() bool { return syscall.Kill(ospid, 0) != nil })
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("killed after %v, before the grace of 200ms", d)
	}
	c.startMaster()
	c.connect()
	if c.exists("proc/" + pid + "/status") {
		t.Errorf("a job killed at the end of the grace came back")
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("not a pid: %q", s)
	}
	return n
}
