package pspace

import "sync"

// EventKind is what happened to a process.
type EventKind string

// The process events a subscriber hears.
const (
	Started EventKind = "started" // its slave reported it running (or a new master adopted it)
	Exited  EventKind = "exited"  // it ended (Status is its wait line); a start that failed is no event
	Moved   EventKind = "moved"   // it now runs on Node, having left From, as incarnation Inc
)

// Event is one change of a process's life or placement.
type Event struct {
	Kind   EventKind
	Pid    int
	Node   int    // where it runs (Exited: where it ended)
	From   int    // Moved: the node it left
	Inc    int    // its incarnation after the event
	Status string // Exited: "exit N", "signal N NAME" or "lost ..."
	// Dropped counts this subscriber's events lost just before this one
	// because its buffer was full: a subscriber that sees it non-zero
	// has missed events and should look at the tree again.
	Dropped uint64
}

// eventBuffer is how many events a subscriber may fall behind before it
// loses some: the master never waits for a subscriber.
const eventBuffer = 1024

// events fans process events out to subscribers. The zero value is
// ready; a nil *events tells nobody (a Proc made outside a Master).
type events struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

type subscriber struct {
	ch      chan Event
	dropped uint64 // under events.mu
}

// Subscribe returns the master's process events from now on, in the
// order they happened (for one process, the order of its changes), and
// a cancel that ends the subscription and closes the channel. A
// subscriber more than eventBuffer events behind loses the newest,
// counted in the next Event it gets (Dropped); nobody else waits.
func (m *Master) Subscribe() (<-chan Event, func()) {
	return m.ev.subscribe()
}

func (e *events) subscribe() (<-chan Event, func()) {
	s := &subscriber{ch: make(chan Event, eventBuffer)}
	e.mu.Lock()
	if e.subs == nil {
		e.subs = map[*subscriber]struct{}{}
	}
	e.subs[s] = struct{}{}
	e.mu.Unlock()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			e.mu.Lock()
			delete(e.subs, s)
			close(s.ch) // under e.mu: publish never sends on it again
			e.mu.Unlock()
		})
	}
}

// publish tells every subscriber of ev without waiting for any. Callers
// hold the process's lock, so one process's events go out in order.
func (e *events) publish(ev Event) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for s := range e.subs {
		ev := ev
		ev.Dropped = s.dropped
		select {
		case s.ch <- ev:
			s.dropped = 0
		default:
			s.dropped++
		}
	}
}
