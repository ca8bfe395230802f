// Package daemon holds what bproc's daemons share: detaching into the
// background unless -d (keeping the listeners bound), logging to syslog
// or stderr, and message traces. Their options are package cli's.
package daemon

import (
	"fmt"
	"io"
	"log/syslog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

const envChild = "_BPROC_DAEMON_CHILD"

// child is set in the detached daemon, which Detach started. The variable
// is cleared at once so the daemon's own children do not see it.
var child = os.Getenv(envChild) == "1"

func init() {
	if child {
		os.Unsetenv(envChild)
	}
}

// Listen listens on the TCP address addr. In the detached daemon it
// returns instead the n-th listener the parent passed to Detach (n from
// 0): the address stays bound throughout, so a bind failure is reported
// by the parent, to the user, and the parent exits non-zero.
func Listen(n int, addr string) (net.Listener, error) {
	if child {
		f := os.NewFile(uintptr(3+n), "listener")
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("listener %d from the parent: %w", n, err)
		}
		return ln, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	return ln, nil
}

// Detach re-executes the program in a new session with its standard files
// on /dev/null and makes the parent exit 0: Go cannot fork without exec.
// The child inherits the listeners keep, in order, for its Listen calls.
// In the child Detach returns nil at once.
func Detach(keep ...net.Listener) error {
	if child {
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding my executable: %w", err)
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", os.DevNull, err)
	}
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Env = append(os.Environ(), envChild+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	for _, ln := range keep {
		fl, ok := ln.(interface{ File() (*os.File, error) })
		if !ok {
			return fmt.Errorf("cannot pass a %T to the daemon", ln)
		}
		f, err := fl.File()
		if err != nil {
			return fmt.Errorf("passing the listener on %s: %w", ln.Addr(), err)
		}
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the daemon: %w", err)
	}
	os.Exit(0)
	return nil
}

var facilities = map[string]syslog.Priority{
	"kern": syslog.LOG_KERN, "user": syslog.LOG_USER, "mail": syslog.LOG_MAIL, "daemon": syslog.LOG_DAEMON,
	"auth": syslog.LOG_AUTH, "syslog": syslog.LOG_SYSLOG, "lpr": syslog.LOG_LPR, "news": syslog.LOG_NEWS,
	"uucp": syslog.LOG_UUCP, "cron": syslog.LOG_CRON, "authpriv": syslog.LOG_AUTHPRIV, "ftp": syslog.LOG_FTP,
	"local0": syslog.LOG_LOCAL0, "local1": syslog.LOG_LOCAL1, "local2": syslog.LOG_LOCAL2, "local3": syslog.LOG_LOCAL3,
	"local4": syslog.LOG_LOCAL4, "local5": syslog.LOG_LOCAL5, "local6": syslog.LOG_LOCAL6, "local7": syslog.LOG_LOCAL7,
}

// CheckFacility validates a syslog facility name.
func CheckFacility(name string) error {
	if _, ok := facilities[strings.ToLower(name)]; !ok {
		return fmt.Errorf("unknown log facility %q", name)
	}
	return nil
}

// Tracer writes timestamped message traces to a file (-m).
type Tracer struct {
	mu sync.Mutex
	w  io.WriteCloser
}

// OpenTrace opens path for appending traces; "" gives a no-op tracer.
func OpenTrace(path string) (*Tracer, error) {
	if path == "" {
		return &Tracer{}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening trace file: %w", err)
	}
	return &Tracer{w: f}, nil
}

// Printf records one message.
func (t *Tracer) Printf(format string, args ...any) {
	if t.w == nil {
		return
	}
	line := fmt.Sprintf(format, args...)
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "%s %s\n", time.Now().Format("15:04:05.000000"), strings.TrimRight(line, "\n"))
}
