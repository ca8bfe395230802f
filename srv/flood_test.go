package srv

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// flooder keeps n connections from src open to addr, opening a new one
// whenever the server hangs up on one, each sending drip (if not nil) one
// byte per period: silent strangers, or slow ones.
type flooder struct {
	open    atomic.Int64 // connections established right now
	dialed  atomic.Int64 // connections established in all
	ctx     context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
	addr    string
	drip    []byte
	period  time.Duration
	failure atomic.Value
}

func flood(t *testing.T, addr string, srcs []string, perSrc int, drip []byte) *flooder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &flooder{ctx: ctx, stop: cancel, addr: addr, drip: drip, period: 300 * time.Millisecond}
	for _, src := range srcs {
		for range perSrc {
			f.wg.Add(1)
			go f.keep(src)
		}
	}
	t.Cleanup(func() { f.stop(); f.wg.Wait() })
	return f
}

func (f *flooder) keep(src string) {
	defer f.wg.Done()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	for f.ctx.Err() == nil {
		c, err := d.DialContext(f.ctx, "tcp", f.addr)
		if err != nil {
			if f.ctx.Err() == nil {
				f.failure.Store(err.Error())
				time.Sleep(10 * time.Millisecond)
			}
			continue
		}
		f.open.Add(1)
		f.dialed.Add(1)
		stop := context.AfterFunc(f.ctx, func() { c.Close() })
		if f.drip != nil {
			for i := 0; f.ctx.Err() == nil; i++ {
				if _, err := c.Write(f.drip[i%len(f.drip) : i%len(f.drip)+1]); err != nil {
					break
				}
				time.Sleep(f.period)
			}
		} else {
			var b [1]byte
			c.Read(b[:]) // until the server hangs up
		}
		stop()
		c.Close()
		f.open.Add(-1)
	}
}

// waitOpen waits until n connections of the flood are established at once.
func (f *flooder) waitOpen(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for f.open.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("flood: only %d of %d connections established (last error: %v)", f.open.Load(), n, f.failure.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func addrs(prefix string, from, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s%d", prefix, from+i))
	}
	return out
}

// dialDuringFlood dials 10 times, each within 3 s, and says how many got
// through.
func dialDuringFlood(t *testing.T, addr string) int {
	ok := 0
	for i := range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		start := time.Now()
		c, err := Dial(ctx, addr, testKey, toolHello)
		cancel()
		if err != nil {
			t.Logf("dial %d: %v", i, err)
			continue
		}
		_, err = c.Stat("hello")
		c.Close()
		if err != nil {
			t.Logf("dial %d: stat: %v", i, err)
			continue
		}
		t.Logf("dial %d: through in %v", i, time.Since(start).Round(time.Millisecond))
		ok++
	}
	return ok
}

func (s *served) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.logs {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

func (s *served) lines() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.logs)
}

// A flood of silent and trickling strangers, more than the handshake pool
// holds, from one address or from hundreds: a key holder gets through every
// time, and the log stays short.
func TestFloodKeyHolderGetsThrough(t *testing.T) {
	oldI := logInterval
	logInterval = time.Second
	defer func() { logInterval = oldI }()
	for _, tc := range []struct {
		name   string
		srcs   []string
		perSrc int
	}{
		{"one source", []string{"127.0.0.2"}, DefaultMaxPending + 200},
		{"many sources", addrs("127.0.1.", 1, 200), 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sv := serve(t)
			silent := flood(t, sv.addr, tc.srcs, tc.perSrc, nil)
			drip := flood(t, sv.addr, []string{"127.0.0.3"}, 20, []byte("\x00\x00\x00\x35bproc-handshake-2"))
			silent.waitOpen(t, int64(len(tc.srcs)*tc.perSrc*9/10))
			drip.waitOpen(t, 20)
			before := sv.lines()
			if ok := dialDuringFlood(t, sv.addr); ok != 10 {
				t.Errorf("%d of 10 dials got through the flood", ok)
			}
			if n := sv.count("evicted"); n == 0 {
				t.Errorf("the flood never filled the handshake pool (%d connections)", silent.dialed.Load())
			}
			// Per kind of failure: at most logBurst lines a second plus a
			// summary, however many strangers.
			failed := silent.dialed.Load() + drip.dialed.Load()
			logged := sv.lines() - before
			t.Logf("%d flood connections, %d log lines", failed, logged)
			if logged > 200 {
				t.Errorf("%d log lines for %d flood connections", logged, failed)
			}
			// The rest is summed up at the end of the interval.
			summary := "more connections evicted (handshake pool full) in the last 1s"
			for end := time.Now().Add(3 * time.Second); !sv.logged(summary); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(end) {
					t.Fatalf("no line %q", summary)
				}
			}
		})
	}
}
