package slaveproto

import (
	"encoding/json"
	"strconv"
)

// AppendJSON appends m's JSON encoding to b: the bytes json.Marshal(m)
// writes (MarshalJSON), without encoding/json's reflection and its
// compaction of every Marshaler's output, which were most of what
// sending a start message cost the master. Fields come in the order
// encoding/json gives wireMsg's: Msg's, then the byte-exact ones.
func (m *Msg) AppendJSON(b []byte) []byte {
	b = append(b, `{"op":`...)
	b = appendString(b, m.Op)
	b = appendInt(b, `,"node":`, int64(m.Node))
	b = appendInt(b, `,"ping_ms":`, m.PingTimeout)
	b = appendInt(b, `,"grace_ms":`, m.Grace)
	b = appendInt(b, `,"now_ns":`, m.Now)
	b = appendStr(b, `,"stream":`, m.Stream)
	b = appendInt(b, `,"off":`, m.Off)
	b = appendInt(b, `,"stdout_off":`, m.StdoutOff)
	b = appendInt(b, `,"stderr_off":`, m.StderrOff)
	b = appendInt(b, `,"pid":`, int64(m.Pid))
	b = appendInt(b, `,"inc":`, int64(m.Inc))
	b = appendStr(b, `,"hash":`, m.Hash)
	b = appendInt(b, `,"size":`, m.Size)
	b = appendBool(b, `,"public":`, m.Public)
	b = strconv.AppendUint(append(b, `,"uid":`...), uint64(m.Uid), 10)
	b = strconv.AppendUint(append(b, `,"gid":`...), uint64(m.Gid), 10)
	if len(m.Groups) > 0 {
		b = append(b, `,"groups":[`...)
		for i, g := range m.Groups {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, uint64(g), 10)
		}
		b = append(b, ']')
	}
	b = appendBool(b, `,"null_stdin":`, m.Null)
	b = appendBool(b, `,"attached":`, m.Attached)
	b = appendInt(b, `,"sig":`, int64(m.Sig))
	if len(m.Libs) > 0 {
		b = append(b, `,"libs":[`...)
		for i := range m.Libs {
			if i > 0 {
				b = append(b, ',')
			}
			b = m.Libs[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	if len(m.From) > 0 {
		b = append(b, `,"from":[`...)
		for i, s := range m.From {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, s)
		}
		b = append(b, ']')
	}
	b = appendStr(b, `,"state":`, m.State)
	b = appendStr(b, `,"command":`, m.Command)
	b = appendInt(b, `,"mig":`, int64(m.Mig))
	b = appendInt(b, `,"ospid":`, int64(m.OSPid))
	b = appendStr(b, `,"kind":`, m.Kind)
	b = appendInt(b, `,"flags":`, int64(m.Flags))
	b = appendInt(b, `,"errno":`, int64(m.Errno))
	b = appendStr(b, `,"text":`, m.Text)
	b = appendBool(b, `,"ghost":`, m.Ghost)
	if m.Path != "" {
		b = appendExact(append(b, `,"path":`...), m.Path)
	}
	b = appendExacts(b, `,"argv":`, m.Argv)
	b = appendExacts(b, `,"env":`, m.Env)
	if m.Dir != "" {
		b = appendExact(append(b, `,"dir":`...), m.Dir)
	}
	return append(b, '}')
}

// appendJSON is Lib.MarshalJSON's encoding.
func (l *Lib) appendJSON(b []byte) []byte {
	b = append(b, `{"hash":`...)
	b = appendString(b, l.Hash)
	b = strconv.AppendInt(append(b, `,"size":`...), l.Size, 10)
	b = appendBool(b, `,"public":`, l.Public)
	b = appendBool(b, `,"interp":`, l.Interp)
	b = appendExact(append(b, `,"path":`...), l.Path)
	return append(b, '}')
}

// appendInt appends name and n unless n is 0 (omitempty).
func appendInt(b []byte, name string, n int64) []byte {
	if n == 0 {
		return b
	}
	return strconv.AppendInt(append(b, name...), n, 10)
}

func appendBool(b []byte, name string, v bool) []byte {
	if !v {
		return b
	}
	return append(append(b, name...), "true"...)
}

func appendStr(b []byte, name, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, name...), s)
}

// appendString is a string as encoding/json writes it.
func appendString(b []byte, s string) []byte {
	if plain(s) {
		return appendPlain(b, s)
	}
	e, _ := json.Marshal(s) // a string always encodes
	return append(b, e...)
}

// appendExact is an exact string as exact.MarshalJSON writes it.
func appendExact(b []byte, s string) []byte {
	if plain(s) {
		return appendPlain(b, s)
	}
	e, _ := exact(s).MarshalJSON() // never fails
	return append(b, e...)
}

func appendExacts(b []byte, name string, l []string) []byte {
	if len(l) == 0 {
		return b
	}
	b = append(append(b, name...), '[')
	for i, s := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendExact(b, s)
	}
	return append(b, ']')
}

// DecodeMsg decodes one job message (a line; surrounding whitespace is
// fine): Msg.UnmarshalJSON without json.Unmarshal's scan of the whole
// line before it, which that method's own json.Unmarshal does again.
func DecodeMsg(b []byte, m *Msg) error {
	*m = Msg{}
	return m.UnmarshalJSON(b)
}
