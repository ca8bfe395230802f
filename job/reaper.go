package job

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
)

// The reaper ends a node's jobs when its slave dies, however it dies. A
// job's own process gets SIGKILL from Pdeathsig, but what it started would
// live on; so every job runs in a process group of its own, and a small
// helper process, the slave's program started again in reaper mode, hears
// of each group through a pipe. When the pipe closes (the slave is gone,
// even by kill -9), the reaper kills every group it knows and exits.

const reaperEnv = "_BPROC_REAPER"

// RunReaperIfAsked turns this process into the reaper when it was started
// as one; programs that run jobs call it first thing in main.
func RunReaperIfAsked() {
	if os.Getenv(reaperEnv) != "1" {
		return
	}
	in := os.NewFile(3, "reaper pipe")
	groups := map[int]bool{}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		line := sc.Text()
		if len(line) < 2 {
			continue
		}
		pgid, err := strconv.Atoi(line[1:])
		if err != nil || pgid <= 1 {
			continue
		}
		switch line[0] {
		case '+':
			groups[pgid] = true
		case '-':
			delete(groups, pgid)
		}
	}
	for pgid := range groups {
		syscall.Kill(-pgid, syscall.SIGKILL)
	}
	os.Exit(0)
}

// reaper is the slave's end of the pipe.
type reaper struct {
	once sync.Once
	mu   sync.Mutex
	w    *os.File
	err  error
}

func (r *reaper) start() {
	self, err := os.Executable()
	if err != nil {
		r.err = fmt.Errorf("reaper: %w", err)
		return
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		r.err = fmt.Errorf("reaper: %w", err)
		return
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), reaperEnv+"=1")
	cmd.ExtraFiles = []*os.File{pr}
	// Its own session: a signal for the slave's group leaves it to clean up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		r.err = fmt.Errorf("reaper: %w", err)
		return
	}
	pr.Close()
	go cmd.Wait()
	r.w = pw
}

// note tells the reaper a group appeared (+) or went away (-).
func (r *reaper) note(sign byte, pgid int) error {
	r.once.Do(r.start)
	if r.err != nil {
		return r.err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := fmt.Fprintf(r.w, "%c%d\n", sign, pgid)
	return err
}
