// Package web is bpmaster's HTTP side: Prometheus metrics at /metrics, and
// a live view of the cluster at / (one coloured cell per node, polling
// /state.json). Everything is read-only; off localhost a token is required.
package web

import (
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"bproc/beostat"
	"bproc/fs/pspace"
	"bproc/srv"
)

// Source is what the pages read, at request time.
type Source struct {
	Master *pspace.Master
	Server *srv.Stats // nil: no 9P counters
	// NodeStats returns recvstats's figures per node (beostat's table);
	// nil, or no row for a node, when none arrived.
	NodeStats func() []beostat.Row
}

// MinTokenLen is the shortest token accepted for a non-localhost listener.
const MinTokenLen = 16

// CheckListen refuses to serve addr without a token unless addr is a
// loopback address: the pages show every node and every user's processes.
func CheckListen(addr, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("http %s: %w", addr, err)
	}
	if isLoopback(host) {
		return nil
	}
	if token == "" {
		return fmt.Errorf("http %s: not a localhost address, so an httptoken is required", addr)
	}
	if len(token) < MinTokenLen {
		return fmt.Errorf("http %s: httptoken shorter than %d characters", addr, MinTokenLen)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// Handler serves /metrics, / and /state.json from src. A non-empty token
// is required on every request, as "Authorization: Bearer TOKEN" or
// "?token=TOKEN".
func Handler(src Source, token string) http.Handler {
	users := &userNames{names: map[uint32]string{}}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(&collector{src: src, users: users})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /state.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(pageState(src, users))
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'")
		w.Write(indexHTML)
	})
	return limit(maxRequests, authorize(token, mux))
}

// maxRequests bounds the requests served at once: each one reads the
// master's state under its lock, and the pages must not starve it.
const maxRequests = 8

func limit(n int, next http.Handler) http.Handler {
	slots := make(chan struct{}, n)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
			next.ServeHTTP(w, r)
		default:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "bproc: too many requests at once", http.StatusServiceUnavailable)
		}
	})
}

// indexHTML is the page, with its CSS and JavaScript inline.
//
//go:embed index.html
var indexHTML []byte

func authorize(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.URL.Query().Get("token")
		if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			got = b
		}
		if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="bproc"`)
			http.Error(w, "bproc: a valid token is required (Authorization: Bearer TOKEN, or ?token=TOKEN)", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ReadToken returns the httptoken setting: the token itself, or, when it
// is an absolute path, the first line of that file (which must not be
// readable by others).
func ReadToken(setting string) (string, error) {
	if !strings.HasPrefix(setting, "/") {
		return setting, nil
	}
	st, err := os.Stat(setting)
	if err != nil {
		return "", fmt.Errorf("httptoken: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("httptoken %s: readable by others (mode %v): chmod 600 it", setting, st.Mode().Perm())
	}
	b, err := os.ReadFile(setting)
	if err != nil {
		return "", fmt.Errorf("httptoken: %w", err)
	}
	tok, _, _ := strings.Cut(string(b), "\n")
	if tok = strings.TrimSpace(tok); tok == "" {
		return "", errors.New("httptoken " + setting + ": empty")
	}
	return tok, nil
}

// userNames caches uid-to-name lookups (they read /etc on every call).
type userNames struct {
	mu    sync.Mutex
	names map[uint32]string
}

func (u *userNames) name(uid uint32) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if n, ok := u.names[uid]; ok {
		return n
	}
	n := strconv.FormatUint(uint64(uid), 10)
	if usr, err := user.LookupId(n); err == nil {
		n = usr.Username
	}
	u.names[uid] = n
	return n
}

// nodeView is one node as the page shows it.
type nodeView struct {
	Num      int      `json:"num"`
	State    string   `json:"state"`
	Host     string   `json:"host"`
	Addr     string   `json:"addr"`
	Procs    int      `json:"procs"`           // live processes there
	Users    []string `json:"users,omitempty"` // whose, in order of first pid
	Load     *float64 `json:"load,omitempty"`  // 1-minute load, when statistics arrived
	MemUsed  uint64   `json:"memUsed,omitempty"`
	MemTotal uint64   `json:"memTotal,omitempty"`
}

type stateView struct {
	Master *nodeView  `json:"master"`
	Nodes  []nodeView `json:"nodes"` // compute nodes, ascending
}

func pageState(src Source, users *userNames) stateView {
	s := src.Master.Snapshot()
	rows := map[int]beostat.Row{}
	if src.NodeStats != nil {
		for _, r := range src.NodeStats() {
			rows[r.Node] = r
		}
	}
	var v stateView
	at := map[int]int{}
	for _, n := range s.Nodes {
		nv := nodeView{Num: n.Num, State: n.State, Host: n.Host, Addr: n.Addr}
		if r, ok := rows[n.Num]; ok && n.Num >= 0 {
			load := r.Load1
			nv.Load, nv.MemUsed, nv.MemTotal = &load, r.MemUsed, r.MemTotal
		}
		if n.Num < 0 {
			v.Master = &nv
			continue
		}
		at[n.Num] = len(v.Nodes)
		v.Nodes = append(v.Nodes, nv)
	}
	for _, p := range s.Procs {
		if p.State == "exited" {
			continue
		}
		var nv *nodeView
		if i, ok := at[p.Node]; ok {
			nv = &v.Nodes[i]
		} else if p.Node < 0 && v.Master != nil {
			nv = v.Master
		} else {
			continue
		}
		nv.Procs++
		name := users.name(p.Uid)
		if !contains(nv.Users, name) {
			nv.Users = append(nv.Users, name)
		}
	}
	if v.Nodes == nil {
		v.Nodes = []nodeView{}
	}
	return v
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
