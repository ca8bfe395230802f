package fs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	iofs "io/fs"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// The master's tree. One type per kind of node; directories list live state.

func (m *Master) newRoot() Dir {
	status := newText(func(*Caller) ([]byte, error) { return m.statusText(false), nil })
	nodes := newDir(func(*Caller) []Dirent {
		m.mu.Lock()
		defer m.mu.Unlock()
		var ents []Dirent
		for _, num := range sortedInts(m.nodes) {
			ents = append(ents, Dirent{Name: itoa(num), Node: m.nodes[num].dir})
		}
		return ents
	})
	procs := newDir(func(*Caller) []Dirent {
		m.mu.Lock()
		defer m.mu.Unlock()
		var ents []Dirent
		for _, pid := range sortedInts(m.procs) {
			ents = append(ents, Dirent{Name: itoa(pid), Node: m.procs[pid].dir})
		}
		return ents
	})
	procs.lookup = func(_ *Caller, name string) Node {
		return lookupNumber(m, name, func(pid int) Node {
			if p := m.procs[pid]; p != nil {
				return p.dir
			}
			return nil
		})
	}
	nodes.lookup = func(_ *Caller, name string) Node {
		return lookupNumber(m, name, func(num int) Node {
			if n := m.nodes[num]; n != nil {
				return n.dir
			}
			return nil
		})
	}
	slave := m.newSlaveDir()
	public := []Dirent{{"node", nodes}, {"proc", procs}, {"status", status}}
	withSlave := append(append([]Dirent(nil), public...), Dirent{"slave", slave})
	return newDir(func(c *Caller) []Dirent {
		if c.Slave {
			return withSlave
		}
		return public
	})
}

// lookupNumber finds a directory named by a number in canonical form
// ("7", "-1"; not "07"), calling get with m.mu held.
func lookupNumber(m *Master, name string, get func(int) Node) Node {
	num, err := strconv.Atoi(name)
	if err != nil || itoa(num) != name {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return get(num)
}

// statusText is /bproc/status: one line per compute node (all, with -1,
// when withMaster).
func (m *Master) statusText(withMaster bool) []byte {
	m.mu.Lock()
	var shots []node
	for _, num := range sortedInts(m.nodes) {
		if num >= 0 || withMaster {
			shots = append(shots, *m.nodes[num])
		}
	}
	m.mu.Unlock()
	var b bytes.Buffer
	for i := range shots {
		b.WriteString(shots[i].statusLine())
	}
	return b.Bytes()
}

// statusLine is `N STATE ADDR MODE USER GROUP HOST`, from a copy of the
// node taken under m.mu: the user and group lookups read /etc files and
// must not hold the master's lock.
func (n *node) statusLine() string {
	addr, host := n.addr, n.host
	if addr == "" {
		addr = "-"
	}
	if host == "" {
		host = "-"
	}
	return fmt.Sprintf("%d %s %s %s %s %s %s\n", n.num, n.state, addr, modeString(n.mode),
		userName(n.uid), groupName(n.gid), host)
}

func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.Itoa(int(uid))); err == nil {
		return u.Username
	}
	return strconv.Itoa(int(uid))
}

func groupName(gid uint32) string {
	if g, err := user.LookupGroupId(strconv.Itoa(int(gid))); err == nil {
		return g.Name
	}
	return strconv.Itoa(int(gid))
}

// nodeDir is node/N: its attributes are the node's permissions.
type nodeDir struct {
	*dir
	m *Master
	n *node
}

func (m *Master) newNodeDir(n *node) *nodeDir {
	nd := &nodeDir{m: m, n: n}
	status := newText(func(*Caller) ([]byte, error) {
		m.mu.Lock()
		shot := *n
		m.mu.Unlock()
		return []byte(shot.statusLine()), nil
	})
	ctl := &ctlFile{ino: NewIno(), owner: nd.owner, mode: 0o666, cmds: nodeCommands, target: nd}
	io := &ioFile{ino: NewIno(), n: n}
	stats := m.newStatsDir(n)
	base := staticEntries("ctl", ctl, "io", io, "status", status)
	withStats := append(base(nil), Dirent{"stats", stats})
	nd.dir = newDir(func(c *Caller) []Dirent {
		if m.Stats == nil || n.num < 0 {
			return base(c)
		}
		return withStats
	})
	nd.dir.attr = func() Attr {
		m.mu.Lock()
		defer m.mu.Unlock()
		return Attr{Mode: iofs.ModeDir | n.mode.Perm(), Uid: n.uid, Gid: n.gid, Mtime: startTime}
	}
	return nd
}

