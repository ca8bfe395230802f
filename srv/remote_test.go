package srv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"bproc/fs/pspace"
	"bproc/fs/synth"
	"bproc/internal/treetest"
)

// serveMaster serves a real master's tree on loopback and returns a
// registered slave connection to it (node 0) and a tool's.
func serveMaster(t *testing.T) (slave, tool *Client) {
	slave, tool, _ = serveMasterNames(t)
	return slave, tool
}

// asNames records the names looked up in slave/as/ on the master.
type asNames struct {
	mu    sync.Mutex
	names map[string]bool
}

func (a *asNames) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.names)
}

// recDir passes a directory through, recording the names looked up
// depth levels below the root (2: slave/as/NAME).
type recDir struct {
	synth.Dir
	depth int
	rec   *asNames
}

func (d *recDir) Lookup(c *synth.Caller, name string) (synth.Node, error) {
	n, err := d.Dir.Lookup(c, name)
	if d.depth == 2 {
		d.rec.mu.Lock()
		d.rec.names[name] = true
		d.rec.mu.Unlock()
		return n, err
	}
	if sub, ok := n.(synth.Dir); ok && err == nil {
		return &recDir{sub, d.depth + 1, d.rec}, nil
	}
	return n, err
}

// serveMasterNames is serveMaster recording the names walked in slave/as/.
func serveMasterNames(t *testing.T) (slave, tool *Client, rec *asNames) {
	t.Helper()
	m := pspace.NewMaster(pspace.DefaultConfig())
	rec = &asNames{names: map[string]bool{}}
	addr := serveOn(t, &Server{Key: testKey, Root: &recDir{m.Root(), 0, rec}})
	slave = dial(t, addr, Hello{Role: RoleSlave, Host: "node0"})
	// Opening slave/jobs registers the connection as node 0's slave.
	jobs, err := slave.Open("slave/jobs", os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { jobs.Close() })
	return slave, dial(t, addr, toolHello), rec
}

// The remote tree answers as the caller on the slave's node: node/self
// is the slave's node, whatever the caller; a user's chmod of a node is
// refused on the master (EPERM) and root's goes through.
func TestRemoteTreeIsTheCaller(t *testing.T) {
	slave, tool := serveMaster(t)
	tree := slave.RemoteTree()
	user := &synth.Local{Root: tree, Caller: &synth.Caller{Uid: 1000, Gid: 1000, Groups: []uint32{7}, Pid: os.Getpid(),
		Env: func() ([]string, string, bool) { return nil, "/tmp/a.b c", true }}}
	treetest.Want(t, user.Open, "node/self", "0\n")
	n, err := user.Walk("node/0")
	if err != nil {
		t.Fatal(err)
	}
	mode := os.FileMode(0o100)
	if err := synth.Setattr(user.Caller, n, synth.SetattrReq{Mode: &mode}); !errors.Is(err, syscall.EPERM) {
		t.Errorf("chmod node/0 as uid 1000: %v, want EPERM", err)
	}
	root := &synth.Local{Root: tree, Caller: &synth.Caller{Pid: os.Getpid()}}
	if n, err = root.Walk("node/0"); err != nil {
		t.Fatal(err)
	}
	if err := synth.Setattr(root.Caller, n, synth.SetattrReq{Mode: &mode}); err != nil {
		t.Errorf("chmod node/0 as root: %v", err)
	}
	if got := n.Attr().Mode.Perm(); got != 0o100 {
		t.Errorf("node/0 after chmod: mode %v, want 0100", got)
	}
	if fi, err := tool.Stat("node/0"); err != nil || fi.Mode().Perm() != 0o100 {
		t.Errorf("the master's node/0: %v %v, want mode 0100", fi, err)
	}
	// The node is now 0100 root: the user may not run there (EACCES).
	f, err := user.Open("node/0/ctl", os.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("exec /bin/true\n")); !errors.Is(err, syscall.EACCES) {
		t.Errorf("exec as uid 1000 on a 0100 root node: %v, want EACCES", err)
	}
	f.Close()
	// The listing is the public tree's: no slave/.
	d, err := user.Walk("")
	if err != nil {
		t.Fatal(err)
	}
	ents, err := d.(synth.Dir).List(user.Caller)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name)
	}
	if got := strings.Join(names, " "); got != "node proc status" {
		t.Errorf("root lists %q, want \"node proc status\"", got)
	}
}

// A tool's connection (not a slave) gets EPERM from the same walks.
func TestRemoteTreeRefusedToTools(t *testing.T) {
	_, tool := serveMaster(t)
	l := &synth.Local{Root: tool.RemoteTree(), Caller: &synth.Caller{Uid: 0, Pid: 1}}
	if _, err := l.Open("node/self", os.O_RDONLY); !errors.Is(err, syscall.ENOENT) {
		// slave/ itself is not there for a tool.
		t.Errorf("node/self over a tool's remote tree: %v, want ENOENT", err)
	}
}

