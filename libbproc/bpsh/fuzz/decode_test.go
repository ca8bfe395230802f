// Package fuzz holds the differential fuzz targets of bpsh's C front: the
// decoders of a node-set launch (libbproc/bpsh/frames.c), which read the
// master's bytes, against the Go bpsh's (package client) they stand in
// for. Each input goes through both; what they make of it (the frames,
// the answer's members, or the error, worded) must be the same.
package fuzz

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"unicode/utf8"

	"bproc/client"
)

var (
	buildOnce sync.Once
	decoder   string
	buildErr  error
)

// cDecoder builds cdecode/decode.c with the front's decoders, once; under
// AddressSanitizer and UBSan when the compiler has them.
func cDecoder(t testing.TB) string {
	buildOnce.Do(func() {
		cc, err := exec.LookPath(os.Getenv("CC"))
		if os.Getenv("CC") == "" || err != nil {
			cc, err = exec.LookPath("cc")
		}
		if err != nil {
			buildErr = fmt.Errorf("no C compiler: %w", err)
			return
		}
		dir, err := os.MkdirTemp("", "bpsh-decode")
		if err != nil {
			buildErr = err
			return
		}
		decoder = filepath.Join(dir, "decode")
		lib, _ := filepath.Glob("../../*.c")
		args := append([]string{"-std=c99", "-Wall", "-Wextra", "-Werror", "-pthread", "-O1", "-g",
			"-I..", "-I../..", "-I../../include", "-o", decoder, "cdecode/decode.c", "../frames.c", "../report.c"}, lib...)
		san := append([]string{"-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"}, args...)
		if out, err := exec.Command(cc, san...).CombinedOutput(); err != nil {
			if out, err = exec.Command(cc, args...).CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("building cdecode/decode.c: %v\n%s", err, out)
			}
		}
	})
	if buildErr != nil {
		t.Skipf("the C decoder: %v", buildErr)
	}
	return decoder
}

func runC(t *testing.T, mode string, in []byte) string {
	cmd := exec.Command(cDecoder(t), mode)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Env = append(os.Environ(), "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0", "UBSAN_OPTIONS=halt_on_error=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("decode %s on %q: %v\n%s", mode, in, err, stderr.Bytes())
	}
	return string(out)
}

func goFrames(in []byte) string {
	var b bytes.Buffer
	fr := client.NewFrameReader(bytes.NewReader(in))
	for {
		fm, err := fr.Next()
		if err == io.EOF {
			b.WriteString("EOF\n")
			return b.String()
		}
		if err != nil {
			b.WriteString("error: " + client.ErrText(err) + "\n")
			return b.String()
		}
		switch fm.Kind {
		case client.FrameEnd:
			fmt.Fprintf(&b, "%d end %s\n", fm.Node, fm.Status)
		default:
			kind := "out"
			if fm.Kind == client.FrameStderr {
				kind = "err"
			}
			fmt.Fprintf(&b, "%d %s %d\n%s\n", fm.Node, kind, len(fm.Data), fm.Data)
		}
	}
}

func goAnswer(in []byte) string {
	g, err := client.ParseSetAnswer(string(in))
	if err != nil {
		return "error: " + err.Error() + "\n"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "group %d\n", g.ID)
	for _, m := range g.Members {
		var ee *client.ExecError
		if errors.As(m.Err, &ee) {
			fmt.Fprintf(&b, "%d error %d %s\n", m.Node, uint64(ee.Errno), ee.Text)
		} else {
			fmt.Fprintf(&b, "%d %d\n", m.Node, m.Proc.Pid)
		}
	}
	return b.String()
}

func goWait(in []byte) string {
	st, err := client.ParseWait(string(in))
	if err != nil {
		return "error: " + err.Error() + "\n"
	}
	return st.String() + "\n"
}

// unassigned reports a rune Go's %q escapes as unassigned, which the C
// front's quoting prints as it is (it has no Unicode tables).
func unassigned(in []byte) bool {
	for len(in) > 0 {
		r, n := utf8.DecodeRune(in)
		if r >= 0xa0 && n > 1 && !strconv.IsPrint(r) {
			return true
		}
		in = in[n:]
	}
	return false
}

func differ(t *testing.T, mode string, in []byte, goOut string) {
	cOut := runC(t, mode, in)
	if cOut == goOut {
		return
	}
	if unassigned(in) {
		t.Skipf("%q holds a rune Go's %%q escapes for want of a Unicode table in C", in)
	}
	t.Errorf("%s %q:\n go: %q\n  c: %q", mode, in, goOut, cOut)
}

func FuzzFrames(f *testing.F) {
	for _, s := range []string{
		"", "0 out 3\nabc1 err 2\nxy0 end exit 0\n1 end signal 9 KILL\n", "3 end exit 255\n",
		"-1 end lost node 4 down\n", "2 end signal 15\n", "2 end signal 130\n", "2 end signal 34\n",
		"2 end  exit\t7 \n", "2 end exit +7\n", "2 end exit 256\n", "2 end exit 7 x\n", "2 end lost node -2 down\n",
		"2 end signal 9 SIGKILL\n", "2 end signal\u00a09\n", "2 end signal\u20039 \u00ff\u0085\n",
		"x end exit 0\n", "01 end exit 0\n", "+1 end exit 0\n", "-2 end exit 0\n", "1  end exit 0\n",
		"1 out\n", "1 out 0\n", "1 out 01\n", "1 out 1048577\n", "1 out 5\nab", "1 out 2\nab",
		"1 what 2\n", "1 end\n", "1 end \n", "1 out 3\nab\n\n", "1 out 3", "1 o\tut 3\n",
		"1 out 3\n\x00\xff\n", "1 end bad \"q\" \\ \x01 \x7f \xe2\x80\x8b \xf0\x9f\x98\x80 \xc3\x28\n",
		string(bytes.Repeat([]byte("x"), 300)) + "\n", string(bytes.Repeat([]byte("y"), 300)),
		"7 out 20000\n" + string(bytes.Repeat([]byte("z"), 20000)) + "7 end exit 1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) { differ(t, "frames", in, goFrames(in)) })
}

func FuzzAnswer(f *testing.F) {
	for _, s := range []string{
		"", "\n", "group 3\n0 100\n1 101\n", "group 3\n0 100\n2 error 112 node 2 is down: host is down\n",
		"group 3\n7 error 2 node 7: no such node\n", "group 3\n7 error 5\n", "group 3\n7 error 5 \n",
		"group 0\n", "group -1\n", "group x\n", "group  3\n", "groups 3\n", "group 3\n\n", "group 3\n0 0\n",
		"group 3\n0 -5\n", "group 3\n-2 5\n", "group 3\n0 5 6\n", "group 3\n0 error x y\n", "group 3\n0 error 0 y\n",
		"group 3\n0\n", "group 3\n+0 +5\n", "group 3\n0 error 13 a  b\tc\n", "group 3\n-1 9\n",
		"group 99999999999999999999\n", "group 3\n0 99999999999999999999\n", "group 3\r\n0 1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) { differ(t, "answer", in, goAnswer(in)) })
}

func FuzzWait(f *testing.F) {
	for _, s := range []string{
		"exit 0", "exit 255", "exit 256", "exit -1", "signal 9", "signal 9 KILL", "signal 0", "signal 128 X",
		"signal 129", "lost node 3 down", "lost node -1 down", "lost node -2 down", "lost node 3 up",
		" exit  3 ", "exit\u00a03", "exit\u30003", "exit 3\n", "", "\xff", "exit 3 4 5 6 7",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) { differ(t, "wait", in, goWait(in)) })
}
