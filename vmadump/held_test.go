package vmadump

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// blockFile is a FUSE file whose writes wait until the test answers them,
// as bproc's ctl file does while the tree decides about a move.
type blockFile struct {
	fs.Inode
	got    chan []byte
	answer chan struct{}
	intr   chan struct{} // the request's context ended (FUSE INTERRUPT)
}

func (f *blockFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (f *blockFile) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = 0o666 | syscall.S_IFREG
	return 0
}

// Write answers when told, whatever ctx says: the kernel sends FUSE an
// INTERRUPT when the writer is seized (go-fuse ends ctx), and the answer
// must still come, as bproc's ctl must still answer a move.
func (f *blockFile) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	f.got <- append([]byte(nil), data...)
	select {
	case <-ctx.Done():
		f.intr <- struct{}{}
		<-f.answer
	case <-f.answer:
	}
	return uint32(len(data)), 0
}

type blockRoot struct {
	fs.Inode
	f *blockFile
}

func (r *blockRoot) OnAdd(ctx context.Context) {
	r.AddChild("ctl", r.NewPersistentInode(ctx, r.f, fs.StableAttr{Mode: syscall.S_IFREG}), false)
}

// mountBlocker mounts a blockFile at DIR/ctl.
func mountBlocker(t *testing.T) (string, *blockFile) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("skipping: no /dev/fuse")
	}
	dir := t.TempDir()
	f := &blockFile{got: make(chan []byte, 4), answer: make(chan struct{}, 4), intr: make(chan struct{}, 4)}
	srv, err := fs.Mount(dir, &blockRoot{f: f}, &fs.Options{MountOptions: fuse.MountOptions{FsName: "vmadt", AllowOther: true, DirectMount: true}})
	if err != nil {
		t.Skipf("skipping: cannot mount FUSE: %v", err)
	}
	t.Cleanup(func() {
		close(f.answer)
		_ = srv.Unmount()
	})
	return dir, f
}

// quiet asserts that p has printed nothing more (it is stopped).
func quiet(t *testing.T, p *prog) {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(p.raw.Fd()), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 || p.out.Buffered() != 0 {
		line, _ := readLineTimeout(p.out, time.Second)
		t.Fatalf("held process ran on and printed %q", line)
	}
}

func expectLine(t *testing.T, p *prog, want string) {
	t.Helper()
	line, err := readLineTimeout(p.out, 10*time.Second)
	if err != nil || line != want {
		t.Fatalf("got %q (%v), want %q", line, err, want)
	}
}

// seize seizes pid (it runs on until Wait says it is held).
func seize(t *testing.T, pid int) *Held {
	t.Helper()
	h, err := Seize(pid)
	if err != nil {
		t.Fatalf("Seize: %v", err)
	}
	return h
}

// seizeHeld seizes pid and waits until it is held.
func seizeHeld(t *testing.T, pid int) *Held {
	t.Helper()
	h := seize(t, pid)
	waitHeld(t, h)
	return h
}

func waitHeld(t *testing.T, h *Held) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

