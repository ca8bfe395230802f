package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"bproc/client/clienttest"
	"bproc/cmd/internal/clitest"
)

func TestLineWriter(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		chunks []string
		want   []string // what each emit got, in order
	}{
		{"", []string{"a\nb\n"}, []string{"a\nb\n"}},
		{"", []string{"par", "tial\nrest"}, []string{"partial\n", "rest"}},
		{"  3: ", []string{"x\ny\n"}, []string{"  3: x\n  3: y\n"}},
		{"  3: ", []string{"x", "y\nz", "\n"}, []string{"  3: xy\n", "  3: z\n"}},
		{" 12: ", []string{"no newline"}, []string{" 12: no newline"}},
		{" 12: ", []string{"\n\n"}, []string{" 12: \n 12: \n"}},
	} {
		lw := &lineWriter{prefix: []byte(tc.prefix)}
		var got []string
		emit := func(p []byte) error { got = append(got, string(p)); return nil }
		for _, c := range tc.chunks {
			// The caller reuses its buffer: copy so aliasing bugs show.
			buf := []byte(c)
			lw.write(buf, emit)
			for i := range buf {
				buf[i] = '#'
			}
		}
		lw.flush(emit)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("prefix %q chunks %q: got %q, want %q", tc.prefix, tc.chunks, got, tc.want)
		}
	}
}

func TestLineWriterLongLine(t *testing.T) {
	lw := &lineWriter{prefix: []byte("  1: "), maxLine: 8}
	var got []string
	emit := func(p []byte) error { got = append(got, string(p)); return nil }
	for _, c := range []string{"abcde", "fghij", "klm\nnext", "\n"} {
		lw.write([]byte(c), emit)
	}
	want := []string{"  1: abcdefghij", "klm\n", "  1: next\n"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestSequentialOutput(t *testing.T) {
	var so, se bytes.Buffer
	o := newOutput(3, &so, &se, &options{seq: true, divider: true})
	o.setNodes([]int{4, 5, 6})
	o.write(2, 1, []byte("six\n"))
	o.write(1, 1, []byte("five\n"))
	o.write(0, 1, []byte("four\n"))
	o.write(1, 2, []byte("err5\n"))
	o.done(2) // finishing out of order holds node 6 back
	if so.String() != divider(4)+"four\n" {
		t.Fatalf("before node 4 is done: %q", so.String())
	}
	o.done(0)
	o.write(1, 1, []byte("five again\n"))
	o.done(1)
	want := divider(4) + "four\n" + divider(5) + "five\nfive again\n" + divider(6) + "six\n"
	if so.String() != want {
		t.Errorf("stdout %q, want %q", so.String(), want)
	}
	if se.String() != "err5\n" {
		t.Errorf("stderr %q", se.String())
	}
	if !strings.Contains(divider(5), "node 5") || !strings.HasSuffix(divider(5), "\n") {
		t.Errorf("divider %q", divider(5))
	}
}

func TestPrologue(t *testing.T) {
	clitest.Prologue(t, "bpsh", run, "nodespec [options] command",
		[]string{},
		[]string{"3"},
		[]string{"-a"},
		[]string{"-a", "-A", "true"},
		[]string{"x!", "true"},
		[]string{"-u", "x", "0", "true"},
		[]string{"-g", "-s", "0", "true"},
		[]string{"1,,2", "true"},
		[]string{"--bogus", "0", "true"},
		[]string{"-b", "-5", "0", "true"},
		[]string{"-n", "-I", "/dev/null", "0", "true"},
	)
	// BProc's bpsh -v is the version.
	if code, out, _ := clitest.Call(run, "-v"); code != 0 || !strings.HasPrefix(out, "bpsh (bproc) ") {
		t.Errorf("-v: exit %d, %q", code, out)
	}
}

func TestFixMasterSpec(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"-1 hostname", "master hostname"},
		{"-1,0-3 ls -1", "master,0-3 ls -1"},
		{"-p -1 ls -1", "-p master ls -1"},
		{"-b 4096 -1 ls", "-b 4096 master ls"},
		{"-pb 4096 -1 ls", "-pb 4096 master ls"},
		{"-b4096 -1 ls", "-b4096 master ls"},
		{"--buffer 4096 -1 ls", "--buffer 4096 master ls"},
		{"-- -1 ls", "-- master ls"},
		{"0 ls -1", "0 ls -1"},
		{"-a ls -1", "-a ls -1"},
		{"-pa ls -1", "-pa ls -1"},
		{"-I -1 0 cat", "-I -1 0 cat"}, // a file named -1
		{"--stdin -1 0 cat", "--stdin -1 0 cat"},
		{"-t -1 ls", "-t master ls"},
		{"-u 5 -1 ls", "-u 5 master ls"},
	} {
		var help bytes.Buffer
		c := newCommand(&options{}, &help, &help)
		got := strings.Join(fixMasterSpec(c, strings.Fields(tc.in)), " ")
		if got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

// bpsh against an in-process master over 9P (node -1 runs the jobs).
func TestLive(t *testing.T) {
	clienttest.Start(t)
	dir := t.TempDir()
	out, errf := filepath.Join(dir, "out"), filepath.Join(dir, "err")
	read := func(name string) string {
		b, _ := os.ReadFile(name)
		return string(b)
	}
	in := filepath.Join(dir, "in")
	os.WriteFile(in, []byte("line one\nline two\n"), 0o644)
	for _, tc := range []struct {
		args       []string
		code       int
		out, errIn string
	}{
		{[]string{"-1", "sh", "-c", "echo hi; echo oops >&2; exit 4"}, 4, "hi\n", "oops"},
		{[]string{"-p", "master", "printf", "a\\nb"}, 0, " -1: a\n -1: b", ""},
		{[]string{"-1", "sh", "-c", "kill -9 $$"}, failStatus, "", ""},
		{[]string{"-1", "/no/such/program"}, failStatus, "", ""},
		{[]string{"-n", "-1", "cat"}, 0, "", ""},
		{[]string{"-I", in, "-1", "cat"}, 0, "line one\nline two\n", ""},
		{[]string{"-I", in, "-s", "-d", "-p", "master", "wc", "-l"}, 0, divider(-1) + " -1: 2\n", ""},
		// Options after the nodespec are bpsh's, as in BProc; the command's stay its own.
		{[]string{"master", "-p", "printf", "x\\n"}, 0, " -1: x\n", ""},
		{[]string{"-1", "-n", "sh", "-c", "echo $BPROC_RANK $BPROC_NODE $BPROC_NPROCS"}, 0, "0 -1 1\n", ""},
		{[]string{"-g", "master", "echo", "same"}, 0, "---------------\nmaster (1)\n---------------\nsame\n", ""},
		{[]string{"-u", "1", "master", "sleep", "30"}, timeoutStatus, "", ""}, // bpsh: master: command timeout, on the real stderr
		{[]string{"7", "true"}, failStatus, "", ""},
	} {
		args := append([]string{"-O", out, "-E", errf}, tc.args...)
		code := run(args, os.Stdin, os.Stdout, os.Stderr)
		if code != tc.code {
			t.Errorf("%q: exit %d, want %d", tc.args, code, tc.code)
		}
		if got := read(out); got != tc.out {
			t.Errorf("%q: stdout %q, want %q", tc.args, got, tc.out)
		}
		if got := read(errf); !strings.Contains(got, tc.errIn) {
			t.Errorf("%q: stderr %q lacks %q", tc.args, got, tc.errIn)
		}
	}
}
