package pspace

import (
	"context"
	"errors"
	iofs "io/fs"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"bproc/fs/synth"
	"bproc/internal/treetest"
)

// asSlave registers a slave connection and returns its Caller and node.
func asSlave(t *testing.T, m *Master, addr string) (*synth.Caller, int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c := &synth.Caller{Slave: true, Addr: addr, Conn: ctx, Node: synth.NodeUnknown}
	sc, err := m.register(c)
	if err != nil {
		t.Fatal(err)
	}
	return c, sc.node.num
}

// setAs names the identity of slot through slave/as/set and returns the
// slot's directory.
func setAs(t *testing.T, l *synth.Local, slot int, id string) string {
	t.Helper()
	f, err := l.Open("slave/as/set", syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte(itoa(slot) + " " + id + "\n")); err != nil {
		t.Fatalf("setting slot %d to %q: %v", slot, id, err)
	}
	return "slave/as/" + itoa(slot) + "/"
}

// A slave's slave/as/SLOT/ is the public tree seen by the process ID names
// on the slave's node: node/self is the slave's node, uid and groups are
// those of the name, and slave/ is not there.
func TestAsSubstitutesCaller(t *testing.T) {
	m := NewMaster(DefaultConfig())
	_, _ = asSlave(t, m, "10.0.0.5")
	slave, num := asSlave(t, m, "10.0.0.6")
	l := &synth.Local{Root: m.Root(), Caller: slave}
	id := setAs(t, l, 0, asName(1000, 1000, []uint32{5, 6}, 42, ""))
	if got, want := treetest.Read(t, l.Open, id+"node/self"), itoa(num)+"\n"; got != want {
		t.Errorf("node/self through the slave's mount = %q, want %q", got, want)
	}
	if _, err := l.Walk(id + "slave"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("slave/ under an identity: %v, want ENOENT", err)
	}
	// Only root may chmod a node: uid 1000 is refused, uid 0 is not.
	for _, tc := range []struct {
		uid  uint32
		want error
	}{{1000, syscall.EPERM}, {0, nil}} {
		n, err := l.Walk(setAs(t, l, 1, asName(tc.uid, tc.uid, nil, 42, "")) + "node/" + itoa(num))
		if err != nil {
			t.Fatal(err)
		}
		mode := iofs.FileMode(0o100)
		err = synth.Setattr(slave, n, synth.SetattrReq{Mode: &mode})
		if !errors.Is(err, tc.want) && err != tc.want {
			t.Errorf("chmod node as uid %d: %v, want %v", tc.uid, err, tc.want)
		}
	}
	// The node is now 0100 root: uid 1000 may not run there, through
	// the identity (EACCES) whatever the slave connection is.
	f, err := l.Open(id+"node/"+itoa(num)+"/ctl", syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("exec /bin/true\n")); !errors.Is(err, syscall.EACCES) {
		t.Errorf("exec as uid 1000 on a 0100 root node: %v, want EACCES", err)
	}
}

