package synth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"strings"
	"sync"
	"syscall"
)

// A ctl file takes commands, one per line, and runs each from its
// Table: a row names a command, bounds its arguments and runs it on the
// file's target, typed as the table is (as Plan 9's devproc.c runs its
// commands on the Proc *p of the file), so a row needs no type assertion.
// The rules for lines (quoting, length, a line in pieces) are the same for
// every ctl file, and live in ctlHandle.

// Command is one row of a Table: a name, the number of arguments and the
// function; it returns the text readable afterwards on the same open file.
type Command[T any] struct {
	Name    string
	MinArgs int
	MaxArgs int // -1: any
	Usage   string
	Run     func(ctx context.Context, c *Caller, target T, args []string) (string, error)
}

// Table is the commands of one kind of ctl file, run on a target of type T.
type Table[T any] []Command[T]

// Run splits line into words and runs the command they name on target.
func (t Table[T]) Run(ctx context.Context, c *Caller, target T, line string) (string, error) {
	words, err := SplitCommand(line)
	if err != nil {
		return "", err
	}
	if len(words) == 0 {
		return "", fmt.Errorf("empty command: %w", syscall.EINVAL)
	}
	var names []string
	for _, cmd := range t {
		names = append(names, cmd.Name)
		if cmd.Name != words[0] {
			continue
		}
		args := words[1:]
		if len(args) < cmd.MinArgs || (cmd.MaxArgs >= 0 && len(args) > cmd.MaxArgs) {
			return "", fmt.Errorf("usage: %s: %w", cmd.Usage, syscall.EINVAL)
		}
		return cmd.Run(ctx, c, target, args)
	}
	return "", fmt.Errorf("unknown command %q (commands: %s): %w", words[0], strings.Join(names, ", "), syscall.EINVAL)
}

// CtlFile takes one command per write, from Table, run on Target; reading
// the same open file returns the result of the last command (or its error
// text).
type CtlFile[T any] struct {
	Ino    uint64
	Owner  func() (uint32, uint32)
	Mode   iofs.FileMode
	Table  Table[T]
	Target T
	Check  func(c *Caller) error // permission to open, nil: anyone
}

func (f *CtlFile[T]) Attr() Attr {
	uid, gid := f.Owner()
	return Attr{Ino: f.Ino, Mode: f.Mode, Uid: uid, Gid: gid, Mtime: StartTime}
}

func (f *CtlFile[T]) Open(c *Caller, flags int) (Handle, error) {
	if f.Check != nil {
		if err := f.Check(c); err != nil {
			return nil, err
		}
	}
	run := func(ctx context.Context, line string) (string, error) { return f.Table.Run(ctx, c, f.Target, line) }
	return &ctlHandle{c: c, run: run}, nil
}

// ctlHandle buffers what is written until a whole command (a line) is
// there: a shell writes a long line in 4 KiB pieces and FUSE splits a
// write beyond 1 MiB, and a piece must never run as a command of its own.
type ctlHandle struct {
	c   *Caller
	run func(ctx context.Context, line string) (string, error) // a whole line, from the file's table

	// wmu orders commands: a line runs only after the one before it.
	wmu     sync.Mutex
	pending []byte // the unfinished line
	scan    lineScanner
	refused error        // the unfinished line was refused (too long): dropped up to its newline
	failed  *failedWrite // the last write, which failed a command begun before it

	mu     sync.Mutex // FUSE and 9P may run requests on one open file at once
	result []byte
	pos    int           // read position in result: every command rewinds it, whatever the file offset
	later  chan struct{} // open while a Later result is awaited; closed once it is set
	then   *thenResult   // the result that follows the current one (Then)
	stream ResultStream  // what reads give once the result is read (ThenStream)
	// prev is the file's state (later, then, stream) while a command
	// runs, for Aside to put back; aside says it did.
	prev  *resultState
	aside bool
}

// resultState is what a command replaces on its file, besides its text.
type resultState struct {
	later  chan struct{}
	then   *thenResult
	stream ResultStream
}

// ResultStream is a command's result read as a stream (ThenStream).
type ResultStream interface {
	// Read gives the stream's next bytes, waiting for them; io.EOF at
	// its end. It gets the read's context.
	Read(ctx context.Context, p []byte) (int, error)
	// Close: the file's reader went away (its last close, or a new
	// command on it).
	Close() error
}

// ThenStream makes s what the same open file's reads give once the
// command's first result has been read to its end: every read returns
// what s.Read returns (no read returns bytes of both), until a new
// command or the file's last close, which close s. `exec -o` answers
// the pid, then the process's output and end as frames. It returns
// false outside a ctl command.
func ThenStream(ctx context.Context, s ResultStream) bool {
	h, _ := ctx.Value(laterKey{}).(*ctlHandle)
	if h == nil {
		return false
	}
	h.mu.Lock()
	h.stream = s
	h.mu.Unlock()
	return true
}

