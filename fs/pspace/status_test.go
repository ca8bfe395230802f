package pspace

import "testing"

func TestStatusLineEscapesBytes(t *testing.T) {
	p := &Proc{pid: 5, node: 1, state: "running", uid: 4242, gid: 4242,
		argv: []string{"/bin/echo", "\xff\xfe", "two\nlines", `back\slash`, "café"}}
	want := `5 1 running 4242 4242 /bin/echo '\xff\xfe' 'two\x0alines' 'back\\slash' 'café'` + "\n"
	if got := p.statusLine(); got != want {
		t.Errorf("status line\n got %q\nwant %q", got, want)
	}
}
