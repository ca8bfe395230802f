package client

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"bproc/fs/synth"

	"golang.org/x/sys/unix"
)

// ExecOptions tunes Exec.
type ExecOptions struct {
	// Dir is the working directory on the node; "" means the caller's cwd.
	Dir string
	// Env is the environment. nil means the caller's: over the mount the
	// master reads it from the caller itself, over 9P it is sent with -e.
	Env []string
	// Argv0 overrides argv[0] (default: argv[0] as given).
	Argv0 string
	// NullStdin gives the process /dev/null as stdin (-n).
	NullStdin bool
	// Detached leaves out -i: output also goes to the node's io ring and
	// is kept (newest 1 MiB) when nobody reads it.
	Detached bool
	// NoLookPath takes argv[0] as the path even without a slash.
	NoLookPath bool
	// Early returns as soon as the master has the pid (exec -b -w), while
	// the node still forks: a start that fails there is then Wait's
	// *ExecError, and Wait reads the end on the same open ctl file
	// instead of opening proc/PID/wait. The Proc must be waited for (or
	// Closed) to let go of that file.
	Early bool
}

// Proc is a process started with Exec.
type Proc struct {
	T    Tree
	Node int
	Pid  int
	Path string
	ctl  File // Early: node/N/ctl, whose next read gives the end
}

// Close lets go of what Exec kept open for Wait (Early); Wait closes it
// itself.
func (p *Proc) Close() error {
	if p.ctl == nil {
		return nil
	}
	err := p.ctl.Close()
	p.ctl = nil
	return err
}

// ExecError is a failed exec: the errno the ctl write returned and the
// text the master left to read on the same file.
type ExecError struct {
	Path  string
	Errno syscall.Errno
	Text  string
}

func (e *ExecError) Error() string {
	return "exec " + e.Path + ": " + errnoText(e.Errno, e.Text, true)
}

// errnoText words a failed command: the errno in C wording, with the
// master's text when it says more. The text usually ends in the errno
// ("node 2 is down: host is down"), which is then worded once. quiet
// leaves the text out for errnos that speak for themselves.
func errnoText(errno syscall.Errno, text string, quiet bool) string {
	msg := Strerror(errno)
	if quiet {
		switch errno {
		case syscall.ENOENT, syscall.EACCES, syscall.EPERM, syscall.ENOEXEC, syscall.ENOTDIR:
			return msg
		}
	}
	t := strings.TrimPrefix(strings.TrimSpace(text), "error: ")
	low, es := strings.ToLower(t), errno.Error()
	switch {
	case t == "" || low == es:
		return msg
	case strings.HasSuffix(low, ": "+es):
		return t[:len(t)-len(es)] + msg
	}
	return msg + " (" + t + ")"
}

func (e *ExecError) Unwrap() error { return e.Errno }

// Strerror is the C library's wording of an errno ("No such file or
// directory"), which users know from every other command.
func Strerror(e syscall.Errno) string {
	s := e.Error()
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// ErrnoOf extracts the errno from err, EIO when it carries none: the
// errno the master's tree reports for it (synth.Errno).
func ErrnoOf(err error) syscall.Errno { return synth.Errno(err) }

// ErrText formats err for users: a bare errno in C wording, otherwise the
// error itself.
func ErrText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		var e syscall.Errno
		if errors.As(pe.Err, &e) {
			return pe.Op + " " + pe.Path + ": " + Strerror(e)
		}
	}
	var e syscall.Errno
	if errors.As(err, &e) && err.Error() == e.Error() {
		return Strerror(e)
	}
	return err.Error()
}

// ExecCommand builds the ctl line that starts argv[0] (already a full path)
// with argv on a node, every word quoted as the master's splitter reads it
// back (synth.Quote).
func ExecCommand(path string, argv []string, dir string, env []string, argv0 string, nullStdin, attached bool) string {
	var b strings.Builder
	n := len(path) + len(dir) + 32
	for _, a := range argv {
		n += len(a) + 3
	}
	for _, e := range env {
		n += len(e) + 6
	}
	b.Grow(n)
	b.WriteString("exec")
	if attached {
		b.WriteString(" -i")
	}
	if nullStdin {
		b.WriteString(" -n")
	}
	if dir != "" {
		b.WriteString(" -c ")
		b.WriteString(synth.Quote(dir))
	}
	for _, e := range env {
		b.WriteString(" -e ")
		b.WriteString(synth.Quote(e))
	}
	if argv0 != "" && argv0 != path {
		b.WriteString(" -a ")
		b.WriteString(synth.Quote(argv0))
	}
	b.WriteString(" -- ")
	b.WriteString(synth.Quote(path))
	for _, a := range argv[1:] {
		b.WriteByte(' ')
		b.WriteString(synth.Quote(a))
	}
	return b.String()
}

