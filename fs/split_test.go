package fs

import (
	"errors"
	"reflect"
	"syscall"
	"testing"
)

func TestSplitCommand(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"exec /bin/true", []string{"exec", "/bin/true"}},
		{"  exec   '/bin/my prog' \"an arg\"\n", []string{"exec", "/bin/my prog", "an arg"}},
		{`kill 9`, []string{"kill", "9"}},
		{`a\ b "c\"d" 'e'f`, []string{"a b", `c"d`, "ef"}},
		{`''`, []string{""}},
		{"", nil},
	}
	for _, c := range cases {
		got, err := SplitCommand(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{`'open`, `"open`, `trail\`} {
		if _, err := SplitCommand(bad); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("SplitCommand(%q) err = %v, want EINVAL", bad, err)
		}
	}
}

func TestQuoteRoundTrip(t *testing.T) {
	words := []string{"exec", "-e", "A=b c", "it's", "", `back\slash`, "\"dq\"", "$HOME", "tab\there", "new\nline"}
	got, err := SplitCommand(JoinCommand(words))
	if err != nil || !reflect.DeepEqual(got, words) {
		t.Fatalf("round trip = %q, %v; want %q", got, err, words)
	}
}
