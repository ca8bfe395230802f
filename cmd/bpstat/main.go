// Command bpstat shows the state of a bproc cluster's nodes and where its
// processes run.
//
//	bpstat [-c | -l | -a | -s | -n | -t | -p | -A host] [-R] [-N | -S | -O] [-U] [-L] [-M] [nodespec...]
//
// With no option it prints BProc's compact table, nodes with identical
// fields collapsed (sorted by state, as BProc does):
//
//	Node(s)     Status       Mode       User       Group
//	0-3         up           ---x--x--x root       root
package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"bproc/client"
	"bproc/cmd/internal/cli"
)

type options struct {
	long, compact, addr, state, count, total, procs bool
	reverse, byNumber, byState, keepOrder           bool
	update, lock, master                            bool
	host, keyFile                                   string
	interval                                        time.Duration
	width                                           int // of the terminal; 0: no limit
}

func main() { cli.Main(run) }

func run(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	var o options
	c := newCommand(&o, stdout, stderr)
	if code, done := c.Parse(fixMasterSpecs(c, args)); done {
		return code
	}
	modes := 0
	for _, b := range []bool{o.long, o.compact, o.addr || o.state, o.count, o.total, o.procs, o.host != ""} {
		if b {
			modes++
		}
	}
	if modes > 1 {
		return c.Usage("-c, -l, -a/-s, -n, -t, -p and -A exclude each other")
	}
	if o.byNumber && o.byState || (o.byNumber || o.byState) && o.keepOrder {
		return c.Usage("-N, -S and -O exclude each other")
	}
	if o.interval < 100*time.Millisecond {
		o.interval = 100 * time.Millisecond
	}
	var specs []client.NodeSpec
	for _, a := range c.Args() {
		ns, err := client.ParseNodeSpec(a)
		if err != nil {
			return c.Usage("%v", err)
		}
		specs = append(specs, ns)
	}
	if o.lock {
		// BProc's "locked" mode for an unattended terminal.
		signal.Ignore(syscall.SIGINT, syscall.SIGTSTP)
	}
	tty := isTerminal(stdout)
	if tty {
		o.width = termWidth(stdout)
	}

	t, err := client.Connect(client.Options{KeyFile: o.keyFile})
	if err != nil {
		return c.Fail(err)
	}
	defer t.Close()
	if o.host != "" {
		return printHost(c, t, o.host)
	}
	if !o.update {
		text, err := render(t, specs, &o)
		io.WriteString(stdout, text)
		if err != nil {
			return c.Fail(err)
		}
		return 0
	}
	// -U: poll, redraw only on change; escapes only for a terminal.
	last := ""
	for {
		text, err := render(t, specs, &o)
		if err != nil {
			text += "bpstat: " + err.Error() + "\n"
		}
		if text != last {
			if tty {
				text = "\033[H\033[2J" + fit(text, o.width)
			}
			if _, err := io.WriteString(stdout, text); err != nil {
				return c.Fail(err)
			}
			last = strings.TrimPrefix(text, "\033[H\033[2J")
		}
		time.Sleep(o.interval)
	}
}

