package client

import (
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"bproc/fs/synth"
)

func cluster(states ...string) []NodeStatus {
	var out []NodeStatus
	out = append(out, NodeStatus{Node: -1, State: "up"})
	for i, s := range states {
		out = append(out, NodeStatus{Node: i, State: s, Host: fmt.Sprintf("node%d.cluster", i), Addr: fmt.Sprintf("10.0.0.%d", 10+i)})
	}
	return out
}

func TestNodeSpecExpand(t *testing.T) {
	c := cluster("up", "down", "up", "error", "up", "unavailable")
	tests := []struct {
		spec string
		want []int
	}{
		{"3", []int{3}},
		{"n3", []int{3}},
		{"0-2", []int{0, 1, 2}},
		{"n0-n2", []int{0, 1, 2}},
		{"1,3,4-", []int{1, 3, 4, 5}},
		{"4-", []int{4, 5}},
		{"all", []int{0, 1, 2, 3, 4, 5}},
		{"allup", []int{0, 2, 4}},
		{"allnotdown", []int{0, 2, 3, 4, 5}},
		{"allerror", []int{3}},
		{"master", []int{-1}},
		{"-1", []int{-1}},
		{"-1,0", []int{-1, 0}},
		{"2,1,2,0-1", []int{2, 1, 0}},
		{"9", []int{9}}, // unknown nodes are kept for the caller to report
		{"7-", nil},     // open range past the last node is empty
		{" 1 , 2 ", []int{1, 2}},
		{".3", []int{3}}, // Scyld
		{"n[0-2,5]", []int{0, 1, 2, 5}},
		{"n[4],n[0-1]", []int{4, 0, 1}},
		{"0-5,^3", []int{0, 1, 2, 4, 5}},
		{"all,^n[0-3]", []int{4, 5}},
		{"1-&allup", []int{2, 4}},
		{"allup&^0", []int{2, 4}},
		{"node2", []int{2}},
		{"node2.cluster,10.0.0.14", []int{2, 4}},
	}
	for _, tc := range tests {
		got, err := ExpandNodeSpec(tc.spec, c)
		if err != nil {
			t.Errorf("%q: %v", tc.spec, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %v, want %v", tc.spec, got, tc.want)
		}
	}
}

func TestNodeSpecErrors(t *testing.T) {
	// The error names the token at fault: mostly the whole spec.
	tests := []struct{ spec, token string }{
		{"", ""},
		{"1,,2", `""`},
		{"2,fo/o", `"fo/o"`},
	}
	for _, spec := range []string{"x!", "^3", "&allup", "n[1-]", "n[a]", "3-1", "-2", "allsleepy", "n", "1-x", "1.5"} {
		tests = append(tests, struct{ spec, token string }{spec, fmt.Sprintf("%q", spec)})
	}
	for _, tc := range tests {
		_, err := ParseNodeSpec(tc.spec)
		if err == nil {
			t.Errorf("%q: no error", tc.spec)
			continue
		}
		if !strings.Contains(err.Error(), tc.token) {
			t.Errorf("%q: error %q does not name %s", tc.spec, err, tc.token)
		}
	}
}

func TestNodeSpecUnknownHost(t *testing.T) {
	got, err := ExpandNodeSpec("1,nosuchhost", cluster("up", "up"))
	if err == nil || !strings.Contains(err.Error(), `"nosuchhost"`) {
		t.Errorf("error %v does not name the host", err)
	}
	if !reflect.DeepEqual(got, []int{1}) {
		t.Errorf("got %v, want [1]", got)
	}
}

func TestFoldNodes(t *testing.T) {
	for _, tc := range []struct {
		in   []int
		want string
	}{
		{[]int{3}, "n3"},
		{[]int{3, 0, 1, 2, 7}, "n[0-3,7]"},
		{[]int{-1, 2}, "master,n2"},
		{[]int{-1}, "master"},
	} {
		if got := FoldNodes(tc.in); got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNeedsList(t *testing.T) {
	for spec, want := range map[string]bool{"1,2": false, "0-3": false, "2-": true, "allup": true, "master": false, "n[0-3]": false, "node3": true} {
		ns, err := ParseNodeSpec(spec)
		if err != nil {
			t.Fatal(err)
		}
		if ns.NeedsList() != want {
			t.Errorf("%q: NeedsList = %v", spec, !want)
		}
	}
}

func TestFormatRanges(t *testing.T) {
	for _, tc := range []struct {
		in   []int
		want string
	}{
		{nil, ""},
		{[]int{0}, "0"},
		{[]int{0, 1, 2, 3}, "0-3"},
		{[]int{0, 1, 3, 5, 6}, "0-1,3,5-6"},
		{[]int{-1, 0, 1}, "-1-1"},
	} {
		if got := FormatRanges(tc.in); got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseNodeStatus(t *testing.T) {
	s, err := ParseNodeStatus("3 up 10.77.0.13 ---x--x--x root root node3")
	if err != nil {
		t.Fatal(err)
	}
	want := NodeStatus{Node: 3, State: "up", Addr: "10.77.0.13", Mode: 0o111, ModeStr: "---x--x--x", User: "root", Group: "root", Host: "node3"}
	if s != want {
		t.Errorf("got %+v, want %+v", s, want)
	}
	if s.String() != "3 up 10.77.0.13 ---x--x--x root root node3" {
		t.Errorf("String: %q", s.String())
	}
	m, err := ParseNodeStatus("-1 up - -rwxr-x--x 1000 wheel -")
	if err != nil || m.Node != -1 || m.Mode != 0o751 || m.User != "1000" {
		t.Errorf("master: %+v %v", m, err)
	}
	for _, bad := range []string{
		"",
		"3 up 10.0.0.1 ---x--x--x root root",
		"x up - ---x--x--x root root -",
		"-2 up - ---x--x--x root root -",
		"3 up - ---x--x- root root -",
		"3 up - ---q--x--x root root -",
		"3 up - ---x--x--x root root node3 extra",
	} {
		if _, err := ParseNodeStatus(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	list, err := ParseNodeStatusList("0 up - ---x--x--x root root a\n\n1 down - ---------- root root -\n")
	if err != nil || len(list) != 2 || list[1].State != "down" || list[1].Mode != 0 {
		t.Errorf("list: %+v %v", list, err)
	}
}

func TestParseModeString(t *testing.T) {
	for s, want := range map[string]fs.FileMode{
		"----------": 0,
		"-rwxrwxrwx": 0o777,
		"drwxr-xr-x": fs.ModeDir | 0o755,
		"---s--x--t": fs.ModeSetuid | fs.ModeSticky | 0o111,
		"---S------": fs.ModeSetuid,
		"--x--x--x":  0o111,
	} {
		got, err := ParseModeString(s)
		if err != nil || got != want {
			t.Errorf("%q: got %v %v, want %v", s, got, err, want)
		}
	}
}

func TestParseProcStatus(t *testing.T) {
	p, err := ParseProcStatus("1234 3 running 1000 100 /bin/sleep 10")
	if err != nil {
		t.Fatal(err)
	}
	if (p != ProcStatus{Pid: 1234, Node: 3, State: "running", Uid: 1000, Gid: 100, Command: "/bin/sleep 10"}) {
		t.Errorf("got %+v", p)
	}
	if _, err := ParseProcStatus("12 x running 0 0 cmd"); err == nil {
		t.Error("bad node accepted")
	}
	if _, err := ParseProcStatus("12 1 running 0"); err == nil {
		t.Error("short line accepted")
	}
}

func TestParseWait(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Status
		code int
	}{
		{"exit 0", Status{Kind: Exited}, 0},
		{"exit 3", Status{Kind: Exited, Code: 3}, 3},
		{"signal 9 KILL", Status{Kind: Signaled, Signal: 9, Name: "KILL"}, -1},
		{"signal 15 SIGTERM", Status{Kind: Signaled, Signal: 15, Name: "TERM"}, -1},
		{"signal 2", Status{Kind: Signaled, Signal: 2, Name: "INT"}, -1},
		{"lost node 4 down", Status{Kind: Lost, Node: 4}, -1},
		{" exit 1 ", Status{Kind: Exited, Code: 1}, 1},
	} {
		got, err := ParseWait(tc.line)
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		if got != tc.want || got.ExitCode() != tc.code {
			t.Errorf("%q: got %+v (code %d), want %+v (code %d)", tc.line, got, got.ExitCode(), tc.want, tc.code)
		}
		if strings.Fields(got.String())[0] != strings.Fields(tc.line)[0] {
			t.Errorf("%q: String %q", tc.line, got.String())
		}
	}
	for _, bad := range []string{"", "exit", "exit x", "exit 256", "exit -1", "signal 0 X", "lost node x down", "lost 3", "died 3"} {
		if _, err := ParseWait(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// Arguments must survive the master's splitter exactly, whatever they hold.
func TestQuoteRoundTrip(t *testing.T) {
	args := []string{
		"", "plain", "two words", "it's", "'", "''", `\`, `a\'b`, `"dq"`, "$HOME", "`x`",
		"tab\there", "new\nline", "-c", "--", "*?[]", "ünïcode", "semi;colon|pipe&", "  lead", "trail  ",
	}
	for _, a := range args {
		words, err := synth.SplitCommand("x " + synth.Quote(a) + " y")
		if err != nil {
			t.Errorf("%q: %v", a, err)
			continue
		}
		if len(words) != 3 || words[1] != a {
			t.Errorf("%q: split back as %q", a, words)
		}
	}
	cmd := ExecCommand("/bin/echo", append([]string{"echo"}, args...), "/my dir", []string{"A=1", "B=x y'z"}, "echo", true, true)
	words, err := synth.SplitCommand(cmd)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"exec", "-i", "-n", "-c", "/my dir", "-e", "A=1", "-e", "B=x y'z", "-a", "echo", "--", "/bin/echo"}
	want = append(want, args...)
	if !reflect.DeepEqual(words, want) {
		t.Errorf("command splits as\n%q\nwant\n%q", words, want)
	}
	// argv0 equal to the path and detached mode leave their options out.
	words, _ = synth.SplitCommand(ExecCommand("/bin/true", []string{"/bin/true"}, "", nil, "/bin/true", false, false))
	if !reflect.DeepEqual(words, []string{"exec", "--", "/bin/true"}) {
		t.Errorf("minimal command: %q", words)
	}
}

func TestExecErrorText(t *testing.T) {
	e := &ExecError{Path: "/bin/x", Errno: syscall.ENOENT, Text: "whatever"}
	if e.Error() != "exec /bin/x: No such file or directory" {
		t.Errorf("got %q", e.Error())
	}
	if !errors.Is(e, syscall.ENOENT) {
		t.Error("errno not wrapped")
	}
	e = &ExecError{Path: "/bin/true", Errno: syscall.EHOSTDOWN, Text: "error: node 2 is down: host is down\n"}
	if e.Error() != "exec /bin/true: node 2 is down: Host is down" {
		t.Errorf("got %q", e.Error())
	}
	e = &ExecError{Path: "/bin/x", Errno: syscall.EINVAL, Text: "error: exec: unknown option -z\n"}
	if e.Error() != "exec /bin/x: Invalid argument (exec: unknown option -z)" {
		t.Errorf("got %q", e.Error())
	}
}

func TestResolvePath(t *testing.T) {
	t.Setenv("PATH", "/usr/bin:/bin")
	p, err := ResolvePath("sh")
	if err != nil || !strings.HasSuffix(p, "/sh") || p[0] != '/' {
		t.Errorf("sh: %q %v", p, err)
	}
	_, err = ResolvePath("no-such-command-bproc")
	if !errors.Is(err, syscall.ENOENT) || !strings.Contains(err.Error(), "No such file") {
		t.Errorf("missing: %v", err)
	}
	p, err = ResolvePath("./x")
	if err != nil || p[0] != '/' || !strings.HasSuffix(p, "/x") {
		t.Errorf("relative: %q %v", p, err)
	}
}

func TestCtlErrorText(t *testing.T) {
	for _, tc := range []struct {
		e    CtlError
		want string
	}{
		{CtlError{Errno: syscall.EPERM}, "Operation not permitted"},
		{CtlError{Errno: syscall.EPERM, Text: "error: operation not permitted\n"}, "Operation not permitted"},
		{CtlError{Errno: syscall.EPERM, Text: "error: state: operation not permitted\n"}, "state: Operation not permitted"},
		{CtlError{Errno: syscall.EINVAL, Text: "error: unknown state \"x\"\n"}, "Invalid argument (unknown state \"x\")"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.e, got, tc.want)
		}
	}
}

func TestMasterArg(t *testing.T) {
	for in, want := range map[string]string{"-1": "master", "-1,2-3": "master,2-3", "-1x": "-1x", "-12": "-12", "-1,": "-1,", "-l": "-l", "3": "3"} {
		if got, _ := MasterArg(in); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}

// Nodespecs come from users' command lines and scripts: whatever the
// bytes, parsing and resolving end in nodes or an error, never a panic.
func FuzzNodeSpec(f *testing.F) {
	for _, s := range []string{"3", "n[0-3,7]", "0-7,^3", "2-&allup", ".4", "node3", "10.0.0.12", "n[", "^", "&", "n[]", "a,,b", "allnot", "-1,0-3", "n[1-2]&^n1"} {
		f.Add(s)
	}
	c := cluster("up", "down", "up")
	f.Fuzz(func(t *testing.T, s string) {
		ns, err := ParseNodeSpec(s)
		if err != nil {
			return
		}
		ns.Resolve(c)
		ns.NeedsList()
	})
}