// ResolvePath finds the binary for name as execvp would: names with a
// slash are taken relative to the cwd, others are searched in $PATH.
func ResolvePath(name string) (string, error) {
	if strings.Contains(name, "/") {
		if filepath.IsAbs(name) {
			return name, nil
		}
		abs, err := filepath.Abs(name)
		if err != nil {
			return "", &ExecError{Path: name, Errno: ErrnoOf(err)}
		}
		return abs, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		var e syscall.Errno = syscall.ENOENT
		if errors.Is(err, fs.ErrPermission) {
			e = syscall.EACCES
		}
		return "", &ExecError{Path: name, Errno: e, Text: "not found in PATH"}
	}
	if !filepath.IsAbs(p) {
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
	}
	return p, nil
}

// maxCommand is the longest ctl command the tree takes (synth.MaxCommand,
// 2 MiB), less the newline that ends it.
const maxCommand = 2<<20 - 1

// execLine is the exec command for argv (without its newline) and the
// path it runs, for one node's ctl (Exec) or a node set's (ExecSet).
func execLine(t Tree, argv []string, opts ExecOptions) (path, cmd string, err error) {
	if len(argv) == 0 {
		return "", "", fmt.Errorf("exec: empty command")
	}
	path = argv[0]
	if !opts.NoLookPath {
		p, err := ResolvePath(argv[0])
		if err != nil {
			return "", "", err
		}
		path = p
	}
	argv0 := opts.Argv0
	if argv0 == "" {
		argv0 = argv[0]
	}
	dir := opts.Dir
	if dir == "" {
		if wd, err := os.Getwd(); err == nil {
			dir = wd
		}
	}
	env := opts.Env
	if env == nil && remote(t) {
		env = os.Environ()
	}
	cmd = ExecCommand(path, argv, dir, env, argv0, opts.NullStdin, !opts.Detached)
	if opts.Early {
		cmd = "exec -b -w" + cmd[len("exec"):]
	}
	// A ctl command is a line, whatever pieces FUSE or 9P cut it into on
	// the way; the tree refuses one longer than this with E2BIG.
	if len(cmd) > maxCommand {
		return "", "", &ExecError{Path: path, Errno: syscall.E2BIG,
			Text: fmt.Sprintf("arguments and environment take %d bytes, more than the %d one command may", len(cmd), maxCommand)}
	}
	return path, cmd, nil
}

// Exec starts argv on node: one open of node/N/ctl, one write of the exec
// command, one read of the pid. Errors do not name the node; callers do.
func Exec(t Tree, node int, argv []string, opts ExecOptions) (*Proc, error) {
	path, cmd, err := execLine(t, argv, opts)
	if err != nil {
		return nil, err
	}

	f, err := t.Open(NodeDir(node)+"/ctl", os.O_RDWR)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no such node")
		}
		return nil, fmt.Errorf("opening %s/ctl: %s", NodeDir(node), ErrText(unwrapPath(err)))
	}
	keep := false
	defer func() {
		if !keep {
			f.Close()
		}
	}()
	var buf [512]byte
	var werr error
	if _, ok := t.(*MountTree); ok {
		withoutInterrupts(func() { _, werr = f.Write([]byte(cmd + "\n")) })
	} else {
		_, werr = f.Write([]byte(cmd + "\n"))
	}
	if werr != nil {
		n, _ := readResult(f, buf[:])
		return nil, &ExecError{Path: path, Errno: ErrnoOf(werr), Text: string(buf[:n])}
	}
	var n int
	var rerr error
	if opts.Early {
		// One read(2): ReadAt would read on, into the wait for the end.
		n, rerr = f.Read(buf[:])
	} else {
		n, rerr = readResult(f, buf[:])
	}
	res := strings.TrimSpace(string(buf[:n]))
	pid, err := strconv.Atoi(res)
	if err != nil || pid <= 0 {
		if rerr != nil && n == 0 {
			return nil, fmt.Errorf("exec %s: reading the pid from %s/ctl: %s", path, NodeDir(node), ErrText(rerr))
		}
		return nil, fmt.Errorf("exec %s: %s/ctl answered %q, not a pid", path, NodeDir(node), res)
	}
	p := &Proc{T: t, Node: node, Pid: pid, Path: path}
	if opts.Early {
		p.ctl, keep = f, true
	}
	return p, nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// readResult reads a ctl file's answer. Over the mount it reads at offset
