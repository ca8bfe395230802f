package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"bproc/fs/slaveproto"
	"bproc/vmadump"

	"golang.org/x/sys/unix"
)

// The slave's half of migration (see fs/slaveproto/migrate.go): as the
// source it seizes the process that wrote `move`, `rfork` or `execmove`,
// dumps it into slave/mig/MIG/image and, told the outcome, lets it run on
// with its write's errno, or keeps it (or, for rfork, its forked child)
// as a ghost, or ends it; as the destination it restores the image as a
// job (start with Mig); as a ghost's host it forwards the ghost's
// signals and stdio and ends it as the moved process ends.

const stopTimeout = 10 * time.Second

// outgoing is a migration this slave is the source of.
type outgoing struct {
	mig   int
	kind  string
	held  *vmadump.Held
	child *vmadump.Held // rfork: the ghost child, forked before the dump
	ctlFd int           // the descriptor the process wrote the command to
	job   *running      // the job it is, when a job moves on (handBack)
	done  chan struct{} // the dump is over (or failed): "migrated" may act
}

type migState struct {
	mu     sync.Mutex
	out    map[int]*outgoing
	ghosts map[int]*hostedGhost // by the pid of the process they stand for
	// early is news of ghosts not hosted yet: a moved process may end
	// before its source has made the ghost (migrated runs apart from
	// the job messages), and its news must not be lost.
	early map[int][]string
}

// earlyMax bounds the news kept for ghosts not hosted (yet).
const earlyMax = 256

// migReport writes one MigReport to slave/mig/MIG/ctl.
func migReport(l *link, mig int, r slaveproto.MigReport) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding migration report: %w", err)
	}
	f, err := l.tree.Open(fmt.Sprintf("slave/mig/%d/ctl", mig), os.O_WRONLY)
	if err != nil {
		return fmt.Errorf("opening migration %d: %w", mig, err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("reporting to migration %d: %w", mig, err)
	}
	return nil
}

func migFailed(err error) slaveproto.MigReport {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		errno = syscall.EIO
	}
	if errors.Is(err, vmadump.ErrThreaded) {
		errno = syscall.EINVAL
	}
	return slaveproto.MigReport{Ev: "failed", Errno: int(errno), Text: err.Error()}
}

// seize is the master's "seize": the process stops when the write that
// asked for the migration returns, which the master lets happen once it
// hears "seized". It runs in the job reader's loop, so that the
// migration is known before any later message about it.
func (s *Slave) seize(l *link, m *slaveproto.Msg) {
	h, err := vmadump.Seize(m.OSPid)
	if err != nil {
		go migReport(l, m.Mig, migFailed(fmt.Errorf("seizing process %d: %w", m.OSPid, err)))
		return
	}
	o := &outgoing{mig: m.Mig, kind: m.Kind, held: h, ctlFd: -1, done: make(chan struct{})}
	s.mig.mu.Lock()
	if s.mig.out == nil {
		s.mig.out = map[int]*outgoing{}
	}
	s.mig.out[m.Mig] = o
	s.mig.mu.Unlock()
	go func() {
		if err := migReport(l, m.Mig, slaveproto.MigReport{Ev: "seized"}); err != nil {
			s.logf("migration %d: %v", m.Mig, err)
		}
		// Even unheard, it goes on: the master's "migrated" lets it go.
		s.dumpOut(l, o, vmadump.Flags(m.Flags))
	}()
}

// abandon lets the seized process go on with errno as its write's result.
func (s *Slave) abandon(o *outgoing, errno syscall.Errno) {
	s.mig.mu.Lock()
	delete(s.mig.out, o.mig)
	s.mig.mu.Unlock()
	if o.child != nil {
		if err := o.child.Discard(); err != nil {
			s.logf("migration %d: discarding the forked child: %v", o.mig, err)
		}
	}
	if o.job != nil {
		o.job.moving.Store(false) // it stays: it may go direct again
	}
	ret := -int64(errno)
	if err := o.held.Resume(&ret); err != nil {
		s.logf("migration %d: resuming process %d: %v", o.mig, o.held.Pid, err)
	}
}

