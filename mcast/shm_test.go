package mcast

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// The documented offsets (doc.go) are the ones the compiler lays out.
func TestRecordLayout(t *testing.T) {
	var r Record
	var h ShmHeader
	offs := []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"Seq", unsafe.Offsetof(r.Seq), 0},
		{"Flags", unsafe.Offsetof(r.Flags), 8},
		{"Node", unsafe.Offsetof(r.Node), 12},
		{"Updated", unsafe.Offsetof(r.Updated), 16},
		{"Interval", unsafe.Offsetof(r.Interval), 48},
		{"Addr", unsafe.Offsetof(r.Addr), 64},
		{"NCPU", unsafe.Offsetof(r.NCPU), 80},
		{"MHz", unsafe.Offsetof(r.MHz), 96},
		{"Model", unsafe.Offsetof(r.Model), 128},
		{"Load", unsafe.Offsetof(r.Load), 208},
		{"CPUPct", unsafe.Offsetof(r.CPUPct), 244},
		{"MemHave", unsafe.Offsetof(r.MemHave), 248},
		{"Mem", unsafe.Offsetof(r.Mem), 256},
		{"Intr", unsafe.Offsetof(r.Intr), 640},
		{"RxRate", unsafe.Offsetof(r.RxRate), 688},
		{"CPU", unsafe.Offsetof(r.CPU), 704},
		{"Net", unsafe.Offsetof(r.Net), 784},
		{"PerCPUPct", unsafe.Offsetof(r.PerCPUPct), 5904},
		{"PerCPU", unsafe.Offsetof(r.PerCPU), 6928},
		{"sizeof(Record)", unsafe.Sizeof(r), 27408},
		{"sizeof(RecIface)", unsafe.Sizeof(RecIface{}), 160},
		{"Header.Nodes", unsafe.Offsetof(h.Nodes), 20},
		{"Header.Updated", unsafe.Offsetof(h.Updated), 48},
		{"Header.Counters", unsafe.Offsetof(h.Counters), 56},
	}
	for _, o := range offs {
		if o.got != o.want {
			t.Errorf("%s at %d, doc.go says %d", o.name, o.got, o.want)
		}
	}
	if RecordSize != 28672 {
		t.Errorf("RecordSize %d, doc.go says 28672", RecordSize)
	}
}

// Readers never see a record half written: the writer fills every field
// with one value per update, readers check all fields agree.
func TestSeqlockNoTornReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "beostat")
	w, err := CreateShm(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Update(2, func(r *Record) { r.Flags = RecPresent }); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop.Store(true)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for v := uint64(1); !stop.Load(); v++ {
			w.Update(2, func(r *Record) {
				r.Updated = int64(v)
				r.NPerCPU = uint32(1 + v%MaxCPUs)
				for i := range r.Mem {
					r.Mem[i] = v
				}
				for i := range r.PerCPU[:r.NPerCPU] {
					r.PerCPU[i][CPUIdle] = v
				}
			})
		}
	}()
	rd, err := OpenShm(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var rec Record
	// Until the writer has been seen at 50 values (bounded: the machine
	// may be busy with other work).
	deadline := time.Now().Add(3 * time.Second)
	reads, changes := 0, 0
	var last int64
	for changes < 50 && time.Now().Before(deadline) {
		if err := rd.Read(2, &rec); err != nil {
			t.Fatal(err)
		}
		v := uint64(rec.Updated)
		for i := range rec.Mem {
			if rec.Mem[i] != v {
				t.Fatalf("torn read: Mem[%d]=%d, Updated=%d", i, rec.Mem[i], v)
			}
		}
		for i := range rec.PerCPU[:rec.NPerCPU] {
			if rec.PerCPU[i][CPUIdle] != v {
				t.Fatalf("torn read: PerCPU[%d]=%d, Updated=%d", i, rec.PerCPU[i][CPUIdle], v)
			}
		}
		if rec.Updated != last {
			changes++
			last = rec.Updated
		}
		reads++
	}
	if changes < 5 {
		t.Errorf("only %d distinct values in %d reads: the writer did not run alongside", changes, reads)
	}
}

func TestShmGrowReuse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "beostat") // directory created
	w, err := CreateShm(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("shm file mode: %v %v", fi, err)
	}
	rd, err := OpenShm(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	// A second writer is refused while the first holds the file.
	if w2, err := CreateShm(path); err == nil || !strings.Contains(err.Error(), "another recvstats") {
		t.Errorf("second writer: %v", err)
		if w2 != nil {
			w2.Close()
		}
	}
	if err := w.Update(1000, func(r *Record) { r.Flags = RecPresent; r.Load[0] = 4.5 }); err != nil {
		t.Fatal(err)
	}
	// An existing reader sees the grown file.
	var rec Record
	if err := rd.Read(1000, &rec); err != nil || rec.Load[0] != 4.5 || rec.Node != 1000 {
		t.Fatalf("after growth: %v load %v node %d", err, rec.Load[0], rec.Node)
	}
	if err := rd.Read(ShmMaxNodes+5, &rec); err == nil {
		t.Error("read beyond the file succeeded")
	}
	// A writer that died mid-update leaves an odd sequence; the next
	// recvstats reuses the file and repairs it.
	w.Update(3, func(r *Record) { r.Flags = RecPresent })
	atomic.AddUint64(&w.slot(3).Seq, 1)
	w.Close()
	w2, err := CreateShm(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := rd.Read(3, &rec); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if err := rd.Read(1000, &rec); err != nil || rec.Load[0] != 4.5 {
		t.Errorf("data lost across reuse: %v %v", err, rec.Load[0])
	}
	w2.Close()
	// A file of another layout is replaced, not trusted.
	os.WriteFile(path, []byte("not a stats file"), 0o644)
	w3, err := CreateShm(path)
	if err != nil {
		t.Fatal(err)
	}
	w3.Close()
	if _, err := OpenShm(path); err != nil {
		t.Errorf("replaced file unreadable: %v", err)
	}
}
