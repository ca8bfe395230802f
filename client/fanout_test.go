package client

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestFrameReader(t *testing.T) {
	in := "3 out 6\nhello\n-1 err 4\noops3 end exit 2\n-1 end signal 9 KILL\n7 end lost node 7 down\n"
	fr := NewFrameReader(strings.NewReader(in))
	var got []string
	for {
		f, err := fr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch f.Kind {
		case FrameStdout, FrameStderr:
			got = append(got, strings.Join([]string{strconv.Itoa(f.Node), [3]string{"", "1", "2"}[f.Kind], string(f.Data)}, "|"))
		case FrameEnd:
			got = append(got, strconv.Itoa(f.Node)+"|end|"+f.Status.String())
		}
	}
	want := "3|1|hello\n;-1|2|oops;3|end|exit 2;-1|end|signal 9 KILL;7|end|lost node 7 down"
	if s := strings.Join(got, ";"); s != want {
		t.Errorf("frames %q, want %q", s, want)
	}
}

// Malformed streams are errors, never a frame nor a crash.
func TestFrameReaderRefuses(t *testing.T) {
	for _, in := range []string{
		"3 out 6\nhel",                         // cut inside the data
		"3 out 0\n",                            // empty frame
		"3 out 9999999999\n",                   // beyond MaxFrame
		"3 out -1\n",                           // negative
		"x out 1\na",                           // node not a number
		"-2 out 1\na",                          // below the master
		"3 what 1\na",                          // unknown kind
		"3 end exit 300\n",                     // bad status
		"3 out 1",                              // header without newline
		strings.Repeat("9", 300) + " out 1\na", // header too long
	} {
		_, err := NewFrameReader(strings.NewReader(in)).Next()
		if err == nil || err == io.EOF {
			t.Errorf("%.40q: err %v, want a decoding error", in, err)
		}
	}
}

func TestParseSetAnswer(t *testing.T) {
	g, err := ParseSetAnswer("group 4\n0 17\n1 error 13 node 1: permission denied\n2 18\n")
	if err != nil {
		t.Fatal(err)
	}
	if g.ID != 4 || len(g.Members) != 3 || g.Members[0].Proc.Pid != 17 || g.Members[2].Proc.Node != 2 {
		t.Fatalf("parsed %+v", g)
	}
	var ee *ExecError
	if !errors.As(g.Members[1].Err, &ee) || ee.Errno != syscall.EACCES {
		t.Errorf("node 1: %v, want EACCES", g.Members[1].Err)
	}
	for _, bad := range []string{"", "17\n", "group x\n", "group 1\n0\n", "group 1\nx 3\n", "group 1\n0 error\n", "group 1\n0 -5\n"} {
		if _, err := ParseSetAnswer(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// FuzzFrameReader: whatever the bytes, Next returns frames or an error,
// and a frame's data is what its header announced.
func FuzzFrameReader(f *testing.F) {
	for _, s := range []string{
		"3 out 6\nhello\n3 end exit 0\n",
		"-1 err 4\noops-1 end signal 9 KILL\n",
		"7 end lost node 7 down\n",
		"3 out 1048577\n",
		"3 out 2\na",
		"\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		fr := NewFrameReader(bytes.NewReader(in))
		for i := 0; i < 1000; i++ {
			fm, err := fr.Next()
			if err != nil {
				return
			}
			if (fm.Kind == FrameStdout || fm.Kind == FrameStderr) && (len(fm.Data) == 0 || len(fm.Data) > MaxFrame) {
				t.Fatalf("frame of %d bytes", len(fm.Data))
			}
		}
	})
}
