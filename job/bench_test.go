package job

import (
	"os/exec"
	"testing"
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
		if st := readAll(t, u, "proc/"+pid+"/wait"); st != "exit 0\n" {
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
