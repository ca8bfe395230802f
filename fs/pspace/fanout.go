package pspace

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"bproc/fs/nodespec"
	"bproc/fs/synth"
)

// Node-set launch: `exec` written to node/SET/ctl (SET any nodespec but a
// plain number: 0-63, all, allup, n[1,3]) starts the command on every node
// of the set with one write. The binary, its libraries, the limit and the
// writer's environment are resolved once for the set; then one start
// message goes to each node's slave and each process is an ordinary
// proc/PID. The launch is a group, group/G/, whose io file carries every
// process's output and end as framed records through one open.

const (
	// groupQueueSize bounds what a group's io holds for its reader:
	// beyond it the pumps, and through them the processes, wait.
	groupQueueSize = 1 << 20
	// pumpBufMin and pumpBufMax bound each stream pump's read buffer: it
	// starts small (a thousand quiet processes cost little) and grows
	// while reads fill it.
	pumpBufMin = 2 << 10
	pumpBufMax = 16 << 10
	// setDirsMax bounds the node/SET directories remembered by name.
	setDirsMax = 256
)

// fanout is the master's node-set state: the groups (under the
// master's lock, as its processes are) and the set directories looked up
// by name.
type fanout struct {
	groups map[int]*group
	nextID int

	mu      sync.Mutex
	setDirs map[string]*setDir
}

// setDir is node/SET: a ctl file whose exec runs on the whole set.
type setDir struct {
	*synth.FuncDir
	m    *Master
	name string
	spec nodespec.Spec
}

// lookupSet is node/NAME for a NAME that is a nodespec and not a plain
// number (node/99 stays "no such node"); nil when it is none.
func (m *Master) lookupSet(name string) synth.Node {
	if digits := strings.TrimPrefix(name, "-"); digits != "" && strings.Trim(digits, "0123456789") == "" || name == "self" {
		return nil // a number is a node or nothing
	}
	spec, err := nodespec.Parse(name)
	if err != nil {
		return nil
	}
	if spec.HasHostnames() {
		// node/anything is not a directory: a name no node has is none.
		if _, err := spec.Resolve(m.specCluster()); err != nil {
			return nil
		}
	}
	f := &m.fan
	f.mu.Lock()
	defer f.mu.Unlock()
	if sd := f.setDirs[name]; sd != nil {
		return sd
	}
	sd := &setDir{m: m, name: name, spec: spec}
	ctl := &synth.CtlFile[*setDir]{Ino: synth.NewIno(), Owner: func() (uint32, uint32) { return 0, 0 }, Mode: 0o666, Table: setCommands, Target: sd}
	sd.FuncDir = synth.NewDir(synth.StaticEntries("ctl", ctl)) // root's, 0555
	if f.setDirs == nil || len(f.setDirs) >= setDirsMax {
		f.setDirs = map[string]*setDir{} // forget them all: cheap to make again
	}
	f.setDirs[name] = sd
	return sd
}

var setCommands = synth.Table[*setDir]{
	{Name: "exec", MinArgs: 1, MaxArgs: -1, Usage: "exec [-i] [-n] [-c DIR] [-e NAME=VALUE]... [-a ARGV0] PATH [ARG...]",
		Run: func(ctx context.Context, c *synth.Caller, sd *setDir, args []string) (string, error) {
			return sd.m.execSet(ctx, c, sd.spec, args)
		}},
}

// setResult is one node's line of a set exec's answer.
type setResult struct {
	num int
	n   *node
	p   *Proc
	err error
}

// execSet starts args on every node of spec for caller c. The write
// succeeds when at least one process started; the answer is `group G`,
// then one line per node in the set's (BPROC_RANK) order: `NODE PID`, or
// `NODE error ERRNO TEXT` for a node where it did not start.
func (m *Master) execSet(ctx context.Context, c *synth.Caller, spec nodespec.Spec, args []string) (string, error) {
	o, argv, err := parseExec(args)
	if err != nil {
		return "", err
	}
	if o.early || o.then || o.output {
		// A set answers once every node has, and its output and ends
		// come on the group's io: -b, -w and -o are one node's.
		return "", fmt.Errorf("exec -b, -w and -o are for one node's ctl, not a set's (its output and ends are on group/G/io): %w", syscall.EINVAL)
	}
	nums, err := spec.Resolve(m.specCluster())
	if err != nil {
		return "", fmt.Errorf("%v: %w", err, syscall.EINVAL)
	}
	if len(nums) == 0 {
		return "", fmt.Errorf("the node set names no node: %w", syscall.ENOENT)
	}
	res := make([]setResult, len(nums))
	runnable := 0
	for i, num := range nums {
		res[i].num = num
		m.mu.Lock()
		n := m.nodes[num]
		m.mu.Unlock()
		if n == nil {
			res[i].err = fmt.Errorf("node %d: no such node: %w", num, syscall.ENOENT)
			continue
		}
		res[i].n = n
		if _, err := m.runnable(c, n); err != nil {
			res[i].err = err
			continue
		}
		runnable++
	}
	if runnable == 0 {
		return "", res[0].err
	}
	job, err := m.loadJob(ctx, c, o, argv) // once for the whole set
	if err != nil {
		return "", err
	}
	tmpl, err := newStartTemplate(job)
	if err != nil {
		job.release()
		return "", err
	}
	// Every node's start message goes out first, then the starts are
	// awaited in turn (together they take as long as the slowest): a
	// goroutine per node, with its stack to grow and its wake-up, cost
	// more than the start itself.
	late := make(chan struct{}) // every node's start timeout, with one timer
	timer := time.AfterFunc(startTimeout, func() { close(late) })
	scs := make([]*slaveConn, len(res))
	for i := range res {
		r := &res[i]
		if r.err != nil {
			continue
		}
		nj := *job
		nj.release = func() {} // the set's, once all started
		nj.encode = func(dst []byte, p *Proc, fields ...[]byte) []byte {
			return tmpl.encode(dst, p.pid, i, r.num, len(nums), fields...)
		}
		r.p, scs[i], r.err = m.sendJob(c, r.n, &nj) // its line names the node
	}
	for i := range res {
		r := &res[i]
		if r.p == nil {
			continue
		}
		nj := *job
		nj.release = func() {}
		nj.late = late
		if r.err = m.settleStart(ctx, r.p, r.n, scs[i], &nj); r.err != nil {
			r.p = nil
		}
	}
	timer.Stop()
	job.release()
	g := m.newGroup(c, res)
	if g == nil { // started nowhere: the first node's error, as one node's exec
		for _, r := range res {
			if r.err != nil {
				return "", r.err
			}
		}
		return "", fmt.Errorf("the set started nothing: %w", syscall.EIO)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "group %d\n", g.id)
	for _, r := range res {
		if r.p != nil {
			fmt.Fprintf(&b, "%d %d\n", r.num, r.p.pid)
		} else {
			fmt.Fprintf(&b, "%d error %d %s\n", r.num, int(synth.Errno(r.err)), oneLine(r.err.Error()))
		}
	}
	return b.String(), nil
}

