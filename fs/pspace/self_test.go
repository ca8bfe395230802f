package pspace

import (
	"strings"
	"testing"

	"bproc/fs/synth"
	"bproc/internal/treetest"
)

// node/self tells a caller its node (-1 on the master) and is not listed,
// so node/* is still the nodes.
func TestNodeSelf(t *testing.T) {
	m := NewMaster(DefaultConfig())
	l := &synth.Local{Root: m.Root(), Caller: &synth.Caller{Uid: 1000, Gid: 1000}}
	if got := treetest.Read(t, l.Open, "node/self"); got != "-1\n" {
		t.Errorf("node/self = %q, want \"-1\\n\"", got)
	}
	nodes, err := l.Walk("node")
	if err != nil {
		t.Fatal(err)
	}
	ents, err := nodes.(synth.Dir).List(l.Caller)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name, "self") {
			t.Errorf("node/ lists %q", e.Name)
		}
	}
}
