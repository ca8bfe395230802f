package pspace

import (
	"strings"
	"testing"
)

func TestParseConfigHTTP(t *testing.T) {
	c, err := ParseConfig(strings.NewReader("http 127.0.0.1:2224\nhttptoken /etc/bproc/http.token\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP != "127.0.0.1:2224" || c.HTTPToken != "/etc/bproc/http.token" {
		t.Errorf("parsed http %q, httptoken %q", c.HTTP, c.HTTPToken)
	}
	if d := DefaultConfig(); d.HTTP != "" {
		t.Errorf("http on by default: %q", d.HTTP)
	}
	for _, bad := range []string{"http 2224", "http", "http a:1 b:2", "httptoken"} {
		if _, err := ParseConfig(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: err = %v, want an error naming line 1", bad, err)
		}
	}
}
