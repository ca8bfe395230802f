package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// An option table declares each type, keeps the variables' values as the
// defaults and lists the options in its order.
func TestOptions(t *testing.T) {
	var (
		all   bool
		n     = 3
		name  string
		every = time.Second
		key   string
	)
	var out, errb bytes.Buffer
	c := New("x", "", "", &out, &errb)
	c.Options([]Option{
		{Short: "a", Long: "all", Value: &all, Usage: "every one"},
		{Short: "n", Long: "count", Value: &n, Usage: "how many"},
		{Short: "N", Long: "name", Value: &name, Usage: "a `NAME`"},
		{Long: "every", Value: &every, Usage: "how often"},
	})
	c.KeyOption(&key)
	if code, done := c.Parse([]string{"-a", "-N", "z", "-k", "/k"}); code != 0 || done {
		t.Fatalf("parse: code %d done %v: %s", code, done, errb.String())
	}
	if !all || n != 3 || name != "z" || every != time.Second || key != "/k" {
		t.Errorf("values: %v %d %q %v %q", all, n, name, every, key)
	}
	c.PrintHelp(&out)
	help := out.String()
	prev := -1
	for _, want := range []string{"-a, --all", "-n, --count int", "how many (default 3)", "-N, --name NAME", "--every duration", "(default 1s)", "-k, --key file"} {
		i := strings.Index(help, want)
		if i < 0 || i < prev {
			t.Errorf("help lacks %q after the options before it:\n%s", want, help)
		}
		prev = i
	}
}

func TestOptionOfAnotherType(t *testing.T) {
	defer func() {
		if r, _ := recover().(string); !strings.Contains(r, "--rate") {
			t.Errorf("recovered %v, want a panic naming --rate", r)
		}
	}()
	var rate float32
	var out bytes.Buffer
	New("x", "", "", &out, &out).Options([]Option{{Long: "rate", Value: &rate}})
}

func TestTakesValue(t *testing.T) {
	var (
		all  bool
		n    int
		name string
	)
	var out bytes.Buffer
	c := New("x", "", "", &out, &out)
	c.Options([]Option{
		{Short: "a", Long: "all", Value: &all},
		{Short: "n", Long: "count", Value: &n},
		{Long: "name", Value: &name},
	})
	for _, tc := range []struct {
		arg  string
		want bool
	}{
		{"-n", true}, {"-an", true}, {"--count", true}, {"--name", true},
		{"-a", false}, {"--all", false}, {"-n3", false}, {"-na", false}, // -na: n's value is "a"
		{"--count=3", false}, {"--", false}, {"-", false}, {"-1", false}, {"--nope", false}, {"-z", false}, {"file", false},
	} {
		if got := c.TakesValue(tc.arg); got != tc.want {
			t.Errorf("TakesValue(%q) = %v, want %v", tc.arg, got, tc.want)
		}
	}
}
