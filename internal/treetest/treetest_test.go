package treetest

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "status"), []byte("-1 up\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	open := func(name string, flag int) (io.ReadWriteCloser, error) {
		return os.OpenFile(filepath.Join(dir, name), flag, 0)
	}
	if got := Read(t, open, "status"); got != "-1 up\n" {
		t.Errorf("Read: %q", got)
	}
}
