// Package nodespec is the one node specification grammar of bproc's
// commands and tree (bpsh 0-7, node/0-63/ctl): parsing, and resolving
// against a cluster's node list. It is pure, so the master's tree and the
// client library share it.
package nodespec

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"bproc/fs/slaveproto"
)

// Master is the master's node number.
const Master = -1

// States are BProc's node states, in its order.
var States = slaveproto.NodeStates

// ValidState reports whether s is one of States.
func ValidState(s string) bool {
	for _, x := range States {
		if x == s {
			return true
		}
	}
	return false
}

// Node is what resolving a spec needs to know of a node: its number,
// state, and the address and hostname it reported ("-" when unknown).
type Node struct {
	Num               int
	State, Addr, Host string
}

// Spec is a parsed node specification: elements separated by commas,
// each a node (`3`, `n3`, Scyld's `.3`), a range (`0-7`, `5-` up to the
// last node), a node set (`n[0-3,7]`, as pdsh and ClusterShell write
// them), the master (`master`, `-1`), a state set (`all`, `allup`,
// `allnotdown`, and generally `allSTATE` / `allnotSTATE` for any BProc
// state), or a node's hostname or address as it reported them. An element
// written `^E` removes E's nodes from what comes before it, `&E`
// (ClusterShell's operator) keeps only those also in E: `2-&allup` is the
// up nodes from 2 on, `0-7,^3` nodes 0 to 7 but 3.
type Spec []specElem

type elemKind int

const (
	elemNode  elemKind = iota // lo
	elemRange                 // lo..hi, or lo.. when open
	elemAll                   // every compute node, optionally filtered by state
	elemHost                  // a hostname or address, resolved against the list
	elemSet                   // n[...]: the union of sub
)

// elemOp is how an element combines with the nodes before it.
type elemOp int

const (
	opAdd elemOp = iota // union (,)
	opSub               // exclusion (^)
	opAnd               // intersection (&)
)

type specElem struct {
	kind   elemKind
	op     elemOp
	lo, hi int
	open   bool
	state  string     // elemAll: "" for all, else the state
	not    bool       // elemAll: every compute node NOT in state
	host   string     // elemHost
	sub    []specElem // elemSet
}

// Parse parses spec; errors name the offending element.
func Parse(spec string) (Spec, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, fmt.Errorf("empty node spec")
	}
	var ns Spec
	for _, t := range splitSpec(spec) {
		tok := strings.TrimSpace(t.text)
		op := t.op
		if strings.HasPrefix(tok, "^") {
			op, tok = opSub, strings.TrimSpace(tok[1:])
		}
		if op != opAdd && len(ns) == 0 {
			return nil, fmt.Errorf("bad node spec %q: %q: nothing before it to take nodes from", spec, t.text)
		}
		e, err := parseElem(tok)
		if err != nil {
			return nil, fmt.Errorf("bad node spec %q: %q: %s", spec, t.text, err)
		}
		e.op = op
		ns = append(ns, e)
	}
	return ns, nil
}

type specTok struct {
	text string
	op   elemOp
}

// splitSpec cuts spec at commas and ampersands outside brackets.
func splitSpec(spec string) []specTok {
	var out []specTok
	depth, start, op := 0, 0, opAdd
	for i := 0; i < len(spec); i++ {
		switch c := spec[i]; {
		case c == '[':
			depth++
		case c == ']' && depth > 0:
			depth--
		case (c == ',' || c == '&') && depth == 0:
			out = append(out, specTok{spec[start:i], op})
			start, op = i+1, opAdd
			if c == '&' {
				op = opAnd
			}
		}
	}
	return append(out, specTok{spec[start:], op})
}

