package pspace

import "sync"

// liveCount is how many live processes each uid has, for maxprocs. A
// look over every process for every process started was a quarter of the
// master's CPU, under its lock, when a user launched on 1000 nodes (its
// launch took twice root's). A process is counted while it is in the
// table and has not ended: from countLocked to its finish or forget.
type liveCount struct {
	mu sync.Mutex // a leaf: taken under m.mu and p.mu, never the other way
	n  map[uint32]int
}

func (l *liveCount) add(uid uint32, d int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == nil {
		l.n = map[uint32]int{}
	}
	if l.n[uid] += d; l.n[uid] <= 0 {
		delete(l.n, uid)
	}
}

func (l *liveCount) of(uid uint32) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[uid]
}

// addProcLocked puts p in the process table, under m.mu, and counts it
// if it has not ended.
func (m *Master) addProcLocked(p *Proc) {
	m.procs[p.pid] = p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.status == "" && p.live == nil {
		p.live = &m.live
		p.live.add(p.uid, 1)
	}
}

// uncountLocked takes p out of the count, once (p.mu held): it ended, or
// it left the table.
func (p *Proc) uncountLocked() {
	if p.live != nil {
		p.live.add(p.uid, -1)
		p.live = nil
	}
}
