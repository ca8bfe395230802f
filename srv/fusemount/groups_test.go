package fusemount

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// procGroups reads the process's own groups as the kernel has them.
func TestProcGroupsOwn(t *testing.T) {
	want, err := os.Getgroups()
	if err != nil {
		t.Skip(err)
	}
	var got []int
	for _, g := range procGroups(os.Getpid()) {
		got = append(got, int(g))
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("procGroups: %v, getgroups: %v", got, want)
	}
	if g := procGroups(-1); g != nil {
		t.Errorf("no such process: %v", g)
	}
}

func TestParseGroups(t *testing.T) {
	long := strings.Repeat(" 7", 5000)
	for _, tc := range []struct {
		in   string
		want []uint32
	}{
		{"Name:\tx\nGroups:\t1 20 300 \nNStgid:\t5\n", []uint32{1, 20, 300}},
		{"Name:\tx\nGroups:\t\nNStgid:\t5\n", nil},
		{"Name:\tx\nGroups:\t4294967295 4294967296 x 2", []uint32{4294967295, 2}},
		{"Name:\tx\nUid:\t0\n", nil},
		{"Groups:\t1\n", nil}, // not after a newline: never the first line
		{"Name:\tx\nGroups:" + long + "\n", slices.Repeat([]uint32{7}, 5000)},
	} {
		if got := parseGroups([]byte(tc.in)); !slices.Equal(got, tc.want) {
			t.Errorf("%.40q: %v, want %v", tc.in, got, tc.want)
		}
	}
}
