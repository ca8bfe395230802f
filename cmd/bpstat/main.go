// Command bpstat shows the state of a bproc cluster's nodes and where its
// processes run.
//
//	bpstat [-l | -a | -s | -n | -t | -p] [-U] [-M] [nodespec...]
//
// With no option it prints BProc's compact table, nodes with identical
// fields collapsed into ranges:
//
//	Node(s)     Status       Mode       User       Group
//	0-3         up           ---x--x--x root       root
package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"bproc/client"
	"bproc/cmd/internal/cli"
)

type options struct {
	long, addr, state, count, total, procs bool
	update, master                         bool
	keyFile                                string
	interval                               time.Duration
}

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

func run(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	// Nodespecs like "-1" are not options; values of -k and --interval
	// are left alone.
	args = append([]string(nil), args...)
	for i := 0; i < len(args); i++ {
		if args[i] == "--" {
			break
		}
		if args[i] == "-k" || args[i] == "--key" || args[i] == "--interval" {
			i++
			continue
		}
		args[i], _ = client.MasterArg(args[i])
	}
	var o options
	c := cli.New("bpstat", "[options] [nodespec...]", "Show the nodes of the bproc cluster (default: a compact table).", stdout, stderr)
	flags := c.FlagSet
	flags.BoolVarP(&o.long, "long", "l", false, "long listing: one line per node with its address")
	flags.BoolVarP(&o.addr, "address", "a", false, "print each node's address")
	flags.BoolVarP(&o.state, "status", "s", false, "print each node's state")
	flags.BoolVarP(&o.count, "number", "n", false, "print the number of nodes")
	flags.BoolVarP(&o.total, "total", "t", false, "print the number of nodes in each state")
	flags.BoolVarP(&o.procs, "pid", "p", false, "list remote processes: PID and node")
	flags.BoolVarP(&o.update, "update", "U", false, "keep the display up to date (redraw when it changes)")
	flags.BoolVarP(&o.master, "master", "M", false, "include the master (node -1)")
	flags.DurationVar(&o.interval, "interval", time.Second, "poll interval of -U")
	flags.StringVarP(&o.keyFile, "key", "k", "", "cluster key `file` for 9P (default $BPROC_KEY or /etc/bproc/cluster.key)")
	if code, done := c.Parse(args); done {
		return code
	}
	modes := 0
	for _, b := range []bool{o.long, o.addr || o.state, o.count, o.total, o.procs} {
		if b {
			modes++
		}
	}
	if modes > 1 {
		return c.Usage("-l, -a/-s, -n, -t and -p exclude each other")
	}
	if o.interval < 100*time.Millisecond {
		o.interval = 100 * time.Millisecond
	}
	var specs []client.NodeSpec
	for _, a := range flags.Args() {
		ns, err := client.ParseNodeSpec(a)
		if err != nil {
			return c.Usage("%v", err)
		}
		specs = append(specs, ns)
	}

	t, err := client.Connect(client.Options{KeyFile: o.keyFile})
	if err != nil {
		return c.Fail(err)
	}
	defer t.Close()
	if !o.update {
		text, err := render(t, specs, &o)
		io.WriteString(stdout, text)
		if err != nil {
			return c.Fail(err)
		}
		return 0
	}
	// -U: poll, redraw only on change.
	last := ""
	for {
		text, err := render(t, specs, &o)
		if err != nil {
			text += "bpstat: " + err.Error() + "\n"
		}
		if text != last {
			io.WriteString(stdout, "\033[H\033[2J"+text)
			last = text
		}
		time.Sleep(o.interval)
	}
}

// render produces the whole output once.
func render(t client.Tree, specs []client.NodeSpec, o *options) (string, error) {
	if o.procs {
		ps, err := client.ListProcs(t)
		if err != nil {
			return "", err
		}
		return formatProcs(ps), nil
	}
	all, err := client.ListNodes(t)
	if err != nil {
		return "", err
	}
	nodes, err := selectNodes(all, specs, o.master)
	var b strings.Builder
	switch {
	case o.long:
		b.WriteString(formatLong(nodes))
	case o.addr || o.state:
		b.WriteString(formatFields(nodes, o.addr, o.state))
	case o.count:
		fmt.Fprintf(&b, "%d\n", len(nodes))
	case o.total:
		b.WriteString(formatTotals(nodes))
	default:
		b.WriteString(formatCompact(nodes))
	}
	return b.String(), err
}

