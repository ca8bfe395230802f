package job

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"bproc/fs/slaveproto"
	"bproc/vmadump"
)

func TestMain(m *testing.M) {
	RunReaperIfAsked() // Slave.Reaper starts this binary again as the reaper
	os.Exit(m.Run())
}

// shellScript answers "got X" to a line X, and to "bg" starts a sleep in
// the background (in its process group) and tells its pid.
const shellScript = `echo ready; while read x; do if [ "$x" = bg ]; then sleep 1000 & echo "bg $!"; else echo "got $x"; fi; done`

// dumpShell dumps a shell waiting for a line (killing it) and returns the
// image.
func dumpShell(t *testing.T) []byte {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: dumping a process and restoring it as another user need root")
	}
	cmd := exec.Command("/bin/sh", "-c", shellScript)
	cmd.Dir = "/" // where the restored one, as nobody, may go
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("shell said %q, %v", line, err)
	}
	waitFor(t, "the shell blocked in read(2)", func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", cmd.Process.Pid))
		return err == nil && strings.HasPrefix(string(b), "0 ")
	})
	var img bytes.Buffer
	if err := vmadump.Dump(cmd.Process.Pid, &img, vmadump.DumpOptions{}); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	return img.Bytes()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ask writes a line to a job's stdin and reads its answer.
func ask(t *testing.T, f *jobFiles, r *bufio.Reader, line string) string {
	t.Helper()
	if _, err := f.stdinW.Write([]byte(line + "\n")); err != nil {
		t.Fatalf("writing %q: %v", line, err)
	}
	ch := make(chan string, 1)
	go func() {
		s, _ := r.ReadString('\n')
		ch <- strings.TrimSuffix(s, "\n")
	}()
	select {
	case s := <-ch:
		return s
	case <-time.After(10 * time.Second):
		t.Fatalf("no answer to %q", line)
		return ""
	}
}

// statusField is a field of /proc/PID/status ("Uid", "PPid").
func statusField(t *testing.T, pid int, key string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == key {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return ""
}

// forker is the thread of this process that forked pid.
func forker(t *testing.T, pid int) string {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/children")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range tasks {
		b, _ := os.ReadFile(c)
		for _, f := range strings.Fields(string(b)) {
			if f == strconv.Itoa(pid) {
				return filepath.Base(filepath.Dir(c))
			}
		}
	}
	t.Fatalf("no thread of this process is the parent of %d", pid)
	return ""
}

// killed asserts that p is killed (SIGKILL) within 10 s, and kills it if
// it is not.
func killed(t *testing.T, p *proc, when string) {
	t.Helper()
	type result struct {
		st  *os.ProcessState
		err error
	}
	ch := make(chan result, 1)
	go func() {
		st, err := p.wait()
		ch <- result{st, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-time.After(10 * time.Second):
		syscall.Kill(p.pid, syscall.SIGKILL)
		<-ch
		t.Errorf("job %d still running 10 s %s; want killed", p.pid, when)
		return
	}
	if ws, ok := r.st.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("job %d %s: %v, %v; want killed", p.pid, when, r.st, r.err)
	}
}

