package vmadump

import (
	"bytes"
	"errors"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// RestoreOptions.Spawn starts the stub for the caller, with what the caller
// gives it, and Restore answers a Spawn that breaks its contract with an
// error, leaving no process behind.
func TestRestoreSpawn(t *testing.T) {
	needRoot(t)
	img := tinyImage(t)
	lockedStart := func(cmd *exec.Cmd, traced func() error) error {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			return err
		}
		return traced()
	}
	for _, c := range []struct {
		name  string
		spawn func(cmd *exec.Cmd, traced func() error) error
		want  string // in the error; "" for success
	}{
		{"own process group", func(cmd *exec.Cmd, traced func() error) error {
			cmd.SysProcAttr.Setpgid = true
			return lockedStart(cmd, traced)
		}, ""},
		{"start fails", func(cmd *exec.Cmd, traced func() error) error {
			return errors.New("no thread today")
		}, "starting restore stub: no thread today"},
		{"not traced", func(cmd *exec.Cmd, traced func() error) error {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			return cmd.Start()
		}, "without tracing the stub"},
		{"traced on another thread", func(cmd *exec.Cmd, traced func() error) error {
			runtime.LockOSThread() // the tracer, kept from the other goroutine
			defer runtime.UnlockOSThread()
			if err := cmd.Start(); err != nil {
				return err
			}
			ch := make(chan error)
			go func() {
				runtime.LockOSThread()
				ch <- traced()
			}()
			return <-ch
		}, "ptrace"},
	} {
		before := children(t)
		var started bool
		p, err := Restore(bytes.NewReader(img), RestoreOptions{Spawn: func(cmd *exec.Cmd, traced func() error) error {
			started = true
			return c.spawn(cmd, traced)
		}})
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			pgid, err := syscall.Getpgid(p.Pid)
			if err != nil || pgid != p.Pid {
				t.Errorf("%s: process group %d, %v; want %d", c.name, pgid, err, p.Pid)
			}
			p.Signal(syscall.SIGKILL)
			p.Wait()
		} else if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Restore: %v; want an error with %q", c.name, err, c.want)
			if p != nil {
				p.Signal(syscall.SIGKILL)
				p.Wait()
			}
		}
		if !started {
			t.Errorf("%s: Spawn not called", c.name)
		}
		if after := children(t); after != before {
			t.Errorf("%s: %d child processes left behind", c.name, after-before)
		}
	}
}