// A writer blocked in a FUSE write is seized; the write is answered; it
// stops right at the write's return, is dumped, then resumed with
// EHOSTDOWN (the move failed) while its image, restored, sees the write
// succeed (the move worked).
func TestHeldFUSEWrite(t *testing.T) {
	needRoot(t)
	dir, f := mountBlocker(t)
	p := startProg(t, "READY", buildC(t, false, "writer.c"), filepath.Join(dir, "ctl"))
	select {
	case b := <-f.got:
		if string(b) != "hello" {
			t.Fatalf("FUSE got %q", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the write never reached the FUSE server")
	}
	h := seize(t, p.cmd.Process.Pid)
	select {
	case <-f.intr:
	case <-time.After(10 * time.Second):
		t.Fatal("seizing the writer did not interrupt its FUSE request")
	}
	quiet(t, p)
	f.answer <- struct{}{}
	waitHeld(t, h)
	if nr, fd, ret := h.Syscall(); nr != unix.SYS_WRITE || fd != 3 || ret != 5 {
		t.Fatalf("Syscall() = %d, %d, %d; want write (%d), fd 3, 5", nr, fd, ret, unix.SYS_WRITE)
	}
	quiet(t, p)
	var img bytes.Buffer
	if err := h.Dump(&img, DumpOptions{}); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	quiet(t, p)
	ret := -int64(unix.EHOSTDOWN)
	if err := h.Resume(&ret); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	expectLine(t, p, "WROTE -1 112")
	if err := h.Resume(nil); err == nil {
		t.Error("a second Resume did not fail")
	}
	r, err := restoreImage(t, img.Bytes())
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	rp := &prog{out: bufioReader(r.out)}
	expectLine(t, rp, "WROTE 5 0")
}

// pipeFull returns a pipe whose write end blocks: its buffer is full.
func pipeFull(t *testing.T) (rd, wr *os.File) {
	t.Helper()
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, 4096); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := unix.Write(fds[1], chunk); err != nil {
			break
		}
	}
	for _, fd := range fds {
		if err := unix.SetNonblock(fd, false); err != nil {
			t.Fatal(err)
		}
	}
	rd, wr = os.NewFile(uintptr(fds[0]), "pipe r"), os.NewFile(uintptr(fds[1]), "pipe w")
	t.Cleanup(func() { rd.Close(); wr.Close() })
	return rd, wr
}

// pipeWriter starts writer.c on a full pipe (its fd 3): it says READY and
// blocks in its write. rd is the pipe's read end.
func pipeWriter(t *testing.T) (rd *os.File, p *prog) {
	t.Helper()
	rd, wr := pipeFull(t)
	cmd := exec.Command(buildC(t, false, "writer.c"), "-")
	cmd.ExtraFiles = []*os.File{wr}
	return rd, startCmd(t, "READY", cmd)
}

// Seized in a write to a full pipe, the write is interrupted (a restart
// code); Resume without a value re-issues it, and it completes once the
// pipe is drained.
func TestHeldPipeWriteRestarts(t *testing.T) {
	needRoot(t)
	rd, p := pipeWriter(t)
	waitSyscall(t, p.cmd.Process.Pid, unix.SYS_WRITE)
	h := seizeHeld(t, p.cmd.Process.Pid)
	if nr, fd, ret := h.Syscall(); nr != unix.SYS_WRITE || fd != 3 || ret != -errRestartSys {
		t.Fatalf("Syscall() = %d, %d, %d; want write, fd 3, -ERESTARTSYS", nr, fd, ret)
	}
	quiet(t, p)
	if err := h.Resume(nil); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if _, err := rd.Read(make([]byte, 8192)); err != nil {
		t.Fatal(err)
	}
	expectLine(t, p, "WROTE 5 0")
}

// Resume with a value makes an interrupted write fail with it.
func TestHeldResumeErrno(t *testing.T) {
	needRoot(t)
	_, p := pipeWriter(t)
	waitSyscall(t, p.cmd.Process.Pid, unix.SYS_WRITE)
	h := seizeHeld(t, p.cmd.Process.Pid)
	ret := -int64(unix.EHOSTDOWN)
	if err := h.Resume(&ret); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	expectLine(t, p, "WROTE -1 112")
}

func TestSeizeRefuses(t *testing.T) {
	for _, pid := range []int{0, -1, os.Getpid()} {
		if h, err := Seize(pid); err == nil {
			_ = h.Resume(nil)
			t.Errorf("Seize(%d) did not fail", pid)
		}
	}
	needRoot(t)
	p := startProg(t, "READY", buildC(t, false, "threads.c"))
	if _, err := Seize(p.cmd.Process.Pid); err == nil || !errorsIs(err, ErrThreaded) {
		t.Errorf("Seize of a threaded process: %v, want ErrThreaded", err)
	}
}

