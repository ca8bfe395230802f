package daemon

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain doubles as a daemon for TestDetachKeepsListener: it listens on
// a port of the kernel's choice, says which, and detaches; the detached
// child greets one connection on the listener it inherited.
func TestMain(m *testing.M) {
	if os.Getenv("DAEMON_TEST_HELPER") == "1" {
		ln, err := Listen(0, "127.0.0.1:0")
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		if !child {
			fmt.Println(ln.Addr())
		}
		if err := Detach(ln); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		ln.(*net.TCPListener).SetDeadline(time.Now().Add(20 * time.Second))
		c, err := ln.Accept()
		if err == nil {
			fmt.Fprintf(c, "hello from %d\n", os.Getpid())
			c.Close()
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestDetachKeepsListener(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DAEMON_TEST_HELPER=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("parent: %v, output %q", err, out)
	}
	addr := strings.TrimSpace(string(out))
	// The parent has exited: the port it bound (chosen by the kernel, so
	// only the inherited socket can have it) answers at once, from the
	// child.
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dialing the daemon at %q: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if !strings.HasPrefix(line, "hello from ") || strings.TrimSpace(line) == fmt.Sprintf("hello from %d", cmd.Process.Pid) {
		t.Errorf("greeting %q, want one from the detached child (parent was %d)", line, cmd.Process.Pid)
	}
}

func TestListenBusy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := Listen(0, ln.Addr().String()); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("listening on a busy port: %v", err)
	}
}
