package job

import (
	"io"
	"os"
	"os/exec"
	"testing"

	"bproc/internal/treetest"
)

// BenchmarkExecWait is one job's life on the master's own node, in-process:
// ctl exec, then wait, without FUSE or 9P in the way.
func BenchmarkExecWait(b *testing.B) {
	t := &testing.T{}
	_, u := startMaster(t)
	for i := 0; i < b.N; i++ {
		pid, err := execOn(t, u, "-1", "exec -i -n /bin/true")
		if err != nil {
			b.Fatal(err)
		}
		if st := treetest.Read(t, u.Open, "proc/"+pid+"/wait"); st != "exit 0\n" {
			b.Fatalf("wait = %q", st)
		}
	}
}

// BenchmarkForkExec is the peer: os/exec running /bin/true.
func BenchmarkForkExec(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStdout streams a file through a job's stdout on the master's own
// node, in-process: the master's and slave's share of bpsh's throughput.
func BenchmarkStdout(b *testing.B) {
	t := &testing.T{}
	_, u := startMaster(t)
	const size = 256 << 20
	f, err := os.CreateTemp("", "bproc-bench")
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	f.Truncate(size)
	f.Close()
	b.SetBytes(size)
	buf := make([]byte, 1<<20)
	for i := 0; i < b.N; i++ {
		pid, err := execOn(t, u, "-1", "exec -i -n /bin/cat "+f.Name())
		if err != nil {
			b.Fatal(err)
		}
		out, err := u.Open("proc/"+pid+"/stdout", os.O_RDONLY)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.CopyBuffer(io.Discard, onlyReader{out}, buf)
		out.Close()
		if err != nil || n != size {
			b.Fatalf("read %d bytes, %v", n, err)
		}
	}
}