func (nd *nodeDir) owner() (uint32, uint32) {
	nd.m.mu.Lock()
	defer nd.m.mu.Unlock()
	return nd.n.uid, nd.n.gid
}

// Setattr is chmod/chown/chgrp of a node: root only.
func (nd *nodeDir) Setattr(c *Caller, mode *iofs.FileMode, uid, gid *uint32) error {
	if !c.Root() {
		return fmt.Errorf("only root may change node permissions: %w", syscall.EPERM)
	}
	nd.m.mu.Lock()
	defer nd.m.mu.Unlock()
	if mode != nil {
		nd.n.mode = mode.Perm()
	}
	if uid != nil {
		nd.n.uid = *uid
	}
	if gid != nil {
		nd.n.gid = *gid
	}
	return nil
}

// command is one row of a ctl table, as in Plan 9's devproc: a name, the
// number of arguments and the function; it returns the text readable
// afterwards on the same open file.
type command struct {
	name    string
	minArgs int
	maxArgs int // -1: any
	usage   string
	fn      func(ctx context.Context, c *Caller, target any, args []string) (string, error)
}

var nodeCommands = []command{
	{"exec", 1, -1, "exec [-i] [-n] [-c DIR] [-e NAME=VALUE]... [-a ARGV0] PATH [ARG...]",
		func(ctx context.Context, c *Caller, t any, args []string) (string, error) {
			nd := t.(*nodeDir)
			pid, err := nd.m.exec(ctx, c, nd.n, args)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%d\n", pid), nil
		}},
	{"state", 1, 1, "state STATE", func(_ context.Context, c *Caller, t any, args []string) (string, error) {
		nd := t.(*nodeDir)
		return "", nd.m.setState(c, nd.n, args[0])
	}},
	{"kill", 1, 1, "kill SIG", func(_ context.Context, c *Caller, t any, args []string) (string, error) {
		nd := t.(*nodeDir)
		sig, err := parseSignal(args[0])
		if err != nil {
			return "", err
		}
		n, err := nd.m.signalNode(c, nd.n, sig)
		return fmt.Sprintf("%d\n", n), err
	}},
}

var procCommands = []command{
	{"kill", 0, 1, "kill [SIG]", func(_ context.Context, c *Caller, t any, args []string) (string, error) {
		pd := t.(*procDir)
		sig := syscall.SIGTERM
		if len(args) == 1 {
			var err error
			if sig, err = parseSignal(args[0]); err != nil {
				return "", err
			}
		}
		return "", pd.p.signal(pd.m, sig)
	}},
	{"stop", 0, 0, "stop", func(_ context.Context, c *Caller, t any, _ []string) (string, error) {
		pd := t.(*procDir)
		return "", pd.p.signal(pd.m, syscall.SIGSTOP)
	}},
	{"cont", 0, 0, "cont", func(_ context.Context, c *Caller, t any, _ []string) (string, error) {
		pd := t.(*procDir)
		return "", pd.p.signal(pd.m, syscall.SIGCONT)
	}},
}

// ctlFile takes one command per write; reading the same open file returns
// the result of the last command (or its error text).
type ctlFile struct {
	ino    uint64
	owner  func() (uint32, uint32)
	mode   iofs.FileMode
	cmds   []command
	target any
	check  func(c *Caller) error // permission to open, nil: anyone
}

func (f *ctlFile) Attr() Attr {
	uid, gid := f.owner()
	return Attr{Ino: f.ino, Mode: f.mode, Uid: uid, Gid: gid, Mtime: startTime}
}

func (f *ctlFile) Open(c *Caller, flags int) (Handle, error) {
	if f.check != nil {
		if err := f.check(c); err != nil {
			return nil, err
		}
	}
	return &ctlHandle{f: f, c: c}, nil
}