// 0 (pread), so the answer does not depend on the offset the write left.
func readResult(f File, buf []byte) (int, error) {
	if ra, ok := f.(io.ReaderAt); ok {
		n, err := ra.ReadAt(buf, 0)
		if n > 0 {
			return n, nil
		}
		return n, err
	}
	n, err := f.Read(buf)
	if n > 0 {
		return n, nil
	}
	return n, err
}

func (p *Proc) file(name string) string { return "proc/" + strconv.Itoa(p.Pid) + "/" + name }

// Stdout opens the process's stdout stream.
func (p *Proc) Stdout() (io.ReadCloser, error) { return p.T.Open(p.file("stdout"), os.O_RDONLY) }

// Stderr opens the process's stderr stream.
func (p *Proc) Stderr() (io.ReadCloser, error) { return p.T.Open(p.file("stderr"), os.O_RDONLY) }

// Streams opens the process's stdout and stderr at once. On the mount
// it opens proc/PID once (O_PATH, no open request) and each stream in
// it: 6 FUSE requests instead of 8, the two opens side by side.
func (p *Proc) Streams() (stdout, stderr io.ReadCloser, err error) {
	mt, ok := p.T.(*MountTree)
	if !ok {
		if stdout, err = p.Stdout(); err != nil {
			return nil, nil, err
		}
		if stderr, err = p.Stderr(); err != nil {
			stdout.Close()
			return nil, nil, err
		}
		return stdout, stderr, nil
	}
	dir := mt.p(p.file(""))
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(dfd)
	var files [2]*os.File
	var errs [2]error
	open := func(i int, name string) {
		fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errs[i] = &fs.PathError{Op: "open", Path: filepath.Join(dir, name), Err: err}
			return
		}
		files[i] = os.NewFile(uintptr(fd), filepath.Join(dir, name))
	}
	done := make(chan struct{})
	go func() { open(1, "stderr"); close(done) }()
	open(0, "stdout")
	<-done
	if err := cmp.Or(errs[0], errs[1]); err != nil {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
		return nil, nil, err
	}
	return files[0], files[1], nil
}

// Stdin opens the process's stdin; closing it gives the process EOF.
func (p *Proc) Stdin() (io.WriteCloser, error) { return p.T.Open(p.file("stdin"), os.O_WRONLY) }

// Kill sends sig to the process.
func (p *Proc) Kill(sig syscall.Signal) error {
	return WriteFile(p.T, p.file("ctl"), []byte("kill "+SignalName(sig)+"\n"))
}

// SignalName is sig's name without "SIG" ("TERM"), or its number.
func SignalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return strings.TrimPrefix(n, "SIG")
	}
	return strconv.Itoa(int(sig))
}

// Wait blocks until the process ends and returns how. For an Early
// start it reads the end from the exec's ctl file, where a start that
// failed on the node is an *ExecError.
func (p *Proc) Wait() (Status, error) {
	if p.ctl != nil {
		defer p.Close()
		line, err := readLine(p.ctl, NodeDir(p.Node)+"/ctl")
		if err != nil {
			return Status{}, err
		}
		if e, ok := parseFailed(p.Path, line); ok {
			return Status{}, e
		}
		return ParseWait(line)
	}
	f, err := p.T.Open(p.file("wait"), os.O_RDONLY)
	if err != nil {
		return Status{}, err
	}
	defer f.Close()
	line, err := readLine(f, p.file("wait"))
	if err != nil {
		return Status{}, err
	}
	return ParseWait(line)
}

// parseFailed reads exec -w's `failed ERRNO TEXT`: the start failed on
// the node with that errno and text.
func parseFailed(path, line string) (*ExecError, bool) {
	rest, ok := strings.CutPrefix(line, "failed ")
	if !ok {
		return nil, false
	}
	num, text, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 || n > 4095 {
		return nil, false
	}
	return &ExecError{Path: path, Errno: syscall.Errno(n), Text: strings.ReplaceAll(text, `\n`, "\n")}, true
}

// readLine reads one line (a wait status) from f, the file name, without
// its newline.
func readLine(f io.Reader, name string) (string, error) {
	var b []byte
	buf := make([]byte, 256)
	for {
		n, err := f.Read(buf)
		b = append(b, buf[:n]...)
		if i := strings.IndexByte(string(b), '\n'); i >= 0 {
			return string(b[:i]), nil
		}
		if err == io.EOF || (err == nil && n == 0) {
			if len(b) == 0 {
				return "", fmt.Errorf("%s: empty", name)
			}
			return string(b), nil
		}
		if err != nil {
			return "", &fs.PathError{Op: "read", Path: name, Err: unwrapErrno(err)}
		}
		if len(b) > 64<<10 { // a failed start's text names a path or two
			return "", fmt.Errorf("%s: answer too long", name)
		}
	}
}

