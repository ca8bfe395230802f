package synth

import (
	"errors"
	"reflect"
	"strings"
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

// FuzzSplitCommand: ctl lines are any user's bytes. Splitting never
// panics; what it splits, joined with Quote, splits back to the same
// words; and where lineScanner sees a command end, the command splits
// (its quotes are closed).
func FuzzSplitCommand(f *testing.F) {
	for _, s := range []string{"exec /bin/echo hi", `exec '/bin/my prog' "an arg" a\ b`, "exec 'unterminated",
		`"\"\\\$\` + "`" + `"`, "a\\", "a 'b\nc' \"d\ne\" f\\\ng\nnext", "\xff\xfe '\x00'", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words, err := SplitCommand(line)
		if err == nil {
			again, err := SplitCommand(JoinCommand(words))
			if err != nil || strings.Join(again, "\x00") != strings.Join(words, "\x00") || len(again) != len(words) {
				t.Fatalf("%q split to %q, joined to %q, split to %q (%v)", line, words, JoinCommand(words), again, err)
			}
		}
		var sc lineScanner
		if i := sc.scan([]byte(line)); i >= 0 {
			if _, err := SplitCommand(line[:i]); err != nil {
				t.Fatalf("%q: the scanner ends a command at %d, which does not split: %v", line, i, err)
			}
		}
		// Fed in pieces, the scanner finds the same end.
		var whole, pieces lineScanner
		want := whole.scan([]byte(line))
		got, off := -1, 0
		for off < len(line) && got < 0 {
			k := min(3, len(line)-off)
			if i := pieces.scan([]byte(line[off : off+k])); i >= 0 {
				got = off + i
			}
			off += k
		}
		if got != want {
			t.Fatalf("%q: scanned whole, the command ends at %d; in pieces at %d", line, want, got)
		}
	})
}
