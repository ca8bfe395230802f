package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"bproc/client"
	"bproc/client/clienttest"
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

func TestLive(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing nodes needs root")
	}
	clienttest.Start(t)
	var out bytes.Buffer
	if code := run([]string{"-M", "-m", "0710", "-g", "1"}, &out); code != 0 {
		t.Fatalf("chmod/chgrp: exit %d", code)
	}
	tr, err := client.Connect(client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	st, err := client.NodeStatusOf(tr, client.Master)
	if err != nil || st.Mode.Perm() != 0o710 {
		t.Errorf("after -m 0710: %+v %v", st, err)
	}
	if code := run([]string{"-M", "-s", "unavailable"}, &out); code != 0 {
		t.Fatalf("state: exit %d", code)
	}
	if st, _ := client.NodeStatusOf(tr, client.Master); st.State != "unavailable" {
		t.Errorf("state %q after -s unavailable", st.State)
	}
	run([]string{"-M", "-s", "up"}, &out)
	if code := run([]string{"-S", "5", "-s", "up"}, &out); code != 1 {
		t.Errorf("missing node: exit %d", code)
	}
}
