// Package slaveproto holds the slave protocol's messages, which bpmaster
// and bpslave (package job) both speak: the job messages a slave reads
// from slave/jobs (Msg, byte-exact), the report lines it writes to
// slave/report (ParseReport), the Adopt records of jobs kept across a lost
// master, and the constants both sides share.
package slaveproto

import (
	"encoding/json"
	"unicode/utf8"
)

// NodeStates are the node states, as BProc names them, in its order: the
// states a state message (Msg.State) names.
var NodeStates = []string{"down", "boot", "up", "error", "unavailable", "reboot", "halt", "pwroff"}

// The slave protocol is part of the tree: a bpslave (a 9P client whose
// handshake claimed the slave role) sees a `slave/` directory at the root:
//
//	slave/jobs            read: JSON messages, one per line, for this node (opening it registers the node)
//	slave/ping            write: anything; proves the slave is alive
//	slave/bin/HASH        read: the binary with that sha256, shipped from the master
//	slave/peer            write: "PORT", the port of this slave's peer listener, which serves its cached binaries to other slaves
//	slave/report          write: "PID started OSPID" | "PID failed ERRNO TEXT" | "PID exit N" | "PID signal N" | "PID eof stdout|stderr" (ended empty);
//	                      PID is "PID.INC" for a process's incarnation INC > 0 (report.go)
//	slave/proc/PID/stdout write: the process's output (closing = EOF)
//	slave/proc/PID/stderr write
//	slave/proc/PID/stdin  read: what users write to proc/PID/stdin, EOF when they close it
//	slave/proc/PID/direct write "stdout stderr", then read "NAME OFF" lines: the streams go direct from OFF (direct.go)
//	slave/direct          write: the slave's data port for direct streams ("0": none)
//	slave/adopt           write: one JSON Adopt record per write, jobs kept across a lost master (adopt.go; the master's side in fs/pspace)
//	slave/mig/MIG/ctl     write: the source's MigReport lines about migration MIG (migrate.go)
//	slave/mig/MIG/image   write (the source): the process's vmadump image; read (the destination): the same bytes
//	slave/ghost/PID/ctl   write: "signal N", a signal sent to the ghost of PID, for the process
//	slave/ghost/PID/stdout, stderr  read: the moved process's output, for its ghost's descriptors
//	slave/ghost/PID/stdin write: what the ghost's stdin gives, for the moved process
//
// The master runs node -1 with the same code over an in-process opener.

// Msg is one message from the master to a slave.
type Msg struct {
	Op string `json:"op"` // "hello", "start", "signal", "state", "ack", "forget", "seize", "migrated", "ghost"

	// hello
	Node        int   `json:"node,omitempty"`
	PingTimeout int64 `json:"ping_ms,omitempty"`
	Grace       int64 `json:"grace_ms,omitempty"` // how long jobs outlive a lost master (0: not at all)
	Now         int64 `json:"now_ns,omitempty"`   // the master's clock (Unix ns), which direct-stream tickets' expiries are in

	// ack: the master has taken Off bytes of the job's Stream (stdout,
	// stderr) off the slave's hands; forget: the job is gone from the
	// master's table, drop all that is kept for it
	Stream string `json:"stream,omitempty"`
	Off    int64  `json:"off,omitempty"`
	// start of a process that moved: the offsets its stdout and stderr
	// go on from (the bytes its earlier incarnations wrote), so that
	// acks and direct streams count in the stream's bytes, not the
	// incarnation's.
	StdoutOff int64 `json:"stdout_off,omitempty"`
	StderrOff int64 `json:"stderr_off,omitempty"`

	// start, signal
	Pid int `json:"pid,omitempty"`
	// start: the process's incarnation, which every report about it
	// names (FormatRef); 0 until it moves
	Inc    int      `json:"inc,omitempty"`
	Hash   string   `json:"hash,omitempty"`
	Size   int64    `json:"size,omitempty"`
	Path   string   `json:"path,omitempty"`   // the master's path: its name names the job's binary
	Public bool     `json:"public,omitempty"` // everyone may read the binary on the master
	Argv   []string `json:"argv,omitempty"`
	Env    []string `json:"env,omitempty"`
	Dir    string   `json:"dir,omitempty"`
	Uid    uint32   `json:"uid"`
	Gid    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`
	Null   bool     `json:"null_stdin,omitempty"`
	// Attached (-i) output goes only to proc/PID/stdout and stderr.
	Attached bool `json:"attached,omitempty"`
	Sig      int  `json:"sig,omitempty"`

	// start: what the binary needs to run (its interpreter and shared
	// libraries) as the master resolved them, for the slave to fetch
	// those the node lacks (job/libs.go); absent with libcache off
	Libs []Lib `json:"libs,omitempty"`
	// start: peers (host:port of other slaves' peer listeners) that have
	// or are fetching the binary, to fetch it from in this order before
	// the master (job/peer.go); absent: fetch from the master
	From []string `json:"from,omitempty"`

	// state: the node's new state and its command; ghost: what became
	// of the process a ghost stands for ("exit N", "signal N NAME",
	// "lost ...", "stopped N", "continued")
	State   string `json:"state,omitempty"`
	Command string `json:"command,omitempty"`

	// Migration (migrate.go). seize: stop process OSPid of the node for
	// migration Mig of Kind, its image to carry Flags; start: with Mig,
	// restore the process from slave/mig/MIG/image rather than run a
	// binary; migrated: the outcome, Errno 0 for success, and whether
	// the stopped process becomes the ghost of Pid.
	Mig   int    `json:"mig,omitempty"`
	OSPid int    `json:"ospid,omitempty"`
	Kind  string `json:"kind,omitempty"`
	Flags uint32 `json:"flags,omitempty"`
	Errno int    `json:"errno,omitempty"`
	Text  string `json:"text,omitempty"`
	Ghost bool   `json:"ghost,omitempty"`
}

// LocalAddr is the Caller.Addr of the master's own in-process slave (node -1).
const LocalAddr = "local"

// DefaultPort is bpmaster's 9P port, which slaves dial.
const DefaultPort = 2223

// MaxBinary bounds what a user can make the master read and ship (the
// whole binary is held in memory) and what a slave accepts.
const MaxBinary = 256 << 20

// The job message is JSON, but encoding/json rewrites invalid UTF-8 as
// U+FFFD, and argv, environment and paths are bytes (file names in Latin-1
// exist). So those fields travel as exact strings: a JSON string when they
// are valid UTF-8, {"b64": "..."} when not.

type exact string

func (s exact) MarshalJSON() ([]byte, error) {
	if plain(string(s)) {
		return appendPlain(make([]byte, 0, len(s)+2), string(s)), nil
	}
	if utf8.ValidString(string(s)) {
		return json.Marshal(string(s))
	}
	return json.Marshal(struct {
		B64 []byte `json:"b64"`
	}{[]byte(s)})
}

func (s *exact) UnmarshalJSON(b []byte) error {
	if v, ok := plainString(b); ok {
		*s = exact(v)
		return nil
	}
	if len(b) > 0 && b[0] == '{' {
		var v struct {
			B64 []byte `json:"b64"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = exact(v.B64)
		return nil
	}
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = exact(v)
	return nil
}