// Aside makes the command running with ctx one that leaves its file's
// result as it was (what is being read, a Then or a ThenStream still to
// come), rather than replacing it: a command that acts on that result,
// as `detach` on `exec -o`'s frames. Its error still fails the write,
// and becomes the file's result (`error: TEXT`) only on a file without a
// ResultStream, where there is nothing to leave. It returns the file's
// ResultStream, nil if it has none (or outside a ctl command).
func Aside(ctx context.Context) ResultStream {
	h, _ := ctx.Value(laterKey{}).(*ctlHandle)
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.prev; p != nil && !h.aside {
		h.later, h.then, h.stream = p.later, p.then, p.stream
		h.aside = true
	}
	return h.stream
}

// thenResult is a command's second result, made when a reader asks for it.
type thenResult struct {
	next func(ctx context.Context) (string, error)
}

// Then gives the command running with ctx a second result on the same
// open file: once a reader has read the first result to its end, its next
// read waits for next (which gets the read's context: an interrupted
// read returns EINTR and the next read waits again) and returns what next
// returns, as the file's new result. No read returns bytes of both, so a
// reader that reads ahead (a shell's read builtin) still reads them one
// after the other. `exec -w` answers the pid, then the process's end. It
// returns false outside a ctl command.
func Then(ctx context.Context, next func(ctx context.Context) (string, error)) bool {
	h, _ := ctx.Value(laterKey{}).(*ctlHandle)
	if h == nil {
		return false
	}
	h.mu.Lock()
	h.then = &thenResult{next: next}
	h.mu.Unlock()
	return true
}

// laterKey carries a command's way to defer its result (Later).
type laterKey struct{}

// Later lets the command running with ctx set its result after it has
// returned: a command whose write must return before the work can be
// done (a process asking to move cannot be stopped while its write(2) is
// in the kernel) returns at once and sets the result with the returned
// function, once. Until then a read of the open file waits for it. It
// returns nil outside a ctl command.
func Later(ctx context.Context) func(out string, err error) {
	h, _ := ctx.Value(laterKey{}).(*ctlHandle)
	if h == nil {
		return nil
	}
	ch := make(chan struct{})
	h.mu.Lock()
	h.later = ch
	h.mu.Unlock()
	var once sync.Once
	return func(out string, err error) {
		once.Do(func() {
			h.mu.Lock()
			if h.later == ch { // no later command has replaced it
				h.storeLocked(out, err)
				h.later = nil
			}
			h.mu.Unlock()
			close(ch)
		})
	}
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
	for h.later != nil {
		ch := h.later
		h.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			h.mu.Lock()
			return 0, fmt.Errorf("waiting for the command's result: %w", syscall.EINTR)
		}
		h.mu.Lock()
	}
	if h.pos >= len(h.result) && h.then != nil {
		t := h.then
		h.mu.Unlock()
		out, err := t.next(ctx)
		h.mu.Lock()
		if errors.Is(err, syscall.EINTR) {
			return 0, err // t stays: the next read waits again
		}
		if h.then == t { // no later command has replaced it
			h.then = nil
			h.storeLocked(out, err)
		}
	}
	if h.pos >= len(h.result) && h.stream != nil {
		s := h.stream
		h.mu.Unlock()
		n, err := s.Read(ctx, p)
		h.mu.Lock()
		return n, err
	}
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
	h.mu.Lock()
	// A new command: an old Later result no longer lands here, nor does
	// an old second result or stream come (unless it is Aside).
	h.prev = &resultState{later: h.later, then: h.then, stream: h.stream}
	h.later, h.then, h.stream = nil, nil, nil
	h.mu.Unlock()
	out, err := h.run(context.WithValue(ctx, laterKey{}, h), string(line))
	h.mu.Lock()
	prev, aside := h.prev, h.aside
	h.prev, h.aside = nil, false
	if aside && (err == nil || h.stream != nil) {
		h.mu.Unlock()
		return err // the result stays as it was
	}
	if h.later == nil || err != nil {
		h.storeLocked(out, err)
		h.later = nil // a failed command has no later result
	}
	var failed ResultStream
	if err != nil {
		h.then = nil // nor a second one
		failed, h.stream = h.stream, nil
	}
	h.mu.Unlock()
	for _, s := range []ResultStream{prev.stream, failed} {
		if s != nil {
			s.Close()
		}
	}
	return err
}

func (h *ctlHandle) setResult(out string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.storeLocked(out, err)
}

func (h *ctlHandle) storeLocked(out string, err error) {
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
// Its stream (ThenStream) ends with it.
func (h *ctlHandle) Close() error {
	err := h.Flush(context.Background())
	h.mu.Lock()
	s := h.stream
	h.stream = nil
	h.mu.Unlock()
	if s != nil {
		s.Close()
	}
	return err
}