func newCommand(o *options, stdout, stderr io.Writer) *cli.Command {
	c := cli.New("bpstat", "[options] [nodespec...]", "Show the nodes of the bproc cluster (default: a compact table).", stdout, stderr)
	c.VersionV() // BProc's bpstat -v
	o.interval = time.Second
	c.Options([]cli.Option{
		{Short: "c", Long: "compact", Value: &o.compact, Usage: "compact table, nodes with the same fields on one line (the default)"},
		{Short: "l", Long: "long", Value: &o.long, Usage: "long listing: one line per node with its address"},
		{Short: "a", Long: "address", Value: &o.addr, Usage: "print each node's address"},
		{Short: "s", Long: "status", Value: &o.state, Usage: "print each node's state"},
		{Short: "n", Long: "number", Value: &o.count, Usage: "print the node numbers, one per line"},
		{Short: "t", Long: "total", Value: &o.total, Usage: "print the total number of nodes"},
		{Short: "p", Long: "pid", Value: &o.procs, Usage: "list remote processes: PID and node"},
		{Short: "A", Long: "host", Value: &o.host, Usage: "print the node number of `host` (a node's hostname or address)"},
		{Short: "R", Long: "sort-reverse", Value: &o.reverse, Usage: "reverse the sort order"},
		{Short: "N", Long: "sort-number", Value: &o.byNumber, Usage: "sort by node number (the default but for the compact table)"},
		{Short: "S", Long: "sort-status", Value: &o.byState, Usage: "sort by state, then number (the compact table's default)"},
		{Short: "O", Long: "keep-order", Value: &o.keepOrder, Usage: "keep the nodespecs' order"},
		{Short: "U", Long: "update", Value: &o.update, Usage: "keep the display up to date (redraw when it changes)"},
		{Short: "L", Long: "lock", Value: &o.lock, Usage: "locked mode for an unattended terminal: ignore INT and TSTP"},
		{Short: "M", Long: "master", Value: &o.master, Usage: "include the master (node -1)"},
		{Short: "", Long: "interval", Value: &o.interval, Usage: "poll interval of -U"},
	})
	c.KeyOption(&o.keyFile)
	return c
}

// fixMasterSpecs rewrites nodespecs like "-1" so the option parser takes
// them for nodespecs, not options; the options' values are left alone.
func fixMasterSpecs(c *cli.Command, args []string) []string {
	args = append([]string(nil), args...)
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--":
			return args
		case c.TakesValue(args[i]):
			i++
		default:
			args[i], _ = client.MasterArg(args[i])
		}
	}
	return args
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// termWidth is the terminal's width, 80 when it does not say.
func termWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
			return int(ws.Col)
		}
	}
	return 80
}

// fit cuts every line of text to the terminal's width.
func fit(text string, width int) string {
	lines := strings.SplitAfter(text, "\n")
	for i, l := range lines {
		if w := width - 1; w > 0 && len(strings.TrimSuffix(l, "\n")) > w {
			lines[i] = l[:w] + "\n"
		}
	}
	return strings.Join(lines, "")
}

// printHost is -A: the node number of a hostname or address.
func printHost(c *cli.Command, t client.Tree, host string) int {
	all, err := client.ListNodes(t)
	if err != nil {
		return c.Fail(err)
	}
	n, ok := client.HostNode(all, host)
	if !ok {
		return c.Errorf("no node has hostname or address %q", host)
	}
	fmt.Fprintln(c.Stdout, n)
	return 0
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
	compact := !(o.long || o.addr || o.state || o.count || o.total)
	sortNodes(nodes, o, compact)
	var b strings.Builder
	switch {
	case o.long:
		b.WriteString(formatLong(nodes))
	case o.addr || o.state:
		b.WriteString(formatFields(nodes, o.addr, o.state))
	case o.count:
		for _, n := range nodes {
			fmt.Fprintf(&b, "%d\n", n.Node)
		}
	case o.total:
		fmt.Fprintf(&b, "%d\n", len(nodes))
	default:
		b.WriteString(formatCompact(nodes, o.width))
	}
	return b.String(), err
}

// sortNodes orders the nodes as BProc's bpstat: the compact table by
// state then number, the other listings by number; -S, -N, -O choose,
// -R reverses.
func sortNodes(nodes []client.NodeStatus, o *options, compact bool) {
	if o.keepOrder {
		if o.reverse {
			for i, j := 0, len(nodes)-1; i < j; i, j = i+1, j-1 {
				nodes[i], nodes[j] = nodes[j], nodes[i]
			}
		}
		return
	}
	byState := o.byState || (compact && !o.byNumber)
	sort.SliceStable(nodes, func(i, j int) bool {
		a, b := nodes[i], nodes[j]
		if byState && a.State != b.State {
			return (a.State < b.State) != o.reverse
		}
		if byState {
			return a.Node < b.Node
		}
		return (a.Node < b.Node) != o.reverse
	})
}

