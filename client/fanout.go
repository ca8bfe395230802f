package client

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Group is a command started on a node set with one write (ExecSet):
// group/G in the tree.
type Group struct {
	T       Tree
	ID      int
	Path    string
	Members []SetMember // in the set's order: BPROC_RANK
}

// SetMember is one node of a set launch: its process, or why it has none.
type SetMember struct {
	Node int
	Proc *Proc // nil when it did not start
	Err  error // a *ExecError when it did not start
}

// ExecSet starts argv on every node of set (a nodespec the tree resolves:
// "0-63", "allup") with one write to node/SET/ctl. It fails only when no
// node started it; the members say which did.
func ExecSet(t Tree, set string, argv []string, opts ExecOptions) (*Group, error) {
	if set == "" || strings.ContainsAny(set, "/\x00") {
		return nil, fmt.Errorf("bad node set %q", set)
	}
	path, cmd, err := execLine(t, argv, opts)
	if err != nil {
		return nil, err
	}
	name := "node/" + set + "/ctl"
	f, err := t.Open(name, os.O_RDWR)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no such node set %q", set)
		}
		return nil, fmt.Errorf("opening %s: %s", name, ErrText(unwrapPath(err)))
	}
	defer f.Close()
	var werr error
	if _, ok := t.(*MountTree); ok {
		withoutInterrupts(func() { _, werr = f.Write([]byte(cmd + "\n")) })
	} else {
		_, werr = f.Write([]byte(cmd + "\n"))
	}
	answer, rerr := readAnswer(f)
	if werr != nil {
		return nil, &ExecError{Path: path, Errno: ErrnoOf(werr), Text: answer}
	}
	if rerr != nil {
		return nil, fmt.Errorf("exec %s: reading %s: %s", path, name, ErrText(rerr))
	}
	g, err := ParseSetAnswer(answer)
	if err != nil {
		return nil, fmt.Errorf("exec %s: %s: %v", path, name, err)
	}
	g.T, g.Path = t, path
	for i := range g.Members {
		mb := &g.Members[i]
		if mb.Proc != nil {
			mb.Proc.T, mb.Proc.Path = t, path
		}
		if e, ok := mb.Err.(*ExecError); ok {
			e.Path = path
		}
	}
	return g, nil
}

// readAnswer reads a ctl file's whole answer (a set's is a line per node).
func readAnswer(f File) (string, error) {
	var b []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := f.Read(buf)
		b = append(b, buf[:n]...)
		if err == io.EOF || (err == nil && n == 0) {
			return string(b), nil
		}
		if err != nil {
			return string(b), err
		}
	}
}

// ParseSetAnswer reads a set exec's answer: `group G`, then per node in
// rank order `NODE PID` or `NODE error ERRNO TEXT`.
func ParseSetAnswer(s string) (*Group, error) {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	id, ok := strings.CutPrefix(lines[0], "group ")
	g := &Group{}
	var err error
	if g.ID, err = strconv.Atoi(id); !ok || err != nil || g.ID <= 0 {
		return nil, fmt.Errorf("answer %q does not start with a group", lines[0])
	}
	for _, l := range lines[1:] {
		f := strings.SplitN(l, " ", 4)
		node, err := strconv.Atoi(f[0])
		if err != nil || node < Master {
			return nil, fmt.Errorf("bad answer line %q", l)
		}
		switch {
		case len(f) == 2:
			pid, err := strconv.Atoi(f[1])
			if err != nil || pid <= 0 {
				return nil, fmt.Errorf("bad answer line %q", l)
			}
			g.Members = append(g.Members, SetMember{Node: node, Proc: &Proc{Node: node, Pid: pid}})
		case len(f) >= 3 && f[1] == "error":
			e, err := strconv.Atoi(f[2])
			if err != nil || e <= 0 {
				return nil, fmt.Errorf("bad answer line %q", l)
			}
			text := ""
			if len(f) == 4 {
				text = f[3]
			}
			g.Members = append(g.Members, SetMember{Node: node, Err: &ExecError{Errno: syscall.Errno(e), Text: text}})
		default:
			return nil, fmt.Errorf("bad answer line %q", l)
		}
	}
	return g, nil
}

