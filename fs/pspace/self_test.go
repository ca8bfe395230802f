package pspace

import (
	"strings"
	"testing"

	"bproc/fs/synth"
	"bproc/internal/treetest"
)

// node/self tells a caller its node (-1 on the master, N through node
// N's mount) and is not listed, so node/* is still the nodes.
func TestNodeSelf(t *testing.T) {
	m := NewMaster(DefaultConfig())
	for node, want := range map[int]string{-1: "-1\n", 3: "3\n", synth.NodeUnknown: "-3\n"} {
		l := &synth.Local{Root: m.Root(), Caller: &synth.Caller{Node: node, Uid: 1000, Gid: 1000}}
		if got := treetest.Read(t, l.Open, "node/self"); got != want {
			t.Errorf("node %d: node/self = %q, want %q", node, got, want)
		}
	}
	l := &synth.Local{Root: m.Root(), Caller: &synth.Caller{Node: -1, Uid: 1000, Gid: 1000}}
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
