package vmadump

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildDir  string
	buildMu   sync.Mutex
	buildDone = map[string]string{}
)

func TestMain(m *testing.M) {
	if os.Getenv("VMADT_HELPER") != "" {
		os.Exit(helperMain())
	}
	d, err := os.MkdirTemp("", "vmadt-build")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// needRoot skips tests that ptrace and restore: they need root (or
// CAP_CHECKPOINT_RESTORE) and a compiler.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: dump and restore tests need root (ptrace of any process, PR_SET_MM_MAP with an exe)")
	}
}

// buildC compiles testdata sources (the first names the program) with gcc,
// once per test binary run.
func buildC(t testing.TB, static bool, srcs ...string) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("skipping: gcc not found")
	}
	name := strings.TrimSuffix(srcs[0], ".c")
	if static {
		name += "_static"
	} else {
		name += "_dyn"
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := buildDone[name]; ok {
		return p
	}
	out := filepath.Join(buildDir, name)
	args := []string{"-O1", "-Wall", "-o", out}
	if static {
		args = append(args, "-static")
	}
	for _, s := range srcs {
		args = append(args, filepath.Join("testdata", s))
	}
	if strings.Contains(name, "threads") {
		args = append(args, "-pthread")
	}
	cmd := exec.Command("gcc", args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc %v: %v\n%s", args, err, b)
	}
	buildDone[name] = out
	return out
}

// prog is a test program running under the test.
type prog struct {
	cmd *exec.Cmd
	out *bufio.Reader
	in  io.WriteCloser
	raw *os.File // under out
}

// startProg runs path and waits until it prints a line starting with ready.
func startProg(t testing.TB, ready string, path string, args ...string) *prog {
	t.Helper()
	return startCmd(t, ready, exec.Command(path, args...))
}

// startCmd starts cmd with its stdin and stdout as pipes and waits until
// it prints a line starting with ready.
func startCmd(t testing.TB, ready string, cmd *exec.Cmd) *prog {
	t.Helper()
	path := cmd.Path
	cmd.Env = append(cmd.Environ(), "VMADT_ENV=hello")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &prog{cmd: cmd, out: bufio.NewReader(stdout), in: stdin, raw: stdout.(*os.File)}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := readLineTimeout(p.out, 20*time.Second)
	if err != nil {
		t.Fatalf("%s: waiting for %q: %v", path, ready, err)
	}
	if !strings.HasPrefix(line, ready) {
		t.Fatalf("%s: got %q, want a line starting with %q", path, line, ready)
	}
	return p
}

func readLineTimeout(r *bufio.Reader, d time.Duration) (string, error) {
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := r.ReadString('\n')
		ch <- res{strings.TrimRight(s, "\n"), err}
	}()
	select {
	case x := <-ch:
		return x.s, x.err
	case <-time.After(d):
		return "", fmt.Errorf("timed out after %v", d)
	}
}

// dumpProg dumps p (killing it) and returns the image.
func dumpProg(t testing.TB, p *prog, opts DumpOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Dump(p.cmd.Process.Pid, &buf, opts); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	return buf.Bytes()
}

// restored is a restored process whose stdin and stdout are pipes.
type restored struct {
	proc *Process
	out  *os.File
	in   *os.File
}

func restoreImage(t testing.TB, img []byte) (*restored, error) {
	t.Helper()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Restore(bytes.NewReader(img), RestoreOptions{Stdin: inR, Stdout: outW})
	outW.Close()
	inR.Close()
	if err != nil {
		outR.Close()
		inW.Close()
		return nil, err
	}
	t.Cleanup(func() {
		_ = p.Signal(syscallKILL)
		_, _ = p.Wait()
		outR.Close()
		inW.Close()
	})
	return &restored{proc: p, out: outR, in: inW}, nil
}

// output reads everything the restored process prints until it exits,
// with a deadline, and its exit code.
func (r *restored) output(t testing.TB, d time.Duration) (string, int) {
	t.Helper()
	done := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(r.out)
		done <- b
	}()
	var out []byte
	select {
	case out = <-done:
	case <-time.After(d):
		_ = r.proc.Signal(syscallKILL)
		out = <-done
		t.Errorf("restored process did not finish within %v; output so far:\n%s", d, out)
	}
	st, err := r.proc.Wait()
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	return string(out), st.ExitCode()
}

// verdict asserts the program's own verdict line.
func verdict(t testing.TB, out string) {
	t.Helper()
	if !strings.Contains(out, "VERDICT PASS") {
		t.Errorf("restored program did not pass its own checks:\n%s", out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "FAIL") {
			t.Errorf("restored program: %s", l)
		}
	}
}