// selectNodes picks the nodes the specs name (default: the compute nodes,
// plus the master with -M), in the specs' order, each once. Named nodes
// the cluster does not have are an error, after the others.
func selectNodes(all []client.NodeStatus, specs []client.NodeSpec, master bool) ([]client.NodeStatus, error) {
	byNum := map[int]client.NodeStatus{}
	for _, n := range all {
		byNum[n.Node] = n
	}
	var out []client.NodeStatus
	if len(specs) == 0 {
		for _, n := range all {
			if n.Node >= 0 || master {
				out = append(out, n)
			}
		}
		return out, nil
	}
	seen := map[int]bool{}
	var missing []int
	var bad []string
	for _, ns := range specs {
		nodes, err := ns.Resolve(all)
		if err != nil {
			bad = append(bad, err.Error())
		}
		for _, n := range nodes {
			st, ok := byNum[n]
			switch {
			case !ok:
				missing = append(missing, n)
			case !seen[n]:
				seen[n] = true
				out = append(out, st)
			}
		}
	}
	if len(missing) > 0 {
		bad = append(bad, "no such node: "+client.FormatRanges(missing))
	}
	if len(bad) > 0 {
		return out, fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return out, nil
}

// execMode is the mode as BProc's bpstat shows it: the execute bits only,
// the ones that decide who may run work on the node.
func execMode(n client.NodeStatus) string {
	b := []byte("---------")
	for i, bit := range []os.FileMode{0o100, 0o010, 0o001} {
		if n.Mode&bit != 0 {
			b[3*i+2] = 'x'
		}
	}
	return "-" + string(b)
}

// nodeLabel writes numbers as runs ("0-3,5"); the master is never part
// of a run ("-1,0-3", not "-1-3").
func nodeLabel(nums []int) string {
	var parts []string
	if len(nums) > 0 && nums[0] == client.Master {
		parts = append(parts, "-1")
		nums = nums[1:]
	}
	if len(nums) > 0 {
		parts = append(parts, client.FormatRanges(nums))
	}
	return strings.Join(parts, ",")
}

// formatCompact is BProc's default table: nodes next to each other in the
// (sorted) list with the same state, mode, user and group share one line.
// width (the terminal's) cuts lines; 0 leaves them whole.
func formatCompact(nodes []client.NodeStatus, width int) string {
	type row struct{ label, state, mode, user, group string }
	rows := []row{{"Node(s)", "Status", "Mode", "User", "Group"}}
	same := func(x, y client.NodeStatus) bool {
		return x.State == y.State && execMode(x) == execMode(y) && x.User == y.User && x.Group == y.Group
	}
	for i := 0; i < len(nodes); {
		j := i
		for j < len(nodes) && same(nodes[j], nodes[i]) {
			j++
		}
		var nums []int
		for _, n := range nodes[i:j] {
			nums = append(nums, n.Node)
		}
		sort.Ints(nums)
		n := nodes[i]
		rows = append(rows, row{nodeLabel(nums), n.State, execMode(n), n.User, n.Group})
		i = j
	}
	lw := 11
	for _, r := range rows {
		lw = max(lw, len(r.label))
	}
	var b strings.Builder
	for _, r := range rows {
		line := fmt.Sprintf("%-*s %-12s %-10s %-10s %s", lw, r.label, r.state, r.mode, r.user, r.group)
		if width > 0 && len(line) > width-1 {
			line = line[:width-1]
		}
		b.WriteString(line + "\n")
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
		row(fmt.Sprint(n.Node), n.Addr, n.State, execMode(n), n.User, n.Group, n.Host)
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