// Every method of a wrapped node gets the identity's Caller, the cwd
// included, and handles opened there keep it.
func TestAsWrapperCallers(t *testing.T) {
	var seen []*synth.Caller
	file := &synth.FuncFile{Ino: synth.NewIno(), Mode: 0o666, OpenFunc: func(c *synth.Caller, flags int) (synth.Handle, error) {
		seen = append(seen, c)
		return &synth.BytesHandle{}, nil
	}}
	dir := synth.NewDir(func(c *synth.Caller) []synth.Dirent {
		seen = append(seen, c)
		return []synth.Dirent{{Name: "f", Node: file}}
	})
	m := NewMaster(DefaultConfig())
	m.root = synth.NewDir(synth.StaticEntries("d", dir, "slave", m.newSlaveDir()))
	slave, num := asSlave(t, m, "10.0.0.5")
	l := &synth.Local{Root: m.root, Caller: slave}
	slot := setAs(t, l, 255, asName(7, 8, []uint32{9}, 1234, "/tmp/a b"))
	f, err := l.Open(slot+"d/f", syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	n, err := l.Walk(slot + "d")
	if err != nil {
		t.Fatal(err)
	}
	ents, err := n.(synth.Dir).List(slave)
	if err != nil || len(ents) != 1 {
		t.Fatalf("list: %v %v", ents, err)
	}
	if _, ok := ents[0].Node.(*asNodeFile); !ok {
		t.Errorf("listed entry %T is not wrapped", ents[0].Node)
	}
	if len(seen) < 3 {
		t.Fatalf("saw %d calls, want lookup, open, list", len(seen))
	}
	for i, c := range seen {
		if c.Uid != 7 || c.Gid != 8 || !reflect.DeepEqual(c.Groups, []uint32{9}) || c.Pid != 1234 || c.Node != num || c.Slave {
			t.Errorf("call %d: caller %+v, want uid 7 gid 8 groups [9] pid 1234 node %d, not a slave", i, c, num)
		}
		if c.Env == nil {
			t.Errorf("call %d: no Env", i)
			continue
		}
		if env, cwd, ok := c.Env(); !ok || cwd != "/tmp/a b" || env != nil {
			t.Errorf("call %d: Env() = %v %q %v, want nil \"/tmp/a b\" true", i, env, cwd, ok)
		}
	}
}

// Nobody but a registered slave connection may enter slave/as/.
func TestAsRefusedToOthers(t *testing.T) {
	m := NewMaster(DefaultConfig())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := m.newAsDir()
	name := "0"
	for what, c := range map[string]*synth.Caller{
		"a tool":                  {Uid: 0, Conn: ctx, Node: synth.NodeUnknown},
		"the master's mount":      {Uid: 0, Node: -1, Pid: 1},
		"an unregistered slave":   {Slave: true, Conn: ctx},
		"a slave without its ctx": {Slave: true},
	} {
		if _, err := d.Lookup(c, name); !errors.Is(err, syscall.EPERM) {
			t.Errorf("%s: %v, want EPERM", what, err)
		}
		if _, err := d.set.Open(c, syscall.O_WRONLY); !errors.Is(err, syscall.EPERM) {
			t.Errorf("%s opening slave/as/set: %v, want EPERM", what, err)
		}
	}
	// And the root shows slave/ to slaves only.
	l := &synth.Local{Root: m.Root(), Caller: &synth.Caller{Uid: 0, Node: -1}}
	if _, err := l.Walk("slave/as/" + name); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("slave/as from the master's mount: %v, want ENOENT", err)
	}
}

// A slot names one identity until it is set again; what was found
// through it keeps the identity it was found with. Unset slots, slots out
// of range and bad lines are refused.
func TestAsSlots(t *testing.T) {
	m := NewMaster(DefaultConfig())
	slave, num := asSlave(t, m, "10.0.0.5")
	l := &synth.Local{Root: m.Root(), Caller: slave}
	for _, name := range []string{"slave/as/0/status", "slave/as/256/status", "slave/as/-1/status", "slave/as/00/status", "slave/as/x/status"} {
		if _, err := l.Walk(name); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("%s: %v, want ENOENT", name, err)
		}
	}
	dir := setAs(t, l, 0, asName(1000, 1000, nil, 42, ""))
	n, err := l.Walk(dir + "node/" + itoa(num))
	if err != nil {
		t.Fatal(err)
	}
	setAs(t, l, 0, asName(0, 0, nil, 43, ""))
	mode := iofs.FileMode(0o100)
	if err := synth.Setattr(slave, n, synth.SetattrReq{Mode: &mode}); !errors.Is(err, syscall.EPERM) {
		t.Errorf("chmod through a node found as uid 1000, slot since set to root: %v, want EPERM", err)
	}
	f, err := l.Open("slave/as/set", syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, line := range []string{"", "0", "256 0.0..1", "-1 0.0..1", "00 0.0..1", "0  0.0..1", "0 0.0.1", "0 0.0..1\n\n", "1 0.0..1 x"} {
		if _, err := f.Write([]byte(line)); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("set %q: %v, want EINVAL", line, err)
		}
	}
	// Another slave's slots are its own.
	other, _ := asSlave(t, m, "10.0.0.6")
	lo := &synth.Local{Root: m.Root(), Caller: other}
	if _, err := lo.Walk("slave/as/0/status"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("another slave's slot 0: %v, want ENOENT", err)
	}
}

