package fs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Proc is one process of the cluster-wide process space.
type Proc struct {
	pid      int
	node     int
	uid, gid uint32
	argv     []string
	attached bool
	conn     *slaveConn
	ctr      *counters // the master's, counting how the process ends
	ring     *Ring

	stdout, stderr, stdin *Stream
	started               chan error // the slave's "started" or "failed"
	done                  chan struct{}

	mu       sync.Mutex
	state    string // starting, running, stopped, exited
	ospid    int
	status   string // the wait line, once done
	exitedAt time.Time

	dir *procDir
}

func (m *Master) newProc(c *Caller, n *node, sc *slaveConn, argv []string, attached bool) *Proc {
	p := &Proc{
		node: n.num, uid: c.Uid, gid: c.Gid, argv: argv, attached: attached, conn: sc, ring: n.ring,
		stdout:  NewStream(streamSize, !attached),
		stderr:  NewStream(streamSize, !attached),
		stdin:   NewStream(streamSize, false),
		started: make(chan error, 1),
		done:    make(chan struct{}),
		state:   "starting",
		ctr:     &m.ctr,
	}
	m.mu.Lock()
	p.pid = m.nextPid
	m.nextPid++
	m.procs[p.pid] = p
	m.mu.Unlock()
	p.dir = m.newProcDir(p)
	return p
}

// finish records how the process ended, once; its output streams end
// (after what is queued) and its stdin refuses further bytes.
func (p *Proc) finish(status string) {
	p.mu.Lock()
	if p.status != "" {
		p.mu.Unlock()
		return
	}
	p.ctr.ended(p.node, p.state, status)
	p.status = status
	p.state = "exited"
	p.exitedAt = time.Now()
	p.mu.Unlock()
	if strings.HasPrefix(status, "lost") {
		p.stdout.CloseWrite()
		p.stderr.CloseWrite()
	}
	p.stdin.Break(fmt.Errorf("process has exited: %w", syscall.EPIPE))
	// Nobody has asked for this output yet: keep its tail, not a megabyte
	// per stream for every exited process.
	p.stdout.Trim(exitedKeepBytes)
	p.stderr.Trim(exitedKeepBytes)
	close(p.done)
}

func (p *Proc) exitTime() (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitedAt, p.status != ""
}

func (p *Proc) statusLine() string {
	p.mu.Lock()
	state := p.state
	p.mu.Unlock()
	// Control characters escaped: a user's argv must not add lines to a
	// file that tools parse line by line.
	cmd := strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, JoinCommand(p.argv))
	return fmt.Sprintf("%d %d %s %d %d %s\n", p.pid, p.node, state, p.uid, p.gid, cmd)
}

// signal asks the process's slave to deliver sig to its process group.
func (p *Proc) signal(m *Master, sig syscall.Signal) error {
	select {
	case <-p.done:
		return fmt.Errorf("process %d has exited: %w", p.pid, syscall.ESRCH)
	default:
	}
	if err := p.conn.send(m, &Msg{Op: "signal", Pid: p.pid, Sig: int(sig)}); err != nil {
		return err
	}
	p.mu.Lock()
	switch sig {
	case syscall.SIGSTOP, syscall.SIGTSTP:
		p.state = "stopped"
	case syscall.SIGCONT:
		if p.state == "stopped" {
			p.state = "running"
		}
	}
	p.mu.Unlock()
	return nil
}

// slaveReport applies a line a slave wrote to slave/report.
func (p *Proc) slaveReport(line string) error {
	f := strings.Fields(line)
	if len(f) < 2 {
		return fmt.Errorf("bad report %q: %w", line, syscall.EINVAL)
	}
	if f[0] == "eof" { // an output stream ended without a byte
		switch f[1] {
		case "stdout":
			p.stdout.CloseWrite()
		case "stderr":
			p.stderr.CloseWrite()
		default:
			return fmt.Errorf("bad stream in report %q: %w", line, syscall.EINVAL)
		}
		return nil
	}
	var n int
	if _, err := fmt.Sscanf(f[1], "%d", &n); err != nil {
		return fmt.Errorf("bad number in report %q: %w", line, syscall.EINVAL)
	}
	switch f[0] {
	case "started", "failed":
		p.mu.Lock()
		starting := p.state == "starting"
		if starting && f[0] == "started" {
			p.ospid, p.state = n, "running"
		}
		p.mu.Unlock()
		if !starting {
			return fmt.Errorf("process %d is not starting: %w", p.pid, syscall.EINVAL)
		}
		var err error
		if f[0] == "failed" {
			err = fmt.Errorf("%s: %w", strings.Join(f[2:], " "), syscall.Errno(n))
		}
		select { // a repeated report must not block the slave's report file
		case p.started <- err:
		default:
		}
	case "exit":
		p.finish(fmt.Sprintf("exit %d", n))
	case "signal":
		p.finish(fmt.Sprintf("signal %d %s", n, unix.SignalName(syscall.Signal(n))))
	default:
		return fmt.Errorf("unknown report %q: %w", f[0], syscall.EINVAL)
	}
	return nil
}

// binCache keeps shipped binaries by file identity, so a binary is read
// and hashed once while it is unchanged.
type binCache struct {
	mu     sync.Mutex
	limit  int
	size   int
	byID   map[binID]*binary
	byHash map[string]*binary
	order  []binID
}

type binID struct {
	dev, ino    uint64
	size, mtime int64
	mode        uint32 // permission bits: whether others may read it travels too
}

type binary struct {
	hash   string
	data   []byte
	public bool // readable by everyone on the master, so it may be on the node
}

// load reads path for caller c, who must be allowed to execute it.
func (b *binCache) load(path string, c *Caller) (*binary, error) {
	f, id, err := openExecutable(path, c)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b.mu.Lock()
	if bin := b.byID[id]; bin != nil {
		b.mu.Unlock()
		return bin, nil
	}
	b.mu.Unlock()
	data, err := readPinned(f)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	bin := &binary{hash: hex.EncodeToString(sum[:]), data: data, public: id.mode&0o444 == 0o444}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.byID == nil {
		b.byID, b.byHash = map[binID]*binary{}, map[string]*binary{}
	}
	b.byID[id] = bin
	b.byHash[bin.hash] = bin
	b.order = append(b.order, id)
	b.size += len(data)
	for b.size > b.limit && len(b.order) > 1 {
		old := b.byID[b.order[0]]
		delete(b.byID, b.order[0])
		if old != nil {
			b.size -= len(old.data)
			if b.byHash[old.hash] == old {
				delete(b.byHash, old.hash)
			}
		}
		b.order = b.order[1:]
	}
	return bin, nil
}

func (b *binCache) get(hash string) *binary {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byHash[hash]
}

// mayExecFile is the kernel's execute check for a regular file: root
// needs some execute bit, others their class's.
func mayExecFile(c *Caller, mode uint32, uid, gid uint32) bool {
	if c.Root() {
		return mode&0o111 != 0
	}
	return execBit(c, mode, uid, gid)
}
