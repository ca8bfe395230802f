package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"bproc/client"
	"bproc/client/clienttest"
	"bproc/cmd/internal/clitest"
)

func TestPrologue(t *testing.T) {
	clitest.Prologue(t, "bpctl", run, "-S nodespec",
		[]string{},
		[]string{"-S", "1"},                   // nothing to do
		[]string{"-M", "-S", "1", "-s", "up"}, // both targets
		[]string{"-s", "up"},                  // no target
		[]string{"-S", "1", "-s", "sleepy"},
		[]string{"-S", "1", "-m", "999"},
		[]string{"-S", "1", "-m", "rwx"},
		[]string{"-S", "1", "-u", "no-such-user-bproc"},
		[]string{"-S", "1", "-g", "no-such-group-bproc"},
		[]string{"-S", "1", "-R", "-H"},
		[]string{"-S", "1", "-s", "up", "-P"},
		[]string{"-S", "x!", "-s", "up"},
		[]string{"-S", "1", "-s", "up", "extra"},
	)
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
	for _, c := range []struct {
		lookup   func(string) (int, error)
		s        string
		id       int
		errorSay string
	}{
		{lookupUser, "root", 0, ""}, {lookupUser, "4321", 4321, ""}, {lookupUser, "no-such-user-x", 0, `unknown user "no-such-user-x"`},
		{lookupGroup, "root", 0, ""}, {lookupGroup, "77", 77, ""}, {lookupGroup, "no-such-group-x", 0, `unknown group "no-such-group-x"`},
	} {
		id, err := c.lookup(c.s)
		if got := fmt.Sprint(err); (c.errorSay == "" && err != nil) || (c.errorSay != "" && got != c.errorSay) || id != c.id {
			t.Errorf("%q: %d, %v; want %d, %q", c.s, id, err, c.id, c.errorSay)
		}
	}
}

func TestLive(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing nodes needs root")
	}
	clienttest.Start(t)
	if code, _, errs := clitest.Call(run, "-M", "-m", "0710", "-g", "1"); code != 0 {
		t.Fatalf("chmod/chgrp: exit %d: %s", code, errs)
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
	if code, _, errs := clitest.Call(run, "-M", "-s", "unavailable"); code != 0 {
		t.Fatalf("state: exit %d: %s", code, errs)
	}
	if st, _ := client.NodeStatusOf(tr, client.Master); st.State != "unavailable" {
		t.Errorf("state %q after -s unavailable", st.State)
	}
	clitest.Call(run, "-M", "-s", "up")
	if code, _, _ := clitest.Call(run, "-S", "5", "-s", "up"); code != 1 {
		t.Errorf("missing node: exit %d", code)
	}
}