// dumpOut waits for the seized process to stop and writes its image.
func (s *Slave) dumpOut(l *link, o *outgoing, flags vmadump.Flags) {
	defer close(o.done)
	fail := func(err error) { migReport(l, o.mig, migFailed(err)) }
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := o.held.Wait(ctx); err != nil {
		fail(fmt.Errorf("waiting for process %d to stop: %w", o.held.Pid, err))
		return
	}
	nr, fd, _ := o.held.Syscall()
	if nr == unix.SYS_WRITE || nr == unix.SYS_PWRITE64 || nr == unix.SYS_WRITEV {
		o.ctlFd = fd
	}
	if o.kind != slaveproto.MigRfork {
		// A job moving on: its direct streams come back to the master
		// before the next node may write there (the master starts it
		// once it hears "stopped").
		if j := s.jobByOSPid(o.held.Pid); j != nil {
			o.job = j
			if err := s.handBack(j); err != nil {
				fail(fmt.Errorf("giving the direct streams back: %w", err))
				return
			}
		}
	}
	stopped := slaveproto.MigReport{Ev: "stopped", Argv: cmdline(o.held.Pid)}
	if o.kind == slaveproto.MigRfork {
		child, err := o.held.Fork()
		if err != nil {
			fail(fmt.Errorf("forking the ghost child: %w", err))
			return
		}
		o.child, stopped.Child = child, child.Pid
	}
	if err := migReport(l, o.mig, stopped); err != nil {
		s.logf("migration %d: %v", o.mig, err)
		return
	}
	if o.kind == slaveproto.MigExecmove {
		return // nothing travels: the program starts afresh there
	}
	img, err := l.tree.Open(fmt.Sprintf("slave/mig/%d/image", o.mig), os.O_WRONLY)
	if err != nil {
		fail(fmt.Errorf("opening the image: %w", err))
		return
	}
	stdio, _ := stdioMap(o.held.Pid, o.ctlFd)
	opts := vmadump.DumpOptions{Flags: flags, Stdio: stdio}
	if o.ctlFd >= 0 {
		// The ctl file the command went to is the master's: there it
		// reads what the command gave (rfork: 0 in the child).
		content := []byte{}
		if o.kind == slaveproto.MigRfork {
			content = []byte("0\n")
		}
		opts.Mem = map[int][]byte{o.ctlFd: content}
	}
	err = o.held.Dump(onlyWriter{img}, opts)
	if cerr := img.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing the image: %w", cerr)
	}
	if err != nil {
		fail(fmt.Errorf("dumping process %d: %w", o.held.Pid, err))
		return
	}
	if err := migReport(l, o.mig, slaveproto.MigReport{Ev: "dumped"}); err != nil {
		s.logf("migration %d: %v", o.mig, err)
	}
}

// migrated is the master's word on a migration this slave is the source of.
func (s *Slave) migrated(l *link, m *slaveproto.Msg) {
	s.mig.mu.Lock()
	o := s.mig.out[m.Mig]
	s.mig.mu.Unlock()
	if o == nil {
		s.logf("migration %d: outcome for a migration this slave does not hold", m.Mig)
		return
	}
	<-o.done
	if m.Errno != 0 {
		s.abandon(o, syscall.Errno(m.Errno))
		return
	}
	s.mig.mu.Lock()
	delete(s.mig.out, o.mig)
	s.mig.mu.Unlock()
	ghost := o.held
	switch {
	case o.kind == slaveproto.MigRfork:
		ghost = o.child
		defer func() {
			if err := o.held.Resume(nil); err != nil {
				s.logf("migration %d: resuming the parent %d: %v", o.mig, o.held.Pid, err)
			}
		}()
	case !m.Ghost:
		// A job moving on from a node that is not its origin: its ghost
		// is elsewhere, and it ends here (its end's report is refused
		// as stale, and the job dropped: ended).
		if err := o.held.Kill(); err != nil {
			s.logf("migration %d: ending process %d: %v", o.mig, o.held.Pid, err)
		}
		return
	}
	if err := s.hostGhost(l, m.Pid, ghost, o.ctlFd, o.kind == slaveproto.MigExecmove); err != nil {
		s.logf("migration %d: process %d: %v", o.mig, m.Pid, err)
	}
}

