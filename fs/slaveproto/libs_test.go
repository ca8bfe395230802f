package slaveproto

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestLibsBytesExact(t *testing.T) {
	m := &Msg{Op: "start", Pid: 3, Path: "/tmp/prog", Uid: 1, Gid: 1, Libs: []Lib{
		{Path: "/lib64/ld-linux-x86-64.so.2", Hash: "aa", Size: 10, Public: true, Interp: true},
		{Path: "/opt/caf\xe9/libx.so", Hash: "bb", Size: 20},
	}}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var got Msg
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	if !reflect.DeepEqual(*m, got) {
		t.Errorf("round trip through %s:\n got %#v\nwant %#v", b, got, *m)
	}
}
