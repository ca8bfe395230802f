package main

import (
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"bproc/fs/pspace"
	"bproc/fs/synth"
	"bproc/internal/treetest"
	"bproc/srv"
)

// The fake nodes are slaves to a real master over its real 9P port: each
// registers as a node of its own (by its source address), runs a job to
// its end as bpslave would, and a silenced one goes down after the ping
// timeout.
func TestFakeNodesServeTheMaster(t *testing.T) {
	for _, streams := range []string{"eof", "files"} {
		t.Run(streams, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cfg := pspace.DefaultConfig()
			cfg.PingTimeout = time.Second
			m := pspace.NewMaster(cfg)
			go m.Run(ctx)
			key := make([]byte, 32)
			rand.Read(key)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			s := &srv.Server{Key: key, Root: m.Root()}
			served := make(chan struct{})
			go func() { defer close(served); s.Serve(ctx, ln) }()
			defer func() { cancel(); <-served }()

			g := &gen{master: ln.Addr().String(), key: key, streams: streams, fetch: true, release: make(chan struct{})}
			close(g.release)
			nodes := g.connect(ctx, netip.MustParseAddr("127.0.0.2"), 3, 2)
			if lost := g.tot.lost.Load(); lost != 0 {
				t.Fatalf("%d fake nodes failed to register", lost)
			}
			u := &synth.Local{Root: m.Root(), Caller: &synth.Caller{Node: -1}}
			// Numbered in the order they registered: by address, then.
			num := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(treetest.Read(t, u.Open, "status")), "\n") {
				if f := strings.Fields(line); len(f) > 2 && f[1] == "up" {
					num[f[2]] = f[0]
				}
			}
			if len(num) != 3 || num["127.0.0.2"] == "" || num["127.0.0.3"] == "" || num["127.0.0.4"] == "" {
				t.Fatalf("nodes up by address: %v, want 127.0.0.2, .3 and .4", num)
			}
			for range 2 { // the second start finds the binary fetched
				pid := execTrue(t, u, num["127.0.0.3"])
				for file, want := range map[string]string{"wait": "exit 0\n", "stdout": "", "stderr": ""} {
					if got := readWithin(t, u, "proc/"+pid+"/"+file); got != want {
						t.Errorf("proc/%s/%s = %q, want %q", pid, file, got, want)
					}
				}
			}
			// The exit is counted once its report is written, which
			// the master may answer first.
			waitFor(t, "two exits counted", func() bool { return g.tot.exits.Load() == 2 })
			if st, fe := g.tot.starts.Load(), g.tot.fetches.Load(); st != 2 || fe != 1 {
				t.Errorf("starts %d fetches %d, want 2 and 1", st, fe)
			}

			g.command([]string{"silence", "2"}, nodes)
			waitFor(t, "the silenced node down (pingtimeout 1 s)", func() bool {
				return strings.Contains(treetest.Read(t, u.Open, "node/"+num["127.0.0.4"]+"/status"), " down ")
			})
			if !strings.Contains(treetest.Read(t, u.Open, "node/"+num["127.0.0.3"]+"/status"), " up ") {
				t.Error("silencing one fake node took another down")
			}
		})
	}
}

// execTrue starts /bin/true on node through ctl and returns its pid.
func execTrue(t *testing.T, u *synth.Local, node string) string {
	t.Helper()
	f, err := u.Open("node/"+node+"/ctl", os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("exec /bin/true\n")); err != nil {
		t.Fatalf("exec on node %s: %v", node, err)
	}
	b := make([]byte, 64)
	n, err := f.Read(b)
	if err != nil {
		t.Fatalf("reading the pid: %v", err)
	}
	return strings.TrimSpace(string(b[:n]))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// readWithin reads a whole file of the tree, failing the test if that
// takes 5 s (a fake that never reports would block wait forever).
func readWithin(t *testing.T, u *synth.Local, name string) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		f, err := u.Open(name, os.O_RDONLY)
		if err != nil {
			got <- "open: " + err.Error()
			return
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		if err != nil {
			got <- "read: " + err.Error()
			return
		}
		got <- string(b)
	}()
	select {
	case s := <-got:
		return s
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no end in 5 s", name)
		return ""
	}
}
