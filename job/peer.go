package job

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"

	"bproc/fs/slaveproto"
	"bproc/fs/synth"

	"golang.org/x/sys/unix"
)

// Slaves serve each other binaries: a start message's From names peers
// (other slaves' peer listeners) that have or are fetching the binary,
// and the slave fetches it from them in order before the master. Each
// slave serves its cache over the same handshake and sealing as the
// master's 9P port (bpslave --peer-port), as a read-only tree:
//
//	bin/HASH   read: the cached binary with that sha256
//
// Entries this run fetched or hashed are served, and a binary being
// fetched is served as its fetch writes it (so the levels of the master's
// tree overlap), its read failing as soon as that fetch does. A peer
// asked for a binary it has not been sent yet waits for it a while
// (peerWait): the master names a peer as it sends it the binary, and the
// two start messages race. Whatever a peer sends, the fetching slave
// checks the hash (fetchInto): a bad peer costs a fetch from the master.

// PeerConn is a connection to another slave's peer tree.
type PeerConn interface {
	Opener
	Close() error
}

// PeerDialer connects to the peer listener at addr (host:port).
type PeerDialer func(ctx context.Context, addr string) (PeerConn, error)

// peerWait bounds how long a peer waits for a binary it is asked for to be
// in its cache; peerBudget bounds all of a fetch's tries at peers, so the
// master's own copy still arrives within its start timeout.
var (
	peerWait   = 10 * time.Second
	peerBudget = 15 * time.Second
)

// source is where a fetch reads a binary from: a peer, or the master.
type source struct {
	open   func(hash string) (io.ReadCloser, error)
	failed func(err error) // a failed try; nil for the master, tried last
}

// sources are where m's binary is fetched from: m's peers, then the master.
func (c *binCache) sources(tree Opener, m *slaveproto.Msg) []source {
	var srcs []source
	if c.dial != nil && len(m.From) > 0 {
		deadline := time.Now().Add(peerBudget)
		for _, addr := range m.From {
			srcs = append(srcs, source{
				open: func(hash string) (io.ReadCloser, error) { return c.openPeer(deadline, addr, hash) },
				failed: func(err error) {
					c.peerFailed.Add(1)
					c.logf("job %d: fetching %s from peer %s failed, trying the next source: %v", m.Pid, m.Hash, addr, err)
				},
			})
		}
	}
	return append(srcs, source{open: func(hash string) (io.ReadCloser, error) {
		return tree.Open("slave/bin/"+hash, os.O_RDONLY)
	}})
}

// openPeer opens bin/HASH at the peer; the connection ends with the file,
// or at deadline, whatever the peer does.
func (c *binCache) openPeer(deadline time.Time, addr, hash string) (io.ReadCloser, error) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	pc, err := c.dial(ctx, addr)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("peer %s: %w", addr, err)
	}
	stop := context.AfterFunc(ctx, func() { pc.Close() }) // unblocks a stalled read
	f, err := pc.Open("bin/"+hash, os.O_RDONLY)
	if err != nil {
		stop()
		cancel()
		pc.Close()
		return nil, fmt.Errorf("peer %s: %w", addr, err)
	}
	return &peerFile{ReadCloser: f, pc: pc, cancel: cancel}, nil
}

type peerFile struct {
	io.ReadCloser
	pc     PeerConn
	cancel context.CancelFunc
}

func (f *peerFile) Close() error {
	err := f.ReadCloser.Close()
	f.pc.Close()
	f.cancel()
	return err
}

// PeerFailures counts fetches from peers that failed (another source was
// then tried).
func (s *Slave) PeerFailures() uint64 { return s.binCache().peerFailed.Load() }

// binCache is the slave's cache, made on first use.
func (s *Slave) binCache() *binCache {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cache == nil {
		s.cache = &binCache{dial: s.DialPeer, logf: s.logf}
	}
	return s.cache
}

// PeerTree is the tree the slave's peer listener serves (see above):
// slaves only (the handshake's role), read-only.
func (s *Slave) PeerTree() synth.Dir {
	bin := &peerBinDir{c: s.binCache(), corrupt: s.CorruptPeer, ino: synth.NewIno()}
	return synth.NewDir(synth.StaticEntries("bin", bin))
}

// peerBinDir serves cached binaries by hash; it lists nothing.
type peerBinDir struct {
	c       *binCache
	corrupt bool
	ino     uint64
}

func (d *peerBinDir) Attr() synth.Attr {
	return synth.Attr{Ino: d.ino, Mode: fs.ModeDir | 0o111, Mtime: synth.StartTime}
}

func (d *peerBinDir) List(*synth.Caller) ([]synth.Dirent, error) { return nil, nil }

func (d *peerBinDir) Lookup(c *synth.Caller, name string) (synth.Node, error) {
	if !c.Slave {
		return nil, fmt.Errorf("only slaves may fetch binaries from a peer: %w", syscall.EPERM)
	}
	if _, _, err := cacheName(name, "x"); err != nil {
		return nil, fmt.Errorf("binary %q: %w", name, syscall.ENOENT)
	}
	return &synth.FuncFile{Ino: synth.NewIno(), Mode: 0o400, OpenFunc: func(c *synth.Caller, flags int) (synth.Handle, error) {
		if flags&(os.O_WRONLY|os.O_RDWR) != 0 {
			return nil, fmt.Errorf("binary %s: read-only: %w", name, syscall.EACCES)
		}
		ctx := c.Conn
		if ctx == nil {
			ctx = context.Background()
		}
		return d.c.openVerified(ctx, name, peerWait, d.corrupt)
	}}, nil
}

