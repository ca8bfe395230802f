package pspace

import (
	"fmt"
	iofs "io/fs"
	"sort"
	"strconv"
	"strings"
	"syscall"
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

// reported is a slave's failure report as an error: its text, wrapping
// its errno. The errno's own words are added only when the text lacks
// them (a slave's text often ends with them already).
func reported(text string, errno syscall.Errno) error {
	if strings.HasSuffix(strings.ToLower(text), strings.ToLower(errno.Error())) {
		return &reportErr{text, errno}
	}
	return fmt.Errorf("%s: %w", text, errno)
}

type reportErr struct {
	text  string
	errno syscall.Errno
}

func (e *reportErr) Error() string { return e.text }
func (e *reportErr) Unwrap() error { return e.errno }
