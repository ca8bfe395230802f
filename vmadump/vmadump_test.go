package vmadump

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const syscallKILL = syscall.SIGKILL

// helperMain runs when the test binary is started as a helper: it restores
// the image named by $VMADT_IMAGE (in whatever namespace it was started),
// prints the restored process's network namespace, waits for it and exits
// with its status.
func helperMain() int {
	if os.Getenv("VMADT_HELPER") == "ghost" {
		return ghostHelper()
	}
	f, err := os.Open(os.Getenv("VMADT_IMAGE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 100
	}
	// The stub inherits ignored signals from its parent (exec keeps
	// SIG_IGN); the restored process must not: state checks that SIGHUP
	// is at its default disposition.
	signal.Ignore(syscall.SIGHUP)
	p, err := Restore(f, RestoreOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "restore:", err)
		return 101
	}
	ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", p.Pid))
	fmt.Printf("NETNS %s\n", ns)
	st, err := p.Wait()
	if err != nil {
		return 102
	}
	return st.ExitCode()
}

// waitCPU polls until pid has used at least ticks clock ticks of CPU time.
func waitCPU(t *testing.T, pid, ticks int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		u, _ := strconv.Atoi(f[11])
		s, _ := strconv.Atoi(f[12])
		if u+s >= ticks {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("process %d did not run", pid)
}

func testState(t *testing.T, static bool, flags Flags) {
	needRoot(t)
	bin := buildC(t, static, "state.c", "regs.S")
	work := t.TempDir()
	p := startProg(t, "READY", bin, work)
	img := dumpProg(t, p, DumpOptions{Flags: flags})
	_ = p.cmd.Wait()
	r, err := restoreImage(t, img)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	out, code := r.output(t, 20*time.Second)
	t.Logf("image %d bytes; output:\n%s", len(img), out)
	verdict(t, out)
	if code != 0 {
		t.Errorf("restored program exited %d", code)
	}
}

func TestStateStatic(t *testing.T) { testState(t, true, 0) }

// The kernel mappings' detour through a free area, taken when their old
// and new places overlap (rare with random placement, so forced here).
func TestSpecialsDetour(t *testing.T) {
	detourSpecials = true
	defer func() { detourSpecials = false }()
	testState(t, false, 0)
}

func TestStateDynamic(t *testing.T) { testState(t, false, 0) }

// waitSyscall polls until pid is blocked in system call nr.
func waitSyscall(t *testing.T, pid, nr int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
		if err == nil && strings.HasPrefix(string(b), strconv.Itoa(nr)+" ") {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("process %d never blocked in syscall %d", pid, nr)
}

// A system call interrupted by the dump ends after restore as the kernel
// would end it after a signal: re-issued, or EINTR where Linux cannot
// restart it elsewhere. Each case: syscalls.c's mode, the call it blocks
// in, the input to send after restore, and what it must print.
func TestInterruptedSyscalls(t *testing.T) {
	needRoot(t)
	cases := []struct {
		mode   string
		static bool
		nr     int
		input  string
		want   string // a regular expression
	}{
		// read(0) is re-issued and gets what is written afterwards.
		{"read", false, unix.SYS_READ, "hello\n", "GOT hello\npid changed 1"},
		// A relative nanosleep (glibc: clock_nanosleep) cannot be restarted
		// (ERESTART_RESTARTBLOCK): EINTR, with the time that was left.
		{"nanosleep", true, unix.SYS_CLOCK_NANOSLEEP, "", "nanosleep: Interrupted system call rem=2[0-9] pid changed 1"},
		// An absolute one is re-issued and keeps its deadline.
		{"absolute", true, unix.SYS_CLOCK_NANOSLEEP, "", "absolute: ok after-deadline 1 pid changed 1"},
		// pause() is re-issued; the interval timer travels and fires.
		{"alarm", false, unix.SYS_PAUSE, "", "alarm: fired pid changed 1"},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			p := startProg(t, "READY", buildC(t, c.static, "syscalls.c"), c.mode)
			waitSyscall(t, p.cmd.Process.Pid, c.nr)
			r, err := restoreImage(t, dumpProg(t, p, DumpOptions{}))
			if err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if c.input != "" {
				if _, err := r.in.Write([]byte(c.input)); err != nil {
					t.Fatal(err)
				}
			}
			out, code := r.output(t, 10*time.Second)
			if !regexp.MustCompile(c.want).MatchString(out) || code != 0 {
				t.Errorf("want %q, exit 0; got exit %d:\n%s", c.want, code, out)
			}
		})
	}
}

