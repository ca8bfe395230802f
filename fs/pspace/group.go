package pspace

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"bproc/fs/synth"
)

// group is one set launch's processes, in rank order.
type group struct {
	m        *Master
	id       int
	uid, gid uint32
	members  []member
	dir      *synth.FuncDir

	ended atomic.Bool // every process has ended

	mu     sync.Mutex
	opened bool // io was opened: it has one reader, once
}

// groupsMax bounds group/: beyond it, groups that ended are forgotten,
// oldest first, before their time.
const groupsMax = 1024

type member struct {
	node int
	p    *Proc
}

// newGroup records the started processes of res as a group; nil when
// none started.
func (m *Master) newGroup(c *synth.Caller, res []setResult) *group {
	g := &group{m: m, uid: c.Uid, gid: c.Gid}
	for _, r := range res {
		if r.p != nil {
			g.members = append(g.members, member{node: r.num, p: r.p})
		}
	}
	if len(g.members) == 0 {
		return nil
	}
	g.dir = g.newDir()
	f := &m.fan
	m.mu.Lock()
	f.nextID++
	g.id = f.nextID
	f.groups[g.id] = g
	if len(f.groups) > groupsMax {
		// As proc/ keeps at most exitedMax exited processes: the oldest
		// groups whose processes all ended go first.
		for _, id := range sortedInts(f.groups) {
			if len(f.groups) <= groupsMax {
				break
			}
			if f.groups[id].ended.Load() {
				delete(f.groups, id)
			}
		}
	}
	m.mu.Unlock()
	go func() {
		// The group goes when its processes would: exitedKeep after the
		// last one ended.
		for _, mb := range g.members {
			<-mb.p.done
		}
		g.ended.Store(true)
		time.AfterFunc(exitedKeep, g.forget)
	}()
	return g
}

// groupsDir is group/, listed as proc/ is (its files are the owner's).
func (m *Master) groupsDir() synth.Node {
	m.fan.groups = map[int]*group{}
	return numberedDir(m, m.fan.groups, func(g *group) synth.Node { return g.dir })
}

// forget takes the group out of group/ (its processes stay in proc/
// while they are kept).
func (g *group) forget() {
	g.m.mu.Lock()
	delete(g.m.fan.groups, g.id)
	g.m.mu.Unlock()
}

var groupCommands = signalCommands((*group).signal)

// signalCommands are a ctl's `kill [SIG]` (default TERM), `stop` and
// `cont`, sent with send (proc/PID/ctl's, group/G/ctl's).
func signalCommands[T any](send func(T, syscall.Signal) (string, error)) synth.Table[T] {
	return synth.Table[T]{
		{Name: "kill", MinArgs: 0, MaxArgs: 1, Usage: "kill [SIG]", Run: func(_ context.Context, _ *synth.Caller, t T, args []string) (string, error) {
			sig := syscall.SIGTERM
			if len(args) == 1 {
				var err error
				if sig, err = parseSignal(args[0]); err != nil {
					return "", err
				}
			}
			return send(t, sig)
		}},
		{Name: "stop", MinArgs: 0, MaxArgs: 0, Usage: "stop", Run: func(_ context.Context, _ *synth.Caller, t T, _ []string) (string, error) {
			return send(t, syscall.SIGSTOP)
		}},
		{Name: "cont", MinArgs: 0, MaxArgs: 0, Usage: "cont", Run: func(_ context.Context, _ *synth.Caller, t T, _ []string) (string, error) {
			return send(t, syscall.SIGCONT)
		}},
	}
}

// signal sends sig to every live process of the group and answers how
// many it reached.
func (g *group) signal(sig syscall.Signal) (string, error) {
	count := 0
	for _, mb := range g.members {
		if mb.p.signal(g.m, sig) == nil {
			count++
		}
	}
	return fmt.Sprintf("%d\n", count), nil
}

func (g *group) newDir() *synth.FuncDir {
	owner := func() (uint32, uint32) { return g.uid, g.gid }
	own := func(c *synth.Caller) error {
		if c.Root() || c.Uid == g.uid {
			return nil
		}
		return fmt.Errorf("group belongs to uid %d: %w", g.uid, syscall.EACCES)
	}
	ctl := &synth.CtlFile[*group]{Ino: synth.NewIno(), Owner: owner, Mode: 0o200, Table: groupCommands, Target: g, Check: own}
	mk := func(mode iofs.FileMode, open func() (synth.Handle, error)) *synth.FuncFile {
		return &synth.FuncFile{Ino: synth.NewIno(), Mode: mode, Owner: owner, OpenFunc: func(c *synth.Caller, flags int) (synth.Handle, error) {
			if err := own(c); err != nil {
				return nil, err
			}
			return open()
		}}
	}
	stream := mk(0o400, g.openIO)
	stdin := mk(0o200, func() (synth.Handle, error) { return &groupStdin{g: g, dead: make([]bool, len(g.members))}, nil })
	d := synth.NewDir(synth.StaticEntries("ctl", ctl, "io", stream, "stdin", stdin))
	d.AttrFunc = func() synth.Attr {
		return synth.Attr{Mode: iofs.ModeDir | 0o500, Uid: g.uid, Gid: g.gid, Mtime: synth.StartTime}
	}
	return d
}