func parseElem(tok string) (specElem, error) {
	switch {
	case tok == "":
		return specElem{}, fmt.Errorf("empty element")
	case tok == "master" || tok == "-1":
		return specElem{kind: elemNode, lo: Master}, nil
	case strings.HasPrefix(tok, "all"):
		rest := tok[3:]
		e := specElem{kind: elemAll}
		if rest == "" {
			return e, nil
		}
		if strings.HasPrefix(rest, "not") && ValidState(rest[3:]) {
			e.not, e.state = true, rest[3:]
			return e, nil
		}
		if ValidState(rest) {
			e.state = rest
			return e, nil
		}
		return specElem{}, fmt.Errorf("unknown node state %q (want all, all<state> or allnot<state>; states: %s)", rest, strings.Join(States, " "))
	case strings.HasPrefix(tok, "n[") && strings.HasSuffix(tok, "]"):
		return parseSet(tok[2 : len(tok)-1])
	case len(tok) > 1 && tok[0] == '.' && allDigits(tok[1:]): // Scyld's .3
		return parseElem(tok[1:])
	case isHostName(tok):
		return specElem{kind: elemHost, host: tok}, nil
	}
	return parseRange(tok)
}

// parseSet reads the inside of n[...]: numbers and ranges, comma-separated.
func parseSet(in string) (specElem, error) {
	e := specElem{kind: elemSet}
	for _, p := range strings.Split(in, ",") {
		r, err := parseRange(strings.TrimSpace(p))
		if err != nil {
			return specElem{}, err
		}
		if r.open {
			return specElem{}, fmt.Errorf("open range in a node set")
		}
		e.sub = append(e.sub, r)
	}
	return e, nil
}

