package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
)

// FuzzAuthorize: whatever a client sends as the bearer header or the
// token parameter, only the exact token gets through.
func FuzzAuthorize(f *testing.F) {
	const tok = "0123456789abcdef-token"
	for _, s := range []string{"", tok, tok + "x", tok[:len(tok)-1], "Bearer " + tok, "\x00", "%zz", "\u00e9" + tok} {
		f.Add(s, s)
	}
	h := authorize(tok, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) }))
	f.Fuzz(func(t *testing.T, header, query string) {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.URL.RawQuery = "token=" + url.QueryEscape(query)
		req.Header.Set("Authorization", "Bearer "+header)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		// The header, when it is a bearer header, is the one that counts.
		if ok := header == tok; (w.Code == 299) != ok {
			t.Errorf("header %q query %q: code %d", header, query, w.Code)
		}
	})
}

func TestLimit(t *testing.T) {
	release := make(chan struct{})
	var entered sync.WaitGroup
	entered.Add(2)
	h := limit(2, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered.Done()
		<-release
	}))
	done := make(chan int, 2)
	for i := 0; i < 2; i++ {
		go func() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
			done <- w.Code
		}()
	}
	entered.Wait()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("third request at once: %d, want 503", w.Code)
	}
	close(release)
	for i := 0; i < 2; i++ {
		if c := <-done; c != 200 {
			t.Errorf("a request within the limit: %d", c)
		}
	}
}