// specCluster is the nodes as the nodespec grammar resolves against them.
func (m *Master) specCluster() []nodespec.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	cluster := make([]nodespec.Node, 0, len(m.nodes))
	for _, num := range sortedInts(m.nodes) {
		n := m.nodes[num]
		cluster = append(cluster, nodespec.Node{Num: num, State: n.state, Addr: orDash(n.addr), Host: orDash(n.host)})
	}
	return cluster
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps an error text on its line of the answer.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// startTemplate is a set's start message encoded once: encoding the
// environment, argv and libraries again for every node was a third of
// the master's work in a launch. Each node's message is the template with
// its pid and its rank's variables spliced in.
type startTemplate struct {
	head, tail []byte // around the rank variables, in the env list
}

// rankMark stands in the template's environment for the rank variables:
// an entry no environment can hold (NUL), encoded as JSON writes it.
const (
	rankMark    = "\x00bproc-rank"
	rankMarkEnc = `"\u0000bproc-rank"`
)

func newStartTemplate(job *execJob) (*startTemplate, error) {
	t := *job
	t.env = append(withoutRank(job.env), rankMark)
	b, err := json.Marshal(t.msg(&Proc{}))
	if err != nil {
		return nil, fmt.Errorf("encoding the start message: %w", err)
	}
	// The mark is the env list's last entry; nothing after the list
	// (working directory, libraries' paths) can hold a NUL either.
	i := bytes.LastIndex(b, []byte(rankMarkEnc))
	if len(b) == 0 || b[0] != '{' || i < 0 {
		return nil, fmt.Errorf("encoding the start message: no place for the rank: %w", syscall.EIO)
	}
	return &startTemplate{head: b[1:i], tail: b[i+len(rankMarkEnc):]}, nil
}

// encode is the start message of process pid, of rank rank of nprocs on
// node: the pid goes first (the template has none: 0 is left out), then
// fields, each `"NAME":VALUE` in JSON, for what else differs per node and
// the template leaves out (empty there).
func (t *startTemplate) encode(dst []byte, pid, rank, node, nprocs int, fields ...[]byte) []byte {
	b := slices.Grow(dst, len(t.head)+len(t.tail)+96)
	b = append(b, `{"pid":`...)
	b = strconv.AppendInt(b, int64(pid), 10)
	b = append(b, ',')
	for _, f := range fields {
		b = append(append(b, f...), ',')
	}
	b = append(b, t.head...)
	b = append(b, `"BPROC_RANK=`...)
	b = strconv.AppendInt(b, int64(rank), 10)
	b = append(b, `","BPROC_NODE=`...)
	b = strconv.AppendInt(b, int64(node), 10)
	b = append(b, `","BPROC_NPROCS=`...)
	b = strconv.AppendInt(b, int64(nprocs), 10)
	b = append(b, '"')
	return append(b, t.tail...)
}

// startBufs hold the start messages spliced from a set's template while
// they are sent (the job stream copies them): one buffer per message was
// the largest allocation of a launch per node. startBufMax bounds what
// goes back: a huge environment's buffer is let go.
var startBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

const startBufMax = 64 << 10

// withoutRank is env without BProc's BPROC_RANK, BPROC_NODE and
// BPROC_NPROCS, which each process of a set gets for its rank.
func withoutRank(env []string) []string {
	out := make([]string, 0, len(env)+1)
	for _, e := range env {
		if !strings.HasPrefix(e, "BPROC_RANK=") && !strings.HasPrefix(e, "BPROC_NODE=") && !strings.HasPrefix(e, "BPROC_NPROCS=") {
			out = append(out, e)
		}
	}
	return out
}
