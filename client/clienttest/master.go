// Package clienttest starts a bproc master in-process for tests of the
// client library and the commands: the tree served over 9P on loopback,
// with the master's own node -1 running jobs.
package clienttest

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bproc/fs/pspace"
	"bproc/fs/slaveproto"
	"bproc/fs/synth"
	"bproc/job"
	"bproc/key"
	"bproc/srv"
)

// Master is a running in-process master.
type Master struct {
	Addr    string // host:port of its 9P service
	KeyFile string // the cluster key to dial it with
	M       *pspace.Master
}

// Start runs a master until the test ends and waits for node -1 to be up.
// It also points the environment (BPROC_MASTER, BPROC_KEY, and BPROC_MOUNT
// at a directory without a tree) at it, so commands dial it over 9P.
func Start(t testing.TB) *Master {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh to run jobs with")
	}
	dir := t.TempDir()
	kf := filepath.Join(dir, "key")
	k, err := key.LoadOrCreate(kf)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := pspace.NewMaster(pspace.DefaultConfig())
	go m.Run(ctx)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	server := &srv.Server{Key: k, Root: m.Root(), Logf: func(string, ...any) {}}
	go server.Serve(ctx, ln)
	local := &synth.Caller{Slave: true, Addr: slaveproto.LocalAddr, Host: "master", Conn: ctx}
	slave := &job.Slave{Tree: &synth.Local{Root: m.Root(), Caller: local}, Logf: t.Logf}
	go slave.Run(ctx)
	t.Cleanup(func() {
		cancel()
		m.Shutdown()
		slave.Close()
	})
	t.Setenv("BPROC_MASTER", ln.Addr().String())
	t.Setenv("BPROC_KEY", kf)
	t.Setenv("BPROC_MOUNT", filepath.Join(dir, "no-mount"))

	// Node -1 registers asynchronously: poll its status.
	deadline := time.Now().Add(5 * time.Second)
	for !nodeUp(m) {
		if time.Now().After(deadline) {
			t.Fatal("node -1 never came up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &Master{Addr: ln.Addr().String(), KeyFile: kf, M: m}
}

// nodeUp reads node/-1/status straight from the tree.
func nodeUp(m *pspace.Master) bool {
	f, err := (&synth.Local{Root: m.Root(), Caller: &synth.Caller{}}).Open("node/-1/status", os.O_RDONLY)
	if err != nil {
		return false
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	return strings.HasPrefix(string(b), "-1 up ")
}
