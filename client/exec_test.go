package client

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"bproc/fs/synth"
)

// fakeTree answers ctl, wait and stdout like the master does, and records
// the commands written.
type fakeTree struct {
	cmds  [][]string
	wait  string
	fail  syscall.Errno // errno for exec writes, 0: succeed
	text  string        // error text then read back
	end   string        // exec -w's second answer
	opens []string
	nodes map[int]bool
}

type fakeFile struct {
	t      *fakeTree
	name   string
	result []byte
	pos    int
	then   []byte
}

func (t *fakeTree) Open(name string, flag int) (File, error) {
	t.opens = append(t.opens, name)
	switch {
	case strings.HasSuffix(name, "/ctl") && strings.HasPrefix(name, "node/"):
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "node/"), "/ctl"))
		if err != nil || !t.nodes[n] {
			return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.ENOENT}
		}
	case strings.HasPrefix(name, "proc/"):
	default:
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.ENOENT}
	}
	f := &fakeFile{t: t, name: name}
	switch {
	case strings.HasSuffix(name, "/wait"):
		f.result = []byte(t.wait)
	case strings.HasSuffix(name, "/stdout"):
		f.result = []byte("out\n")
	}
	return f, nil
}

func (f *fakeFile) Write(p []byte) (int, error) {
	words, err := synth.SplitCommand(string(p))
	if err != nil {
		f.result = []byte("error: " + err.Error() + "\n")
		return 0, syscall.EINVAL
	}
	f.t.cmds = append(f.t.cmds, words)
	f.pos = 0
	if words[0] == "exec" && f.t.fail != 0 {
		f.result = []byte(f.t.text)
		return 0, f.t.fail
	}
	f.result = []byte("42\n")
	if words[0] == "exec" && len(words) > 2 && words[2] == "-w" {
		f.then = []byte(f.t.end)
	}
	return len(p), nil
}

func (f *fakeFile) Read(p []byte) (int, error) {
	if f.pos >= len(f.result) && f.then != nil {
		f.result, f.pos, f.then = f.then, 0, nil
	}
	if f.pos >= len(f.result) {
		return 0, io.EOF
	}
	n := copy(p, f.result[f.pos:])
	f.pos += n
	return n, nil
}

func (f *fakeFile) Close() error                          { return nil }
func (t *fakeTree) Stat(string) (fs.FileInfo, error)      { return nil, syscall.ENOSYS }
func (t *fakeTree) ReadDir(string) ([]fs.DirEntry, error) { return nil, syscall.ENOSYS }
func (t *fakeTree) Chmod(string, fs.FileMode) error       { return syscall.ENOSYS }
func (t *fakeTree) Chown(string, int, int) error          { return syscall.ENOSYS }
func (t *fakeTree) Close() error                          { return nil }

