package main

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"bproc/client"

	"golang.org/x/sys/unix"
)

// attachEnv carries a running single-node job from bpsh's C front
// (libbproc/bpsh), which launched it and hands it over once its output
// is bulk, so that this bpsh takes it direct (direct.go). The C front
// parsed the same argv; every file is open where it left it:
//
//	NODE PID CTL OUT ERR IN TIN LEFT UOUT UERR SEEN SIGNALS PATH
//
// CTL is the exec's node/N/ctl (its next read is the end); OUT and ERR
// the tree's streams (-1: at EOF); IN the user's stdin to forward (-1:
// none), TIN the process's stdin (-1: not opened yet), LEFT a file of
// stdin bytes read but not yet passed on (-1: none); UOUT and UERR the
// user's stdout and stderr (or -O, -E); SEEN the output bytes through
// the tree so far; SIGNALS a mask of the signals already forwarded (or
// sent by bpsh itself); PATH the program, for messages.
const attachEnv = "BPSH_ATTACH"

// The Go bpsh runs as bpsh-go, exec'd by the C front: its process is
// named bpsh all the same (ps, pgrep -x bpsh, killall bpsh). Inits run on
// the main thread, whose name is the process's.
func init() { unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&[]byte("bpsh\x00")[0])), 0, 0, 0) }

// attachState is attachEnv parsed.
type attachState struct {
	node, pid                    int
	ctl, out, err, in, tin, left int
	uout, uerr                   int
	seen                         int64
	signals                      uint64
	path                         string
}

// parseAttach reads attachEnv's value; every descriptor must be open.
func parseAttach(v string) (*attachState, error) {
	f := strings.SplitN(v, " ", 13)
	if len(f) != 13 || f[12] == "" {
		return nil, fmt.Errorf("%s: want 13 fields, got %q", attachEnv, v)
	}
	var n [12]int64
	for i := range n {
		x, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: field %d: %q is not a number", attachEnv, i+1, f[i])
		}
		n[i] = x
	}
	a := &attachState{node: int(n[0]), pid: int(n[1]), ctl: int(n[2]), out: int(n[3]), err: int(n[4]),
		in: int(n[5]), tin: int(n[6]), left: int(n[7]), uout: int(n[8]), uerr: int(n[9]),
		seen: n[10], signals: uint64(n[11]), path: f[12]}
	if a.node < 0 || a.pid <= 0 || a.seen < 0 {
		return nil, fmt.Errorf("%s: bad node, pid or count in %q", attachEnv, v)
	}
	for i, fd := range []int{a.ctl, a.out, a.err, a.in, a.tin, a.left, a.uout, a.uerr} {
		optional := i >= 1 && i <= 5
		if fd == -1 && optional {
			continue
		}
		var st syscall.Stat_t
		if fd < 0 || syscall.Fstat(fd, &st) != nil {
			return nil, fmt.Errorf("%s: descriptor %d is not open", attachEnv, fd)
		}
	}
	return a, nil
}

// fdFile is fd as a file, nil for -1.
func fdFile(fd int, name string) *os.File {
	if fd < 0 {
		return nil
	}
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), name)
}

// attach carries on with the job the C front handed over: as runJobs
// with one job, from where the front left it.
func attach(v string, t client.Tree, o *options, stderr io.Writer) int {
	os.Unsetenv(attachEnv)
	a, err := parseAttach(v)
	if err != nil {
		fmt.Fprintf(stderr, "bpsh: %v\n", err)
		return failStatus
	}
	// The front ignored these across its exec (Go's runtime would have
	// died of them before signal.Notify); the killer takes them again.
	k := newKiller()
	defer k.stop()
	signal.Ignore(syscall.SIGPIPE)
	for s := 1; s < 64; s++ {
		if a.signals&(1<<s) != 0 {
			k.mark(syscall.Signal(s))
		}
	}
	mnt := fmt.Sprintf("%s/proc/%d/", mountRoot(t), a.pid)
	p := client.AttachProc(t, a.node, a.pid, a.path, fdFile(a.ctl, "node/"+strconv.Itoa(a.node)+"/ctl"))
	k.add(p)
	j := &job{idx: 0, node: a.node, k: k, direct: true, proc: p, start: time.Now(), seen: a.seen}
	j.streams = [2]io.ReadCloser{readerOrEOF(fdFile(a.out, mnt+"stdout")), readerOrEOF(fdFile(a.err, mnt+"stderr"))}
	if o.bufSize == 0 {
		o.bufSize = 1 << 20
	}
	out := newOutput(1, fdFile(a.uout, cmp.Or(o.outFile, "/dev/stdout")), fdFile(a.uerr, cmp.Or(o.errFile, "/dev/stderr")), o)
	if in := fdFile(a.in, o.inFile); in != nil {
		d := &stdinDest{proc: p}
		if w := fdFile(a.tin, mnt+"stdin"); w != nil {
			d.w = w
		}
		go func() {
			client.BlockInterrupts()
			if left := fdFile(a.left, "stdin"); left != nil {
				b, _ := io.ReadAll(left)
				left.Close()
				if len(b) > 0 {
					d.write(b)
				}
			}
			forwardStdin(in, []*stdinDest{d}, o.bufSize)
		}()
	}
	j.attach(out, o)
	j.end = time.Now()
	out.finish()
	return report([]*job{j}, k, o, out, stderr)
}

// readerOrEOF is f, or a stream already at its end.
func readerOrEOF(f *os.File) io.ReadCloser {
	if f == nil {
		return io.NopCloser(strings.NewReader(""))
	}
	return f
}

// mountRoot is the mount the tree is at ("" over 9P: the front only
// hands over on the mount).
func mountRoot(t client.Tree) string {
	if mt, ok := t.(*client.MountTree); ok {
		return mt.Root
	}
	return ""
}
