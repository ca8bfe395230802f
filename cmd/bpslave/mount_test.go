package main

import "testing"

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		"/bproc":             "/bproc",
		`/var/a\040b`:        "/var/a b",
		`/x\134y`:            `/x\y`,
		`/tab\011`:           "/tab\t",
		`/not\08`:            `/not\08`,
		`/short\04`:          `/short\04`,
		`/end\`:              `/end\`,
		`/two\040\040spaces`: "/two  spaces",
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

// The root is a mount point; a fresh directory is not.
func TestLiveMount(t *testing.T) {
	if _, ok := liveMount("/"); !ok {
		t.Error("/ is not a mount point")
	}
	if fs, ok := liveMount(t.TempDir()); ok {
		t.Errorf("a fresh directory is a mount point of %s", fs)
	}
}