// Mounted with FUSE, the remote tree reports the calling process: a
// user's shell reads node/self and is refused what the master refuses
// that user.
func TestRemoteTreeMounted(t *testing.T) {
	slave, _ := serveMaster(t)
	dir := mountRoot(t, slave.RemoteTree())
	b, err := os.ReadFile(filepath.Join(dir, "node/self"))
	if err != nil || string(b) != "0\n" {
		t.Fatalf("node/self through the mount: %q %v, want \"0\\n\"", b, err)
	}
	out, err := exec.Command("setpriv", "--reuid=1000", "--regid=1000", "--clear-groups",
		"sh", "-c", "chmod 700 "+dir+"/node/0 2>&1; echo rc=$?").CombinedOutput()
	if err != nil {
		t.Fatalf("setpriv: %v %s", err, out)
	}
	if !strings.Contains(string(out), "Operation not permitted") || !strings.Contains(string(out), "rc=1") {
		t.Errorf("chmod as uid 1000 through the mount: %q, want EPERM", out)
	}
	if err := os.Chmod(filepath.Join(dir, "node/0"), 0o700); err != nil {
		t.Errorf("chmod as root through the mount: %v", err)
	}
	fi, err := os.Stat(filepath.Join(dir, "node/0"))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("node/0 after root's chmod: %v %v", fi, err)
	}
}

func TestRemoteAsName(t *testing.T) {
	for _, tc := range []struct {
		c       synth.Caller
		withCwd bool
		want    string
	}{
		{synth.Caller{Uid: 1000, Gid: 100, Pid: 42}, false, "1000.100..42"},
		{synth.Caller{Groups: []uint32{1, 2}, Pid: 7}, false, "0.0.1,2.7"},
		{synth.Caller{Pid: 7, Env: func() ([]string, string, bool) { return nil, "/tmp", true }}, true, "0.0..7.2f746d70"},
		{synth.Caller{Pid: 7, Env: func() ([]string, string, bool) { return nil, "/tmp", true }}, false, "0.0..7"},
		{synth.Caller{Pid: 7, Env: func() ([]string, string, bool) { return nil, "", false }}, true, "0.0..7"},
		{synth.Caller{Pid: -1}, false, "0.0..0"},
	} {
		if got := asName(&tc.c, tc.withCwd); got != tc.want {
			t.Errorf("asName(%+v, %v) = %q, want %q", tc.c, tc.withCwd, got, tc.want)
		}
	}
}

// A read blocked in a stream on the master returns EINTR when the node's
// reader is interrupted (ctx done: FUSE_INTERRUPT), consuming nothing:
// what is pushed next goes to the next read.
func TestRemoteReadInterrupted(t *testing.T) {
	sv := serve(t)
	c := dial(t, sv.addr, toolHello)
	_, f, err := c.root.Walk([]string{"stream"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, _, err := f.Open(0); err != nil {
		t.Fatal(err)
	}
	h := &remoteHandle{t: &remoteTree{c: c}, path: []string{"stream"}, f: f}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := h.Read(ctx, make([]byte, 10), 0)
		done <- err
	}()
	if !waitFor(5*time.Second, func() bool { return sv.tree.stream.inRead.Load() == 1 }) {
		t.Fatal("the read never reached the stream")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, syscall.EINTR) {
			t.Errorf("interrupted read: %v, want EINTR", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the interrupted read did not return")
	}
	if n := sv.tree.stream.intr.Load(); n != 1 {
		t.Errorf("%d reads ended with EINTR on the master, want 1", n)
	}
	sv.tree.stream.data <- []byte("next")
	buf := make([]byte, 10)
	n, err := h.Read(context.Background(), buf, 0)
	if err != nil || string(buf[:n]) != "next" {
		t.Errorf("read after the interrupt: %q %v, want \"next\"", buf[:n], err)
	}
}

// More processes than the master keeps slots for, at once: slots are set
// again for new ones, and each request is still decided as its own
// caller (a user is refused a node's chmod, root is not).
//
// The names walked in slave/as/ stay the slots' (and set): the 9P server
// keeps a node for every name a connection ever walked, so a name per
// process would grow the master with every process on the node.
func TestRemoteTreeSlotsReused(t *testing.T) {
	slave, _, rec := serveMasterNames(t)
	tree := slave.RemoteTree()
	mode := os.FileMode(0o111)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				uid := uint32(1000)
				if i%2 == 0 {
					uid = 0
				}
				c := &synth.Caller{Uid: uid, Gid: uid, Pid: 10000 + w*1000 + i}
				n, err := (&synth.Local{Root: tree, Caller: c}).Walk("node/0")
				if err != nil {
					errs <- err
					return
				}
				err = synth.Setattr(c, n, synth.SetattrReq{Mode: &mode})
				if uid == 0 && err != nil || uid != 0 && !errors.Is(err, syscall.EPERM) {
					errs <- fmt.Errorf("chmod as uid %d pid %d: %v", uid, c.Pid, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	rt := tree.(*remoteDir).t
	if n := len(rt.slots); n != asSlots {
		t.Errorf("%d slots in use after 800 callers, want all %d", n, asSlots)
	}
	if n := rec.count(); n > asSlots+1 {
		t.Errorf("%d names walked in slave/as/ for 800 callers, want at most %d", n, asSlots+1)
	}
}
