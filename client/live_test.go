package client

import (
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"bproc/client/clienttest"
)

// liveTree connects over 9P to an in-process master.
func liveTree(t *testing.T) Tree {
	t.Helper()
	m := clienttest.Start(t)
	tr, err := Connect(Options{Net: true, Master: m.Addr, KeyFile: m.KeyFile, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// The library against the real tree over 9P: exec, output, exit status,
// errors, signals, and the node list.
func TestLive9P(t *testing.T) {
	tr := liveTree(t)

	p, err := Exec(tr, Master, []string{"/bin/sh", "-c", `echo "out $1"; echo err >&2; exit 3`, "sh", "it's"}, ExecOptions{NullStdin: true, Dir: "/"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Stdout()
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(out)
	out.Close()
	if err != nil || string(b) != "out it's\n" {
		t.Errorf("stdout %q %v", b, err)
	}
	se, _ := p.Stderr()
	b, _ = io.ReadAll(se)
	se.Close()
	if string(b) != "err\n" {
		t.Errorf("stderr %q", b)
	}
	st, err := p.Wait()
	if err != nil || st.Kind != Exited || st.Code != 3 {
		t.Errorf("wait: %+v %v", st, err)
	}

	// stdin goes through, and closing it is EOF.
	p, err = Exec(tr, Master, []string{"/bin/cat"}, ExecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in, err := p.Stdin()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, "to cat\n")
	in.Close()
	out, _ = p.Stdout()
	b, _ = io.ReadAll(out)
	out.Close()
	if string(b) != "to cat\n" {
		t.Errorf("cat gave %q", b)
	}
	if st, _ := p.Wait(); !st.Success() {
		t.Errorf("cat: %v", st)
	}

	// A signal ends a process, and wait says which.
	p, err = Exec(tr, Master, []string{"/bin/sleep", "30"}, ExecOptions{NullStdin: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st, err := p.Wait(); err != nil || st.Kind != Signaled || st.Signal != int(syscall.SIGTERM) || st.Name != "TERM" {
		t.Errorf("killed: %+v %v", st, err)
	}

	// Failures carry the errno.
	_, err = Exec(tr, Master, []string{"/no/such/binary"}, ExecOptions{})
	if !errors.Is(err, syscall.ENOENT) || !strings.HasPrefix(err.Error(), "exec /no/such/binary: ") {
		t.Errorf("missing binary: %v", err)
	}
	if _, err = Exec(tr, 5, []string{"/bin/true"}, ExecOptions{}); err == nil || err.Error() != "no such node" {
		t.Errorf("missing node: %v", err)
	}
	if _, err := Ctl(tr, "node/-1/ctl", "bogus"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("bad ctl command: %v", err)
	}

	nodes, err := ListNodes(tr)
	if err != nil || len(nodes) == 0 || nodes[0].Node != Master || nodes[0].State != "up" {
		t.Errorf("nodes %+v %v", nodes, err)
	}
	procs, err := ListProcs(tr)
	if err != nil || len(procs) < 3 {
		t.Errorf("procs %+v %v", procs, err)
	}
}
