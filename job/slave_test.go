package job

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"bproc/fs/pspace"
	"bproc/fs/slaveproto"
	"bproc/fs/synth"
	"bproc/internal/treetest"
)

// startMaster runs a master whose node -1 is served in-process by Slave,
// and returns a root user's view of its tree.
func startMaster(t *testing.T) (*pspace.Master, *synth.Local) {
	return startMasterWith(t, nil)
}

// startMasterWith is startMaster with prepare run on the Master and the
// Slave before they start.
func startMasterWith(t *testing.T, prepare func(context.Context, *pspace.Master, *Slave)) (*pspace.Master, *synth.Local) {
	t.Helper()
	m := pspace.NewMaster(pspace.DefaultConfig())
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	host, _ := os.Hostname()
	sc := &synth.Caller{Slave: true, Addr: slaveproto.LocalAddr, Host: host, Conn: ctx}
	s := &Slave{Tree: &synth.Local{Root: m.Root(), Caller: sc}}
	if prepare != nil {
		prepare(ctx, m, s)
	}
	go m.Run(ctx)
	go s.Run(ctx)
	t.Cleanup(func() { s.Close() })
	user := &synth.Local{Root: m.Root(), Caller: &synth.Caller{Uid: 0, Gid: 0}}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := treetest.Read(t, user.Open, "node/-1/status")
		if strings.Contains(st, " up ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node -1 never came up: %q", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return m, user
}

// execOn writes an exec command to a node's ctl and returns the pid text.
func execOn(t *testing.T, l *synth.Local, node, cmd string) (string, error) {
	t.Helper()
	f, err := l.Open("node/"+node+"/ctl", os.O_RDWR)
	if err != nil {
		t.Fatalf("open ctl: %v", err)
	}
	defer f.Close()
	_, werr := f.Write([]byte(cmd + "\n"))
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(b)), werr
}

// mustExec is execOn that ends the test when the command is refused.
func mustExec(t *testing.T, l *synth.Local, node, cmd string) string {
	t.Helper()
	pid, err := execOn(t, l, node, cmd)
	if err != nil {
		t.Fatalf("%s on node %s: %v (%s)", cmd, node, err, pid)
	}
	return pid
}

func TestExecOnMasterNode(t *testing.T) {
	_, u := startMaster(t)
	pid := mustExec(t, u, "-1", "exec -i /bin/sh -c 'echo out; echo err >&2; exit 7'")
	treetest.Want(t, u.Open, "proc/"+pid+"/stdout", "out\n")
	treetest.Want(t, u.Open, "proc/"+pid+"/stderr", "err\n")
	treetest.Want(t, u.Open, "proc/"+pid+"/wait", "exit 7\n")
}

func TestStdinAndKill(t *testing.T) {
	_, u := startMaster(t)
	pid := mustExec(t, u, "-1", "exec -i /bin/cat")
	in := treetest.Open(t, u.Open, "proc/"+pid+"/stdin", os.O_WRONLY)
	in.Write([]byte("hello\n"))
	in.Close()
	treetest.Want(t, u.Open, "proc/"+pid+"/stdout", "hello\n")
	treetest.Want(t, u.Open, "proc/"+pid+"/wait", "exit 0\n")

	pid = mustExec(t, u, "-1", "exec -n /bin/sleep 100")
	ctl := treetest.Open(t, u.Open, "proc/"+pid+"/ctl", os.O_WRONLY)
	if _, err := ctl.Write([]byte("kill 9")); err != nil {
		t.Fatal(err)
	}
	ctl.Close()
	treetest.Want(t, u.Open, "proc/"+pid+"/wait", "signal 9 SIGKILL\n")
}

func TestBadCommands(t *testing.T) {
	_, u := startMaster(t)
	for _, c := range []string{"frobnicate", "exec", "exec -z /bin/true", "state bogus", "kill NOPE"} {
		text, err := execOn(t, u, "-1", c)
		if !errors.Is(err, syscall.EINVAL) {
			t.Errorf("%q: err = %v, want EINVAL", c, err)
		}
		if !strings.HasPrefix(text, "error: ") {
			t.Errorf("%q: ctl reads %q, want the error text", c, text)
		}
	}
	if _, err := execOn(t, u, "-1", "exec /nonexistent/prog"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("missing binary: err = %v, want ENOENT", err)
	}
	if _, err := u.Open("node/0/ctl", os.O_RDWR); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("ctl of a node that does not exist: err = %v, want ENOENT", err)
	}
}

func TestIoRing(t *testing.T) {
	_, u := startMaster(t)
	if _, err := execOn(t, u, "-1", "exec /bin/echo ring-text"); err != nil {
		t.Fatal(err)
	}
	f := treetest.Open(t, u.Open, "node/-1/io", os.O_RDONLY)
	defer f.Close()
	buf := make([]byte, 100)
	n, err := f.Read(buf)
	if err != nil || string(buf[:n]) != "ring-text\n" {
		t.Errorf("io read %q, %v", buf[:n], err)
	}
}

// A reader that goes away is a pipe's reader going away: the job gets
// SIGPIPE instead of blocking forever on a stream nobody will read.
func TestReaderGoneGivesSIGPIPE(t *testing.T) {
	_, u := startMaster(t)
	pid := mustExec(t, u, "-1", "exec -i -n /usr/bin/yes")
	out := treetest.Open(t, u.Open, "proc/"+pid+"/stdout", os.O_RDONLY)
	buf := make([]byte, 10)
	if n, err := out.Read(buf); err != nil || string(buf[:n])[:2] != "y\n" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	out.Close()
	treetest.Want(t, u.Open, "proc/"+pid+"/wait", "signal 13 SIGPIPE\n")
}
