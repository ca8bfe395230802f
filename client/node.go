package client

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"bproc/fs/nodespec"
)

// Master is the master's node number.
const Master = -1

// States are BProc's node states, in its order. From nodespec, not the
// master's package: that would bring the master (and its inits) into
// every command.
var States = nodespec.States

// ValidState reports whether s is one of States.
func ValidState(s string) bool { return nodespec.ValidState(s) }

// NodeStatus is one line of `status` or `node/N/status`:
// `N STATE ADDR MODE USER GROUP HOST`.
type NodeStatus struct {
	Node    int
	State   string
	Addr    string // "-" when unknown
	Mode    fs.FileMode
	ModeStr string // as the line has it ("---x--x--x")
	User    string
	Group   string
	Host    string // "-" when unknown
}

// String formats the status as the tree does.
func (n NodeStatus) String() string {
	return fmt.Sprintf("%d %s %s %s %s %s %s", n.Node, n.State, n.Addr, n.ModeStr, n.User, n.Group, n.Host)
}

// ParseNodeStatus parses one node status line.
func ParseNodeStatus(line string) (NodeStatus, error) {
	f := strings.Fields(line)
	if len(f) != 7 {
		return NodeStatus{}, fmt.Errorf("node status %q: %d fields, want 7 (N STATE ADDR MODE USER GROUP HOST)", line, len(f))
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < Master {
		return NodeStatus{}, fmt.Errorf("node status %q: bad node number %q", line, f[0])
	}
	mode, err := ParseModeString(f[3])
	if err != nil {
		return NodeStatus{}, fmt.Errorf("node status %q: %w", line, err)
	}
	return NodeStatus{Node: n, State: f[1], Addr: f[2], Mode: mode, ModeStr: f[3], User: f[4], Group: f[5], Host: f[6]}, nil
}

// ParseNodeStatusList parses `status`: one line per node; blank lines are
// skipped.
func ParseNodeStatusList(text string) ([]NodeStatus, error) {
	var out []NodeStatus
	for _, l := range strings.Split(text, "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		s, err := ParseNodeStatus(l)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// ParseModeString reads permission bits as ls shows them: a type character
// then three rwx triplets ("---x--x--x", "drwxr-xr-x"), with s/S/t/T. The
// type character may be left out ("--x--x--x").
func ParseModeString(s string) (fs.FileMode, error) {
	if len(s) == 9 {
		s = "-" + s
	}
	if len(s) != 10 {
		return 0, fmt.Errorf("bad mode %q: want 10 characters like ---x--x--x", s)
	}
	var m fs.FileMode
	if s[0] == 'd' {
		m |= fs.ModeDir
	} else if s[0] != '-' {
		return 0, fmt.Errorf("bad mode %q: unknown type %q", s, s[0])
	}
	for i, c := range s[1:] {
		bit := fs.FileMode(1) << (8 - i)
		want := "rwx"[i%3]
		switch {
		case c == '-':
		case byte(c) == want:
			m |= bit
		case i%3 == 2 && (c == 's' || c == 't'):
			m |= bit | special(i)
		case i%3 == 2 && (c == 'S' || c == 'T'):
			m |= special(i)
		default:
			return 0, fmt.Errorf("bad mode %q: %q at position %d", s, c, i+1)
		}
	}
	return m, nil
}

func special(i int) fs.FileMode {
	switch i / 3 {
	case 0:
		return fs.ModeSetuid
	case 1:
		return fs.ModeSetgid
	}
	return fs.ModeSticky
}

// ListComputeNodes reads the compute nodes from `status`, ascending. It is
// all a nodespec needs (the master is named only by "master" or -1).
func ListComputeNodes(t Tree) ([]NodeStatus, error) {
	b, err := ReadFile(t, "status")
	if err != nil {
		return nil, fmt.Errorf("reading node status: %w", err)
	}
	nodes, err := ParseNodeStatusList(string(b))
	if err != nil {
		return nil, err
	}
	sort.SliceStable(nodes, func(i, j int) bool { return nodes[i].Node < nodes[j].Node })
	return nodes, nil
}

// ListNodes reads the compute nodes from `status` and the master from
// `node/-1/status`, ascending by node number (the master first). A master
// status that cannot be read is left out.
func ListNodes(t Tree) ([]NodeStatus, error) {
	nodes, err := ListComputeNodes(t)
	if err != nil {
		return nil, err
	}
	if mb, err := ReadFile(t, "node/-1/status"); err == nil {
		if m, err := ParseNodeStatus(strings.TrimSpace(string(mb))); err == nil {
			nodes = append(nodes, m)
		}
	}
	sort.SliceStable(nodes, func(i, j int) bool { return nodes[i].Node < nodes[j].Node })
	return nodes, nil
}

// NodeStatusOf reads one node's status.
func NodeStatusOf(t Tree, n int) (NodeStatus, error) {
	b, err := ReadFile(t, NodeDir(n)+"/status")
	if err != nil {
		return NodeStatus{}, err
	}
	return ParseNodeStatus(strings.TrimSpace(string(b)))
}

// ProcStatus is one `proc/PID/status` line: `PID NODE STATE UID GID COMMAND...`.
type ProcStatus struct {
	Pid     int
	Node    int
	State   string
	Uid     int
	Gid     int
	Command string
}

// ParseProcStatus parses a process status line.
func ParseProcStatus(line string) (ProcStatus, error) {
	f := strings.Fields(line)
	if len(f) < 5 {
		return ProcStatus{}, fmt.Errorf("process status %q: %d fields, want at least 5 (PID NODE STATE UID GID COMMAND...)", line, len(f))
	}
	var p ProcStatus
	var nums [4]int
	for i, idx := range []int{0, 1, 3, 4} {
		v, err := strconv.Atoi(f[idx])
		if err != nil {
			return ProcStatus{}, fmt.Errorf("process status %q: bad number %q", line, f[idx])
		}
		nums[i] = v
	}
	p.Pid, p.Node, p.Uid, p.Gid = nums[0], nums[1], nums[2], nums[3]
	p.State = f[2]
	p.Command = strings.Join(f[5:], " ")
	return p, nil
}

// ListProcs reads the status of every process in proc/, ascending by pid.
// Processes that vanish while listing are skipped.
func ListProcs(t Tree) ([]ProcStatus, error) {
	ents, err := t.ReadDir("proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	var out []ProcStatus
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := ReadFile(t, "proc/"+e.Name()+"/status")
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		p, err := ParseProcStatus(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pid < out[j].Pid })
	return out, nil
}
