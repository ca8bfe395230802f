package srv

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkP9OpenReadClose measures one small-file round trip set over
// loopback 9P (walk, open, read, read EOF, clunk).
func BenchmarkP9OpenReadClose(b *testing.B) {
	c := dialB(b, serveB(b))
	buf := make([]byte, 100)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := c.Open("hello", os.O_RDONLY)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := f.Read(buf); err != nil || n != 13 {
			b.Fatal(n, err)
		}
		f.Close()
	}
}

// BenchmarkP9Stat measures a walk+getattr round trip.
func BenchmarkP9Stat(b *testing.B) {
	c := dialB(b, serveB(b))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Stat("sub/leaf"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFuseReadSmall measures open/read/close of a small file on the mount.
func BenchmarkFuseReadSmall(b *testing.B) {
	_, dir, m := mountPrivate(b)
	defer func() { m.Unmount(); m.Wait() }()
	p := filepath.Join(dir, "hello")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadAll(f); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}
