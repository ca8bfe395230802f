// Package daemon holds what bproc's daemons share: detaching into the
// background unless -d, logging to syslog or stderr, and message traces.
package daemon

import (
	"fmt"
	flag "github.com/spf13/pflag"
	"io"
	"log"
	"log/syslog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

const envChild = "_BPROC_DAEMON_CHILD"

// Detach re-executes the program in a new session with its standard files
// on /dev/null and makes the parent exit: Go cannot fork without exec. It
// returns in the child (and does nothing when already detached).
func Detach() error {
	if os.Getenv(envChild) == "1" {
		os.Unsetenv(envChild)
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

// Logger logs to stderr when debug is set, else to syslog with facility
// (falling back to stderr when there is no syslog daemon).
func Logger(tag string, debug bool, facility string) *log.Logger {
	if !debug {
		if w, err := syslog.New(facilities[strings.ToLower(facility)]|syslog.LOG_INFO, tag); err == nil {
			return log.New(w, "", 0)
		}
	}
	return log.New(os.Stderr, tag+": ", log.LstdFlags|log.Lmicroseconds)
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

// Options is a daemon's GNU-style option set, with the -h and -V every
// daemon has.
type Options struct {
	*flag.FlagSet
	name, synopsis, version string
	help, showVersion       *bool
}

// NewOptions starts the option set of daemon name; synopsis is the usage
// line after the name.
func NewOptions(name, synopsis, version string) *Options {
	fl := flag.NewFlagSet(name, flag.ContinueOnError)
	fl.SortFlags = false
	o := &Options{FlagSet: fl, name: name, synopsis: synopsis, version: version}
	o.help = fl.BoolP("help", "h", false, "show this help")
	o.showVersion = fl.BoolP("version", "V", false, "print the version and exit")
	fl.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s %s\n", name, synopsis)
		fl.PrintDefaults()
	}
	return o
}

// Parse parses args and exits the program for -h, -V (status 0), a bad
// option or a wrong number of arguments (status 2, with the usage).
func (o *Options) Parse(args []string, argsOK func(n int) bool) {
	if err := o.FlagSet.Parse(args); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", o.name, err)
		o.Usage()
		os.Exit(2)
	}
	switch {
	case *o.help:
		o.Usage()
		os.Exit(0)
	case *o.showVersion:
		fmt.Println(o.name, o.version)
		os.Exit(0)
	case !argsOK(o.NArg()):
		fmt.Fprintf(os.Stderr, "%s: wrong arguments: %q\n", o.name, o.Args())
		o.Usage()
		os.Exit(2)
	}
}