// -leave: the original keeps running, and the image restores too.
func TestLeave(t *testing.T) {
	needRoot(t)
	p := startProg(t, "READY", buildC(t, false, "syscalls.c"), "read")
	waitSyscall(t, p.cmd.Process.Pid, 0)
	img := dumpProg(t, p, DumpOptions{Leave: true})
	if _, err := p.in.Write([]byte("original\n")); err != nil {
		t.Fatal(err)
	}
	line, err := readLineTimeout(p.out, 10*time.Second)
	if err != nil || line != "GOT original" {
		t.Fatalf("original after a -leave dump: %q, %v", line, err)
	}
	r, err := restoreImage(t, img)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	r.in.Write([]byte("copy\n"))
	if out, _ := r.output(t, 10*time.Second); !strings.Contains(out, "GOT copy") {
		t.Errorf("copy: %s", out)
	}
}

func TestThreadedRefused(t *testing.T) {
	needRoot(t)
	p := startProg(t, "READY", buildC(t, false, "threads.c"))
	var buf bytes.Buffer
	err := Dump(p.cmd.Process.Pid, &buf, DumpOptions{})
	if !errors.Is(err, ErrThreaded) || !strings.Contains(err.Error(), "2 threads") {
		t.Fatalf("Dump of a threaded process: %v, want ErrThreaded", err)
	}
	if buf.Len() != 0 {
		t.Errorf("%d bytes written for a refused dump", buf.Len())
	}
	if err := p.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("process should still run after a refused dump: %v", err)
	}
}

// copyFile copies src to dst keeping its mode.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(src)
	if err := os.WriteFile(dst, b, fi.Mode()); err != nil {
		t.Fatal(err)
	}
}