// ctlHandle buffers what is written until a whole command (a line) is
// there: a shell writes a long line in 4 KiB pieces and FUSE splits a
// write beyond 1 MiB, and a piece must never run as a command of its own.
type ctlHandle struct {
	f *ctlFile
	c *Caller

	// wmu orders commands: a line runs only after the one before it.
	wmu     sync.Mutex
	pending []byte // the unfinished line
	scan    lineScanner
	refused error        // the unfinished line was refused (too long): dropped up to its newline
	failed  *failedWrite // the last write, which failed a command begun before it

	mu     sync.Mutex // FUSE and 9P may run requests on one open file at once
	result []byte
	pos    int // read position in result: every command rewinds it, whatever the file offset
}

// Read runs an unfinished line first (`printf cmd >&3; read r <&3`), then
// returns the last command's result or its error text.
func (h *ctlHandle) Read(ctx context.Context, p []byte, _ int64) (int, error) {
	h.wmu.Lock()
	if len(h.pending) > 0 || h.refused != nil {
		h.scan = lineScanner{}
		h.runPending(ctx)
	}
	h.wmu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pos >= len(h.result) {
		return 0, io.EOF
	}
	n := copy(p, h.result[h.pos:])
	h.pos += n
	return n, nil
}

// Write buffers p and runs every command it completes, in order. A write
// that completes a command returns that command's error (and nothing
// after a failed command runs); one that only adds to an unfinished line
// succeeds.
func (h *ctlHandle) Write(ctx context.Context, p []byte, off int64) (int, error) {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	if f := h.failed; f != nil && off == f.off && len(p) >= f.n && sha256.Sum256(p[:f.n]) == f.sum {
		// The writer retries the rest of a write(2) whose first pieces
		// the kernel reported taken (FUSE splits big writes, and counts
		// what went before a failed piece): that rest is the command
		// that failed, and fails with it, rather than run as another.
		if len(p) == f.n {
			return 0, f.err
		}
		p = p[f.n:]
	}
	h.failed = nil
	began := len(h.pending) > 0 || h.refused != nil // the first line began in an earlier write
	rest := p
	for len(rest) > 0 {
		end := h.scan.scan(rest)
		piece := rest
		if end >= 0 {
			piece = rest[:end]
		}
		if h.refused == nil {
			if err := h.hold(len(piece)); err != nil {
				h.refused = err
				h.drop()
			} else {
				h.pending = append(h.pending, piece...)
			}
		}
		if end < 0 {
			break
		}
		rest = rest[end+1:]
		if err := h.runPending(ctx); err != nil {
			// What followed the failed command is dropped with it.
			h.scan = lineScanner{}
			if began && len(rest)+end+1 == len(p) {
				h.failed = &failedWrite{err: err, off: off, n: len(p), sum: sha256.Sum256(p)}
			}
			return 0, err
		}
	}
	if h.refused != nil {
		// Refused as soon as it is too long, not only at its newline: the
		// writer learns at once, and later pieces are dropped.
		return 0, h.refusal(h.refused)
	}
	return len(p), nil
}

// failedWrite identifies a write that failed the command it ended: at
// offset off, n bytes with that checksum.
type failedWrite struct {
	err error
	off int64
	n   int
	sum [sha256.Size]byte
}

func (h *ctlHandle) refusal(err error) error {
	h.setResult("", err)
	return err
}

// hold admits n more bytes into the unfinished line: at most MaxCommand
// in a line, and ctlHeldMax for all the unfinished lines of a user (a
// user may open many ctl files; root is not limited).
func (h *ctlHandle) hold(n int) error {
	if len(h.pending)+n > MaxCommand {
		return fmt.Errorf("command longer than %d bytes: %w", MaxCommand, syscall.E2BIG)
	}
	if h.c.Root() || n == 0 {
		return nil
	}
	ctlHeld.mu.Lock()
	defer ctlHeld.mu.Unlock()
	if ctlHeld.bytes[h.c.Uid]+n > ctlHeldMax {
		return fmt.Errorf("uid %d has %d bytes of unfinished ctl commands, the most there may be: %w",
			h.c.Uid, ctlHeld.bytes[h.c.Uid], syscall.ENOBUFS)
	}
	if ctlHeld.bytes == nil {
		ctlHeld.bytes = map[uint32]int{}
	}
	ctlHeld.bytes[h.c.Uid] += n
	return nil
}

