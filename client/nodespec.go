package client

import (
	"fmt"
	"strconv"
	"strings"
)

// NodeSpec is a parsed BProc node specification: comma-separated elements,
// each a node (`3`, `n3`), a range (`0-7`, `5-` up to the last node), the
// master (`master`, `-1`), or a state set (`all`, `allup`, `allnotdown`,
// and generally `allSTATE` / `allnotSTATE` for any BProc state).
type NodeSpec []specElem

type elemKind int

const (
	elemNode  elemKind = iota // lo
	elemRange                 // lo..hi, or lo.. when open
	elemAll                   // every compute node, optionally filtered by state
)

type specElem struct {
	kind   elemKind
	lo, hi int
	open   bool
	state  string // elemAll: "" for all, else the state
	not    bool   // elemAll: every compute node NOT in state
}

// ParseNodeSpec parses spec; errors name the offending element.
func ParseNodeSpec(spec string) (NodeSpec, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, fmt.Errorf("empty node spec")
	}
	var ns NodeSpec
	for _, tok := range strings.Split(spec, ",") {
		e, err := parseElem(strings.TrimSpace(tok))
		if err != nil {
			return nil, fmt.Errorf("bad node spec %q: %q: %s", spec, tok, err)
		}
		ns = append(ns, e)
	}
	return ns, nil
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
	}
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

// nodeNum reads `3` or `n3`.
func nodeNum(s string) (int, error) {
	d := strings.TrimPrefix(s, "n")
	if d == "" {
		return 0, fmt.Errorf("not a node number")
	}
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("not a node number, range, all, allup, allnotdown or master")
		}
	}
	v, err := strconv.Atoi(d)
	if err != nil || v > 1<<24 {
		return 0, fmt.Errorf("node number out of range")
	}
	return v, nil
}

// NeedsList reports whether expanding the spec needs the cluster's node
// list (state sets and open ranges); plain numbers do not.
func (ns NodeSpec) NeedsList() bool {
	for _, e := range ns {
		if e.kind == elemAll || (e.kind == elemRange && e.open) {
			return true
		}
	}
	return false
}

// Expand lists the nodes the spec names, in the spec's order without
// duplicates. nodes is the cluster (ListNodes); explicit numbers are kept
// even when the cluster does not list them, so the caller reports them.
func (ns NodeSpec) Expand(nodes []NodeStatus) []int {
	seen := map[int]bool{}
	var out []int
	add := func(n int) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	last := -1
	for _, n := range nodes {
		if n.Node > last {
			last = n.Node
		}
	}
	for _, e := range ns {
		switch e.kind {
		case elemNode:
			add(e.lo)
		case elemRange:
			hi := e.hi
			if e.open {
				hi = last
			}
			for n := e.lo; n <= hi; n++ {
				add(n)
			}
		case elemAll:
			for _, n := range nodes {
				if n.Node < 0 {
					continue
				}
				if e.state == "" || (n.State == e.state) != e.not {
					add(n.Node)
				}
			}
		}
	}
	return out
}

// ExpandNodeSpec parses and expands spec in one step.
func ExpandNodeSpec(spec string, nodes []NodeStatus) ([]int, error) {
	ns, err := ParseNodeSpec(spec)
	if err != nil {
		return nil, err
	}
	return ns.Expand(nodes), nil
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
		if _, err := ParseNodeSpec(a); err == nil {
			return "master" + a[2:], true
		}
	}
	return a, false
}