// With every flag the image needs neither the program nor its libraries:
// run state with private copies of ld.so and libc, dump, delete them all.
func TestFlagsAllWithoutFiles(t *testing.T) {
	needRoot(t)
	bin := buildC(t, false, "state.c", "regs.S")
	dir := t.TempDir()
	for _, f := range []string{"/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6"} {
		real, err := filepath.EvalSymlinks(f)
		if err != nil {
			t.Skipf("skipping: %v", err)
		}
		copyFile(t, real, filepath.Join(dir, filepath.Base(f)))
	}
	copyFile(t, bin, filepath.Join(dir, "state"))
	work := t.TempDir()
	os.Setenv("VMADT_SKIP_EXE", "1")
	defer os.Unsetenv("VMADT_SKIP_EXE")
	p := startProg(t, "READY", filepath.Join(dir, "ld-linux-x86-64.so.2"), "--library-path", dir, filepath.Join(dir, "state"), work)
	img := dumpProg(t, p, DumpOptions{Flags: DumpAll})
	info, err := ReadInfo(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range info.Meta.Regions {
		if r.Travel == TravelFile {
			t.Errorf("region %s travels as a file reference with all flags", r.Path)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	r, err := restoreImage(t, img)
	if err != nil {
		t.Fatalf("Restore without the program's files: %v", err)
	}
	out, _ := r.output(t, 20*time.Second)
	verdict(t, out)
}

// Each flag moves its class of mapped file into the image, and only it.
func TestFlagsClassify(t *testing.T) {
	needRoot(t)
	p := startProg(t, "READY", buildC(t, false, "state.c", "regs.S"), t.TempDir())
	for _, f := range []Flags{0, DumpLibs, DumpExec, DumpOther, DumpAll} {
		img := dumpProg(t, p, DumpOptions{Flags: f, Leave: true})
		info, err := ReadInfo(bytes.NewReader(img))
		if err != nil {
			t.Fatal(err)
		}
		classes := map[string]bool{}
		for i, r := range info.Meta.Regions {
			if r.Kind != KindFile {
				continue
			}
			classes[r.Class] = true
			cls := map[string]Flags{"exec": DumpExec, "libs": DumpLibs, "other": DumpOther}[r.Class]
			want := TravelFile
			if f&cls != 0 {
				want = TravelImage
			}
			if r.Travel != want {
				t.Errorf("flags %v: %s (%s) travels as %s, want %s", f, r.Path, r.Class, r.Travel, want)
			}
			if r.Travel == TravelFile && r.Perms[2] == 'x' && info.RegionPages[i] != 0 {
				t.Errorf("flags %v: unchanged code of %s has %d pages in the image", f, r.Path, info.RegionPages[i])
			}
		}
		if len(classes) != 3 {
			t.Errorf("expected exec, libs and other mappings, saw %v", classes)
		}
	}
}

func TestMissingFileRefused(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "state")
	copyFile(t, buildC(t, false, "state.c", "regs.S"), bin)
	p := startProg(t, "READY", bin, t.TempDir())
	img := dumpProg(t, p, DumpOptions{})

	// Same size, different bytes in a mapped range.
	b, _ := os.ReadFile(bin)
	b[len(b)/2] ^= 0xff
	os.Remove(bin)
	os.WriteFile(bin, b, 0o755)
	_, err := restoreImage(t, img)
	if !errors.Is(err, ErrFile) || !errors.Is(err, unix.ESTALE) || !strings.Contains(err.Error(), bin) {
		t.Errorf("Restore with a changed program: %v; want ErrFile and ESTALE naming %s", err, bin)
	}
	os.Remove(bin)
	_, err = restoreImage(t, img)
	if !errors.Is(err, ErrFile) || !errors.Is(err, unix.ENOENT) || !strings.Contains(err.Error(), bin) {
		t.Errorf("Restore with the program missing: %v; want ErrFile and ENOENT naming %s", err, bin)
	}
}

// rewrite decodes img, lets mod change its metadata and re-encodes it.
func rewrite(t *testing.T, img []byte, mod func(*Meta)) []byte {
	t.Helper()
	ir, err := openImage(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	mod(ir.Meta)
	var out bytes.Buffer
	e := &encoder{w: &out}
	e.header()
	e.meta(ir.Meta)
	for {
		runs, data, err := ir.nextPages()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		e.pageRecord(runs, data)
	}
	e.end()
	return out.Bytes()
}

func tinyImage(t *testing.T) []byte {
	p := startProg(t, "READY", buildC(t, true, "syscalls.c"), "read")
	waitSyscall(t, p.cmd.Process.Pid, 0)
	return dumpProg(t, p, DumpOptions{})
}

func TestVDSOMismatchRefused(t *testing.T) {
	needRoot(t)
	img := rewrite(t, tinyImage(t), func(m *Meta) { m.VDSOCRC ^= 1; m.Host = "elsewhere" })
	_, err := restoreImage(t, img)
	if !errors.Is(err, ErrVDSO) || !strings.Contains(err.Error(), "elsewhere") {
		t.Errorf("Restore with a foreign vDSO: %v; want ErrVDSO", err)
	}
}

// A damaged real image fails to restore, and no process is left behind.
func TestCorruptImageRefused(t *testing.T) {
	needRoot(t)
	img := tinyImage(t)
	cases := map[string][]byte{
		"truncated-meta":  img[:200],
		"truncated-pages": img[:len(img)-5000],
		"no-end":          img[:len(img)-20],
	}
	flip := append([]byte(nil), img...)
	flip[len(flip)-3000] ^= 1
	cases["flipped-page-byte"] = flip
	for name, bad := range cases {
		before := children(t)
		_, err := restoreImage(t, bad)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Restore: %v, want ErrCorrupt", name, err)
		}
		if after := children(t); after > before {
			t.Errorf("%s: %d child processes left behind", name, after-before)
		}
	}
}

// children counts this process's children.
func children(t *testing.T) int {
	n := 0
	ents, _ := os.ReadDir("/proc/self/task")
	for _, e := range ents {
		b, _ := os.ReadFile("/proc/self/task/" + e.Name() + "/children")
		n += len(strings.Fields(string(b)))
	}
	return n
}

func testInterpreter(t *testing.T, interp, script string) {
	needRoot(t)
	if _, err := os.Stat(interp); err != nil {
		t.Skipf("skipping: %v", err)
	}
	abs, _ := filepath.Abs(filepath.Join("testdata", script))
	p := startProg(t, "READY", interp, abs)
	waitCPU(t, p.cmd.Process.Pid, 3) // deep in the loop, not at its first turn
	img := dumpProg(t, p, DumpOptions{})
	r, err := restoreImage(t, img)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	out, code := r.output(t, 20*time.Second)
	t.Logf("%s: image %d bytes:\n%s", interp, len(img), out)
	verdict(t, out)
	if code != 0 {
		t.Errorf("exit %d", code)
	}
}

func TestPython(t *testing.T) { testInterpreter(t, "/usr/bin/python3", "midloop.py") }
func TestPerl(t *testing.T)   { testInterpreter(t, "/usr/bin/perl", "midloop.pl") }

// Restore inside another network namespace (as on another node of the
// virtual cluster): the program must carry on there and pass its checks.
func TestRestoreInNetns(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: no ip command")
	}
	ns := fmt.Sprintf("vmadt%d", os.Getpid())
	if b, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("skipping: ip netns add: %v %s", err, b)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	var st syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+ns, &st); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "image")
	p := startProg(t, "READY", buildC(t, false, "state.c", "regs.S"), t.TempDir())
	if err := os.WriteFile(img, dumpProg(t, p, DumpOptions{}), 0o600); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, self)
	cmd.Env = append(os.Environ(), "VMADT_HELPER=1", "VMADT_IMAGE="+img)
	cmd.Stderr = os.Stderr
	timer := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	out, err := cmd.Output()
	timer.Stop()
	if err != nil {
		t.Fatalf("restore in netns %s: %v\n%s", ns, err, out)
	}
	want := fmt.Sprintf("NETNS net:[%d]", st.Ino)
	if !strings.Contains(string(out), want) {
		t.Errorf("restored process is not in netns %s (%s):\n%s", ns, want, out)
	}
	verdict(t, string(out))
}