// jobByOSPid is the job whose process (group leader) is pid, if any.
func (s *Slave) jobByOSPid(pid int) *running {
	s.jmu.Lock()
	defer s.jmu.Unlock()
	for _, j := range s.jobs {
		if j.pgid == pid {
			return j
		}
	}
	return nil
}

// cmdline is a process's argv, from /proc, for the tree's status line.
func cmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// forwardable is a descriptor a ghost forwards rather than the image
// reopening it: a pipe, a socket or a terminal.
func forwardable(target string) bool {
	return strings.HasPrefix(target, "pipe:") || strings.HasPrefix(target, "socket:") ||
		strings.HasPrefix(target, "/dev/pts/") || strings.HasPrefix(target, "/dev/tty") || target == "/dev/console"
}

// stdioMap chooses how a process's pipes, sockets and terminals travel:
// as the moved process's stdin, stdout and stderr, which its ghost
// forwards. Stream k is fd k, or for stdout while fd 1 is the ctl file
// the process wrote to (a shell running `echo move > ctl` keeps its
// stdout at a higher fd meanwhile), the first other one open for
// writing. Every descriptor for the same file as a stream's travels as
// that stream. reps[k] is the descriptor standing for stream k, -1 none.
func stdioMap(pid, ctlFd int) (map[int]int, [3]int) {
	reps := [3]int{-1, -1, -1}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, reps
	}
	targets := map[int]string{}
	var fds []int
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd == ctlFd {
			continue
		}
		t, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || !forwardable(t) {
			continue
		}
		targets[fd] = t
		fds = append(fds, fd)
	}
	sort.Ints(fds)
	for k := 0; k <= 2; k++ {
		if _, ok := targets[k]; ok {
			reps[k] = k
		}
	}
	if ctlFd == 1 { // the shell's `echo move > ctl`: its stdout is saved higher
		for _, fd := range fds {
			if fd > 2 && writable(pid, fd) && (reps[2] < 0 || targets[fd] != targets[reps[2]]) {
				reps[1] = fd
				break
			}
		}
	}
	stdio := map[int]int{}
	for _, fd := range fds {
		for _, k := range []int{1, 2, 0} {
			if reps[k] == fd || (reps[k] >= 0 && targets[reps[k]] == targets[fd]) {
				stdio[fd] = k
				break
			}
		}
	}
	return stdio, reps
}

// writable: fd of pid is open for writing (from its fdinfo flags).
func writable(pid, fd int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			f, err := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
			return err == nil && f&(unix.O_WRONLY|unix.O_RDWR) != 0
		}
	}
	return false
}

// restoreJob is a start with Mig: the process comes from the image.
func (s *Slave) restoreJob(ctx context.Context, l *link, m *slaveproto.Msg) {
	img, err := l.tree.Open(fmt.Sprintf("slave/mig/%d/image", m.Mig), os.O_RDONLY)
	if err != nil {
		s.fail(l, m, fmt.Errorf("opening the image: %w", err))
		return
	}
	defer img.Close()
	s.run(ctx, l, m, restoreSpawn(onlyReader{img}))
}

