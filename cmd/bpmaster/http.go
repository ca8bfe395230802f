package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"bproc/beostat"
	"bproc/cmd/internal/daemon"
	"bproc/fs/pspace"
	"bproc/srv"
	"bproc/srv/web"
)

// httpSide is the config's `http ADDR` listener: /metrics and the web view.
type httpSide struct {
	ln    net.Listener // nil: off
	token string
}

// bindHTTP binds the http listener (the daemon's listener 1) and reads
// its token, before detaching, so that a busy port, a missing token off
// localhost or an unreadable token file is the user's error.
func bindHTTP(addr, tokenSetting string) (*httpSide, error) {
	if addr == "" {
		return &httpSide{}, nil
	}
	token := ""
	if tokenSetting != "" {
		var err error
		if token, err = web.ReadToken(tokenSetting); err != nil {
			return nil, err
		}
	}
	if err := web.CheckListen(addr, token); err != nil {
		return nil, err
	}
	ln, err := daemon.Listen(1, addr)
	if err != nil {
		return nil, fmt.Errorf("http %s: %w", addr, err)
	}
	return &httpSide{ln: ln, token: token}, nil
}

// listeners are the listeners to hand to the detached daemon after the
// 9P one.
func (h *httpSide) listeners() []net.Listener {
	if h.ln == nil {
		return nil
	}
	return []net.Listener{h.ln}
}

// serve serves src until ctx ends.
func (h *httpSide) serve(ctx context.Context, src web.Source, logf func(string, ...any)) {
	if h.ln == nil {
		return
	}
	hs := &http.Server{Handler: web.Handler(src, h.token), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	}()
	go func() {
		logf("http: serving /metrics and the web view on %s", h.ln.Addr())
		if err := hs.Serve(h.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logf("http: %v", err)
		}
	}()
}

// nodeStats reads the statistics table from recvstats's shm file.
func nodeStats(path string) func() []beostat.Row {
	r := beostat.New(path)
	return r.Table
}

// webSource is what the web side reads: the master's state, the 9P
// server's counters, the node statistics.
func webSource(m *pspace.Master, s *srv.Server, cfg *pspace.Config) web.Source {
	return web.Source{Master: m, Server: s.Stats, NodeStats: nodeStats(cfg.StatsFile)}
}
