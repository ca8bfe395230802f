package pspace

import (
	"context"
	"slices"
	"testing"

	"bproc/fs/synth"
)

// The writer's environment and cwd (a read of its /proc files over FUSE)
// are asked for only when exec does not give both: bpsh gives -e and -c,
// and each launch paid for the read all the same.
func TestLoadJobAsksEnvOnlyWhenNeeded(t *testing.T) {
	m := NewMaster(DefaultConfig())
	m.UseStateDir(t.TempDir())
	t.Cleanup(m.Shutdown)
	for _, tc := range []struct {
		args []string
		asks int
		env  []string
		cwd  string
	}{
		{[]string{"-e", "A=1", "-c", "/tmp", "/bin/true"}, 0, []string{"A=1"}, "/tmp"},
		{[]string{"-e", "A=1", "/bin/true"}, 1, []string{"A=1"}, "/writer"},
		{[]string{"-c", "/tmp", "/bin/true"}, 1, []string{"W=1"}, "/tmp"},
		{[]string{"/bin/true"}, 1, []string{"W=1"}, "/writer"},
	} {
		asks := 0
		c := &synth.Caller{Env: func() ([]string, string, bool) { asks++; return []string{"W=1"}, "/writer", true }}
		o, argv, err := parseExec(tc.args)
		if err != nil {
			t.Fatal(err)
		}
		job, err := m.loadJob(context.Background(), c, o, argv)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		job.release()
		if asks != tc.asks || !slices.Equal(job.env, tc.env) || job.cwd != tc.cwd {
			t.Errorf("%q: asked %d times (want %d), env %q cwd %q; want %q %q", tc.args, asks, tc.asks, job.env, job.cwd, tc.env, tc.cwd)
		}
	}
}
