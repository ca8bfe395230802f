package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestUsageErrors(t *testing.T) {
	var out bytes.Buffer
	for _, args := range [][]string{
		{},
		{"-S", "1"},                   // nothing to do
		{"-M", "-S", "1", "-s", "up"}, // both targets
		{"-s", "up"},                  // no target
		{"-S", "1", "-s", "sleepy"},
		{"-S", "1", "-m", "999"},
		{"-S", "1", "-m", "rwx"},
		{"-S", "1", "-u", "no-such-user-bproc"},
		{"-S", "1", "-g", "no-such-group-bproc"},
		{"-S", "1", "-R", "-H"},
		{"-S", "1", "-s", "up", "-P"},
		{"-S", "x", "-s", "up"},
		{"-S", "1", "-s", "up", "extra"},
		{"--bogus"},
	} {
		if code := run(args, &out); code != 1 {
			t.Errorf("%q: exit %d, want 1", args, code)
		}
	}
	if code := run([]string{"-h"}, &out); code != 0 || !strings.Contains(out.String(), "-S") {
		t.Errorf("-h: %d", code)
	}
}

func TestActions(t *testing.T) {
	acts, err := actions(&options{mode: "711", user: "0", group: "root", reboot: true})
	if err != nil {
		t.Fatal(err)
	}
	var whats []string
	for _, a := range acts {
		whats = append(whats, a.what)
	}
	if strings.Join(whats, ",") != "chown,chmod,state reboot" {
		t.Errorf("actions %q", whats)
	}
	acts, _ = actions(&options{group: "0"})
	if len(acts) != 1 || acts[0].what != "chgrp" {
		t.Errorf("group only: %+v", acts)
	}
	if _, err := lookupUser("root"); err != nil {
		t.Errorf("root: %v", err)
	}
}
