package pspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"bproc/fs/synth"
)

// ctlIOFile is a ctl whose `run` answers process p's pid and then its
// frames, as exec -o does, and whose `detach` is node/N/ctl's.
func ctlIOFile(t *testing.T, p *Proc) synth.Handle {
	t.Helper()
	cmds := synth.Table[any]{
		{Name: "run", MaxArgs: 0, Usage: "run", Run: func(ctx context.Context, _ *synth.Caller, _ any, _ []string) (string, error) {
			synth.ThenStream(ctx, newCtlIO(p, 3))
			return fmt.Sprintf("%d\n", p.pid), nil
		}},
		{Name: "detach", MaxArgs: -1, Usage: "detach", Run: func(ctx context.Context, _ *synth.Caller, _ any, args []string) (string, error) {
			return detachCommand(ctx, args)
		}},
		{Name: "other", MaxArgs: 0, Usage: "other", Run: func(context.Context, *synth.Caller, any, []string) (string, error) { return "other\n", nil }},
	}
	f := &synth.CtlFile[any]{Ino: synth.NewIno(), Owner: func() (uint32, uint32) { return 0, 0 }, Mode: 0o666, Table: cmds}
	h, err := f.Open(&synth.Caller{Uid: 4242, Gid: 4242}, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func attachedProc(t *testing.T, m *Master) *Proc {
	t.Helper()
	p, err := m.newProc(&synth.Caller{Uid: 4242, Gid: 4242}, m.nodes[-1], nil, []string{"x"}, true)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ctlWrite(t *testing.T, h synth.Handle, line string) error {
	t.Helper()
	_, err := h.Write(context.Background(), []byte(line), 0)
	return err
}

// ctlReads reads h until a read returns EOF (or fails), each read's
// bytes one string.
func ctlReads(ctx context.Context, h synth.Handle) ([]string, error) {
	var reads []string
	for {
		buf := make([]byte, 64<<10)
		n, err := h.Read(ctx, buf, 0)
		if n > 0 {
			reads = append(reads, string(buf[:n]))
		}
		if err == io.EOF {
			return reads, nil
		}
		if err != nil {
			return reads, err
		}
	}
}

// exec -o's file gives the pid alone, then the output and the end as
// frames (a failed -b start as -w's failed line), then EOF.
func TestCtlIOFrames(t *testing.T) {
	m := NewMaster(DefaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p := attachedProc(t, m)
	h := ctlIOFile(t, p)
	defer h.Close()
	if err := ctlWrite(t, h, "run\n"); err != nil {
		t.Fatal(err)
	}
	p.stdout.Write(ctx, []byte("hello\n"))
	p.stderr.Write(ctx, []byte("oops"))
	// Once the pumps have taken both, the pid still comes alone.
	for p.stdout.Out() < 6 || p.stderr.Out() < 4 {
		if ctx.Err() != nil {
			t.Fatal("the pumps did not take the output")
		}
		time.Sleep(time.Millisecond)
	}
	buf := make([]byte, 4096)
	if n, err := h.Read(ctx, buf, 0); err != nil || string(buf[:n]) != fmt.Sprintf("%d\n", p.pid) {
		t.Fatalf("first read %q, %v; want the pid", buf[:n], err)
	}
	p.stdout.CloseWrite()
	p.stderr.CloseWrite()
	p.finish("exit 3")
	reads, err := ctlReads(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(reads, "")
	out, errs := "3 out 6\nhello\n", "3 err 4\noops"
	if got != out+errs+"3 end exit 3\n" && got != errs+out+"3 end exit 3\n" {
		t.Errorf("frames %q", got)
	}

	q := attachedProc(t, m)
	h2 := ctlIOFile(t, q)
	defer h2.Close()
	if err := ctlWrite(t, h2, "run\n"); err != nil {
		t.Fatal(err)
	}
	q.startFailed(fmt.Errorf("exec /x: fetching the binary: %w", syscall.ENOENT))
	reads, err = ctlReads(ctx, h2)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{fmt.Sprintf("%d\n", q.pid), "3 end failed 2 exec /x: fetching the binary: no such file or directory\n"}
	if strings.Join(reads, "|") != strings.Join(want, "|") {
		t.Errorf("a failed start reads %q, want %q", reads, want)
	}
}

// detach stops the frames at a frame boundary: what they gave and what
// proc/PID/stdout and stderr then give is every byte once, in order, and
// after the frames' EOF the file's next read is the end as -w's.
func TestCtlIODetach(t *testing.T) {
	m := NewMaster(DefaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := attachedProc(t, m)
	h := ctlIOFile(t, p)
	defer h.Close()
	if err := ctlWrite(t, h, "detach\n"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("detach before any exec -o: %v, want EINVAL", err)
	}
	if err := ctlWrite(t, h, "run\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Read(ctx, make([]byte, 64), 0); err != nil {
		t.Fatal(err)
	}
	// A writer numbers its lines on each stream: whatever the split, the
	// two halves must join to the whole. It goes on while detach comes,
	// and writes more (and ends) once the frames have ended: those bytes
	// can only come through the files.
	var want [2]bytes.Buffer
	streams := []*synth.Stream{p.stdout, p.stderr}
	writing := make(chan error, 2)
	for i, s := range streams {
		for k := 0; k < 120000; k++ { // 1.5 MiB: more than the stream and the frames' queue hold
			fmt.Fprintf(&want[i], "%d line %d\n", i, k)
		}
		b := want[i].Bytes()
		go func() {
			for len(b) > 0 {
				k := min(len(b), 1000)
				if _, err := s.Write(ctx, b[:k]); err != nil {
					writing <- err
					return
				}
				b = b[k:]
			}
			writing <- nil
		}()
	}
	var got [2]bytes.Buffer
	var frames bytes.Buffer
	buf := make([]byte, 8192)
	for frames.Len() < 100000 {
		n, err := h.Read(ctx, buf, 0)
		if err != nil {
			t.Fatalf("reading frames: %v", err)
		}
		frames.Write(buf[:n])
	}
	if err := ctlWrite(t, h, "detach now\n"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("detach with an argument: %v, want EINVAL", err)
	}
	if err := ctlWrite(t, h, "detach\n"); err != nil {
		t.Fatal(err)
	}
	reads, err := ctlReads(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	after := len(strings.Join(reads, ""))
	if most := groupQueueSize + 2*(pumpBufMax+32); after > most {
		t.Errorf("%d bytes of frames after detach: the pumps went on (at most %d were queued)", after, most)
	}
	frames.WriteString(strings.Join(reads, ""))
	ended := parseFrames(t, frames.Bytes(), &got)
	if ended {
		t.Fatal("an end frame came before the process ended")
	}
	// The rest comes through the streams' files.
	rest := []chan string{make(chan string, 1), make(chan string, 1)}
	for i, s := range streams {
		r := synth.AttachReader(s)
		go func() {
			defer r.Close()
			reads, err := ctlReads(ctx, r)
			if err != nil {
				t.Error(err)
			}
			rest[i] <- strings.Join(reads, "")
		}()
	}
	for i, s := range streams {
		if err := <-writing; err != nil {
			t.Fatal(err)
		}
		tail := fmt.Sprintf("%d after the frames\n", i)
		want[i].WriteString(tail)
		if _, err := s.Write(ctx, []byte(tail)); err != nil {
			t.Fatal(err)
		}
		s.CloseWrite()
	}
	for i := range streams {
		got[i].WriteString(<-rest[i])
	}
	for i := range streams {
		if !bytes.Equal(got[i].Bytes(), want[i].Bytes()) {
			t.Errorf("stream %d: %d bytes through frames and file, want %d, the same", i, got[i].Len(), want[i].Len())
		}
	}
	done := make(chan []string)
	go func() {
		reads, err := ctlReads(ctx, h)
		if err != nil {
			t.Error(err)
		}
		done <- reads
	}()
	p.finish("exit 4")
	if reads := <-done; strings.Join(reads, "") != "exit 4\n" {
		t.Errorf("after detach's EOF the file reads %q, want the end line", reads)
	}
}

// parseFrames splits frames (of node 3) into got's stdout and stderr; it
// says whether an end frame came.
func parseFrames(t *testing.T, b []byte, got *[2]bytes.Buffer) bool {
	t.Helper()
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			t.Fatalf("a frame header without its newline: %q", b)
		}
		f := strings.Fields(string(b[:nl]))
		b = b[nl+1:]
		if len(f) < 3 || f[0] != "3" {
			t.Fatalf("bad frame header %q", f)
		}
		if f[1] == "end" {
			return true
		}
		k, err := strconv.Atoi(f[2])
		if err != nil || k > len(b) {
			t.Fatalf("frame %q: %d bytes left", f, len(b))
		}
		got[map[string]int{"out": 0, "err": 1}[f[1]]].Write(b[:k])
		b = b[k:]
	}
	return false
}

// The reader going away (the file's last close, or another command on
// it) is as proc/PID/stdout's last reader going: the process meets EPIPE.
func TestCtlIOReaderGone(t *testing.T) {
	m := NewMaster(DefaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, gone := range []string{"close", "other"} {
		p := attachedProc(t, m)
		h := ctlIOFile(t, p)
		if err := ctlWrite(t, h, "run\n"); err != nil {
			t.Fatal(err)
		}
		if gone == "close" {
			h.Close()
		} else {
			defer h.Close()
			if err := ctlWrite(t, h, "other\n"); err != nil {
				t.Fatal(err)
			}
		}
		var err error
		for err == nil {
			_, err = p.stdout.Write(ctx, make([]byte, 64<<10))
		}
		if !errors.Is(err, syscall.EPIPE) {
			t.Errorf("%s: the process's write: %v, want EPIPE", gone, err)
		}
	}
}

// -o and its combinations.
func TestParseExecOutput(t *testing.T) {
	for _, tc := range []struct {
		args     string
		err      string
		attached bool
	}{
		{args: "-o /bin/true", attached: true},
		{args: "-b -o -n /bin/true", attached: true},
		{args: "-i -o /bin/true", attached: true},
		{args: "-o -w /bin/true", err: "-o and -w"},
		{args: "-b -w -o /bin/true", err: "-o and -w"},
	} {
		o, _, err := parseExec(strings.Fields(tc.args))
		switch {
		case tc.err != "":
			if !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want EINVAL naming %s", tc.args, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.args, err)
		case !o.output || o.attached != tc.attached:
			t.Errorf("%s: output %v attached %v", tc.args, o.output, o.attached)
		}
	}
	m := NewMaster(DefaultConfig())
	if _, err := m.execSet(context.Background(), &synth.Caller{}, nil, []string{"-o", "/bin/true"}); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("a set's exec -o: %v, want EINVAL", err)
	}
}

// node/, node/N and node/N/ctl are stable entries (the FUSE mount keeps
// them: a launch makes no lookup after the first); what depends on the
// caller or comes and goes is not.
func TestNodeCtlPathStable(t *testing.T) {
	m := NewMaster(DefaultConfig())
	c := &synth.Caller{Uid: 4242, Gid: 4242}
	stable := func(n synth.Node) bool {
		se, ok := n.(interface{ StableEntry() bool })
		return ok && se.StableEntry()
	}
	walk := func(names ...string) synth.Node {
		t.Helper()
		n := synth.Node(m.Root())
		for _, name := range names {
			d, ok := n.(synth.Dir)
			if !ok {
				t.Fatalf("%s: not a directory", strings.Join(names, "/"))
			}
			var err error
			if n, err = d.Lookup(c, name); err != nil || n == nil {
				t.Fatalf("%s: %v", strings.Join(names, "/"), err)
			}
		}
		return n
	}
	for _, path := range [][]string{{"node"}, {"node", "-1"}, {"node", "-1", "ctl"}} {
		if !stable(walk(path...)) {
			t.Errorf("%s is not a stable entry", strings.Join(path, "/"))
		}
	}
	for _, path := range [][]string{{"proc"}, {"status"}, {"node", "-1", "status"}} {
		if stable(walk(path...)) {
			t.Errorf("%s is a stable entry", strings.Join(path, "/"))
		}
	}
}
