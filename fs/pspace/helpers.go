package pspace

import (
	iofs "io/fs"
	"sort"
	"strconv"
)

// sortedInts returns the keys of m in ascending order.
func sortedInts[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	return keys
}

func itoa(i int) string { return strconv.Itoa(i) }

// modeString renders permission bits as ls does ("---x--x--x").
func modeString(m iofs.FileMode) string {
	return m.Perm().String()
}
