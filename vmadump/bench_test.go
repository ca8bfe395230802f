package vmadump

import (
	"bytes"
	"strconv"
	"testing"
	"time"
)

// BenchmarkDumpRestore dumps a memhog with 64 MB of dirty memory into a
// buffer and restores it; see t/bench-vmadump.sh for the full table.
func BenchmarkDumpRestore(b *testing.B) {
	needRoot(b)
	bin := buildC(b, true, "memhog.c")
	for _, mb := range []int{1, 64} {
		b.Run(strconv.Itoa(mb)+"MB", func(b *testing.B) {
			b.SetBytes(int64(mb) << 20)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				p := startProg(b, "READY", bin, strconv.Itoa(mb))
				var buf bytes.Buffer
				buf.Grow(mb<<20 + 1<<20)
				b.StartTimer()
				if err := Dump(p.cmd.Process.Pid, &buf, DumpOptions{}); err != nil {
					b.Fatal(err)
				}
				r, err := restoreImage(b, buf.Bytes())
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if out, _ := r.output(b, 10*time.Second); !bytes.Contains([]byte(out), []byte("VERDICT PASS")) {
					b.Fatalf("restored memhog: %s", out)
				}
				p.cmd.Wait()
			}
		})
	}
}
