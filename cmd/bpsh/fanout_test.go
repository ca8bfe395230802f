package main

import (
	"io/fs"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"bproc/client"
)

// recTree records every write made through it, one "NAME: DATA" each;
// fail makes a name's open fail with its error.
type recTree struct {
	mu     sync.Mutex
	writes []string
	fail   map[string]error
}

type recFile struct {
	t    *recTree
	name string
}

func (t *recTree) Open(name string, _ int) (client.File, error) {
	if err := t.fail[name]; err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &recFile{t, name}, nil
}

func (f *recFile) Write(p []byte) (int, error) {
	f.t.mu.Lock()
	defer f.t.mu.Unlock()
	f.t.writes = append(f.t.writes, f.name+": "+string(p))
	return len(p), nil
}
func (f *recFile) Read([]byte) (int, error) { return 0, syscall.EINVAL }
func (f *recFile) Close() error             { return nil }

func (t *recTree) Stat(string) (fs.FileInfo, error)      { return nil, syscall.ENOSYS }
func (t *recTree) ReadDir(string) ([]fs.DirEntry, error) { return nil, syscall.ENOSYS }
func (t *recTree) Chmod(string, fs.FileMode) error       { return syscall.ENOSYS }
func (t *recTree) Chown(string, int, int) error          { return syscall.ENOSYS }
func (t *recTree) Close() error                          { return nil }
func (t *recTree) got() []string                         { t.mu.Lock(); defer t.mu.Unlock(); return slices.Clone(t.writes) }

// setJobs is a group 7 of three processes on nodes 0-2, pids 100-102;
// the one on node 1 has ended.
func setJobs(t *recTree) (*client.Group, []*job) {
	g := &client.Group{T: t, ID: 7}
	var jobs []*job
	for i := range 3 {
		j := &job{idx: i, node: i, proc: &client.Proc{T: t, Node: i, Pid: 100 + i}}
		jobs = append(jobs, j)
	}
	jobs[1].ended.Store(true)
	return g, jobs
}

func TestGroupKill(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fail    error // of the group ctl's open
		wantErr bool
		want    []string
	}{
		{"one write for the set", nil, false, []string{"group/7/ctl: kill TERM\n"}},
		{"group gone: its processes ended", syscall.ENOENT, false, nil},
		{"group write fails: each running process on its own", syscall.EIO, true,
			[]string{"proc/100/ctl: kill TERM\n", "proc/102/ctl: kill TERM\n"}},
	} {
		tr := &recTree{fail: map[string]error{"group/7/ctl": tc.fail}}
		g, jobs := setJobs(tr)
		err := groupKill(g, jobs)(syscall.SIGTERM)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: error %v, want one: %v", tc.name, err, tc.wantErr)
		}
		if got := tr.got(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: writes %q, want %q", tc.name, got, tc.want)
		}
	}
}

// waitWrites polls until tr has n writes, at most 5 s.
func waitWrites(t *testing.T, tr *recTree, n int) []string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if got := tr.got(); len(got) >= n {
			return got
		}
	}
	t.Fatalf("writes %q: want %d", tr.got(), n)
	return nil
}

func TestKillerForwardsToGroup(t *testing.T) {
	tr := &recTree{}
	g, jobs := setJobs(tr)
	k := newKiller()
	defer k.stop()
	k.addKill(groupKill(g, jobs))
	k.ch <- syscall.SIGUSR1
	if got, want := waitWrites(t, tr, 1), []string{"group/7/ctl: kill USR1\n"}; !slices.Equal(got, want) {
		t.Errorf("forwarded: %q, want %q", got, want)
	}

	// A signal that came while the set was starting reaches the group
	// once it is known.
	tr2 := &recTree{}
	g2, jobs2 := setJobs(tr2)
	k2 := newKiller()
	defer k2.stop()
	k2.ch <- syscall.SIGHUP
	for deadline := time.Now().Add(5 * time.Second); !k2.forwarded(int(syscall.SIGHUP)); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP not recorded")
		}
	}
	k2.addKill(groupKill(g2, jobs2))
	if got, want := waitWrites(t, tr2, 1), []string{"group/7/ctl: kill HUP\n"}; !slices.Equal(got, want) {
		t.Errorf("late: %q, want %q", got, want)
	}
}
