package pspace

import (
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"bproc/fs/synth"
)

// proc/PID is made at its first lookup, not with the process, and is
// the same directory (same files, same inodes) at every lookup after.
func TestProcDirLazy(t *testing.T) {
	m := NewMaster(DefaultConfig())
	c := &synth.Caller{Uid: 4242, Gid: 4242}
	p, err := m.newProc(c, m.nodes[-1], nil, []string{"x"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if p.dir != nil {
		t.Fatal("proc/PID was made with the process")
	}
	l := &synth.Local{Root: m.Root(), Caller: c}
	name := fmt.Sprintf("proc/%d", p.pid)
	first, err := l.Walk(name + "/status")
	if err != nil {
		t.Fatal(err)
	}
	again, err := l.Walk(name + "/status")
	if err != nil {
		t.Fatal(err)
	}
	if first != again {
		t.Error("two lookups of proc/PID/status gave two files")
	}
	f, err := l.Open(name+"/status", os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%d -1 starting 4242 4242 x\n", p.pid); string(b) != want {
		t.Errorf("status reads %q, want %q", b, want)
	}
	d, err := l.Walk("proc")
	if err != nil {
		t.Fatal(err)
	}
	ents, err := d.(synth.Dir).List(c)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name)
	}
	if !strings.Contains(" "+strings.Join(names, " ")+" ", fmt.Sprintf(" %d ", p.pid)) {
		t.Errorf("proc/ lists %v, not %d", names, p.pid)
	}
}
