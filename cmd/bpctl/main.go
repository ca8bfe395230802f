// Command bpctl changes the state and permissions of bproc nodes.
//
//	bpctl -M | -S nodespec  [-s state] [-m mode] [-u user] [-g group] [-R | -H | -P]
//
// -m, -u and -g are chmod, chown and chgrp of node/N (whose execute bits
// decide who may run work there); -s, -R, -H and -P write `state STATE` to
// node/N/ctl. Only root may change nodes.
package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/user"
	"strconv"
	"strings"

	"bproc/client"
	"bproc/cmd/internal/cli"
)

type options struct {
	master              bool
	slave               string
	state, mode         string
	user, group         string
	reboot, halt, power bool
	keyFile             string
}

// action is one change to apply to every selected node.
type action struct {
	what string // for messages: "chmod", "chown", "state"
	do   func(t client.Tree, node int) error
}

func main() { cli.Main(run) }

func run(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	var o options
	fset := cli.New("bpctl", "-M | -S nodespec  [-s state] [-m mode] [-u user] [-g group] [-R | -H | -P]", "Change the state and permissions of bproc nodes.", stdout, stderr)
	fset.BoolVarP(&o.master, "master", "M", false, "apply to the master (node -1)")
	fset.StringVarP(&o.slave, "slave", "S", "", "apply to the nodes of `nodespec`")
	fset.StringVarP(&o.state, "state", "s", "", "set the node state (up, down, error, unavailable, reboot, halt, pwroff)")
	fset.StringVarP(&o.mode, "mode", "m", "", "set the node permission bits (octal, like chmod)")
	fset.StringVarP(&o.user, "user", "u", "", "set the node owner (name or number)")
	fset.StringVarP(&o.group, "group", "g", "", "set the node group (name or number)")
	fset.BoolVarP(&o.reboot, "reboot", "R", false, "reboot the node (state reboot)")
	fset.BoolVarP(&o.halt, "halt", "H", false, "halt the node (state halt)")
	fset.BoolVarP(&o.power, "pwroff", "P", false, "power the node off (state pwroff)")
	fset.KeyOption(&o.keyFile)
	if code, done := fset.Parse(args); done {
		return code
	}
	if code, done := fset.NoArgs(); done {
		return code
	}
	if o.master == (o.slave != "") {
		return fset.Usage("give exactly one of -M and -S nodespec")
	}
	acts, err := actions(&o)
	if err != nil {
		return fset.Usage("%v", err)
	}
	if len(acts) == 0 {
		return fset.Usage("nothing to do: give -s, -m, -u, -g, -R, -H or -P")
	}
	spec := "-1"
	if o.slave != "" {
		spec = o.slave
	}
	ns, err := client.ParseNodeSpec(spec)
	if err != nil {
		return fset.Usage("%v", err)
	}

	t, err := client.Connect(client.Options{KeyFile: o.keyFile})
	if err != nil {
		return fset.Fail(err)
	}
	defer t.Close()
	var cluster []client.NodeStatus
	if ns.NeedsList() {
		if cluster, err = client.ListNodes(t); err != nil {
			return fset.Fail(err)
		}
	}
	nodes, err := ns.Resolve(cluster)
	if err != nil {
		return fset.Usage("%s: %v", spec, err) // an unknown hostname, as an unknown word
	}
	if len(nodes) == 0 {
		return fset.Errorf("no nodes in %q", spec)
	}
	code := 0
	for _, n := range nodes {
		for _, a := range acts {
			if err := a.do(t, n); err != nil {
				code = fset.Errorf("node %d: %s: %s", n, a.what, errText(err))
				if errors.Is(err, fs.ErrNotExist) {
					break // the node itself is missing; its other changes would say the same
				}
			}
		}
	}
	return code
}

// errText names a missing node plainly and otherwise gives the errno in C
// wording.
func errText(err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return "no such node"
	}
	var ce *client.CtlError
	if errors.As(err, &ce) {
		return ce.Error()
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return client.Strerror(client.ErrnoOf(pe.Err))
	}
	return client.ErrText(err)
}

// actions turns the options into changes, checking their values first so
// that a typo changes nothing.
func actions(o *options) ([]action, error) {
	var acts []action
	uid, gid := -1, -1
	if o.user != "" {
		u, err := lookupUser(o.user)
		if err != nil {
			return nil, err
		}
		uid = u
	}
	if o.group != "" {
		g, err := lookupGroup(o.group)
		if err != nil {
			return nil, err
		}
		gid = g
	}
	if uid >= 0 || gid >= 0 {
		what := "chown"
		if uid < 0 {
			what = "chgrp"
		}
		acts = append(acts, action{what, func(t client.Tree, n int) error {
			return t.Chown(client.NodeDir(n), uid, gid)
		}})
	}
	if o.mode != "" {
		m, err := strconv.ParseUint(o.mode, 8, 32)
		if err != nil || m > 0o777 {
			return nil, fmt.Errorf("bad mode %q: want octal permission bits, 0 to 777", o.mode)
		}
		acts = append(acts, action{"chmod", func(t client.Tree, n int) error {
			return t.Chmod(client.NodeDir(n), fs.FileMode(m))
		}})
	}
	states := 0
	state := o.state
	for _, s := range []struct {
		set  bool
		name string
	}{{o.state != "", o.state}, {o.reboot, "reboot"}, {o.halt, "halt"}, {o.power, "pwroff"}} {
		if s.set {
			states++
			state = s.name
		}
	}
	if states > 1 {
		return nil, fmt.Errorf("-s, -R, -H and -P exclude each other")
	}
	if state != "" {
		if !client.ValidState(state) {
			return nil, fmt.Errorf("unknown state %q (states: %s)", state, strings.Join(client.States, ", "))
		}
		acts = append(acts, action{"state " + state, func(t client.Tree, n int) error {
			_, err := client.Ctl(t, client.NodeDir(n)+"/ctl", "state "+state)
			return err
		}})
	}
	return acts, nil
}

// lookupUser takes a user name or a number.
func lookupUser(s string) (int, error) {
	return lookupID(s, "user", user.Lookup, func(u *user.User) string { return u.Uid })
}

// lookupGroup takes a group name or a number.
func lookupGroup(s string) (int, error) {
	return lookupID(s, "group", user.LookupGroup, func(g *user.Group) string { return g.Gid })
}

// lookupID takes a number as it is and looks anything else up by name.
func lookupID[T any](s, what string, byName func(string) (*T, error), id func(*T) string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return n, nil
	}
	v, err := byName(s)
	if err != nil {
		return 0, fmt.Errorf("unknown %s %q", what, s)
	}
	return strconv.Atoi(id(v))
}
