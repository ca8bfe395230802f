package vmadump

import (
	"syscall"
	"testing"
	"time"
)

const syscallKILL = syscall.SIGKILL

// helperMain is the test binary run as a helper (see the netns test).
func helperMain() int { return 0 }

func testState(t *testing.T, static bool, flags Flags) {
	needRoot(t)
	bin := buildC(t, static, "state.c", "regs.S")
	work := t.TempDir()
	p := startProg(t, "READY", bin, work)
	img := dumpProg(t, p, DumpOptions{Flags: flags})
	_ = p.cmd.Wait()
	r, err := restoreImage(t, img)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	out, code := r.output(t, 20*time.Second)
	t.Logf("image %d bytes; output:\n%s", len(img), out)
	verdict(t, out)
	if code != 0 {
		t.Errorf("restored program exited %d", code)
	}
}

func TestStateStatic(t *testing.T)  { testState(t, true, 0) }
func TestStateDynamic(t *testing.T) { testState(t, false, 0) }
