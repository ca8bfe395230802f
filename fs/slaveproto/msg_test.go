package slaveproto

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestMsgBytesExact(t *testing.T) {
	for _, m := range []Msg{
		{Op: "start", Pid: 7, Path: "/bin/caf\xe9", Argv: []string{"caf\xe9", "\xff\xfe", "ok", ""},
			Env: []string{"A=\xff", "B=b"}, Dir: "/tmp/\xe9t\xe9", Uid: 4242, Gid: 4242, Groups: []uint32{1, 2}},
		{Op: "start", Pid: 3, Path: "/tmp/prog", Uid: 1, Gid: 1, Libs: []Lib{
			{Path: "/lib64/ld-linux-x86-64.so.2", Hash: "aa", Size: 10, Public: true, Interp: true},
			{Path: "/opt/caf\xe9/libx.so", Hash: "bb", Size: 20},
		}},
	} {
		b, got := reencode(t, &m)
		if !reflect.DeepEqual(m, got) {
			t.Errorf("round trip through %s:\n got %#v\nwant %#v", b, got, m)
		}
	}
}

// FuzzMsgRoundTrip: whatever bytes argv, environment and paths hold
// arrive unchanged.
func FuzzMsgRoundTrip(f *testing.F) {
	f.Add("/bin/echo", "hello", "PATH=/bin", "/")
	f.Add("/bin/caf\xe9", "\xff\xfe", "A=\xc3", "/tmp/\xe9")
	f.Add("", "", "", "")
	f.Add("\x00", "{\"b64\":\"AA==\"}", "\u2028", "\"\\")
	f.Fuzz(func(t *testing.T, path, arg, env, dir string) {
		m := Msg{Op: "start", Path: path, Argv: []string{path, arg, arg + env}, Env: []string{env}, Dir: dir}
		b, got := reencode(t, &m)
		if !reflect.DeepEqual(m, got) {
			t.Fatalf("round trip through %q:\n got %#v\nwant %#v", b, got, m)
		}
	})
}

// reencode encodes m and decodes the bytes again, ending the test on an
// error either way.
func reencode(t *testing.T, m *Msg) ([]byte, Msg) {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var got Msg
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("decoding %q: %v", b, err)
	}
	return b, got
}

// FuzzMsgDecode: the slave's decoder meets bytes from the wire; it must
// not panic, and what it accepts encodes, decodes and encodes again to
// the same bytes.
func FuzzMsgDecode(f *testing.F) {
	f.Add([]byte(`{"op":"hello","node":3,"ping_ms":5000,"uid":0,"gid":0}`))
	f.Add([]byte(`{"op":"start","pid":1,"path":"/bin/true","argv":["true",{"b64":"//4="}],"env":[{"b64":""}],"dir":{"b64":"L3RtcA=="},"uid":4242,"gid":4242}`))
	f.Add([]byte(`{"op":"start","argv":[{"b64":1}]}`))
	f.Add([]byte(`{"op":"start","pid":2,"libs":[{"path":"/lib64/ld-linux-x86-64.so.2","hash":"ab","size":9,"public":true,"interp":true},{"path":{"b64":"L2xpYi/p"},"hash":"cd","size":1}],"uid":0,"gid":0}`))
	f.Add([]byte(`{"argv":null,"path":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Msg
		if json.Unmarshal(b, &m) != nil {
			return
		}
		out, again := reencode(t, &m)
		out2, err := json.Marshal(&again)
		if err != nil || string(out2) != string(out) {
			t.Fatalf("%q decoded and encoded to %q, then to %q (%v)", b, out, out2, err)
		}
	})
}
