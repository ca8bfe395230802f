package main

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listenNotify is a stand-in for systemd's notification socket.
func listenNotify(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readNotify(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotify(t *testing.T) {
	for _, tc := range []struct{ name, listen, env string }{
		{"path", filepath.Join(t.TempDir(), "notify"), ""},
		{"abstract", "\x00bproc-notify-test-" + t.Name(), "@bproc-notify-test-" + t.Name()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := listenNotify(t, tc.listen)
			env := tc.env
			if env == "" {
				env = tc.listen
			}
			if err := notifyTo(env, "RELOADING=1", monotonicUsec()); err != nil {
				t.Fatal(err)
			}
			got := readNotify(t, c)
			if !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") || !strings.HasSuffix(got, "\n") {
				t.Fatalf("got %q", got)
			}
			if got == "RELOADING=1\nMONOTONIC_USEC=0\n" {
				t.Fatalf("no monotonic clock: %q", got)
			}
		})
	}
}

func TestNotifyNoSocket(t *testing.T) {
	if err := notifyTo("", "READY=1"); err != nil {
		t.Fatalf("without NOTIFY_SOCKET: %v", err)
	}
	err := notifyTo(filepath.Join(t.TempDir(), "absent"), "READY=1")
	if err == nil || !strings.Contains(err.Error(), "sd_notify") {
		t.Fatalf("absent socket: got %v, want an sd_notify error", err)
	}
}
