package pspace

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"syscall"
	"testing"
	"time"

	"bproc/fs/slaveproto"
	"bproc/fs/synth"
)

// A group's io frames each process's output and then its end, and ends
// when every process has; a second open is refused.
func TestGroupIOFrames(t *testing.T) {
	m := NewMaster(DefaultConfig())
	c := &synth.Caller{Uid: 4242, Gid: 4242}
	n := m.nodes[-1]
	var res []setResult
	for i := 0; i < 2; i++ {
		p, err := m.newProc(c, n, nil, []string{"x"}, true)
		if err != nil {
			t.Fatal(err)
		}
		res = append(res, setResult{num: 10 + i, p: p})
	}
	res = append(res, setResult{num: 12, err: errors.New("node 12: no such node")})
	g := m.newGroup(c, res)
	h, err := g.dir.Lookup(c, "io")
	if err != nil {
		t.Fatal(err)
	}
	fh, err := h.(synth.File).Open(c, syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := h.(synth.File).Open(c, syscall.O_RDONLY); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("second open of io: %v, want EBUSY", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p0, p1 := res[0].p, res[1].p
	if _, err := p0.stdout.Write(ctx, []byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	p0.stdout.CloseWrite()
	p0.stderr.CloseWrite()
	p0.finish("exit 3")
	var got bytes.Buffer
	readUntil := func(want string) {
		buf := make([]byte, 4096)
		for !bytes.Contains(got.Bytes(), []byte(want)) {
			k, err := fh.Read(ctx, buf, 0)
			got.Write(buf[:k])
			if err != nil {
				t.Fatalf("reading io: %v; so far %q", err, got.String())
			}
		}
	}
	readUntil("10 end exit 3\n")
	if want := "10 out 6\nhello\n10 end exit 3\n"; got.String() != want {
		t.Errorf("io reads %q, want %q", got.String(), want)
	}
	got.Reset()
	p1.stderr.Write(ctx, []byte("oops"))
	p1.finish("lost node 11 down") // closes its streams
	readUntil("11 end lost node 11 down\n")
	if want := "11 err 4\noops11 end lost node 11 down\n"; got.String() != want {
		t.Errorf("io reads %q, want %q", got.String(), want)
	}
	if k, err := fh.Read(ctx, make([]byte, 10), 0); k != 0 || err != io.EOF {
		t.Errorf("after every end io reads %d, %v; want EOF", k, err)
	}
}

// node/NAME is a set for a nodespec, not for a plain number: node/99
// stays "no such node".
func TestLookupSet(t *testing.T) {
	m := NewMaster(DefaultConfig())
	for name, want := range map[string]bool{"0-63": true, "allup": true, "n[1,3]": true, "master": true, "99": false, "-1": false, "self": false, "bad[": false, "7x": false, "nosuchhost": false} {
		if got := m.lookupSet(name) != nil; got != want {
			t.Errorf("node/%s is a set: %v, want %v", name, got, want)
		}
	}
}

// A set's start message, spliced from its template, decodes to what
// encoding it whole for the node gives: argv and environment byte-exact
// (bytes that are not UTF-8 included), the pid and the rank's variables.
func TestStartTemplate(t *testing.T) {
	job := &execJob{o: &execOpts{attached: true}, path: "/bin/x", bin: &binLease{hash: "ab", size: 3},
		argv: []string{"x", "\x00bproc-rank", "caf\xe9"}, env: []string{"A=1", "BPROC_RANK=9", "B=\xff\xfe", "PATH=/bin"},
		cwd: "/tmp", c: &synth.Caller{Uid: 4242, Gid: 4242, Groups: []uint32{7}},
		libs: []slaveproto.Lib{{Path: "/lib/libc.so.6"}}}
	tmpl, err := newStartTemplate(job)
	if err != nil {
		t.Fatal(err)
	}
	var got, want slaveproto.Msg
	if err := json.Unmarshal(tmpl.encode(nil, 1234, 2, 7, 5, []byte(`"sig":9`)), &got); err != nil {
		t.Fatalf("the spliced message does not decode: %v", err)
	}
	whole := *job
	whole.env = append(withoutRank(job.env), "BPROC_RANK=2", "BPROC_NODE=7", "BPROC_NPROCS=5")
	msg := whole.msg(&Proc{pid: 1234})
	msg.Sig = 9 // a field that differs per node, spliced in
	b, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("spliced %+v\nwhole   %+v", got, want)
	}
}

// group/ holds at most groupsMax groups: beyond it the oldest that ended
// go; one still running stays.
func TestGroupsBounded(t *testing.T) {
	m := NewMaster(DefaultConfig())
	c := &synth.Caller{Uid: 4242, Gid: 4242}
	n := m.nodes[-1]
	newOne := func(end bool) *group {
		p, err := m.newProc(c, n, nil, []string{"x"}, false)
		if err != nil {
			t.Fatal(err)
		}
		if end {
			p.finish("exit 0")
		}
		return m.newGroup(c, []setResult{{num: -1, p: p}})
	}
	running := newOne(false)
	var last *group
	for i := 0; i < groupsMax+10; i++ {
		last = newOne(true)
		for !last.ended.Load() {
			time.Sleep(time.Millisecond)
		}
	}
	newOne(true)
	m.mu.Lock()
	count, kept := len(m.fan.groups), m.fan.groups[running.id] != nil
	m.mu.Unlock()
	if count > groupsMax || !kept {
		t.Errorf("%d groups (at most %d), the running one kept: %v", count, groupsMax, kept)
	}
}

// A send's timeout starts when it first waits for room, and then ends
// it as context.WithTimeout would.
func TestLazyTimeout(t *testing.T) {
	l := &lazyTimeout{Context: context.Background(), d: 10 * time.Millisecond}
	defer l.stop()
	if l.cancel != nil || l.Err() != nil {
		t.Fatal("armed before anything waited")
	}
	select {
	case <-l.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after its timeout")
	}
	if !errors.Is(l.Err(), context.DeadlineExceeded) {
		t.Errorf("Err %v, want DeadlineExceeded", l.Err())
	}
}

// A set's starts are awaited in turn: a start reported before a later
// wait finds the set's timeout passed counts as started, every time.
func TestAwaitStartReportWins(t *testing.T) {
	m := NewMaster(DefaultConfig())
	c := &synth.Caller{}
	n := m.nodes[-1]
	late := make(chan struct{})
	close(late)
	for i := 0; i < 50; i++ {
		p, err := m.newProc(c, n, nil, []string{"x"}, false)
		if err != nil {
			t.Fatal(err)
		}
		p.started <- nil
		job := &execJob{o: &execOpts{}, path: "/bin/x", release: func() {}, late: late}
		if err := m.awaitStart(context.Background(), p, n, nil, job); err != nil {
			t.Fatalf("start %d: %v, want started", i, err)
		}
	}
}