func TestExec(t *testing.T) {
	ft := &fakeTree{wait: "signal 9 SIGKILL\n", nodes: map[int]bool{3: true, -1: true}}
	p, err := Exec(ft, 3, []string{"sh", "-c", "echo 'hi there'"}, ExecOptions{Dir: "/w d", Env: []string{"A=b c"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Pid != 42 || p.Node != 3 || !strings.HasSuffix(p.Path, "/sh") {
		t.Errorf("proc %+v", p)
	}
	want := []string{"exec", "-i", "-c", "/w d", "-e", "A=b c", "-a", "sh", "--", p.Path, "-c", "echo 'hi there'"}
	if !reflect.DeepEqual(ft.cmds[0], want) {
		t.Errorf("command %q, want %q", ft.cmds[0], want)
	}
	st, err := p.Wait()
	if err != nil || st.Kind != Signaled || st.Signal != 9 || st.Name != "KILL" {
		t.Errorf("wait: %+v %v", st, err)
	}
	r, _ := p.Stdout()
	b, _ := io.ReadAll(r)
	if string(b) != "out\n" {
		t.Errorf("stdout %q", b)
	}
	if err := p.Kill(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if got := ft.cmds[len(ft.cmds)-1]; !reflect.DeepEqual(got, []string{"kill", "INT"}) {
		t.Errorf("kill wrote %q", got)
	}

	// Over a non-mount tree the caller's environment and cwd go along.
	ft.cmds = nil
	os.Setenv("BPROC_TEST_ENV", "x y")
	if _, err := Exec(ft, -1, []string{"/bin/true"}, ExecOptions{NullStdin: true, Detached: true}); err != nil {
		t.Fatal(err)
	}
	cmd := ft.cmds[0]
	if cmd[1] != "-n" || cmd[2] != "-c" || !strings.Contains(strings.Join(cmd, "\x00"), "\x00BPROC_TEST_ENV=x y\x00") {
		t.Errorf("remote command %q", cmd)
	}
	if cmd[len(cmd)-1] != "/bin/true" || cmd[len(cmd)-2] != "--" {
		t.Errorf("path not last: %q", cmd)
	}
}

func TestExecErrors(t *testing.T) {
	ft := &fakeTree{nodes: map[int]bool{0: true}, fail: syscall.ENOENT, text: "error: /bin/nope: no such file or directory\n"}
	_, err := Exec(ft, 0, []string{"/bin/nope"}, ExecOptions{})
	if !errors.Is(err, syscall.ENOENT) || err.Error() != "exec /bin/nope: No such file or directory" {
		t.Errorf("missing binary: %v", err)
	}
	ft.fail, ft.text = syscall.EHOSTDOWN, "error: node 0 is down: host is down\n"
	_, err = Exec(ft, 0, []string{"/bin/true"}, ExecOptions{})
	if !errors.Is(err, syscall.EHOSTDOWN) || !strings.Contains(err.Error(), "node 0 is down: Host is down") {
		t.Errorf("node down: %v", err)
	}
	_, err = Exec(ft, 7, []string{"/bin/true"}, ExecOptions{})
	if err == nil || err.Error() != "no such node" {
		t.Errorf("missing node: %v", err)
	}
	if _, err = Exec(ft, 0, nil, ExecOptions{}); err == nil {
		t.Error("empty argv accepted")
	}
	var buf bytes.Buffer
	if _, err := Copy(&buf, strings.NewReader(strings.Repeat("x", 100000)), 4096); err != nil || buf.Len() != 100000 {
		t.Errorf("Copy: %d %v", buf.Len(), err)
	}
}

// An Early exec writes exec -b -w and reads the end from the same ctl:
// a wait line, or the start's failure on the node as an *ExecError
// worded as a failed write would be.
func TestExecEarly(t *testing.T) {
	ft := &fakeTree{end: "exit 3\n", nodes: map[int]bool{1: true}}
	p, err := Exec(ft, 1, []string{"/bin/x"}, ExecOptions{Early: true, Dir: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if got := ft.cmds[0][:4]; !reflect.DeepEqual(got, []string{"exec", "-b", "-w", "-i"}) {
		t.Errorf("command begins %q", got)
	}
	st, err := p.Wait()
	if err != nil || !reflect.DeepEqual(st, Status{Kind: Exited, Code: 3}) {
		t.Errorf("wait: %+v, %v; want exit 3", st, err)
	}
	if len(ft.opens) != 1 {
		t.Errorf("opened %q; want only node/1/ctl", ft.opens)
	}

	ft.end = `failed 8 exec /bin/x: fetching: a\nb: exec format error` + "\n"
	p, err = Exec(ft, 1, []string{"/bin/x"}, ExecOptions{Early: true, Dir: "/"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Wait()
	var ee *ExecError
	if !errors.As(err, &ee) || ee.Errno != syscall.ENOEXEC || ee.Text != "exec /bin/x: fetching: a\nb: exec format error" {
		t.Fatalf("failed start: %#v", err)
	}
	if got := err.Error(); got != "exec /bin/x: Exec format error" {
		t.Errorf("message %q", got)
	}
	for _, bad := range []string{"failed x y", "failed 0 z", "failed 99999 z"} {
		if _, ok := parseFailed("/p", bad); ok {
			t.Errorf("%q taken as a failed start", bad)
		}
	}
}