func parseRange(tok string) (specElem, error) {
	lo, hi, isRange := strings.Cut(tok, "-")
	a, err := nodeNum(lo)
	if err != nil {
		return specElem{}, err
	}
	if !isRange {
		return specElem{kind: elemNode, lo: a}, nil
	}
	if hi == "" {
		return specElem{kind: elemRange, lo: a, open: true}, nil
	}
	b, err := nodeNum(hi)
	if err != nil {
		return specElem{}, err
	}
	if b < a {
		return specElem{}, fmt.Errorf("range ends before it starts")
	}
	return specElem{kind: elemRange, lo: a, hi: b}, nil
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// isHostName tells a hostname or address from the number forms: a name
// starts with a letter and is not n<digits> (nor a range of those); an
// IPv4 address has four dotted numbers, an IPv6 one a colon.
func isHostName(s string) bool {
	if strings.Contains(s, ":") {
		return true
	}
	if p := strings.Split(s, "."); len(p) == 4 && allDigits(strings.Join(p, "")) {
		return true
	}
	c := s[0]
	if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
		return false
	}
	if lo, hi, _ := strings.Cut(s, "-"); lo[0] == 'n' && (lo == "n" || allDigits(lo[1:])) && (hi == "" || allDigits(strings.TrimPrefix(hi, "n"))) {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// nodeNum reads `3` or `n3`.
func nodeNum(s string) (int, error) {
	d := strings.TrimPrefix(s, "n")
	if d == "" {
		return 0, fmt.Errorf("not a node number")
	}
	if !allDigits(d) {
		return 0, fmt.Errorf("not a node number, range, node set, hostname, all, allup, allnotdown or master")
	}
	v, err := strconv.Atoi(d)
	if err != nil || v > 1<<24 {
		return 0, fmt.Errorf("node number out of range")
	}
	return v, nil
}

// HasHostnames reports whether an element names a node by hostname or
// address (commands where a name may also be a local file tell them
// apart with it).
func (ns Spec) HasHostnames() bool {
	for _, e := range ns {
		if e.kind == elemHost {
			return true
		}
	}
	return false
}

// NeedsList reports whether expanding the spec needs the cluster's node
// list (state sets, open ranges, hostnames); plain numbers do not.
func (ns Spec) NeedsList() bool {
	for _, e := range ns {
		if e.kind == elemAll || e.kind == elemHost || (e.kind == elemRange && e.open) {
			return true
		}
	}
	return false
}

// Resolve lists the nodes the spec names, in the spec's order without
// duplicates. nodes is the cluster (ListNodes, or ListComputeNodes when no
// hostname names the master); explicit numbers are kept even when the
// cluster does not list them, so the caller reports them. A hostname or
// address no node has is an error.
func (ns Spec) Resolve(nodes []Node) ([]int, error) {
	var out []int
	var bad []string
	for _, e := range ns {
		set, err := e.nodes(nodes)
		if err != nil {
			bad = append(bad, err.Error())
		}
		switch e.op {
		case opAdd:
			out = append(out, set...)
		case opSub, opAnd:
			in := map[int]bool{}
			for _, n := range set {
				in[n] = true
			}
			kept := out[:0]
			for _, n := range out {
				if in[n] == (e.op == opAnd) {
					kept = append(kept, n)
				}
			}
			out = kept
		}
	}
	out = dedup(out)
	if len(bad) > 0 {
		return out, errors.New(strings.Join(bad, "; "))
	}
	return out, nil
}

func dedup(ns []int) []int {
	seen := map[int]bool{}
	out := ns[:0:0]
	for _, n := range ns {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// nodes is the element's nodes, in order.
func (e specElem) nodes(cluster []Node) ([]int, error) {
	var out []int
	switch e.kind {
	case elemNode:
		out = append(out, e.lo)
	case elemRange:
		hi := e.hi
		if e.open {
			hi = -1
			for _, n := range cluster {
				hi = max(hi, n.Num)
			}
		}
		for n := e.lo; n <= hi; n++ {
			out = append(out, n)
		}
	case elemSet:
		for _, s := range e.sub {
			sn, _ := s.nodes(cluster)
			out = append(out, sn...)
		}
	case elemAll:
		for _, n := range cluster {
			if n.Num >= 0 && (e.state == "" || (n.State == e.state) != e.not) {
				out = append(out, n.Num)
			}
		}
	case elemHost:
		n, ok := HostNode(cluster, e.host)
		if !ok {
			return nil, fmt.Errorf("no node has hostname or address %q", e.host)
		}
		out = append(out, n)
	}
	return out, nil
}

// HostNode finds the node whose reported hostname or address is host
// (the hostname without its domain matches too).
func HostNode(cluster []Node, host string) (int, bool) {
	for _, n := range cluster {
		if (n.Host != "-" && (n.Host == host || strings.Split(n.Host, ".")[0] == host)) || (n.Addr != "-" && n.Addr == host) {
			return n.Num, true
		}
	}
	return 0, false
}

// Expand parses and resolves spec in one step.
func Expand(spec string, nodes []Node) ([]int, error) {
	ns, err := Parse(spec)
	if err != nil {
		return nil, err
	}
	return ns.Resolve(nodes)
}

// FoldNodes writes node numbers as a ClusterShell node set: "n[0-3,7]",
// "n5" for one node, "master" for the master, sorted.
func FoldNodes(nodes []int) string {
	s := append([]int(nil), nodes...)
	sort.Ints(s)
	var parts []string
	if len(s) > 0 && s[0] == Master {
		parts = append(parts, "master")
		s = s[1:]
	}
	switch len(s) {
	case 0:
	case 1:
		parts = append(parts, fmt.Sprintf("n%d", s[0]))
	default:
		parts = append(parts, "n["+FormatRanges(s)+"]")
	}
	return strings.Join(parts, ",")
}

// FormatRanges writes node numbers compactly ("0-3,5,7-8"), in the given
// order, joining runs of consecutive numbers.
func FormatRanges(nodes []int) string {
	var b strings.Builder
	for i := 0; i < len(nodes); {
		j := i
		for j+1 < len(nodes) && nodes[j+1] == nodes[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if j > i {
			fmt.Fprintf(&b, "%d-%d", nodes[i], nodes[j])
		} else {
			fmt.Fprintf(&b, "%d", nodes[i])
		}
		i = j + 1
	}
	return b.String()
}

// MasterArg rewrites a command-line argument that is a nodespec starting
// with the master's number ("-1", "-1,0-3") to the same spec with
// "master", so that option parsers do not take it for an option. Other
// arguments come back unchanged, with false.
func MasterArg(a string) (string, bool) {
	if a == "-1" || strings.HasPrefix(a, "-1,") {
		if _, err := Parse(a); err == nil {
			return "master" + a[2:], true
		}
	}
	return a, false
}