// hostedGhost is a ghost this slave hosts: the process it stands for
// runs elsewhere.
type hostedGhost struct {
	pid   int // the process's, in the process space
	g     *vmadump.Ghost
	files [3]*os.File // its stdin, stdout and stderr, taken before it was emptied
	sigs  chan syscall.Signal
	// output counts the copies of the process's output in flight: the
	// ghost ends only after them, so that once its parent's wait returns
	// all the output is where the ghost's went (a file too).
	output sync.WaitGroup
}

// outputWait bounds how long a ghost's end waits for its output.
const outputWait = 10 * time.Second

// hostGhost makes h the ghost of process pid and forwards for it. With
// all (execmove: a new program whose stdio are the job's pipes), every
// one of the ghost's fds 0-2 is forwarded, regular files too; otherwise
// only pipes, sockets and terminals (the image reopens files itself).
func (s *Slave) hostGhost(l *link, pid int, h *vmadump.Held, ctlFd int, all bool) error {
	_, reps := stdioMap(h.Pid, ctlFd)
	if all {
		for k := range reps {
			if _, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", h.Pid, k)); err == nil && reps[k] < 0 && k != ctlFd {
				reps[k] = k
			}
		}
	}
	hg := &hostedGhost{pid: pid, sigs: make(chan syscall.Signal, 64)}
	for k, fd := range reps {
		if fd < 0 {
			continue
		}
		f, err := h.TakeFile(fd)
		if err != nil {
			s.logf("ghost of %d: taking its fd %d: %v", pid, fd, err)
			continue
		}
		hg.files[k] = f
	}
	g, err := h.Ghost(vmadump.GhostOptions{Signal: func(sig syscall.Signal) {
		select {
		case hg.sigs <- sig:
		default: // a flood of signals: the process gets what fits
		}
	}})
	if err != nil {
		for _, f := range hg.files {
			if f != nil {
				f.Close()
			}
		}
		h.Kill()
		return fmt.Errorf("making the ghost: %w", err)
	}
	hg.g = g
	s.mig.mu.Lock()
	if s.mig.ghosts == nil {
		s.mig.ghosts = map[int]*hostedGhost{}
	}
	s.mig.ghosts[pid] = hg
	news := s.mig.early[pid]
	delete(s.mig.early, pid)
	s.mig.mu.Unlock()
	for _, state := range news {
		s.ghostNews(&slaveproto.Msg{Op: "ghost", Pid: pid, State: state})
	}
	go s.ghostSignals(l, hg)
	for k, name := range []string{"", "stdout", "stderr"} {
		if k > 0 && hg.files[k] != nil {
			hg.output.Add(1)
			go func() {
				defer hg.output.Done()
				s.ghostOutput(l, hg, name, hg.files[k])
			}()
		}
	}
	if hg.files[0] != nil {
		go s.ghostInput(l, hg, hg.files[0])
	}
	return nil
}

// ghostSignals tells the master of the signals sent to the ghost, and of
// its end by SIGKILL, for the process it stands for.
func (s *Slave) ghostSignals(l *link, hg *hostedGhost) {
	ctl, err := l.tree.Open(fmt.Sprintf("slave/ghost/%d/ctl", hg.pid), os.O_WRONLY)
	if err != nil {
		s.logf("ghost of %d: %v", hg.pid, err)
	}
	send := func(sig syscall.Signal) {
		if ctl == nil {
			return
		}
		if _, err := ctl.Write([]byte(fmt.Sprintf("signal %d\n", int(sig)))); err != nil {
			s.logf("ghost of %d: forwarding signal %d: %v", hg.pid, sig, err)
		}
	}
	for {
		select {
		case sig := <-hg.sigs:
			send(sig)
		case <-hg.g.Done():
			if hg.g.Killed() {
				send(syscall.SIGKILL)
			}
			if ctl != nil {
				ctl.Close()
			}
			s.mig.mu.Lock()
			if s.mig.ghosts[hg.pid] == hg {
				delete(s.mig.ghosts, hg.pid)
			}
			s.mig.mu.Unlock()
			return
		}
	}
}