// drop lets go of the unfinished line.
func (h *ctlHandle) drop() {
	if !h.c.Root() && len(h.pending) > 0 {
		ctlHeld.mu.Lock()
		if ctlHeld.bytes[h.c.Uid] -= len(h.pending); ctlHeld.bytes[h.c.Uid] <= 0 {
			delete(ctlHeld.bytes, h.c.Uid)
		}
		ctlHeld.mu.Unlock()
	}
	h.pending = nil
}

// ctlHeldMax bounds the unfinished ctl lines one user makes the master hold.
const ctlHeldMax = 64 << 20

var ctlHeld struct {
	mu    sync.Mutex
	bytes map[uint32]int // by uid
}

// runPending runs the buffered line (called with wmu held) and records
// its result for readers.
func (h *ctlHandle) runPending(ctx context.Context) error {
	line, refused := h.pending, h.refused
	h.drop()
	h.refused = nil
	if refused != nil {
		return h.refusal(refused)
	}
	if len(bytes.TrimSpace(line)) == 0 {
		return nil // a blank line, as in a shell script
	}
	out, err := h.run(ctx, string(line))
	h.setResult(out, err)
	return err
}

func (h *ctlHandle) setResult(out string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pos = 0
	if err != nil {
		h.result = []byte("error: " + err.Error() + "\n")
		return
	}
	h.result = []byte(out)
}

// Flush runs an unfinished line (`printf cmd > ctl`) when its writer
// closes the file; the command's error is what close(2) returns.
func (h *ctlHandle) Flush(ctx context.Context) error {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	if len(h.pending) == 0 && h.refused == nil {
		return nil
	}
	h.scan = lineScanner{}
	return h.runPending(ctx)
}

// Unfinished reports whether a line waits for its end.
func (h *ctlHandle) Unfinished() bool {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	return len(h.pending) > 0 || h.refused != nil
}

// Close runs what is still unfinished: the last close (9P clunk, FUSE
// release) ends the line.
func (h *ctlHandle) Close() error { return h.Flush(context.Background()) }

func (h *ctlHandle) run(ctx context.Context, line string) (string, error) {
	words, err := SplitCommand(line)
	if err != nil {
		return "", err
	}
	if len(words) == 0 {
		return "", fmt.Errorf("empty command: %w", syscall.EINVAL)
	}
	var names []string
	for _, cmd := range h.f.cmds {
		names = append(names, cmd.name)
		if cmd.name != words[0] {
			continue
		}
		args := words[1:]
		if len(args) < cmd.minArgs || (cmd.maxArgs >= 0 && len(args) > cmd.maxArgs) {
			return "", fmt.Errorf("usage: %s: %w", cmd.usage, syscall.EINVAL)
		}
		return cmd.fn(ctx, h.c, h.f.target, args)
	}
	return "", fmt.Errorf("unknown command %q (commands: %s): %w", words[0], strings.Join(names, ", "), syscall.EINVAL)
}

// ioFile is node/N/io: a reader streams the node's console ring.
type ioFile struct {
	ino uint64
	n   *node
}

func (f *ioFile) Attr() Attr { return Attr{Ino: f.ino, Mode: 0o444, Mtime: startTime} }

func (f *ioFile) Open(c *Caller, flags int) (Handle, error) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0 {
		return nil, fmt.Errorf("io is read-only: %w", syscall.EACCES)
	}
	return &ringHandle{rr: f.n.ring.Reader(c.Uid, c.Root())}, nil
}

type ringHandle struct {
	noWrite
	noClose
	rr *RingReader
}

func (h *ringHandle) Read(ctx context.Context, p []byte, _ int64) (int, error) {
	return h.rr.Read(ctx, p)
}

// procDir is proc/PID: files owned by the process's user.
type procDir struct {
	*dir
	m *Master
	p *Proc
}

