package srv

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// addrConn is a net.Conn that only has a remote address.
type addrConn struct {
	net.Conn
	remote string
}

func (c addrConn) RemoteAddr() net.Addr {
	a, _ := net.ResolveTCPAddr("tcp", c.remote)
	return a
}

func TestPoolEvictsFromTheBiggestSource(t *testing.T) {
	for _, tc := range []struct {
		name    string
		admit   []string // sources in order of arrival; the pool holds 4
		evicted []int    // indexes into admit, in order
	}{
		{"not full", []string{"a", "b", "c", "d"}, nil},
		{"one flooder evicts its own", []string{"f", "f", "k", "f", "f", "f"}, []int{0, 1}},
		{"the newcomer's own source", []string{"f", "k", "f", "k", "f"}, []int{0}},
		{"equals: the older", []string{"a", "b", "c", "d", "e", "f"}, []int{0, 1}},
		{"between equals, the oldest", []string{"a", "k", "b", "c", "a", "d"}, []int{0, 1}},
		{"a source with two loses before older singles", []string{"k", "b", "a", "a", "c"}, []int{2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPool(4)
			pcs := map[*pendingConn]int{}
			var got []int
			for i, src := range tc.admit {
				pc, ev := p.admit(addrConn{remote: fmt.Sprintf("10.0.0.%d:%d", strings.Index("abcdefk", src)+1, 1000+i)})
				pcs[pc] = i
				if ev != nil {
					got = append(got, pcs[ev])
					if !p.done(ev) {
						t.Errorf("evicted %d does not know it", pcs[ev])
					}
				}
				time.Sleep(time.Millisecond) // distinct arrival times
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.evicted) {
				t.Errorf("evicted %v, want %v", got, tc.evicted)
			}
			if n := p.pending(); n != min(len(tc.admit), 4) {
				t.Errorf("%d pending, want %d", n, min(len(tc.admit), 4))
			}
		})
	}
}

func TestRateLogBoundsEachKind(t *testing.T) {
	// One interval for the whole test: the summary comes from close.
	oldI := logInterval
	logInterval = time.Hour
	defer func() { logInterval = oldI }()
	var mu sync.Mutex
	var lines []string
	done := make(chan struct{})
	r := newRateLog(func(format string, args ...any) {
		mu.Lock()
		lines = append(lines, fmt.Sprintf(format, args...))
		mu.Unlock()
	})
	go func() {
		defer close(done)
		for i := range 100 {
			r.event("timeouts", "timeout %d", i)
			r.event("bad keys", "bad key %d", i)
		}
	}()
	<-done
	r.close()
	want := []string{"timeout 0", "bad key 0"}
	if len(lines) != 2*logBurst+2 || lines[0] != want[0] || lines[1] != want[1] {
		t.Fatalf("logged %q", lines)
	}
	tail := strings.Join(lines[2*logBurst:], "\n")
	want = []string{"9p: 95 more bad keys in the last 1h0m0s", "9p: 95 more timeouts in the last 1h0m0s"}
	if tail != strings.Join(want, "\n") {
		t.Errorf("summary %q, want %q", tail, want)
	}
}