// The common case, ASCII that JSON writes as it is, skips encoding/json:
// argv and the environment are most of a start message, and a call of
// json.Marshal or Unmarshal for each of their strings was most of what
// encoding and decoding one cost.

// plain reports whether json.Marshal writes s as it is between quotes:
// printable ASCII but for the quote, the backslash and the HTML
// characters it escapes.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

func appendPlain(b []byte, s string) []byte {
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plainString is the value of the JSON string b when it holds no escape
// and only ASCII (what plain writes); ok false for anything else, which
// encoding/json then decodes.
func plainString(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", false
	}
	v := b[1 : len(b)-1]
	for _, c := range v {
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			return "", false
		}
	}
	return string(v), true
}

// exacts is a list of exact strings, encoded and decoded as a whole:
// one call for the list, not one per string.
type exacts []exact

func (l exacts) MarshalJSON() ([]byte, error) {
	if l == nil {
		return []byte("null"), nil
	}
	n := 2
	for _, s := range l {
		n += len(s) + 3
	}
	b := make([]byte, 1, n)
	b[0] = '['
	for i, s := range l {
		if i > 0 {
			b = append(b, ',')
		}
		if plain(string(s)) {
			b = appendPlain(b, string(s))
			continue
		}
		e, err := s.MarshalJSON()
		if err != nil {
			return nil, err
		}
		b = append(b, e...)
	}
	return append(b, ']'), nil
}

func (l *exacts) UnmarshalJSON(b []byte) error {
	if v, ok := plainList(b); ok {
		*l = v
		return nil
	}
	var v []exact
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*l = v
	return nil
}

// plainList decodes a JSON array of plain strings (plainString), with
// JSON's whitespace; ok false for anything else (null included), which
// encoding/json then decodes.
func plainList(b []byte) (exacts, bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, false
	}
	l := exacts{}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return l, skipSpace(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return nil, false
		}
		j := i + 1
		for j < len(b) && b[j] != '"' {
			if c := b[j]; c < 0x20 || c >= 0x80 || c == '\\' {
				return nil, false
			}
			j++
		}
		if j >= len(b) {
			return nil, false
		}
		l = append(l, exact(b[i+1:j]))
		i = skipSpace(b, j+1)
		if i >= len(b) {
			return nil, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return l, skipSpace(b, i+1) == len(b)
		default:
			return nil, false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// convert turns []string into []exact or back, nil staying nil.
func convert[To, From ~string](in []From) []To {
	if in == nil {
		return nil
	}
	out := make([]To, len(in))
	for i, s := range in {
		out[i] = To(s)
	}
	return out
}

// msgFields is Msg without its methods; wireMsg's fields shadow its
// byte-carrying ones (a shallower field wins in encoding/json).
type msgFields Msg

type wireMsg struct {
	*msgFields
	Path exact  `json:"path,omitempty"`
	Argv exacts `json:"argv,omitempty"`
	Env  exacts `json:"env,omitempty"`
	Dir  exact  `json:"dir,omitempty"`
}

// MarshalJSON encodes m with its argv, environment and paths byte-exact.
func (m Msg) MarshalJSON() ([]byte, error) {
	return m.AppendJSON(nil), nil
}

// marshalReflect is what MarshalJSON wrote through encoding/json, the
// reference AppendJSON is held to (tests).
func (m Msg) marshalReflect() ([]byte, error) {
	return json.Marshal(wireMsg{msgFields: (*msgFields)(&m),
		Path: exact(m.Path), Argv: exacts(convert[exact](m.Argv)), Env: exacts(convert[exact](m.Env)), Dir: exact(m.Dir)})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (m *Msg) UnmarshalJSON(b []byte) error {
	var f msgFields
	w := wireMsg{msgFields: &f}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*m = Msg(f)
	m.Path, m.Argv, m.Env, m.Dir = string(w.Path), convert[string]([]exact(w.Argv)), convert[string]([]exact(w.Env)), string(w.Dir)
	return nil
}
