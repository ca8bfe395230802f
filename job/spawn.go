package job

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"

	"bproc/vmadump"

	"golang.org/x/sys/unix"
)

// A job's process comes from a spawn: the exec of a fetched binary today,
// the restore of a dumped process (vmadump) for migration. Whatever the
// kind, every job gets the same guarantees, which spawner.start gives the
// command that forks it:
//   - it is forked by the spawner thread (below), so that its parent-death
//     signal, SIGKILL, fires when the slave dies, not at random;
//   - it runs with the credentials of the user who started it;
//   - it leads a process group of its own (pgid = pid), which the slave
//     signals and the reaper kills when the slave is gone (Slave.spawn
//     tells the reaper of every group).

// A spawnFunc starts one job's process through sp.start, as the user cred,
// with the standard files f.
type spawnFunc func(sp *spawner, cred *syscall.Credential, f *jobFiles) (*proc, error)

// proc is a spawned job's process.
type proc struct {
	pid  int // also its process group
	wait func() (*os.ProcessState, error)
}

// spawner is one OS thread, locked for good, that forks every job. A
// job's Pdeathsig fires when the thread that forked it exits, not the
// process, and Go ends any thread a goroutine leaves locked (credential
// changes, ptrace, blocked signals): a job forked on such a thread would be
// killed at random. It also runs what must follow the fork on the same
// thread: ptrace(2) takes requests only from the tracer, the thread that
// forked a PTRACE_TRACEME child, so a restore traces its stub from here
// too. While a spawn runs, other jobs' starts wait for the thread.
type spawner struct {
	once sync.Once
	reqs chan func()
}

// jobSpawner forks the jobs of every Slave of this process.
var jobSpawner spawner

func (sp *spawner) thread() {
	sp.reqs = make(chan func())
	go func() {
		runtime.LockOSThread() // never unlocked: this thread is the jobs' parent
		for fn := range sp.reqs {
			fn()
		}
		// Returning locked ends the thread (only a test stops a spawner).
	}()
}

// do runs fn on the spawner thread and waits for it to return.
func (sp *spawner) do(fn func()) {
	sp.once.Do(sp.thread)
	done := make(chan struct{})
	sp.reqs <- func() {
		defer close(done)
		fn()
	}
	<-done
}

// stop ends the spawner thread: the jobs it forked get their parent-death
// signal. Tests only; the slave's spawner lives as long as the process.
func (sp *spawner) stop() {
	sp.once.Do(sp.thread)
	close(sp.reqs)
}

// start forks cmd on the spawner thread with the guarantees every job has
// (any SysProcAttr the spawn set, as Ptrace, is kept), then runs then, if
// not nil, on the same thread. If then fails the process is left to the
// caller (it exists: cmd.Process).
func (sp *spawner) start(cmd *exec.Cmd, cred *syscall.Credential, then func() error) error {
	a := cmd.SysProcAttr
	if a == nil {
		a = &syscall.SysProcAttr{}
		cmd.SysProcAttr = a
	}
	a.Setsid = false // a new session would leave the process group below
	a.Setpgid, a.Pgid = true, 0
	a.Credential = cred
	a.Pdeathsig = syscall.SIGKILL
	var err error
	sp.do(func() {
		if err = cmd.Start(); err == nil && then != nil {
			err = then()
		}
	})
	return err
}

// jobFiles are a job's standard files: the process's ends, which the slave
// closes once it is spawned, and the slave's end of its stdin (nil when
// stdin is /dev/null). The slave's ends of stdout and stderr are the
// job's outBufs' readers.
type jobFiles struct {
	stdin, stdout, stderr *os.File
	stdinW                *os.File
}

// openFiles makes j's pipes; null gives it /dev/null for stdin.
func openFiles(j *running, null bool) (*jobFiles, error) {
	f := &jobFiles{}
	var err error
	if f.stdout, err = pipeOut(j.out[0]); err == nil {
		f.stderr, err = pipeOut(j.out[1])
	}
	if err == nil && null {
		if f.stdin, err = os.Open(os.DevNull); err != nil {
			err = fmt.Errorf("opening %s: %w", os.DevNull, err)
		}
	} else if err == nil {
		if f.stdin, f.stdinW, err = os.Pipe(); err != nil {
			err = fmt.Errorf("pipe: %w", err)
		}
	}
	if err != nil {
		f.close(j)
		return nil, err
	}
	return f, nil
}