// ghostOutput copies the moved process's stdout or stderr to where the
// ghost's goes.
func (s *Slave) ghostOutput(l *link, hg *hostedGhost, name string, to *os.File) {
	defer to.Close()
	from, err := l.tree.Open(fmt.Sprintf("slave/ghost/%d/%s", hg.pid, name), os.O_RDONLY)
	if err != nil {
		s.logf("ghost of %d: %v", hg.pid, err)
		return
	}
	defer from.Close()
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	io.CopyBuffer(onlyWriter{to}, onlyReader{from}, *bp)
}

// ghostInput feeds what arrives on the ghost's stdin to the moved
// process, while the ghost lives. It polls rather than blocks in read, so
// that it takes nothing from a terminal or pipe once the ghost is gone.
func (s *Slave) ghostInput(l *link, hg *hostedGhost, from *os.File) {
	defer from.Close()
	to, err := l.tree.Open(fmt.Sprintf("slave/ghost/%d/stdin", hg.pid), os.O_WRONLY)
	if err != nil {
		s.logf("ghost of %d: %v", hg.pid, err)
		return
	}
	defer to.Close()
	buf := make([]byte, 64<<10)
	for {
		select {
		case <-hg.g.Done():
			return
		default:
		}
		pfd := []unix.PollFd{{Fd: int32(from.Fd()), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, 200)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		if n == 0 {
			continue
		}
		r, err := unix.Read(int(from.Fd()), buf)
		if r > 0 {
			if _, werr := to.Write(buf[:r]); werr != nil {
				return
			}
		}
		if r == 0 || (err != nil && !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.EAGAIN)) {
			return // EOF: closing ours gives the process its EOF
		}
	}
}

// endGhost ends the ghost as the process it stands for ended, once its
// output has been copied where the ghost's goes (or after outputWait).
func (s *Slave) endGhost(hg *hostedGhost, how string, n int) {
	copied := make(chan struct{})
	go func() {
		hg.output.Wait()
		close(copied)
	}()
	select {
	case <-copied:
	case <-time.After(outputWait):
		s.logf("ghost of %d: its output is still being copied after %v; ending it", hg.pid, outputWait)
	}
	var err error
	switch how {
	case "exit":
		err = hg.g.Exit(n)
	case "signal":
		err = hg.g.Kill(syscall.Signal(n))
	default: // lost with its node
		err = hg.g.Kill(syscall.SIGKILL)
	}
	if err != nil {
		s.logf("ghost of %d: %s %d: %v", hg.pid, how, n, err)
	}
}

// ghostNews is the master's "ghost": what became of the process a ghost
// here stands for.
func (s *Slave) ghostNews(m *slaveproto.Msg) {
	s.mig.mu.Lock()
	hg := s.mig.ghosts[m.Pid]
	if hg == nil {
		if s.mig.early == nil || len(s.mig.early) >= earlyMax {
			s.mig.early = map[int][]string{}
		}
		s.mig.early[m.Pid] = append(s.mig.early[m.Pid], m.State)
	}
	s.mig.mu.Unlock()
	if hg == nil {
		return
	}
	f := strings.Fields(m.State)
	var n int
	if len(f) > 1 {
		n, _ = strconv.Atoi(f[1])
	}
	var err error
	switch {
	case len(f) == 0:
		err = fmt.Errorf("empty ghost state")
	case f[0] == "exit" || (f[0] == "signal" && n > 0) || f[0] == "lost":
		go s.endGhost(hg, f[0], n)
	case f[0] == "stopped" && n > 0:
		err = hg.g.Stop(syscall.Signal(n))
	case f[0] == "continued":
		err = hg.g.Cont()
	default:
		err = fmt.Errorf("unknown ghost state %q", m.State)
	}
	if err != nil {
		s.logf("ghost of %d: %s: %v", m.Pid, m.State, err)
	}
}
