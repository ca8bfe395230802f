package fs

// The slave protocol is part of the tree: a bpslave (a 9P client whose
// handshake claimed the slave role) sees a `slave/` directory at the root:
//
//	slave/jobs            read: JSON messages, one per line, for this node (opening it registers the node)
//	slave/ping            write: anything; proves the slave is alive
//	slave/bin/HASH        read: the binary with that sha256, shipped from the master
//	slave/report          write: "PID started OSPID" | "PID failed ERRNO TEXT" | "PID exit N" | "PID signal N" | "PID eof stdout|stderr" (ended empty)
//	slave/proc/PID/stdout write: the process's output (closing = EOF)
//	slave/proc/PID/stderr write
//	slave/proc/PID/stdin  read: what users write to proc/PID/stdin, EOF when they close it
//	slave/adopt           write: one JSON Adopt record per write, jobs kept across a lost master (adopt.go)
//
// The master runs node -1 with the same code over an in-process opener.

// Msg is one message from the master to a slave.
type Msg struct {
	Op string `json:"op"` // "hello", "start", "signal", "state", "ack", "forget"

	// hello
	Node        int   `json:"node,omitempty"`
	PingTimeout int64 `json:"ping_ms,omitempty"`
	Grace       int64 `json:"grace_ms,omitempty"` // how long jobs outlive a lost master (0: not at all)

	// ack: the master has taken Off bytes of the job's Stream (stdout,
	// stderr) off the slave's hands; forget: the job is gone from the
	// master's table, drop all that is kept for it
	Stream string `json:"stream,omitempty"`
	Off    int64  `json:"off,omitempty"`

	// start, signal
	Pid    int      `json:"pid,omitempty"`
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

	// state
	State   string `json:"state,omitempty"`
	Command string `json:"command,omitempty"`
}

// LocalAddr is the Caller.Addr of the master's own in-process slave (node -1).
const LocalAddr = "local"