// selectNodes picks the nodes the specs name (default: the compute nodes,
// plus the master with -M), in ascending order. Named nodes the cluster
// does not have are an error, after the others.
func selectNodes(all []client.NodeStatus, specs []client.NodeSpec, master bool) ([]client.NodeStatus, error) {
	byNum := map[int]client.NodeStatus{}
	for _, n := range all {
		byNum[n.Node] = n
	}
	want := map[int]bool{}
	var missing []int
	if len(specs) == 0 {
		for _, n := range all {
			if n.Node >= 0 || master {
				want[n.Node] = true
			}
		}
	}
	for _, ns := range specs {
		for _, n := range ns.Expand(all) {
			if _, ok := byNum[n]; !ok {
				missing = append(missing, n)
				continue
			}
			want[n] = true
		}
	}
	var out []client.NodeStatus
	for _, n := range all {
		if want[n.Node] {
			out = append(out, n)
		}
	}
	if len(missing) > 0 {
		return out, fmt.Errorf("no such node: %s", client.FormatRanges(missing))
	}
	return out, nil
}

// formatCompact is BProc's default table: runs of consecutive nodes with
// the same state, mode, user and group share one line.
func formatCompact(nodes []client.NodeStatus) string {
	var b strings.Builder
	row := func(a, s, m, u, g string) { fmt.Fprintf(&b, "%-11s %-12s %-10s %-10s %s\n", a, s, m, u, g) }
	row("Node(s)", "Status", "Mode", "User", "Group")
	for i := 0; i < len(nodes); {
		j := i
		same := func(x, y client.NodeStatus) bool {
			return x.State == y.State && x.ModeStr == y.ModeStr && x.User == y.User && x.Group == y.Group
		}
		for j+1 < len(nodes) && nodes[j+1].Node == nodes[j].Node+1 && same(nodes[j+1], nodes[i]) {
			j++
		}
		label := fmt.Sprint(nodes[i].Node)
		if j > i {
			label = fmt.Sprintf("%d-%d", nodes[i].Node, nodes[j].Node)
		}
		n := nodes[i]
		row(label, n.State, n.ModeStr, n.User, n.Group)
		i = j + 1
	}
	return b.String()
}

// formatLong is one line per node, with its address and host name.
func formatLong(nodes []client.NodeStatus) string {
	var b strings.Builder
	row := func(n, a, s, m, u, g, h string) {
		fmt.Fprintf(&b, "%-5s %-15s %-12s %-10s %-10s %-10s %s\n", n, a, s, m, u, g, h)
	}
	row("Node", "Address", "Status", "Mode", "User", "Group", "Host")
	for _, n := range nodes {
		row(fmt.Sprint(n.Node), n.Addr, n.State, n.ModeStr, n.User, n.Group, n.Host)
	}
	return b.String()
}

// formatFields prints the asked fields of each node, one node per line,
// for scripts: `bpstat -s 3` prints "up".
func formatFields(nodes []client.NodeStatus, addr, state bool) string {
	var b strings.Builder
	for _, n := range nodes {
		var f []string
		if addr {
			f = append(f, n.Addr)
		}
		if state {
			f = append(f, n.State)
		}
		b.WriteString(strings.Join(f, "\t") + "\n")
	}
	return b.String()
}

// formatTotals counts nodes per state, in BProc's state order, leaving out
// states no node is in.
func formatTotals(nodes []client.NodeStatus) string {
	count := map[string]int{}
	for _, n := range nodes {
		count[n.State]++
	}
	var b strings.Builder
	seen := map[string]bool{}
	for _, s := range client.States {
		if count[s] > 0 {
			fmt.Fprintf(&b, "%-12s %d\n", s, count[s])
		}
		seen[s] = true
	}
	// States this version does not know still get counted.
	for _, n := range nodes {
		if !seen[n.State] {
			seen[n.State] = true
			fmt.Fprintf(&b, "%-12s %d\n", n.State, count[n.State])
		}
	}
	return b.String()
}

// formatProcs lists remote processes as BProc's `bpstat -p` does.
func formatProcs(ps []client.ProcStatus) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%-8s%s\n", "PID", "Node")
	for _, p := range ps {
		if p.State == "exited" {
			continue // kept in proc/ for a while, but no longer running
		}
		fmt.Fprintf(&b, "%-8d%d\n", p.Pid, p.Node)
	}
	return b.String()
}
