package pspace

import (
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig(strings.NewReader(`
# a comment
bprocport 2300
iprange 0 10.77.0.10 10.77.0.12   # three nodes
node 7 10.77.0.99
pingtimeout 2.5
keyfile /k
mount none
statsfile /s
seal no
maxprocs 10
reboot /sbin/reboot -f
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{0: "10.77.0.10", 1: "10.77.0.11", 2: "10.77.0.12", 7: "10.77.0.99"}
	if len(c.Nodes) != len(want) {
		t.Errorf("nodes = %v, want %v", c.Nodes, want)
	}
	for n, a := range want {
		if c.Nodes[n] != a {
			t.Errorf("node %d = %q, want %q", n, c.Nodes[n], a)
		}
	}
	if c.Port != 2300 || c.PingTimeout != 2500*time.Millisecond || c.KeyFile != "/k" || c.Mount != "none" ||
		c.StatsFile != "/s" || !c.Plain || c.MaxProcs != 10 || c.Commands["reboot"] != "/sbin/reboot -f" {
		t.Errorf("parsed %+v", c)
	}
	for _, bad := range []string{"bprocport x", "bprocport 70000", "iprange 0 10.0.0.5 10.0.0.1", "node -1 1.2.3.4",
		"node 1 nonsense", "pingtimeout 0", "frobnicate 1", "mount", "iprange 0 10.0.0.1", "seal maybe", "pingtimeout 1e308", "pingtimeout NaN", "maxprocs -1", "maxprocs many"} {
		if _, err := ParseConfig(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: err = %v, want an error naming line 1", bad, err)
		}
	}
	if c := DefaultConfig(); c.MaxProcs != DefaultMaxProcs {
		t.Errorf("default maxprocs %d", c.MaxProcs)
	}
}

// FuzzParseConfig: a config file is the administrator's, but a typo or a
// truncated file must give an error naming the line, never a panic or a
// config that makes no sense.
func FuzzParseConfig(f *testing.F) {
	f.Add("bprocport 2223\niprange 0 10.77.0.10 10.77.0.13\nnode 7 10.77.0.99\npingtimeout 5\n")
	f.Add("keyfile /k\nmount none\nstatsfile /s\nseal no\nmaxprocs 10\nreboot /sbin/reboot -f\nhalt x\npwroff y\n")
	f.Add("iprange 0 0.0.0.0 255.255.255.255\n")
	f.Add("pingtimeout 1e308\npingtimeout NaN\n")
	f.Add("node 1 ::1 # comment\n\x00\n")
	f.Add("bincache 512M\nbincache 1\nbincache 1024G\nbincache 1025G\nbincache 0\nbincache -1k\nbincache M\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ParseConfig(strings.NewReader(text))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") && !strings.HasPrefix(err.Error(), "reading config") {
				t.Fatalf("error does not name the line: %v", err)
			}
			return
		}
		if c.Port <= 0 || c.Port > 65535 || c.PingTimeout <= 0 || c.MaxProcs < 0 || c.BinCache <= 0 {
			t.Fatalf("accepted %q as %+v", text, c)
		}
	})
}

func TestParseConfigRestartKeywords(t *testing.T) {
	c, err := ParseConfig(strings.NewReader("grace 1.5\nstatedir /st\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Grace != 1500*time.Millisecond || c.StateDir != "/st" {
		t.Errorf("grace %v, statedir %q", c.Grace, c.StateDir)
	}
	if d := DefaultConfig(); d.Grace != 5*time.Minute || d.StateDir != "/var/lib/bproc" {
		t.Errorf("defaults: grace %v, statedir %q", d.Grace, d.StateDir)
	}
	if c, err := ParseConfig(strings.NewReader("grace 0")); err != nil || c.Grace != 0 {
		t.Errorf("grace 0: %v, %v", c, err)
	}
	for _, bad := range []string{"grace -1", "grace soon", "grace", "statedir", "statedir a b"} {
		if _, err := ParseConfig(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: err = %v, want an error naming line 1", bad, err)
		}
	}
}
