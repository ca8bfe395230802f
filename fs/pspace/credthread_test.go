package pspace

import (
	"os"
	"strings"
	"testing"
	"time"

	"bproc/fs/synth"

	"golang.org/x/sys/unix"
)

// threadCreds is what the kernel says of the calling thread: its id, its
// filesystem uid and its groups.
func threadCreds(t *testing.T) (tid int, fsuid, groups string) {
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			if f := strings.Fields(v); len(f) == 4 {
				fsuid = f[3]
			}
		}
		if v, ok := strings.CutPrefix(line, "Groups:"); ok {
			groups = strings.Join(strings.Fields(v), ",")
		}
	}
	return unix.Gettid(), fsuid, groups
}

// A user's calls run with that user's credentials on a thread kept for
// that identity alone: the same uid with other groups, another uid and
// root never run on it, and it ends once idle.
func TestAsCallerCredThreads(t *testing.T) {
	setIdle := func(d time.Duration) {
		credThreads.Lock()
		credIdle = d
		credThreads.Unlock()
	}
	old := credIdle
	setIdle(time.Hour)
	t.Cleanup(func() { setIdle(old) })
	type seen struct {
		tid           int
		fsuid, groups string
	}
	as := func(c *synth.Caller) seen {
		t.Helper()
		var s seen
		if err := asCaller(c, func() error { s.tid, s.fsuid, s.groups = threadCreds(t); return nil }); err != nil {
			t.Fatal(err)
		}
		return s
	}
	a := &synth.Caller{Uid: 4242, Gid: 4242, Groups: []uint32{4242}}
	aOther := &synth.Caller{Uid: 4242, Gid: 4242, Groups: []uint32{4242, 7}}
	b := &synth.Caller{Uid: 4343, Gid: 4343}

	first := as(a)
	if first.fsuid != "4242" || first.groups != "4242" {
		t.Fatalf("as uid 4242: %+v", first)
	}
	// The thread is kept once its first call returned: soon, not at once.
	deadline := time.Now().Add(5 * time.Second)
	for s := as(a); s.tid != first.tid; s = as(a) {
		if s.fsuid != "4242" || s.groups != "4242" {
			t.Fatalf("as uid 4242 again: %+v", s)
		}
		if time.Now().After(deadline) {
			t.Fatal("a user's second call never ran on the thread of its first")
		}
		first = s
	}
	for _, tc := range []struct {
		c             *synth.Caller
		fsuid, groups string
	}{{aOther, "4242", "7,4242"}, {b, "4343", ""}, {root, "0", ""}} {
		s := as(tc.c)
		if s.tid == first.tid || s.fsuid != tc.fsuid || (tc.c != root && s.groups != tc.groups) {
			t.Errorf("uid %d groups %v ran as %+v (uid 4242's thread is %d): want fsuid %s groups %q", tc.c.Uid, tc.c.Groups, s, first.tid, tc.fsuid, tc.groups)
		}
	}
	if s := as(a); s.fsuid != "4242" || s.groups != "4242" {
		t.Errorf("uid 4242 after the others: %+v", s)
	}

	// Idle, they end.
	setIdle(20 * time.Millisecond)
	as(a) // resets its timer to the short one
	as(aOther)
	as(b)
	for deadline := time.Now().Add(5 * time.Second); ; {
		credThreads.Lock()
		n := len(credThreads.m)
		credThreads.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d credential threads still kept after their idle time", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