// pipeOut makes the pipe of one output stream and returns the job's end.
func pipeOut(ob *outBuf) (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	// Fewer, larger reads; a smaller pipe (the limit for users) still works.
	unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, 1<<20)
	ob.r = r
	return w, nil
}

// closeChild closes the process's ends.
func (f *jobFiles) closeChild() {
	for _, c := range []*os.File{f.stdin, f.stdout, f.stderr} {
		if c != nil {
			c.Close()
		}
	}
}

// close closes all of j's files, for a job that does not start.
func (f *jobFiles) close(j *running) {
	f.closeChild()
	if f.stdinW != nil {
		f.stdinW.Close()
	}
	for _, ob := range j.out {
		if ob.r != nil {
			ob.r.Close()
		}
	}
}

// execSpawn runs the binary bin (fetched for m) as m asks.
func execSpawn(bin string, argv, env []string, dir string) spawnFunc {
	if st, err := os.Stat(dir); dir == "" || err != nil || !st.IsDir() {
		dir = "/"
	}
	return func(sp *spawner, cred *syscall.Credential, f *jobFiles) (*proc, error) {
		cmd := &exec.Cmd{Path: bin, Args: argv, Env: env, Dir: dir, Stdin: f.stdin, Stdout: f.stdout, Stderr: f.stderr}
		if err := sp.start(cmd, cred, nil); err != nil {
			return nil, err
		}
		pid := cmd.Process.Pid
		return &proc{pid: pid, wait: func() (*os.ProcessState, error) {
			waitExit(pid)
			err := cmd.Wait()
			return cmd.ProcessState, err
		}}, nil
	}
}

// restoreSpawn recreates the process dumped in the image img (vmadump):
// the restore's stub is forked, and traced until the process is rebuilt,
// on the spawner thread. A start with a migration's image uses it
// (restoreJob, migrate.go).
func restoreSpawn(img io.Reader) spawnFunc {
	return func(sp *spawner, cred *syscall.Credential, f *jobFiles) (*proc, error) {
		p, err := vmadump.Restore(img, vmadump.RestoreOptions{
			Stdin: f.stdin, Stdout: f.stdout, Stderr: f.stderr,
			Spawn: func(cmd *exec.Cmd, traced func() error) error { return sp.start(cmd, cred, traced) },
		})
		if err != nil {
			return nil, fmt.Errorf("restoring: %w", err)
		}
		return &proc{pid: p.Pid, wait: func() (*os.ProcessState, error) {
			waitExit(p.Pid)
			return p.Wait()
		}}, nil
	}
}

// waitExit waits until a job's process has exited, before its wait(2):
// a job that moves is traced by this process (vmadump.Seize), and the
// wait of a traced child would take its ptrace stops (the tracer's, on
// another thread of this process) for its end. A pidfd becomes readable
// only at the exit. If it fails (no pidfd), the plain wait that follows
// still serves every job that never moves.
//
// The pidfd is waited for through Go's poller, not in a poll(2) that
// holds a thread and its P for the job's whole life: a P in a system call
// keeps the runtime's monitor thread (sysmon) from its deep sleep, and on
// this kind of machine each of its 20 µs wake-ups costs a context switch.
func waitExit(pid int) {
	pfd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		_ = vmadump.WaitExit(pid)
		return
	}
	f := os.NewFile(uintptr(pfd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err == nil {
		err = rc.Read(func(fd uintptr) bool {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, 0)
			for err == unix.EINTR {
				n, err = unix.Poll(fds, 0)
			}
			return n > 0
		})
	}
	if err != nil { // not pollable here: the blocking wait
		_ = vmadump.WaitExit(pid)
	}
}
