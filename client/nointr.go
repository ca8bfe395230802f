package client

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// BlockInterrupts keeps signals off the calling goroutine's OS thread for
// the rest of the goroutine's life (the thread ends with it). Call it first
// in a goroutine that writes to stream files over the mount: a signal
// arriving while a FUSE write is blocked (Go's own preemption signals
// included) interrupts the request, and a server that had already taken
// part of the data then reports EINTR for all of it, which os.File retries
// whole, duplicating bytes. Signals still reach the process on its other
// threads.
func BlockInterrupts() {
	runtime.LockOSThread()
	var all unix.Sigset_t
	for i := range all.Val {
		all.Val[i] = ^uint64(0)
	}
	unix.PthreadSigmask(unix.SIG_BLOCK, &all, nil)
}

// withoutInterrupts runs f with signals blocked on its thread, for a ctl
// write that must happen exactly once: an interrupted exec write fails
// with EINTR (the process may have started anyway) and os.File retries it.
func withoutInterrupts(f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var all, old unix.Sigset_t
	for i := range all.Val {
		all.Val[i] = ^uint64(0)
	}
	if unix.PthreadSigmask(unix.SIG_BLOCK, &all, &old) != nil {
		f()
		return
	}
	defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	f()
}
