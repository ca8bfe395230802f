package srv

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Many clients connecting at once (slaves reconnecting to a restarted
// master) must each get a working connection.
func TestConcurrentConnections(t *testing.T) {
	sv := serve(t)
	for round := 0; round < 20; round++ {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := 0; i < 8; i++ {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				c, err := Dial(ctx, sv.addr, testKey, toolHello)
				if err != nil {
					errs <- err
					return
				}
				defer c.Close()
				for j := 0; j < 5; j++ {
					f, err := c.Open("hello", 0)
					if err != nil {
						errs <- err
						return
					}
					buf := make([]byte, 100)
					if _, err := f.Read(buf); err != nil {
						errs <- err
					}
					f.Close()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("round %d: %v", round, err)
		}
	}
}
