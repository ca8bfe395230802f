package main

import (
	"bytes"
	"strings"
	"testing"
)

// The forms launchers call an ssh/rsh agent with.
func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args          []string
		host, command string
		user          string
		nullIn        bool
	}{
		{[]string{"node3", "orted", "-mca", "ess", "env"}, "node3", "orted -mca ess env", "", false},
		{[]string{"n1", `"/usr/bin/hydra_pmi_proxy"`, "--control-port", "m:1"}, "n1", `"/usr/bin/hydra_pmi_proxy" --control-port m:1`, "", false},
		{[]string{"-x", "-T", "-q", "-oBatchMode=yes", "-o", "StrictHostKeyChecking=no", "-p", "22", "3", "uptime"}, "3", "uptime", "", false},
		{[]string{"-n", "-l", "bob", ".2", "true"}, ".2", "true", "bob", true},
		{[]string{"-lbob", "-46", "2", "a", "b"}, "2", "a b", "bob", false},
		{[]string{"alice@node0", "id"}, "node0", "id", "alice", false},
		{[]string{"--", "0", "-n"}, "0", "-n", "", false},
		{[]string{"0", "-l", "x"}, "0", "-l x", "", false}, // after HOST: the command's words
	} {
		var so, se bytes.Buffer
		o, code, done := parse(tc.args, &so, &se)
		if done || code != 0 {
			t.Errorf("%q: done %v code %d: %s", tc.args, done, code, se.String())
			continue
		}
		if o.host != tc.host || o.command != tc.command || o.user != tc.user || o.nullIn != tc.nullIn {
			t.Errorf("%q: got %+v", tc.args, o)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"3"}, {"-Z", "3", "true"}, {"-l"}, {"--bogus", "3", "x"}, {"@", "true"}} {
		var so, se bytes.Buffer
		_, code, done := parse(args, &so, &se)
		if !done || code != 1 || so.Len() != 0 || !strings.Contains(se.String(), "Try 'bprsh -h' for help.") {
			t.Errorf("%q: done %v code %d stdout %q stderr %q", args, done, code, so.String(), se.String())
		}
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-V"}, {"--version"}} {
		var so, se bytes.Buffer
		_, code, done := parse(args, &so, &se)
		if !done || code != 0 || se.Len() != 0 || !strings.HasPrefix(so.String(), map[bool]string{true: "bprsh (bproc) ", false: "Usage: bprsh "}[strings.Contains(args[0], "V") || args[0] == "--version"]) {
			t.Errorf("%q: done %v code %d stdout %q", args, done, code, so.String())
		}
	}
}