// Kill ends a held process; its parent (the test) sees SIGKILL.
func TestHeldKill(t *testing.T) {
	needRoot(t)
	_, p := pipeWriter(t)
	h := seizeHeld(t, p.cmd.Process.Pid)
	if err := h.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	err := p.cmd.Wait()
	if st, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !st.Signaled() || st.Signal() != syscall.SIGKILL {
		t.Fatalf("after Kill: %v, %v", err, p.cmd.ProcessState)
	}
}

// TakeFile hands over a descriptor of the held process: its stdout.
func TestHeldTakeFile(t *testing.T) {
	needRoot(t)
	_, p := pipeWriter(t)
	h := seize(t, p.cmd.Process.Pid)
	defer h.Resume(nil)
	waitHeld(t, h)
	out, err := h.TakeFile(1)
	if err != nil {
		t.Fatalf("TakeFile: %v", err)
	}
	defer out.Close()
	if _, err := out.WriteString("FROM HOST\n"); err != nil {
		t.Fatal(err)
	}
	expectLine(t, p, "FROM HOST")
}

func bufioReader(f *os.File) *bufio.Reader { return bufio.NewReader(f) }

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// Dump's Stdio and Mem options: restored, fd 10 is the restorer's stdout
// and fd 11 a memfd with the given content, close-on-exec as fd 11 was.
func TestDumpStdioMem(t *testing.T) {
	needRoot(t)
	p := startProg(t, "READY", buildC(t, false, "fdopts.c"))
	var img bytes.Buffer
	opts := DumpOptions{Stdio: map[int]int{10: 1}, Mem: map[int][]byte{11: []byte("4242\n")}}
	if err := Dump(p.cmd.Process.Pid, &img, opts); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	info, err := ReadInfo(bytes.NewReader(img.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	if err := info.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"dup of the restorer's stdout", "memfd of 5 bytes"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("info does not say %q:\n%s", want, text.String())
		}
	}
	r, err := restoreImage(t, img.Bytes())
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if _, err := r.in.WriteString("go\n"); err != nil {
		t.Fatal(err)
	}
	out, code := r.output(t, 10*time.Second)
	if code != 0 || out != "VIA10\nMEM 5 4242 cloexec 1 rdwr 1\n" {
		t.Fatalf("restored with fd options: exit %d, output %q", code, out)
	}
}

func TestDumpOptionsRefused(t *testing.T) {
	for _, o := range []DumpOptions{
		{Stdio: map[int]int{10: 3}}, {Stdio: map[int]int{-1: 1}},
		{Stdio: map[int]int{5: 1}, Mem: map[int][]byte{5: nil}}, {Mem: map[int][]byte{5: make([]byte, maxMemFD+1)}},
	} {
		if err := Dump(1, io.Discard, o); !errors.Is(err, unix.EINVAL) {
			t.Errorf("Dump with %+v: %v, want EINVAL", o, err)
		}
	}
}

// Wait gives up when its context ends; Resume then lets go of a process
// that never stopped, and its write completes unharmed.
func TestHeldWaitTimeoutResume(t *testing.T) {
	needRoot(t)
	dir, f := mountBlocker(t)
	p := startProg(t, "READY", buildC(t, false, "writer.c"), filepath.Join(dir, "ctl"))
	select {
	case <-f.got:
	case <-time.After(10 * time.Second):
		t.Fatal("the write never reached the FUSE server")
	}
	h := seize(t, p.cmd.Process.Pid)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait: %v, want the deadline", err)
	}
	ret := int64(-1)
	if err := h.Resume(&ret); err == nil {
		t.Error("Resume applied a return value to a process that never stopped")
	}
	waitTracer(t, p.cmd.Process.Pid, 0)
	f.answer <- struct{}{}
	expectLine(t, p, "WROTE 5 0")
}

// waitTracer polls until pid's TracerPid is want.
func waitTracer(t *testing.T, pid, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		kv, err := keyValues(fmt.Sprintf("/proc/%d/status", pid), "TracerPid")
		if err != nil {
			t.Fatal(err)
		}
		if kv["TracerPid"] == strconv.Itoa(want) {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("process %d: tracer never became %d", pid, want)
}
