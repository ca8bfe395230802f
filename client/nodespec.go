package client

import "bproc/fs/nodespec"

// NodeSpec is a parsed node specification (see fs/nodespec for the
// grammar: 3, n3, .3, 0-7, 5-, n[0-3,7], master, all, allup, allSTATE,
// allnotSTATE, hostnames and addresses, ^E and &E).
type NodeSpec nodespec.Spec

// ParseNodeSpec parses spec; errors name the offending element.
func ParseNodeSpec(spec string) (NodeSpec, error) {
	ns, err := nodespec.Parse(spec)
	return NodeSpec(ns), err
}

// specNodes is the cluster as the grammar sees it.
func specNodes(nodes []NodeStatus) []nodespec.Node {
	out := make([]nodespec.Node, len(nodes))
	for i, n := range nodes {
		out[i] = nodespec.Node{Num: n.Node, State: n.State, Addr: n.Addr, Host: n.Host}
	}
	return out
}

// HasHostnames reports whether an element names a node by hostname or
// address (commands where a name may also be a local file tell them
// apart with it).
func (ns NodeSpec) HasHostnames() bool { return nodespec.Spec(ns).HasHostnames() }

// NeedsList reports whether expanding the spec needs the cluster's node
// list (state sets, open ranges, hostnames); plain numbers do not.
func (ns NodeSpec) NeedsList() bool { return nodespec.Spec(ns).NeedsList() }

// Expand lists the nodes the spec names, in the spec's order without
// duplicates; hostnames the list does not know are left out (Resolve
// reports them).
func (ns NodeSpec) Expand(nodes []NodeStatus) []int {
	out, _ := ns.Resolve(nodes)
	return out
}

// Resolve lists the nodes the spec names, in the spec's order without
// duplicates. nodes is the cluster (ListNodes, or ListComputeNodes when no
// hostname names the master); explicit numbers are kept even when the
// cluster does not list them, so the caller reports them. A hostname or
// address no node has is an error.
func (ns NodeSpec) Resolve(nodes []NodeStatus) ([]int, error) {
	return nodespec.Spec(ns).Resolve(specNodes(nodes))
}

// HostNode finds the node whose reported hostname or address is host
// (the hostname without its domain matches too).
func HostNode(cluster []NodeStatus, host string) (int, bool) {
	return nodespec.HostNode(specNodes(cluster), host)
}

// ExpandNodeSpec parses and expands spec in one step.
func ExpandNodeSpec(spec string, nodes []NodeStatus) ([]int, error) {
	return nodespec.Expand(spec, specNodes(nodes))
}

// FoldNodes writes node numbers as a ClusterShell node set: "n[0-3,7]",
// "n5" for one node, "master" for the master, sorted.
func FoldNodes(nodes []int) string { return nodespec.FoldNodes(nodes) }

// FormatRanges writes node numbers compactly ("0-3,5,7-8"), in the given
// order, joining runs of consecutive numbers.
func FormatRanges(nodes []int) string { return nodespec.FormatRanges(nodes) }

// MasterArg rewrites a command-line argument that is a nodespec starting
// with the master's number ("-1", "-1,0-3") to the same spec with
// "master", so that option parsers do not take it for an option. Other
// arguments come back unchanged, with false.
func MasterArg(a string) (string, bool) { return nodespec.MasterArg(a) }
