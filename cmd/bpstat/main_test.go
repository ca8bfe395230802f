package main

import (
	"fmt"
	"strings"
	"testing"

	"bproc/client"
	"bproc/client/clienttest"
	"bproc/cmd/internal/clitest"
)

func parse(t *testing.T, text string) []client.NodeStatus {
	t.Helper()
	ns, err := client.ParseNodeStatusList(text)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

const sample = `-1 up - ---x------ root root master
0 up 10.77.0.10 ---x--x--x root root n0
1 up 10.77.0.11 ---x--x--x root root n1
2 up 10.77.0.12 ---x--x--x root root n2
3 up 10.77.0.13 ---x--x--x any any n3
4 down - ---------- root root -
5 down - ---------- root root -
6 up 10.77.0.16 ---x--x--x root root n6
`

func TestCompact(t *testing.T) {
	all := parse(t, sample)
	nodes, err := selectNodes(all, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	sortNodes(nodes, &options{}, true)
	got := formatCompact(nodes, 0)
	// BProc's order: by state, then number; runs of one state share a line.
	want := "" +
		"Node(s)     Status       Mode       User       Group\n" +
		"4-5         down         ---------- root       root\n" +
		"0-2         up           ---x--x--x root       root\n" +
		"3           up           ---x--x--x any        any\n" +
		"6           up           ---x--x--x root       root\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// A gap in the numbering is a comma, not a range.
	gap := parse(t, "0 up - ---x--x--x root root a\n2 up - ---x--x--x root root b\n")
	if got := formatCompact(gap, 0); !strings.Contains(got, "\n0,2 ") {
		t.Errorf("gap:\n%s", got)
	}
	// Only the execute bits show; the master is never part of a run.
	m := parse(t, "-1 up - -rwxr-x--x root root m\n0 up - -rwxr-x--x root root a\n1 up - ---x--x--x root root b\n")
	if got := formatCompact(m, 0); !strings.Contains(got, "\n-1,0-1      up           ---x--x--x root") {
		t.Errorf("master or mode:\n%s", got)
	}
	// A terminal's width cuts lines.
	if got := formatCompact(nodes, 30); strings.Contains(got, "root       root") || len(strings.Split(got, "\n")[1]) != 29 {
		t.Errorf("width 30:\n%s", got)
	}
}

func TestSort(t *testing.T) {
	all := parse(t, sample)
	order := func(o options, compact bool) string {
		nodes, _ := selectNodes(all, nil, false)
		sortNodes(nodes, &o, compact)
		var s []string
		for _, n := range nodes {
			s = append(s, fmt.Sprint(n.Node))
		}
		return strings.Join(s, " ")
	}
	for _, tc := range []struct {
		o       options
		compact bool
		want    string
	}{
		{options{}, false, "0 1 2 3 4 5 6"},
		{options{}, true, "4 5 0 1 2 3 6"},
		{options{byNumber: true}, true, "0 1 2 3 4 5 6"},
		{options{reverse: true}, false, "6 5 4 3 2 1 0"},
		{options{byState: true, reverse: true}, false, "0 1 2 3 6 4 5"},
	} {
		if got := order(tc.o, tc.compact); got != tc.want {
			t.Errorf("%+v compact %v: %s, want %s", tc.o, tc.compact, got, tc.want)
		}
	}
	spec, _ := client.ParseNodeSpec("5,1,3")
	nodes, _ := selectNodes(all, []client.NodeSpec{spec}, false)
	sortNodes(nodes, &options{keepOrder: true}, false)
	if nodes[0].Node != 5 || nodes[1].Node != 1 || nodes[2].Node != 3 {
		t.Errorf("-O: %v", nodes)
	}
}

func TestSelect(t *testing.T) {
	all := parse(t, sample)
	spec := func(s string) client.NodeSpec {
		ns, err := client.ParseNodeSpec(s)
		if err != nil {
			t.Fatal(err)
		}
		return ns
	}
	nodes, err := selectNodes(all, []client.NodeSpec{spec("5,1"), spec("master")}, false)
	if err != nil || len(nodes) != 3 || nodes[0].Node != 5 || nodes[1].Node != 1 || nodes[2].Node != -1 {
		t.Errorf("got %v %v", nodes, err)
	}
	if nodes, _ := selectNodes(all, nil, true); len(nodes) != 8 {
		t.Errorf("-M: %d nodes", len(nodes))
	}
	_, err = selectNodes(all, []client.NodeSpec{spec("1,9-10")}, false)
	if err == nil || !strings.Contains(err.Error(), "9-10") {
		t.Errorf("missing nodes: %v", err)
	}
}

func TestFieldsTotalsLong(t *testing.T) {
	all := parse(t, sample)
	nodes, _ := selectNodes(all, nil, false)
	if got := formatFields(nodes[3:5], false, true); got != "up\ndown\n" {
		t.Errorf("-s: %q", got)
	}
	if got := formatFields(nodes[:1], true, true); got != "10.77.0.10\tup\n" {
		t.Errorf("-a -s: %q", got)
	}
	long := formatLong(nodes)
	lines := strings.Split(strings.TrimSpace(long), "\n")
	if len(lines) != 8 || !strings.HasPrefix(lines[0], "Node") || !strings.Contains(lines[1], "10.77.0.10") || !strings.HasSuffix(lines[1], "n0") {
		t.Errorf("-l:\n%s", long)
	}
}

func TestProcs(t *testing.T) {
	ps := []client.ProcStatus{{Pid: 7, Node: 2, State: "running"}, {Pid: 8, Node: 0, State: "exited"}, {Pid: 12, Node: -1, State: "stopped"}}
	want := "PID     Node\n7       2\n12      -1\n"
	if got := formatProcs(ps); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestPrologue(t *testing.T) {
	clitest.Prologue(t, "bpstat", run, "--long", []string{"-l", "-t"}, []string{"-p", "-n"}, []string{"x!"}, []string{"-N", "-S"})
}

func TestLive(t *testing.T) {
	clienttest.Start(t)
	code, out, errs := clitest.Call(run, "-M")
	if code != 0 {
		t.Fatalf("bpstat -M: exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "-1 ") || !strings.Contains(lines[1], " up ") {
		t.Errorf("bpstat -M:\n%s", out)
	}
	if code, out, _ := clitest.Call(run, "-s", "-1"); code != 0 || out != "up\n" {
		t.Errorf("bpstat -s -1: %d %q", code, out)
	}
	if code, out, _ := clitest.Call(run, "-t"); code != 0 || out != "0\n" {
		t.Errorf("bpstat -t (no compute nodes): %d %q", code, out)
	}
	if code, out, _ := clitest.Call(run, "-n", "-M"); code != 0 || out != "-1\n" {
		t.Errorf("bpstat -n -M: %d %q", code, out)
	}
	if code, out, _ := clitest.Call(run, "3"); code != 1 {
		t.Errorf("bpstat 3 (missing node): %d %q", code, out)
	}
	// "-1" as an option's value is not the master's nodespec: after
	// --host as after -A it is a host name no node has.
	for _, opt := range []string{"-A", "--host"} {
		if code, out, errs := clitest.Call(run, opt, "-1"); code != 1 || !strings.Contains(errs, `no node has hostname or address "-1"`) {
			t.Errorf("bpstat %s -1: %d %q %q", opt, code, out, errs)
		}
	}
	if code, out, _ := clitest.Call(run, "-p"); code != 0 || !strings.HasPrefix(out, "PID     Node\n") {
		t.Errorf("bpstat -p: %d %q", code, out)
	}
}

func TestFit(t *testing.T) {
	if got := fit("abcdef\nab\nabcde", 5); got != "abcd\nab\nabcd\n" {
		t.Errorf("got %q", got)
	}
}