// openVerified opens the cache's checked copy of hash, or the file a fetch
// of it is writing (read as it grows), waiting up to wait for either while
// the node has not begun to fetch it.
func (c *binCache) openVerified(ctx context.Context, hash string, wait time.Duration, corrupt bool) (synth.Handle, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	fetching := false // a fetch of it was under way
	c.mu.Lock()
	for {
		if p, ok := c.byHash[hash]; ok {
			k := c.verified[p]
			c.mu.Unlock()
			f, err := openKnown(p, hash, k)
			if err != nil {
				return nil, err
			}
			return &peerHandle{f: f, corrupt: corrupt}, nil
		}
		var ch, done chan struct{}
		switch fl := c.inflight[hash]; {
		case fl != nil:
			fetching = true
			if h := openGrowing(c, fl, corrupt); h != nil {
				c.mu.Unlock()
				return h, nil
			}
			ch, done = fl.grewLocked(), fl.done
		case fetching:
			c.mu.Unlock()
			return nil, fmt.Errorf("binary %s: this node failed to fetch it: %w", hash, syscall.ENOENT)
		default:
			if c.begun == nil {
				c.begun = make(chan struct{})
			}
			ch = c.begun
		}
		c.mu.Unlock()
		select {
		case <-ch:
		case <-done:
		case <-timer.C:
			return nil, fmt.Errorf("binary %s: not in this node's cache: %w", hash, syscall.ENOENT)
		case <-ctx.Done():
			return nil, fmt.Errorf("binary %s: %w", hash, syscall.EINTR)
		}
		c.mu.Lock()
	}
}

// openGrowing opens the file fl's try is writing, if it has one and it is
// still that file; c.mu is held.
func openGrowing(c *binCache, fl *flight, corrupt bool) *peerHandle {
	if fl.tmp == "" {
		return nil
	}
	f, err := os.OpenFile(fl.tmp, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil // renamed into place meanwhile: found by hash next
	}
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil || [2]uint64{st.Dev, st.Ino} != fl.tmpID {
		f.Close()
		return nil
	}
	return &peerHandle{f: f, corrupt: corrupt, c: c, fl: fl, gen: fl.gen}
}

// openKnown opens p if it is still the file that hashed right (k).
func openKnown(p, hash string, k fileKey) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("binary %s: %w", hash, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || keyOfStat(&st) != k {
		f.Close()
		return nil, fmt.Errorf("binary %s: changed since it was checked: %w", hash, syscall.ENOENT)
	}
	return f, nil
}

// peerHandle reads a cached binary at the reader's offset, or one being
// fetched (fl set) as far as its try has written it: the fetching peer
// checks the hash in the end, so bytes of a try that then fails are
// caught there, and the read fails as soon as the try does.
type peerHandle struct {
	synth.NoWrite
	f       *os.File
	corrupt bool // a test's bad peer: every byte read is flipped

	c   *binCache
	fl  *flight
	gen int
}

func (h *peerHandle) Read(ctx context.Context, p []byte, off int64) (int, error) {
	if h.fl != nil {
		var err error
		if p, err = h.await(ctx, p, off); err != nil || len(p) == 0 {
			return 0, err
		}
	}
	n, err := h.f.ReadAt(p, off)
	if n > 0 && err == io.EOF {
		err = nil // the data now, the end on the next read
	}
	if h.corrupt {
		for i := range p[:n] {
			p[i] ^= 0xff
		}
	}
	return n, err
}

// await waits until the try has written past off, and cuts p to what it
// has; nothing (and no error) once the file is whole and off is past it.
func (h *peerHandle) await(ctx context.Context, p []byte, off int64) ([]byte, error) {
	stall := time.NewTimer(peerWait)
	defer stall.Stop()
	c, fl := h.c, h.fl
	c.mu.Lock()
	for {
		switch {
		case fl.gen != h.gen || fl.tmp == "" && !fl.complete:
			c.mu.Unlock()
			return nil, fmt.Errorf("the node's own fetch of the binary failed: %w", syscall.EIO)
		case fl.complete:
			c.mu.Unlock()
			return p, nil // whole: read it as it is
		case off < fl.written:
			p = p[:min(int64(len(p)), fl.written-off)]
			c.mu.Unlock()
			return p, nil
		}
		ch := fl.grewLocked()
		c.mu.Unlock()
		select {
		case <-ch:
		case <-stall.C:
			return nil, fmt.Errorf("the node's own fetch of the binary stalled: %w", syscall.ETIMEDOUT)
		case <-ctx.Done():
			return nil, fmt.Errorf("reading the binary: %w", syscall.EINTR)
		}
		c.mu.Lock()
	}
}

func (h *peerHandle) Close() error { return h.f.Close() }

// announcePeer tells the master where this slave serves its peers.
func (s *Slave) announcePeer(tree Opener) {
	if s.PeerPort == 0 {
		return
	}
	f, err := tree.Open("slave/peer", os.O_WRONLY)
	if err == nil {
		_, err = fmt.Fprintf(f, "%d\n", s.PeerPort)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		s.logf("announcing the peer port %d to the master (peers will not fetch from this node): %v", s.PeerPort, err)
	}
}

// DefaultPeerPort is bpslave's peer listener port (--peer-port).
const DefaultPeerPort = 2224
