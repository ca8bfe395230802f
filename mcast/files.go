package mcast

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// FileNames are the per-node stats files, in the order listings show them.
var FileNames = []string{"cpuinfo", "meminfo", "loadavg", "net", "stat", "stamp"}

// File renders one per-node file from the record: the node's /proc file of
// that name in the kernel's format ("net" is /proc/net/dev), or "stamp",
// the freshness stamp:
//
//	node 3
//	state up
//	addr 10.77.0.13
//	updated 1763703600.123456789
//	interval 1.000
//	seq 57
//
// (updated: receiver's clock at the last packet, unix seconds; state: up,
// or stale at now; interval: the node's, in seconds; seq: its packet count).
func (r *Record) File(name string, now time.Time) ([]byte, error) {
	if r.Flags&RecPresent == 0 {
		return nil, fmt.Errorf("node %d: no stats received: %w", r.Node, syscall.ENOENT)
	}
	switch name {
	case "cpuinfo":
		if r.Flags&RecStatic == 0 {
			return []byte{}, nil // not arrived yet
		}
		s := r.Sample()
		return RenderCPUInfo(&s.CPU), nil
	case "meminfo":
		m := MemInfo{V: r.Mem, Have: r.MemHave}
		return RenderMemInfo(&m), nil
	case "loadavg":
		return RenderLoadAvg(&LoadAvg{Load1: r.Load[0], Load5: r.Load[1], Load15: r.Load[2], Running: r.Running, Total: r.Total, LastPID: r.LastPID}), nil
	case "net":
		return RenderNetDev(r.Sample().Net), nil
	case "stat":
		return RenderStat(&r.Sample().Stat), nil
	case "stamp":
		var b bytes.Buffer
		fmt.Fprintf(&b, "node %d\nstate %s\naddr %s\nupdated %s\ninterval %.3f\nseq %d\n",
			r.Node, r.State(now), r.Address(), unixString(r.Updated), float64(r.Interval)/1e9, r.SenderSeq)
		return b.Bytes(), nil
	}
	return nil, fmt.Errorf("stats file %q: %w", name, syscall.ENOENT)
}

func unixString(ns int64) string {
	return strconv.FormatInt(ns/1e9, 10) + "." + fmt.Sprintf("%09d", ns%1e9)
}

// filesWriter keeps DIR/N/{cpuinfo,...} in step with the shm file. It runs
// in its own goroutine and reads the shm file like any other reader, so a
// slow disk never delays packet handling; bursts for one node coalesce.
type filesWriter struct {
	dir   string
	shm   *ShmReader
	mu    sync.Mutex
	dirty map[int]bool // node -> also rewrite cpuinfo
	kick  chan struct{}
	rec   Record
	done  chan struct{}
}

func newFilesWriter(dir, shmPath string) (*filesWriter, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating stats directory: %w", err)
	}
	os.Chmod(dir, 0o755)
	shm, err := OpenShm(shmPath)
	if err != nil {
		return nil, err
	}
	return &filesWriter{dir: dir, shm: shm, dirty: map[int]bool{}, kick: make(chan struct{}, 1), done: make(chan struct{})}, nil
}

// mark asks for node's files to be rewritten (cpuinfo too when static).
func (w *filesWriter) mark(node int, static bool) {
	w.mu.Lock()
	w.dirty[node] = w.dirty[node] || static
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *filesWriter) run(stop <-chan struct{}) {
	defer close(w.done)
	defer w.shm.Close()
	for {
		select {
		case <-stop:
			return
		case <-w.kick:
		}
		w.mu.Lock()
		batch := w.dirty
		w.dirty = make(map[int]bool, len(batch))
		w.mu.Unlock()
		for node, static := range batch {
			if err := w.write(node, static); err != nil {
				// The shm file stays authoritative; a full disk
				// must not stop the receiver.
				continue
			}
		}
	}
}

func (w *filesWriter) write(node int, static bool) error {
	if err := w.shm.Read(node, &w.rec); err != nil {
		return err
	}
	nd := filepath.Join(w.dir, strconv.Itoa(node))
	if w.rec.Flags&RecPresent == 0 {
		return os.RemoveAll(nd) // forgotten
	}
	if err := os.Mkdir(nd, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("stats directory: %w", err)
	}
	now := time.Now()
	for _, name := range FileNames {
		if name == "cpuinfo" && !static {
			if _, err := os.Stat(filepath.Join(nd, name)); err == nil {
				continue
			}
		}
		b, err := w.rec.File(name, now)
		if err != nil {
			return err
		}
		if err := replaceFile(nd, name, b); err != nil {
			return err
		}
	}
	return nil
}

// replaceFile writes dir/name atomically: readers see the old or the new
// file, never a partial one.
func replaceFile(dir, name string, b []byte) error {
	tmp := filepath.Join(dir, "."+name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	_, werr := f.Write(b)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("replacing %s/%s: %w", dir, name, err)
	}
	return nil
}
