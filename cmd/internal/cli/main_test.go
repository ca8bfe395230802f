package cli

import (
	"syscall"
	"testing"
	"time"
)

// SIGTERM and SIGINT end a StopContext instead of the process.
func TestStopContext(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		ctx, stop := StopContext()
		if err := syscall.Kill(syscall.Getpid(), sig); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Errorf("%v: the context is not done", sig)
		}
		stop()
	}
}