// Dumps and restores may run at the same time in one process (each locks
// its own OS thread for ptrace).
func TestConcurrent(t *testing.T) {
	needRoot(t)
	bin := buildC(t, false, "syscalls.c")
	const n = 4
	procs := make([]*prog, n)
	for i := range procs {
		procs[i] = startProg(t, "READY", bin, "read")
		waitSyscall(t, procs[i].cmd.Process.Pid, 0)
	}
	errs := make(chan error, n)
	outs := make(chan string, n)
	for i := range procs {
		go func(p *prog, word string) {
			var buf bytes.Buffer
			if err := Dump(p.cmd.Process.Pid, &buf, DumpOptions{}); err != nil {
				errs <- err
				return
			}
			r, err := restoreImage(t, buf.Bytes())
			if err != nil {
				errs <- err
				return
			}
			r.in.Write([]byte(word + "\n"))
			out, _ := r.output(t, 10*time.Second)
			outs <- out
			errs <- nil
		}(procs[i], fmt.Sprintf("word%d", i))
	}
	for range procs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(outs)
	seen := map[string]bool{}
	for out := range outs {
		seen[strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])] = true
	}
	for i := range procs {
		if w := fmt.Sprintf("GOT word%d", i); !seen[w] {
			t.Errorf("no restored process said %q (saw %v)", w, seen)
		}
	}
}
