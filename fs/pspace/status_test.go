package pspace

import (
	"fmt"
	"os/user"
	"strings"
	"testing"

	"bproc/fs/synth"
	"bproc/internal/treetest"
)

func TestStatusLineEscapesBytes(t *testing.T) {
	p := &Proc{pid: 5, node: 1, state: "running", uid: 4242, gid: 4242,
		argv: []string{"/bin/echo", "\xff\xfe", "two\nlines", `back\slash`, "café"}}
	want := `5 1 running 4242 4242 /bin/echo '\xff\xfe' 'two\x0alines' 'back\\slash' 'café'` + "\n"
	if got := p.statusLine(); got != want {
		t.Errorf("status line\n got %q\nwant %q", got, want)
	}
}

// /bproc/status looks each user and group name up once, not once per
// node: every lookup reads /etc/passwd or /etc/group, which at 4000 nodes
// made a read take 140 ms (t/bench-scale.sh).
func TestStatusLooksNamesUpOnce(t *testing.T) {
	cfg := DefaultConfig()
	const nodes = 1000
	for i := range nodes {
		cfg.Nodes[i] = fmt.Sprintf("10.78.%d.%d", i/256, i%256)
	}
	m := NewMaster(cfg)
	var users, groups int
	lu, lg := lookupUserID, lookupGroupID
	t.Cleanup(func() { lookupUserID, lookupGroupID = lu, lg })
	lookupUserID = func(id string) (*user.User, error) { users++; return &user.User{Username: "u" + id}, nil }
	lookupGroupID = func(id string) (*user.Group, error) { groups++; return &user.Group{Name: "g" + id}, nil }
	l := &synth.Local{Root: m.Root(), Caller: &synth.Caller{Node: -1, Uid: 1000, Gid: 1000}}
	got := treetest.Read(t, l.Open, "status")
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != nodes || lines[nodes-1] != "999 down 10.78.3.231 ---x--x--x u0 g0 -" {
		t.Fatalf("status: %d lines, last %q", len(lines), lines[len(lines)-1])
	}
	if users != 1 || groups != 1 {
		t.Errorf("status of %d nodes of one owner: %d user and %d group lookups, want 1 and 1", nodes, users, groups)
	}
}