func (m *Master) newProcDir(p *Proc) *procDir {
	pd := &procDir{m: m, p: p}
	owner := func() (uint32, uint32) { return p.uid, p.gid }
	own := func(c *Caller) error {
		if c.Root() || c.Uid == p.uid {
			return nil
		}
		return fmt.Errorf("process %d belongs to uid %d: %w", p.pid, p.uid, syscall.EACCES)
	}
	status := newText(func(*Caller) ([]byte, error) { return []byte(p.statusLine()), nil })
	status.attr = func() Attr { return Attr{Mode: 0o444, Uid: p.uid, Gid: p.gid, Mtime: startTime} }
	ctl := &ctlFile{ino: NewIno(), owner: owner, mode: 0o200, cmds: procCommands, target: pd, check: own}
	mk := func(mode iofs.FileMode, open func(c *Caller, flags int) (Handle, error)) *openFile {
		return &openFile{ino: NewIno(), mode: mode, owner: owner, open: func(c *Caller, flags int) (Handle, error) {
			if err := own(c); err != nil {
				return nil, err
			}
			return open(c, flags)
		}}
	}
	stdin := mk(0o200, func(c *Caller, flags int) (Handle, error) {
		return &streamWriter{s: p.stdin}, nil
	})
	stdout := mk(0o400, func(c *Caller, flags int) (Handle, error) {
		return attachReader(p.stdout), nil
	})
	stderr := mk(0o400, func(c *Caller, flags int) (Handle, error) {
		return attachReader(p.stderr), nil
	})
	wait := mk(0o400, func(c *Caller, flags int) (Handle, error) { return &waitHandle{p: p}, nil })
	pd.dir = newDir(staticEntries("ctl", ctl, "status", status, "stderr", stderr, "stdin", stdin, "stdout", stdout, "wait", wait))
	pd.dir.attr = func() Attr {
		return Attr{Mode: iofs.ModeDir | 0o555, Uid: p.uid, Gid: p.gid, Mtime: startTime}
	}
	return pd
}

// openFile is a leaf whose Open is a function.
type openFile struct {
	ino   uint64
	mode  iofs.FileMode
	owner func() (uint32, uint32)
	open  func(c *Caller, flags int) (Handle, error)
}

func (f *openFile) Attr() Attr {
	a := Attr{Ino: f.ino, Mode: f.mode, Mtime: startTime}
	if f.owner != nil {
		a.Uid, a.Gid = f.owner()
	}
	return a
}

func (f *openFile) Open(c *Caller, flags int) (Handle, error) { return f.open(c, flags) }

// streamReader reads a Stream; streamWriter writes one and ends it on close.
type streamReader struct {
	noWrite
	s        *Stream
	attached bool
	once     sync.Once
}

// attachReader is a reader the stream counts: the writer waits for it.
func attachReader(s *Stream) *streamReader {
	s.Attach()
	return &streamReader{s: s, attached: true}
}

func (h *streamReader) Close() error {
	if h.attached {
		h.once.Do(h.s.Detach)
	}
	return nil
}

func (h *streamReader) Read(ctx context.Context, p []byte, _ int64) (int, error) {
	return h.s.Read(ctx, p)
}

type streamWriter struct {
	noRead
	s   *Stream
	tee func(p []byte) // also copy written bytes here (the node's io ring)
}

func (h *streamWriter) Write(ctx context.Context, p []byte, _ int64) (int, error) {
	n, err := h.s.Write(ctx, p)
	if h.tee != nil {
		h.tee(p[:n]) // only what was taken: the rest comes again
	}
	return n, err
}

func (h *streamWriter) Close() error {
	h.s.CloseWrite()
	return nil
}

// waitHandle blocks the first read until the process ends.
type waitHandle struct {
	noWrite
	noClose
	p *Proc
}

func (h *waitHandle) Read(ctx context.Context, b []byte, off int64) (int, error) {
	select {
	case <-h.p.done:
	case <-ctx.Done():
		return 0, fmt.Errorf("wait interrupted: %w", syscall.EINTR)
	}
	h.p.mu.Lock()
	line := h.p.status + "\n"
	h.p.mu.Unlock()
	if off >= int64(len(line)) {
		return 0, io.EOF
	}
	return copy(b, line[off:]), nil
}

// newStatsDir is node/N/stats: the node's /proc files as recvstats last
// received them, rendered when opened.
func (m *Master) newStatsDir(n *node) Dir {
	var mu sync.Mutex
	files := map[string]*textFile{}
	return newDir(func(*Caller) []Dirent {
		mu.Lock()
		defer mu.Unlock()
		var ents []Dirent
		for _, name := range m.StatsFiles {
			f := files[name]
			if f == nil {
				f = newText(func(*Caller) ([]byte, error) { return m.Stats(n.num, name) })
				files[name] = f
			}
			ents = append(ents, Dirent{name, f})
		}
		return ents
	})
}
