package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"bproc/cmd/internal/clitest"
)

func TestPrologue(t *testing.T) {
	clitest.Prologue(t, "recvstats", run, "--interface", []string{"extra"}, []string{"-p", "0"})
}

// Mistakes are reported before recvstats forks, with a clear message.
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("k3y-for-the-tests-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		rc   int
		want string
	}{
		{[]string{"-v"}, 0, "recvstats (bproc) "},
		{[]string{"extra"}, 1, "unexpected argument"},
		{[]string{"-p", "0", "-k", keyFile}, 1, "port 0"},
		{[]string{"-k", filepath.Join(dir, "none")}, 1, "cluster key"},
		{[]string{"-k", keyFile, "-i", "no-such-if0"}, 1, "interface no-such-if0"},
		{[]string{"-k", keyFile, "--metrics", "not an address"}, 1, "metrics"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		rc := run(tt.args, nil, &out, &errb)
		if rc != tt.rc || !strings.Contains(out.String()+errb.String(), tt.want) {
			t.Errorf("recvstats %v: rc %d (want %d), out %q, err %q", tt.args, rc, tt.rc, out.String(), errb.String())
		}
	}
}
