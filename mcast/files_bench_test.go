package mcast

import (
	"io"
	"log"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkFilesWrite: one node's files rewritten after a packet, on tmpfs
// when /dev/shm exists.
func BenchmarkFilesWrite(b *testing.B) {
	dir, err := os.MkdirTemp("/dev/shm", "beostat-bench")
	if err != nil {
		dir = b.TempDir()
	} else {
		defer os.RemoveAll(dir)
	}
	w, err := CreateShm(filepath.Join(dir, "beostat"))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	s, _ := ReadSample("testdata/x86")
	w.Update(0, func(r *Record) {
		r.Flags = RecPresent | RecStatic
		r.Updated, r.Interval = time.Now().UnixNano(), int64(time.Second)
		r.NCPU, r.NPerCPU, r.NIf = 2, 2, uint32(len(s.Net))
		r.Mem, r.MemHave = s.Mem.V, s.Mem.Have
		for i, ifc := range s.Net {
			copy(r.Net[i].Name[:], ifc.Name)
		}
	})
	fw, err := newFilesWriter(filepath.Join(dir, "d"), filepath.Join(dir, "beostat"), -1, log.New(io.Discard, "", 0))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		w.Update(0, func(r *Record) { r.SenderSeq++; r.CPU[CPUIdle]++; r.Mem[MemFree]++; r.Net[0].C[0]++ })
		if err := fw.write(0, false); err != nil {
			b.Fatal(err)
		}
	}
}
