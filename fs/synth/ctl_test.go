package synth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
)

// recordingCtl is a ctl file whose "run" command records its arguments
// and "fail" fails: what ran, and with which words, is what the tests check.
func recordingCtl() (*CtlFile[any], *[][]string) {
	var ran [][]string
	cmds := Table[any]{
		{"run", 0, -1, "run [ARG...]", func(_ context.Context, _ *Caller, _ any, args []string) (string, error) {
			ran = append(ran, args)
			return fmt.Sprintf("ran %d\n", len(ran)), nil
		}},
		{"fail", 0, 0, "fail", func(context.Context, *Caller, any, []string) (string, error) {
			return "", fmt.Errorf("failing as asked: %w", syscall.EIO)
		}},
	}
	f := &CtlFile[any]{Ino: NewIno(), Owner: func() (uint32, uint32) { return 0, 0 }, Mode: 0o666, Table: cmds}
	return f, &ran
}

func openCtl(t *testing.T, f *CtlFile[any]) *ctlHandle {
	t.Helper()
	h, err := f.Open(&Caller{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return h.(*ctlHandle)
}

func readCtl(t *testing.T, h *ctlHandle) string {
	t.Helper()
	var b strings.Builder
	buf := make([]byte, 64)
	for {
		n, err := h.Read(context.Background(), buf, 0)
		b.Write(buf[:n])
		if err == io.EOF {
			return b.String()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestCtlLongLineInPieces(t *testing.T) {
	f, ran := recordingCtl()
	h := openCtl(t, f)
	arg := strings.Repeat("x", 10000) + "/KEEP-THIS-WHOLE-NAME"
	line := []byte("run " + arg + " second\n")
	ctx := context.Background()
	for len(line) > 0 {
		k := min(4096, len(line))
		n, err := h.Write(ctx, line[:k], 0)
		if err != nil || n != k {
			t.Fatalf("write of %d bytes = %d, %v", k, n, err)
		}
		line = line[k:]
		if len(line) > 0 && len(*ran) != 0 {
			t.Fatalf("a command ran before its line was whole: %q", (*ran)[0][0][:20])
		}
	}
	if len(*ran) != 1 || len((*ran)[0]) != 2 || (*ran)[0][0] != arg || (*ran)[0][1] != "second" {
		t.Fatalf("ran %d commands, want one with the whole arguments", len(*ran))
	}
	if got := readCtl(t, h); got != "ran 1\n" {
		t.Errorf("ctl reads %q", got)
	}
}

func TestCtlTooLongRunsNothing(t *testing.T) {
	f, ran := recordingCtl()
	h := openCtl(t, f)
	ctx := context.Background()
	piece := []byte("run " + strings.Repeat("y", 1<<20))
	var err error
	for i := 0; i < 3 && err == nil; i++ {
		_, err = h.Write(ctx, piece, 0)
	}
	if !errors.Is(err, syscall.E2BIG) {
		t.Fatalf("a line over %d bytes: err = %v, want E2BIG", MaxCommand, err)
	}
	if _, err := h.Write(ctx, []byte("more\n"), 0); !errors.Is(err, syscall.E2BIG) {
		t.Errorf("the rest of the refused line: err = %v, want E2BIG", err)
	}
	if got := readCtl(t, h); !strings.HasPrefix(got, "error: command longer than") {
		t.Errorf("ctl reads %q", got)
	}
	// The next line is a command again.
	if _, err := h.Write(ctx, []byte("run ok\n"), 0); err != nil {
		t.Fatalf("the line after: %v", err)
	}
	if err := h.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if len(*ran) != 1 || (*ran)[0][0] != "ok" {
		t.Errorf("ran %v, want only the line after", *ran)
	}
}

func TestCtlUnterminatedLine(t *testing.T) {
	ctx := context.Background()
	f, ran := recordingCtl()

	// printf cmd >&3; read r <&3: the read runs it.
	h := openCtl(t, f)
	if n, err := h.Write(ctx, []byte("run a"), 0); err != nil || n != 5 {
		t.Fatalf("write = %d, %v", n, err)
	}
	if len(*ran) != 0 {
		t.Fatal("ran before the line ended")
	}
	if got := readCtl(t, h); got != "ran 1\n" {
		t.Errorf("ctl reads %q", got)
	}

	// printf cmd > ctl: the close runs it and returns its error.
	h = openCtl(t, f)
	h.Write(ctx, []byte("run b"), 0)
	if err := h.Flush(ctx); err != nil {
		t.Errorf("flush: %v", err)
	}
	h = openCtl(t, f)
	h.Write(ctx, []byte("fail"), 0)
	if err := h.Close(); !errors.Is(err, syscall.EIO) {
		t.Errorf("close of a failing unfinished command: %v, want EIO", err)
	}
	h = openCtl(t, f)
	h.Write(ctx, []byte("run 'open quote\n"), 0)
	if err := h.Close(); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("close of an unterminated quote: %v, want EINVAL", err)
	}
	if len(*ran) != 2 || (*ran)[1][0] != "b" {
		t.Errorf("ran %v", *ran)
	}
	// A read ends an unfinished line, open quote and all: the next line
	// is read afresh.
	h = openCtl(t, f)
	h.Write(ctx, []byte("run 'open"), 0)
	if got := readCtl(t, h); !strings.Contains(got, "unterminated single quote") {
		t.Errorf("ctl reads %q", got)
	}
	if _, err := h.Write(ctx, []byte("run c\n"), 0); err != nil || len(*ran) != 3 {
		t.Errorf("the line after: %v, ran %q", err, *ran)
	}
}

func TestCtlLines(t *testing.T) {
	ctx := context.Background()
	f, ran := recordingCtl()
	h := openCtl(t, f)
	// A newline inside quotes or escaped is part of an argument.
	if _, err := h.Write(ctx, []byte("run 'a\nb' \"c\nd\" e\\\nf\n\nrun 2\nfail\nrun never\n"), 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("err = %v, want the failing command's EIO", err)
	}
	want := [][]string{{"a\nb", "c\nd", "e\nf"}, {"2"}}
	if fmt.Sprint(*ran) != fmt.Sprint(want) {
		t.Errorf("ran %q, want %q", *ran, want)
	}
	if err := h.Close(); err != nil || len(*ran) != 2 {
		t.Errorf("close: %v; what followed the failure ran: %q", err, *ran)
	}
}

// A write(2) beyond FUSE's request size arrives in pieces; when the piece
// ending the command fails, the kernel reports the earlier pieces written
// and the writer (dd, cat) writes the rest again: that rest fails with the
// command instead of running as one of its own.
func TestCtlRetriedRestOfAFailedWrite(t *testing.T) {
	ctx := context.Background()
	f, ran := recordingCtl()
	h := openCtl(t, f)
	line := []byte("run " + strings.Repeat("z", 3<<20) + "\n")
	off := 0
	for _, k := range []int{1 << 20, 1 << 20} {
		if n, err := h.Write(ctx, line[off:off+k], int64(off)); err != nil || n != k {
			t.Fatalf("piece at %d: %d, %v", off, n, err)
		}
		off += k
	}
	rest := line[off:]
	if _, err := h.Write(ctx, rest[:1<<20], int64(off)); !errors.Is(err, syscall.E2BIG) {
		t.Fatalf("the piece over the maximum: %v", err)
	}
	for _, k := range []int{len(rest) - 1<<20, 0} {
		piece := rest[len(rest)-k:]
		if k == 0 {
			piece = []byte("fail\n")
		}
		// write(2) returned 3 MiB of it; the writer retries the rest.
		if _, err := h.Write(ctx, piece, int64(off+len(rest)-k)); err == nil {
			t.Fatalf("%d bytes retried: no error", k)
		}
	}
	if len(*ran) != 0 {
		t.Fatalf("ran %d commands", len(*ran))
	}

	h = openCtl(t, f)
	long := []byte("fail " + strings.Repeat(" ", 1<<20) + "\nrun never\n")
	if _, err := h.Write(ctx, long[:1<<20], 0); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Write(ctx, long[1<<20:], 1<<20); !errors.Is(err, syscall.EIO) {
		t.Fatalf("the failing command: %v", err)
	}
	if _, err := h.Write(ctx, long[1<<20:], 1<<20); !errors.Is(err, syscall.EIO) {
		t.Fatalf("its retried rest: %v, want the same EIO", err)
	}
	// Another command at the same offset (write(2) returned an error: the
	// file offset did not move) runs.
	if _, err := h.Write(ctx, []byte("run next\n"), 1<<20); err != nil || len(*ran) != 1 || (*ran)[0][0] != "next" {
		t.Fatalf("the next command: %v, ran %q", err, *ran)
	}
}

// A user may open many ctl files: what their unfinished lines make the
// master hold is bounded for the user as a whole.
func TestCtlUnfinishedLinesBoundedPerUser(t *testing.T) {
	ctx := context.Background()
	f, ran := recordingCtl()
	user := &Caller{Uid: 4242, Gid: 4242}
	piece := []byte("run " + strings.Repeat("u", MaxCommand-100))
	var hs []Handle
	var err error
	for i := 0; i < 2*ctlHeldMax/MaxCommand && err == nil; i++ {
		var h Handle
		if h, err = f.Open(user, 0); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
		_, err = h.Write(ctx, piece, 0)
	}
	if !errors.Is(err, syscall.ENOBUFS) {
		t.Fatalf("after %d unfinished lines of %d bytes: %v, want ENOBUFS", len(hs), len(piece), err)
	}
	if held := len(hs) - 1; held*len(piece) > ctlHeldMax {
		t.Errorf("held %d lines of %d bytes", held, len(piece))
	}
	// Root is not limited by the user's bytes.
	r := openCtl(t, f)
	if _, err := r.Write(ctx, piece, 0); err != nil {
		t.Errorf("root: %v", err)
	}
	r.Close()
	for _, h := range hs {
		h.Close()
	}
	ctlHeld.mu.Lock()
	left := ctlHeld.bytes[user.Uid]
	ctlHeld.mu.Unlock()
	if left != 0 {
		t.Errorf("after every close the user still holds %d bytes", left)
	}
	h, _ := f.Open(user, 0)
	if _, err := h.Write(ctx, []byte("run again\n"), 0); err != nil {
		t.Errorf("after the closes: %v", err)
	}
	// The closes ran the lines held, not the refused one; then root's and the last.
	if n, want := len(*ran), len(hs)-1+2; n != want {
		t.Errorf("ran %d commands, want %d", n, want)
	}
}

// A table's rows get the file's target as the table's type, and the
// table checks a command's name and argument count before running it.
func TestTableRunsOnItsTarget(t *testing.T) {
	type counter struct{ n int }
	table := Table[*counter]{
		{Name: "add", MinArgs: 1, MaxArgs: 1, Usage: "add N", Run: func(_ context.Context, _ *Caller, c *counter, args []string) (string, error) {
			c.n += len(args[0])
			return fmt.Sprintf("%d\n", c.n), nil
		}},
		{Name: "reset", MinArgs: 0, MaxArgs: 0, Usage: "reset", Run: func(_ context.Context, _ *Caller, c *counter, _ []string) (string, error) {
			c.n = 0
			return "", nil
		}},
	}
	target := &counter{}
	f := &CtlFile[*counter]{Ino: NewIno(), Owner: func() (uint32, uint32) { return 0, 0 }, Mode: 0o666, Table: table, Target: target}
	h, err := f.Open(&Caller{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, line := range []string{"add xyz\n", "add 'a b'\n"} {
		if _, err := h.Write(ctx, []byte(line), 0); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
	}
	if target.n != 6 {
		t.Errorf("target counted %d, want 6", target.n)
	}
	if got := readCtl(t, h.(*ctlHandle)); got != "6\n" {
		t.Errorf("result %q, want \"6\\n\"", got)
	}
	for _, tc := range []struct{ line, want string }{
		{"add\n", "usage: add N"},
		{"reset now\n", "usage: reset"},
		{"mul 2\n", `unknown command "mul" (commands: add, reset)`},
	} {
		_, err := h.Write(ctx, []byte(tc.line), 0)
		if !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want EINVAL with %q", tc.line, err, tc.want)
		}
	}
	if target.n != 6 {
		t.Errorf("a refused command changed the target: %d", target.n)
	}
}

// A command that sets its result Later returns from the write at once; a
// read of the same open file waits for the result, and a later command
// takes the file's result back.
func TestCtlLaterResult(t *testing.T) {
	set := make(chan func(string, error), 1)
	cmds := Table[any]{
		{"later", 0, 0, "later", func(ctx context.Context, _ *Caller, _ any, _ []string) (string, error) {
			set <- Later(ctx)
			return "", nil
		}},
		{"now", 0, 0, "now", func(context.Context, *Caller, any, []string) (string, error) { return "now\n", nil }},
	}
	f := &CtlFile[any]{Ino: NewIno(), Owner: func() (uint32, uint32) { return 0, 0 }, Mode: 0o666, Table: cmds}
	h := openCtl(t, f)
	if _, err := h.Write(context.Background(), []byte("later\n"), 0); err != nil {
		t.Fatal(err)
	}
	resolve := <-set
	got := make(chan string)
	go func() { got <- readCtl(t, h) }()
	select {
	case s := <-got:
		t.Fatalf("read returned %q before the result was set", s)
	default:
	}
	resolve("1234\n", nil)
	if s := <-got; s != "1234\n" {
		t.Errorf("later result %q, want 1234", s)
	}
	// An interrupted read gives EINTR, not a result.
	if _, err := h.Write(context.Background(), []byte("later\n"), 0); err != nil {
		t.Fatal(err)
	}
	resolve = <-set
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Read(ctx, make([]byte, 10), 0); !errors.Is(err, syscall.EINTR) {
		t.Errorf("interrupted read: %v, want EINTR", err)
	}
	// A new command replaces the awaited result; the old one lands nowhere.
	if _, err := h.Write(context.Background(), []byte("now\n"), 0); err != nil {
		t.Fatal(err)
	}
	resolve("stale\n", nil)
	if s := readCtl(t, h); s != "now\n" {
		t.Errorf("after a new command: %q, want now", s)
	}
	// Outside a ctl command there is nothing to defer.
	if Later(context.Background()) != nil {
		t.Error("Later outside a command is not nil")
	}
}

// A command's second result (Then) comes on the read after the first has
// been read to its end, never in the same read; an interrupted wait for it
// leaves it for the next read, and a new command drops it.
func TestCtlThenResult(t *testing.T) {
	ready := make(chan string, 1)
	cmds := Table[any]{
		{"two", 0, 0, "two", func(ctx context.Context, _ *Caller, _ any, _ []string) (string, error) {
			Then(ctx, func(ctx context.Context) (string, error) {
				select {
				case s := <-ready:
					return s, nil
				case <-ctx.Done():
					return "", syscall.EINTR
				}
			})
			return "first\n", nil
		}},
		{"now", 0, 0, "now", func(context.Context, *Caller, any, []string) (string, error) { return "now\n", nil }},
	}
	h := openCtl(t, &CtlFile[any]{Ino: NewIno(), Owner: func() (uint32, uint32) { return 0, 0 }, Mode: 0o666, Table: cmds})
	write := func(line string) {
		t.Helper()
		if _, err := h.Write(context.Background(), []byte(line), 0); err != nil {
			t.Fatal(err)
		}
	}
	write("two\n")
	ready <- "second\n" // ready before the first read: still not in it
	buf := make([]byte, 64)
	n, err := h.Read(context.Background(), buf, 0)
	if err != nil || string(buf[:n]) != "first\n" {
		t.Fatalf("first read %q, %v; want first", buf[:n], err)
	}
	if s := readCtl(t, h); s != "second\n" {
		t.Errorf("then %q, want second", s)
	}
	if s := readCtl(t, h); s != "" {
		t.Errorf("after both results %q, want EOF", s)
	}

	write("two\n")
	if n, err := h.Read(context.Background(), buf, 0); err != nil || string(buf[:n]) != "first\n" {
		t.Fatalf("first read %q, %v; want first", buf[:n], err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Read(ctx, buf, 0); !errors.Is(err, syscall.EINTR) {
		t.Errorf("interrupted wait for the second result: %v, want EINTR", err)
	}
	got := make(chan string)
	go func() { got <- readCtl(t, h) }()
	ready <- "late\n"
	if s := <-got; s != "late\n" {
		t.Errorf("then after an interrupt %q, want late", s)
	}

	write("two\n")
	write("now\n")
	if s := readCtl(t, h); s != "now\n" {
		t.Errorf("a new command's result %q, want now alone", s)
	}
	if Then(context.Background(), nil) {
		t.Error("Then outside a command took a result")
	}
}

// testStream is a ResultStream of fixed bytes that counts its closes.
type testStream struct {
	data   *strings.Reader
	closed int
}

func (s *testStream) Read(_ context.Context, p []byte) (int, error) { return s.data.Read(p) }
func (s *testStream) Close() error                                  { s.closed++; return nil }

// A ThenStream comes after the first result, never in the same read; an
// Aside command sees it and leaves it; any other command, even a failed
// one, and the last close close it.
func TestCtlThenStream(t *testing.T) {
	var s *testStream
	var seen ResultStream
	cmds := Table[any]{
		{"run", 0, 0, "run", func(ctx context.Context, _ *Caller, _ any, _ []string) (string, error) {
			s = &testStream{data: strings.NewReader("streamed")}
			ThenStream(ctx, s)
			return "first\n", nil
		}},
		{"aside", 0, 1, "aside", func(ctx context.Context, _ *Caller, _ any, args []string) (string, error) {
			seen = Aside(ctx)
			if len(args) > 0 {
				return "", fmt.Errorf("aside takes none: %w", syscall.EINVAL)
			}
			return "ignored\n", nil
		}},
		{"now", 0, 0, "now", func(context.Context, *Caller, any, []string) (string, error) { return "now\n", nil }},
	}
	f := &CtlFile[any]{Ino: NewIno(), Owner: func() (uint32, uint32) { return 0, 0 }, Mode: 0o666, Table: cmds}
	h := openCtl(t, f)
	write := func(line string) error {
		_, err := h.Write(context.Background(), []byte(line), 0)
		return err
	}
	if err := write("run\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := h.Read(context.Background(), buf, 0); err != nil || string(buf[:n]) != "first\n" {
		t.Fatalf("first read %q, %v", buf[:n], err)
	}
	if err := write("aside\n"); err != nil {
		t.Fatal(err)
	}
	if err := write("aside x\n"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("a failed aside command: %v, want EINVAL", err)
	}
	if seen != s {
		t.Errorf("Aside saw %v, want the file's stream", seen)
	}
	if got := readCtl(t, h); got != "streamed" || s.closed != 0 {
		t.Errorf("after aside commands: %q (closed %d), want the stream, open", got, s.closed)
	}
	if err := write("now\n"); err != nil || s.closed != 1 {
		t.Errorf("a new command: %v, stream closed %d times, want once", err, s.closed)
	}
	if got := readCtl(t, h); got != "now\n" {
		t.Errorf("after a new command %q", got)
	}
	write("run\n")
	if err := write("bogus\n"); err == nil || s.closed != 1 {
		t.Errorf("a failed command: %v, stream closed %d times, want once", err, s.closed)
	}
	// Without a stream a failed aside command's text is the result.
	if err := write("aside x\n"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("a failed aside command: %v, want EINVAL", err)
	}
	if got := readCtl(t, h); !strings.HasPrefix(got, "error: aside takes none") {
		t.Errorf("after a failed aside command without a stream: %q, want its error", got)
	}
	write("run\n")
	h.Close()
	if s.closed != 1 {
		t.Errorf("the last close closed the stream %d times, want once", s.closed)
	}
	if ThenStream(context.Background(), s) || Aside(context.Background()) != nil {
		t.Error("ThenStream or Aside outside a command did something")
	}
}
