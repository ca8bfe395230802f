package vmadump

import (
	"fmt"
	"os"
	"time"
)

// Phase timing for performance work: VMADUMP_TRACE=1 prints how long each
// step of a dump or restore takes, on stderr.
var traceOn = os.Getenv("VMADUMP_TRACE") != ""

type phaseTimer struct {
	what string
	t0   time.Time
	last time.Time
}

func newPhaseTimer(what string) *phaseTimer {
	now := time.Now()
	return &phaseTimer{what: what, t0: now, last: now}
}

func (p *phaseTimer) mark(step string) {
	if !traceOn {
		return
	}
	now := time.Now()
	fmt.Fprintf(os.Stderr, "vmadump %s: %-14s %8.3f ms (total %8.3f ms)\n", p.what, step, float64(now.Sub(p.last).Microseconds())/1e3, float64(now.Sub(p.t0).Microseconds())/1e3)
	p.last = now
}