func (g *Group) file(name string) string { return "group/" + strconv.Itoa(g.ID) + "/" + name }

// IO opens the group's one result stream: every process's output (those
// started attached) and end, as frames.
func (g *Group) IO() (*FrameReader, io.Closer, error) {
	f, err := g.T.Open(g.file("io"), os.O_RDONLY)
	if err != nil {
		return nil, nil, err
	}
	return NewFrameReader(f), f, nil
}

// Stdin opens the group's stdin: what is written goes to every process;
// closing it gives them all EOF.
func (g *Group) Stdin() (io.WriteCloser, error) { return g.T.Open(g.file("stdin"), os.O_WRONLY) }

// Kill sends sig to every live process of the group.
func (g *Group) Kill(sig syscall.Signal) error {
	return WriteFile(g.T, g.file("ctl"), []byte("kill "+SignalName(sig)+"\n"))
}

// FrameKind is what a frame of a group's io carries.
type FrameKind int

// The frames of a group's io.
const (
	FrameStdout FrameKind = iota + 1 // `NODE out LEN` and LEN bytes
	FrameStderr                      // `NODE err LEN` and LEN bytes
	FrameEnd                         // `NODE end STATUS`: the wait line
)

// Frame is one record of a group's io.
type Frame struct {
	Node   int
	Kind   FrameKind
	Data   []byte // out, err: valid until the next Next
	Status Status // end
}

// MaxFrame is the most bytes one output frame may announce; the master
// sends at most 16 KiB.
const MaxFrame = 1 << 20

// maxFrameHeader bounds a frame's header line.
const maxFrameHeader = 256

// FrameReader decodes a group's io. The bytes come from the master;
// malformed ones are an error, never a crash or an unbounded allocation.
type FrameReader struct {
	r   *bufio.Reader
	buf []byte
}

// NewFrameReader decodes frames from r.
func NewFrameReader(r io.Reader) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next frame; io.EOF once the stream ended cleanly
// between frames.
func (fr *FrameReader) Next() (Frame, error) {
	line, err := fr.r.ReadSlice('\n')
	if err != nil {
		if err == io.EOF && len(line) == 0 {
			return Frame{}, io.EOF
		}
		if err == bufio.ErrBufferFull || len(line) > maxFrameHeader {
			return Frame{}, fmt.Errorf("group io: frame header longer than %d bytes", maxFrameHeader)
		}
		if err == io.EOF {
			return Frame{}, fmt.Errorf("group io: stream ends inside a frame header: %w", io.ErrUnexpectedEOF)
		}
		return Frame{}, err
	}
	if len(line) > maxFrameHeader {
		return Frame{}, fmt.Errorf("group io: frame header longer than %d bytes", maxFrameHeader)
	}
	hdr := string(line[:len(line)-1])
	nodeStr, rest, ok := strings.Cut(hdr, " ")
	node, nerr := strconv.Atoi(nodeStr)
	kind, arg, ok2 := strings.Cut(rest, " ")
	if !ok || !ok2 || nerr != nil || node < Master || strconv.Itoa(node) != nodeStr {
		return Frame{}, fmt.Errorf("group io: bad frame header %q", hdr)
	}
	f := Frame{Node: node}
	switch kind {
	case "out", "err":
		f.Kind = FrameStdout
		if kind == "err" {
			f.Kind = FrameStderr
		}
		n, err := strconv.Atoi(arg)
		if err != nil || n <= 0 || n > MaxFrame || strconv.Itoa(n) != arg {
			return Frame{}, fmt.Errorf("group io: bad frame length in %q", hdr)
		}
		if cap(fr.buf) < n {
			fr.buf = make([]byte, n)
		}
		f.Data = fr.buf[:n]
		if _, err := io.ReadFull(fr.r, f.Data); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Frame{}, fmt.Errorf("group io: frame %q: %w", hdr, err)
		}
	case "end":
		f.Kind = FrameEnd
		st, err := ParseWait(arg)
		if err != nil {
			return Frame{}, fmt.Errorf("group io: %v", err)
		}
		f.Status = st
	default:
		return Frame{}, fmt.Errorf("group io: unknown frame kind in %q", hdr)
	}
	return f, nil
}