// StatusKind says how a process ended.
type StatusKind int

// How a process ended.
const (
	Exited   StatusKind = iota // exit N
	Signaled                   // signal N NAME
	Lost                       // lost node N down
)

// Status is a process's end, from proc/PID/wait.
type Status struct {
	Kind   StatusKind
	Code   int    // Exited: the exit status
	Signal int    // Signaled: the signal number
	Name   string // Signaled: the signal name as given
	Node   int    // Lost: the node that went down
}

// ExitCode is the exit status for an exit, -1 for an abnormal end.
func (s Status) ExitCode() int {
	if s.Kind == Exited {
		return s.Code
	}
	return -1
}

// Success reports exit 0.
func (s Status) Success() bool { return s.Kind == Exited && s.Code == 0 }

func (s Status) String() string {
	return s.format("exit %d", "signal %d %s", "lost node %d down")
}

// Describe says the end in words for messages ("killed by signal 9 (KILL)").
func (s Status) Describe() string {
	return s.format("exited with status %d", "killed by signal %d (%s)", "lost: node %d went down")
}

// format renders s by the format of its kind: exited's takes the code,
// signaled's the number and name, lost's the node.
func (s Status) format(exited, signaled, lost string) string {
	switch s.Kind {
	case Exited:
		return fmt.Sprintf(exited, s.Code)
	case Signaled:
		return fmt.Sprintf(signaled, s.Signal, s.Name)
	}
	return fmt.Sprintf(lost, s.Node)
}

// ParseWait parses a proc/PID/wait line: `exit N`, `signal N NAME`, or
// `lost node N down`.
func ParseWait(line string) (Status, error) {
	f := strings.Fields(line)
	bad := func() (Status, error) {
		return Status{}, fmt.Errorf("bad wait status %q (want exit N, signal N NAME or lost node N down)", line)
	}
	switch {
	case len(f) == 2 && f[0] == "exit":
		n, err := strconv.Atoi(f[1])
		if err != nil || n < 0 || n > 255 {
			return bad()
		}
		return Status{Kind: Exited, Code: n}, nil
	case (len(f) == 2 || len(f) == 3) && f[0] == "signal":
		n, err := strconv.Atoi(f[1])
		if err != nil || n <= 0 || n > 128 {
			return bad()
		}
		s := Status{Kind: Signaled, Signal: n, Name: SignalName(syscall.Signal(n))}
		if len(f) == 3 {
			s.Name = strings.TrimPrefix(f[2], "SIG")
		}
		return s, nil
	case len(f) == 4 && f[0] == "lost" && f[1] == "node" && f[3] == "down":
		n, err := strconv.Atoi(f[2])
		if err != nil || n < Master {
			return bad()
		}
		return Status{Kind: Lost, Node: n}, nil
	}
	return bad()
}

// CtlError is a ctl command the tree refused: the write's errno and the
// text the file then read back.
type CtlError struct {
	Errno syscall.Errno
	Text  string
}

func (e *CtlError) Error() string { return errnoText(e.Errno, e.Text, false) }

func (e *CtlError) Unwrap() error { return e.Errno }

// Ctl writes one command to the ctl file name and returns what the file
// reads back: the result on success, a *CtlError with the error text on
// failure.
func Ctl(t Tree, name, cmd string) (string, error) {
	f, err := t.Open(name, os.O_RDWR)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var buf [4096]byte
	// The newline ends the command: the write returns its error.
	if _, werr := f.Write([]byte(cmd + "\n")); werr != nil {
		n, _ := readResult(f, buf[:])
		return "", &CtlError{Errno: ErrnoOf(werr), Text: string(buf[:n])}
	}
	n, _ := readResult(f, buf[:])
	return string(buf[:n]), nil
}

// Copy moves src to dst through one buffer of size bytes, without the
// ReaderFrom/WriterTo detours io.Copy takes for files (which fall back to
// 32 KiB chunks on the mount's streams).
func Copy(dst io.Writer, src io.Reader, size int) (int64, error) {
	buf := make([]byte, size)
	var total int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			total += int64(w)
			if werr != nil {
				return total, werr
			}
			if w < n {
				return total, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// AttachProc is a process another program started with Exec's Early
// (bpsh's C front, which hands bulk jobs over): ctl is the exec's
// node/N/ctl, whose next read gives the end. Wait then reads it.
func AttachProc(t Tree, node, pid int, path string, ctl File) *Proc {
	return &Proc{T: t, Node: node, Pid: pid, Path: path, ctl: ctl}
}
