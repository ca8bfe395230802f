package srv

import (
	"sort"
	"sync"
	"time"
)

// Log limits: per kind of event, the first logBurst lines of every
// logInterval are logged, the rest counted and summed up in one line at the
// end of the interval. A flood of strangers then costs a few lines a
// second, not one per connection. Tests shorten them.
var (
	logInterval = 10 * time.Second
	logBurst    = 5
)

// rateLog bounds repeated log lines by kind.
type rateLog struct {
	logf func(format string, args ...any)

	mu     sync.Mutex
	counts map[string]*eventCount
	stop   chan struct{}
	done   chan struct{}
}

type eventCount struct{ logged, dropped int }

func newRateLog(logf func(format string, args ...any)) *rateLog {
	r := &rateLog{logf: logf, counts: make(map[string]*eventCount), stop: make(chan struct{}), done: make(chan struct{})}
	go r.run()
	return r
}

func (r *rateLog) event(kind, format string, args ...any) {
	r.mu.Lock()
	c := r.counts[kind]
	if c == nil {
		c = &eventCount{}
		r.counts[kind] = c
	}
	if c.logged >= logBurst {
		c.dropped++
		r.mu.Unlock()
		return
	}
	c.logged++
	r.mu.Unlock()
	r.logf(format, args...)
}

func (r *rateLog) run() {
	defer close(r.done)
	tick := time.NewTicker(logInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			r.flush()
		case <-r.stop:
			r.flush()
			return
		}
	}
}

// flush logs what the interval dropped, one line per kind, and starts a
// new interval.
func (r *rateLog) flush() {
	r.mu.Lock()
	counts := r.counts
	r.counts = make(map[string]*eventCount)
	r.mu.Unlock()
	kinds := make([]string, 0, len(counts))
	for k, c := range counts {
		if c.dropped > 0 {
			kinds = append(kinds, k)
		}
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		r.logf("9p: %d more %s in the last %v", counts[k].dropped, k, logInterval)
	}
}

// close flushes and stops the interval timer.
func (r *rateLog) close() {
	close(r.stop)
	<-r.done
}
