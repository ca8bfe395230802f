package job

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// stdioMap on a process as a shell leaves it during `echo move > ctl`:
// fd 1 is the ctl file, the shell's stdout saved at fd 10. Stdout travels
// as fd 10's pipe, stderr as fd 2's, stdin as fd 0's; a dup of stderr
// goes with it; the ctl fd and regular files are not streams.
func TestStdioMapShellRedirect(t *testing.T) {
	inR, inW, _ := os.Pipe()
	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	for _, f := range []*os.File{inW, outR, errR} {
		defer f.Close()
	}
	ctl, err := os.Create(filepath.Join(t.TempDir(), "ctl"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "30")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, ctl, errW
	// ExtraFiles[i] is fd 3+i: fd 10 the saved stdout, fd 4 a dup of stderr.
	cmd.ExtraFiles = make([]*os.File, 8)
	cmd.ExtraFiles[1], cmd.ExtraFiles[7] = errW, outW
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	for _, f := range []*os.File{inR, outW, errW, ctl} {
		f.Close()
	}
	stdio, reps := stdioMap(cmd.Process.Pid, 1)
	if reps != [3]int{0, 10, 2} {
		t.Errorf("streams' descriptors %v, want [0 10 2]", reps)
	}
	want := map[int]int{0: 0, 2: 2, 4: 2, 10: 1}
	if len(stdio) != len(want) {
		t.Errorf("stdio map %v, want %v", stdio, want)
	}
	for fd, k := range want {
		if stdio[fd] != k {
			t.Errorf("fd %d travels as %d, want %d (map %v)", fd, stdio[fd], k, stdio)
		}
	}
}