// groupIO is group/G/io's one reader: the pumps put every process's
// output (for processes started with -i) and end into q as frames.
type groupIO struct {
	synth.NoWrite
	g      *group
	q      *synth.Stream
	cancel context.CancelFunc
	once   sync.Once
}

// openIO starts the pumps: per process one per attached output stream,
// writing `NODE out LEN` or `NODE err LEN` and the bytes, then `NODE end
// STATUS` once both streams are drained and the process has ended. Once
// every end is in, the stream ends.
func (g *group) openIO() (synth.Handle, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.opened {
		return nil, fmt.Errorf("group %d's io has been opened already: %w", g.id, syscall.EBUSY)
	}
	g.opened = true
	ctx, cancel := context.WithCancel(context.Background())
	q := pumpAll(ctx, ctx, g.members)
	return &groupIO{g: g, q: q, cancel: cancel}, nil
}

// pumpAll starts a pumpMember per member into a new queue, which ends
// once every pump has: the streams read until rctx ends (it stops the
// pumps at a frame boundary: exec -o's detach), the frames written with
// wctx (the reader's: it ends when the reader goes).
func pumpAll(rctx, wctx context.Context, members []member) *synth.Stream {
	q := synth.NewStream(groupQueueSize, false)
	q.Attach()
	var wmu sync.Mutex // one frame at a time: a frame is two writes
	frame := func(hdr, data []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		if _, err := q.Write(wctx, hdr); err != nil {
			return err
		}
		_, err := q.Write(wctx, data) // none for an end
		return err
	}
	var all sync.WaitGroup
	for _, mb := range members {
		all.Add(1)
		go func() {
			defer all.Done()
			pumpMember(rctx, mb, frame)
		}()
	}
	go func() {
		all.Wait()
		q.CloseWrite()
	}()
	return q
}

// pumpMember frames one process's output and end: its stdout on this
// goroutine, its stderr on one more (a thousand members are three
// thousand goroutines otherwise).
func pumpMember(ctx context.Context, mb member, frame func(hdr, data []byte) error) {
	p := mb.p
	if p.attached {
		p.stdout.Attach()
		p.stderr.Attach()
		errDone := make(chan struct{})
		go func() {
			defer close(errDone)
			defer p.stderr.Detach()
			pumpStream(ctx, mb.node, "err", p.stderr, frame)
		}()
		pumpStream(ctx, mb.node, "out", p.stdout, frame)
		p.stdout.Detach()
		<-errDone
	}
	if ctx.Err() != nil {
		return // stopped, maybe before the streams' end: no end frame
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return
	}
	// exec -w's line less its newline: the wait line, or why -b's start
	// failed (only a one-node exec -o has those).
	line, err := p.endLine(ctx)
	if err != nil {
		return
	}
	frame(frameHeader(mb.node, "end", strings.TrimSuffix(line, "\n")), nil)
}

// frameHeader is `NODE KIND ARG\n`.
func frameHeader(node int, kind, arg string) []byte {
	b := make([]byte, 0, 16+len(kind)+len(arg))
	b = strconv.AppendInt(b, int64(node), 10)
	b = append(append(append(b, ' '), kind...), ' ')
	return append(append(b, arg...), '\n')
}

// pumpBufs are pumps' first read buffers: most processes of a set print
// little or nothing, and each pump's buffer used to be garbage at once.
var pumpBufs = sync.Pool{New: func() any { b := make([]byte, pumpBufMin); return &b }}

func pumpStream(ctx context.Context, node int, kind string, s *synth.Stream, frame func(hdr, data []byte) error) {
	pooled := pumpBufs.Get().(*[]byte)
	defer pumpBufs.Put(pooled)
	buf := *pooled
	for ctx.Err() == nil { // stopped: what is left stays in s
		n, err := s.Read(ctx, buf)
		if n > 0 {
			if frame(frameHeader(node, kind, strconv.Itoa(n)), buf[:n]) != nil {
				return // the reader went away
			}
			if n == len(buf) && len(buf) < pumpBufMax {
				buf = make([]byte, 2*len(buf)) // the pooled one goes back
			}
		}
		if err != nil {
			return // EOF: the stream is drained; else the reader went away
		}
	}
}

func (h *groupIO) Read(ctx context.Context, b []byte, _ int64) (int, error) {
	n, err := h.q.Read(ctx, b)
	if err == io.EOF {
		h.g.forget() // read to the end: nothing is left to come for
	}
	return n, err
}

// Close stops the pumps; the processes' attached streams lose their
// reader, as when a reader of proc/PID/stdout goes.
func (h *groupIO) Close() error {
	h.once.Do(func() {
		h.cancel()
		h.q.Detach()
	})
	return nil
}

// groupStdin is group/G/stdin: what is written goes to every process's
// stdin; closing it gives them all EOF.
type groupStdin struct {
	synth.NoRead
	g    *group
	mu   sync.Mutex
	dead []bool // processes that took no more (ended, closed their stdin)
}

func (h *groupStdin) Write(ctx context.Context, b []byte, _ int64) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, mb := range h.g.members {
		if h.dead[i] {
			continue
		}
		if _, err := mb.p.stdin.Write(ctx, b); err != nil {
			if errors.Is(err, syscall.EINTR) {
				return 0, err
			}
			h.dead[i] = true
		}
	}
	return len(b), nil
}

func (h *groupStdin) Close() error {
	for _, mb := range h.g.members {
		mb.p.stdin.CloseWrite()
	}
	return nil
}
