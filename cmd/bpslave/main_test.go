package main

import (
	"testing"

	"bproc/cmd/internal/clitest"
)

func TestPrologue(t *testing.T) {
	clitest.Prologue(t, "bpslave", run, "masterhost [port]",
		[]string{},
		[]string{"master", "2223", "extra"},
		[]string{"master", "0"},
		[]string{"-p", "x", "master"},
		[]string{"-s", "not-an-ip", "master"},
		[]string{"-l", "nosuchfacility", "master"},
		[]string{"--mount", "relative", "master"})
}