// alive: pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// A restored job gets what every job gets: the spawner thread forks it (as
// it forks an exec'd job), it runs as its user in a process group of its
// own, and the reaper knows the group: when the slave is gone (the
// reaper's pipe closes) the group dies, a child the job started included.
func TestRestoreSpawnGuarantees(t *testing.T) {
	img := dumpShell(t)
	// The spawner thread is up, as in a slave that ran jobs before: a
	// thread that forks and then lets go could become it later.
	jobSpawner.do(func() {})
	s := &Slave{Reaper: true}
	s.ensureJobs()
	l := &link{}
	s.jmu.Lock()
	s.setLinkLocked(l)
	s.jmu.Unlock()

	m := &slaveproto.Msg{Pid: 42, Uid: 65534, Gid: 65534, Groups: []uint32{65534}}
	j := newRunning(m)
	f, err := openFiles(j, false)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.spawn(l, j, m, f, restoreSpawn(bytes.NewReader(img)))
	if err != nil {
		f.close(j)
		t.Fatalf("spawn: %v", err)
	}
	f.closeChild()
	defer syscall.Kill(-p.pid, syscall.SIGKILL)
	out := bufio.NewReader(j.out[0].r)
	if got := ask(t, f, out, "hello"); got != "got hello" {
		t.Fatalf("restored shell answered %q", got)
	}
	if pgid, err := syscall.Getpgid(p.pid); err != nil || pgid != p.pid {
		t.Errorf("restored job's process group = %d, %v; want its own, %d", pgid, err, p.pid)
	}
	for key, want := range map[string]string{"Uid": "65534 65534 65534 65534", "Gid": "65534 65534 65534 65534", "Groups": "65534"} {
		if got := statusField(t, p.pid, key); got != want {
			t.Errorf("restored job's %s = %q, want %q", key, got, want)
		}
	}
	if s.job(42) != j || j.pgid != p.pid {
		t.Errorf("restored job not in the slave's table as pgid %d (pgid %d)", p.pid, j.pgid)
	}

	// An exec'd job comes from the same thread.
	em := &slaveproto.Msg{Pid: 43, Null: true}
	ej := newRunning(em)
	ef, err := openFiles(ej, true)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := s.spawn(l, ej, em, ef, execSpawn("/bin/sleep", []string{"sleep", "1000"}, nil, "/"))
	if err != nil {
		ef.close(ej)
		t.Fatalf("spawn exec: %v", err)
	}
	ef.close(ej)
	defer syscall.Kill(-ep.pid, syscall.SIGKILL)
	if a, b := forker(t, p.pid), forker(t, ep.pid); a != b {
		t.Errorf("restored job forked by thread %s, exec'd job by %s: not the one spawner", a, b)
	}

	bg := ask(t, f, out, "bg")
	child, err := strconv.Atoi(strings.TrimPrefix(bg, "bg "))
	if err != nil {
		t.Fatalf("restored shell's background job: %q", bg)
	}
	if !alive(child) || !alive(p.pid) {
		t.Fatalf("restored job %d or its child %d not running", p.pid, child)
	}
	// The slave dies: its end of the reaper's pipe closes.
	s.reaper.mu.Lock()
	s.reaper.w.Close()
	s.reaper.mu.Unlock()
	killed(t, p, "after the reaper's pipe closed")
	waitFor(t, "the reaper killing the restored job's child", func() bool { return !alive(child) })
}

// The main goroutine keeps the main thread: a goroutine that ends locked
// to the main thread wedges it instead of ending it, and then a spawner
// that happened to run there (TestRestoreSpawnPdeathsig) never ends and
// its jobs never get their parent-death signal.
func init() { runtime.LockOSThread() }

// A restored job's parent-death signal follows the thread that forked it:
// when that spawner's thread ends, the job is killed.
func TestRestoreSpawnPdeathsig(t *testing.T) {
	img := dumpShell(t)
	j := newRunning(&slaveproto.Msg{Pid: 44})
	f, err := openFiles(j, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.close(j)
	sp := &spawner{}
	p, err := restoreSpawn(bytes.NewReader(img))(sp, &syscall.Credential{Uid: 65534, Gid: 65534}, f)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	defer syscall.Kill(-p.pid, syscall.SIGKILL)
	if got := ask(t, f, bufio.NewReader(j.out[0].r), "hi"); got != "got hi" {
		t.Fatalf("restored shell answered %q", got)
	}
	sp.stop()
	killed(t, p, "after its spawner thread ended")
}

// A spawn that outlasts the link it came on leaves no process behind: the
// job is killed and the start fails with ENOTCONN.
func TestSpawnLinkLostMeanwhile(t *testing.T) {
	s := &Slave{}
	s.ensureJobs()
	l := &link{}
	s.jmu.Lock()
	s.setLinkLocked(l)
	s.jmu.Unlock()
	m := &slaveproto.Msg{Pid: 45, Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid()), Null: true}
	j := newRunning(m)
	f, err := openFiles(j, true)
	if err != nil {
		t.Fatal(err)
	}
	defer f.close(j)
	var pid int
	sleep := execSpawn("/bin/sleep", []string{"sleep", "1000"}, nil, "/")
	_, err = s.spawn(l, j, m, f, func(sp *spawner, c *syscall.Credential, f *jobFiles) (*proc, error) {
		p, err := sleep(sp, c, f)
		if p != nil {
			pid = p.pid
		}
		s.linkLost(l) // the master goes while the process starts
		return p, err
	})
	if !errors.Is(err, syscall.ENOTCONN) {
		t.Errorf("spawn with the link lost meanwhile: %v, want ENOTCONN", err)
	}
	if pid == 0 || alive(pid) {
		t.Errorf("process %d of a start whose link went is still there", pid)
	}
	if s.job(45) != nil {
		t.Errorf("job of a start whose link went is in the table")
	}
}
