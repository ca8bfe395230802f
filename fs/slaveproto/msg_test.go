package slaveproto

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"unicode/utf8"
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
		var m, d Msg
		err := json.Unmarshal(b, &m)
		derr := DecodeMsg(b, &d)
		if (err == nil) != (derr == nil) || err == nil && !reflect.DeepEqual(m, d) {
			t.Fatalf("%q: json.Unmarshal %+v, %v; DecodeMsg %+v, %v", b, m, err, d, derr)
		}
		if err != nil {
			return
		}
		out, again := reencode(t, &m)
		out2, err := json.Marshal(&again)
		if err != nil || string(out2) != string(out) {
			t.Fatalf("%q decoded and encoded to %q, then to %q (%v)", b, out, out2, err)
		}
	})
}

// FuzzExactsLikeJSON: the lists' own encoder writes what encoding/json
// writes for valid UTF-8, and its decoder reads back what encoding/json
// wrote, whitespace and escapes included.
func FuzzExactsLikeJSON(f *testing.F) {
	f.Add("PATH=/bin", "x")
	f.Add("a<b>&c", "\"q\\")
	f.Add("caf\u00e9", "\u2028")
	f.Add("", "\x00")
	f.Fuzz(func(t *testing.T, a, b string) {
		got, err := exacts{exact(a), exact(b)}.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if utf8.ValidString(a) && utf8.ValidString(b) {
			want, _ := json.Marshal([]string{a, b})
			if string(got) != string(want) {
				t.Fatalf("%q: encoded %s, encoding/json %s", []string{a, b}, got, want)
			}
			for _, in := range [][]byte{want, []byte(" [ " + string(want[1:len(want)-1]) + " ] ")} {
				var l exacts
				if err := json.Unmarshal(in, &l); err != nil || len(l) != 2 || string(l[0]) != a || string(l[1]) != b {
					t.Fatalf("%s decoded to %q, %v", in, l, err)
				}
			}
		}
		var l exacts
		if err := json.Unmarshal(got, &l); err != nil || len(l) != 2 || string(l[0]) != a || string(l[1]) != b {
			t.Fatalf("%s decoded to %q, %v", got, l, err)
		}
	})
}

// BenchmarkStartMsg: encoding and decoding a start message with a
// login shell's environment, as each launch does once on each side
// (the master's AppendJSON, the slave's DecodeMsg).
func BenchmarkStartMsg(b *testing.B) {
	m := Msg{Op: "start", Pid: 1234, Hash: "c79bf44242829108e323378531f4ac839513ca1fba45efd6583643526e1e9fd2", Size: 35000,
		Path: "/bin/true", Argv: []string{"/bin/true"}, Dir: "/home/user", Uid: 1000, Gid: 1000,
		Libs: []Lib{{Path: "/lib64/ld-linux-x86-64.so.2", Hash: "aa", Size: 215000, Public: true, Interp: true}, {Path: "/lib/x86_64-linux-gnu/libc.so.6", Hash: "bb", Size: 1926232, Public: true}}}
	for i := 0; i < 40; i++ {
		m.Env = append(m.Env, fmt.Sprintf("VARIABLE_%d=/usr/local/some/value/of/a/typical/length/%d", i, i))
	}
	b.ReportAllocs()
	for b.Loop() {
		out := m.AppendJSON(nil)
		var got Msg
		if err := DecodeMsg(out, &got); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzAppendJSONLikeReflect: the hand encoder writes the bytes
// encoding/json writes for the same message, every field set or not.
func FuzzAppendJSONLikeReflect(f *testing.F) {
	f.Add("start", "/bin/true", "PATH=/bin", "/tmp", "abc", int64(7), uint32(4242), true, uint8(0xff))
	f.Add("", "", "", "", "", int64(0), uint32(0), false, uint8(0))
	f.Add("x<y", "caf\xe9", "A=\xff", "\u2028", "\x00\"\\", int64(-1), uint32(1<<31), true, uint8(0x55))
	f.Fuzz(func(t *testing.T, op, path, env, dir, text string, n int64, id uint32, flag bool, set uint8) {
		m := Msg{Op: op, Path: path, Dir: dir, Uid: id, Gid: id + 1}
		if set&1 != 0 {
			m.Node, m.PingTimeout, m.Grace, m.Off, m.StdoutOff, m.StderrOff = int(n), n, n, n, n, n
			m.Stream, m.State, m.Command, m.Kind, m.Text = text, text, text, text, text
		}
		if set&2 != 0 {
			m.Pid, m.Inc, m.Size, m.Sig, m.Mig, m.OSPid, m.Errno, m.Flags = int(n), int(n), n, int(n), int(n), int(n), int(n), id
			m.Hash = text
		}
		if set&4 != 0 {
			m.Argv, m.Env, m.Groups, m.From = []string{path, text, ""}, []string{env}, []uint32{id, 0}, []string{text, env}
		}
		if set&8 != 0 {
			m.Libs = []Lib{{Path: path, Hash: text, Size: n, Public: flag, Interp: !flag}, {Path: env}}
		}
		if set&16 != 0 {
			m.Public, m.Null, m.Attached, m.Ghost = flag, !flag, flag, !flag
		}
		if set&32 != 0 {
			m.Argv, m.Env = []string{}, []string{}
		}
		want, err := m.marshalReflect()
		if err != nil {
			t.Fatal(err)
		}
		if got := m.AppendJSON(nil); string(got) != string(want) {
			t.Fatalf("AppendJSON:\n%s\nencoding/json:\n%s", got, want)
		}
		var back Msg
		if err := DecodeMsg(append(want, '\n'), &back); err != nil {
			t.Fatalf("DecodeMsg(%s): %v", want, err)
		}
		var ref Msg
		if err := json.Unmarshal(want, &ref); err != nil || !reflect.DeepEqual(back, ref) {
			t.Fatalf("DecodeMsg(%s) = %+v, json.Unmarshal %+v (%v)", want, back, ref, err)
		}
	})
}