func TestParseAs(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
		c    synth.Caller
		cwd  string
	}{
		{"1000.100..42", true, synth.Caller{Uid: 1000, Gid: 100, Pid: 42}, ""},
		{"0.0.1,2,3.1", true, synth.Caller{Groups: []uint32{1, 2, 3}, Pid: 1}, ""},
		{"1.2.3.4.2f746d70", true, synth.Caller{Uid: 1, Gid: 2, Groups: []uint32{3}, Pid: 4}, "/tmp"},
		{"4294967295.4294967295..2147483647", true, synth.Caller{Uid: ^uint32(0), Gid: ^uint32(0), Pid: 2147483647}, ""},
		{"", false, synth.Caller{}, ""},
		{"1.2.3", false, synth.Caller{}, ""},
		{"01.2..3", false, synth.Caller{}, ""},
		{"1.2..-3", false, synth.Caller{}, ""},
		{"1.2..2147483648", false, synth.Caller{}, ""},
		{"4294967296.2..3", false, synth.Caller{}, ""},
		{"1.2.,.3", false, synth.Caller{}, ""},
		{"1.2.3,.3", false, synth.Caller{}, ""},
		{"1.2..3.", false, synth.Caller{}, ""},
		{"1.2..3.746d70", false, synth.Caller{}, ""},   // relative cwd
		{"1.2..3.2F746D70", false, synth.Caller{}, ""}, // not canonical hex
		{"1.2..3.2f00", false, synth.Caller{}, ""},     // NUL in cwd
		{"1.2..3.2f.x", false, synth.Caller{}, ""},
		{"+1.2..3", false, synth.Caller{}, ""},
		{"1.2.3 .4", false, synth.Caller{}, ""},
		{"1.2." + strings.Repeat("1,", maxAsGroups) + "1.4", false, synth.Caller{}, ""},
		{"1.2..4." + strings.Repeat("2f", maxAsCwd+1), false, synth.Caller{}, ""},
		{"1.2..4." + strings.Repeat("2f", maxAsCwd), true, synth.Caller{Uid: 1, Gid: 2, Pid: 4}, strings.Repeat("/", maxAsCwd)},
	} {
		c, cwd, err := parseAs(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("parseAs(%q): %v, want ok %v", tc.name, err, tc.ok)
			continue
		}
		if !tc.ok {
			if !errors.Is(err, syscall.ENOENT) {
				t.Errorf("parseAs(%q): %v, want ENOENT", tc.name, err)
			}
			continue
		}
		if !reflect.DeepEqual(c, tc.c) || cwd != tc.cwd {
			t.Errorf("parseAs(%q) = %+v %q, want %+v %q", tc.name, c, cwd, tc.c, tc.cwd)
		}
		if back := asName(c.Uid, c.Gid, c.Groups, c.Pid, cwd); back != tc.name {
			t.Errorf("asName(parseAs(%q)) = %q", tc.name, back)
		}
	}
}

// FuzzParseAsSet: whatever a slave writes to slave/as/set is refused
// cleanly (EINVAL) or reads back to the same line.
func FuzzParseAsSet(f *testing.F) {
	for _, s := range []string{"0 1000.100..42", "255 0.0.1,2,3.1", "7 1.2.3.4.2f746d70", "1 1.2..3.", "01 1.2..3", "3 1.2.,.3", "256 0.0..1", "0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		slot, id, err := parseAsSet(line)
		if err != nil {
			if !errors.Is(err, syscall.EINVAL) {
				t.Fatalf("parseAsSet(%q): %v, not EINVAL", line, err)
			}
			return
		}
		c := id.c
		if back := itoa(slot) + " " + asName(c.Uid, c.Gid, c.Groups, c.Pid, id.cwd); back != line {
			t.Fatalf("parseAsSet(%q) reads back as %q", line, back)
		}
	})
}
