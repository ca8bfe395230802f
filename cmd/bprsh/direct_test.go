package main

import (
	"reflect"
	"testing"
)

func TestDirectWords(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		want []string
	}{
		{"/opt/bin/orted -mca x 1", []string{"/opt/bin/orted", "-mca", "x", "1"}},
		{"/bin/echo  a\tb", []string{"/bin/echo", "a", "b"}},
		{"hostname", nil},         // PATH lookup on the node
		{"/bin/echo $HOME", nil},  // expansion
		{"/bin/echo 'a b'", nil},  // quotes
		{"/bin/a; /bin/b", nil},   // separator
		{"/bin/a > /tmp/x", nil},  // redirection
		{"/X=1 /bin/echo", nil},   // an assignment
		{"cd / && /bin/pwd", nil}, // a builtin first
		{"/bin/ls *.c", nil},      // a glob
		{"/bin/echo ~", nil},      // tilde
		{"/bin/echo a\nb", nil},   // two commands
		{"/bin/echo a=b", []string{"/bin/echo", "a=b"}},
		{"", nil},
	} {
		if got := directWords(tc.cmd); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("directWords(%q) = %q, want %q", tc.cmd, got, tc.want)
		}
	}
}
