package main

import (
	"testing"

	"bproc/cmd/internal/clitest"
)

func TestPrologue(t *testing.T) {
	clitest.Prologue(t, "bpmaster", run, "--config", []string{"extra"})
}
