package pspace

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"bproc/fs/slaveproto"
)

// Config is bpmaster's configuration file, BProc style: one keyword per
// line, '#' starts a comment.
//
//	bprocport 2223
//	iprange 0 10.77.0.10 10.77.0.13   # nodes 0..3 get these addresses
//	node 7 10.77.0.99
//	pingtimeout 5
//	keyfile /etc/bproc/cluster.key
//	mount /bproc
//	reboot /sbin/reboot               # what a slave runs for `state reboot`
//	halt /sbin/halt
//	pwroff /sbin/poweroff
//	statsfile /var/shm/beostat        # recvstats's shm file, shown as node/N/stats/
//	seal no                           # 9P in the clear after the handshake (trusted network)
//	maxprocs 1024                     # live processes per user (0: no limit; root has none)
//	grace 300                         # jobs of a -r slave outlive a lost master this long (seconds)
//	statedir /var/lib/bproc           # what survives a restart (the pid high-water mark); binspool/ in it
//	bincache 512M                     # bytes on disk of shipped binaries the master spools (K, M, G: KiB...)
//	libcache yes                      # ship a dynamic binary's shared libraries the node lacks
//	http 127.0.0.1:2224               # /metrics and the web view (off when absent)
//	httptoken /etc/bproc/http.token   # required off localhost: the token, or a file holding it
type Config struct {
	Port        int
	PingTimeout time.Duration
	KeyFile     string
	Mount       string
	StatsFile   string
	Plain       bool              // "seal no": no sealing after the handshake
	MaxProcs    int               // live processes a non-root uid may have; 0: no limit
	Grace       time.Duration     // how long a -r slave keeps its jobs without a master
	StateDir    string            // what survives a restart
	BinCache    int64             // bytes on disk the spool of shipped binaries may take
	NoLibCache  bool              // "libcache no": ship the binary alone, not the libraries it needs
	HTTP        string            // host:port of /metrics and the web view; "": off
	HTTPToken   string            // the token the web side requires, or an absolute path to a file holding it
	Nodes       map[int]string    // node number -> address
	Commands    map[string]string // reboot/halt/pwroff -> shell command
}

// DefaultMaxProcs is the default per-user limit on live processes: with
// 1 MiB per unread output stream, what one user may make the master hold.
const DefaultMaxProcs = 1024

// DefaultConfig is what bpmaster serves with no config file.
func DefaultConfig() *Config {
	return &Config{
		Port:        slaveproto.DefaultPort,
		PingTimeout: 5 * time.Second,
		KeyFile:     "/etc/bproc/cluster.key",
		Mount:       "/bproc",
		StatsFile:   "/var/shm/beostat",
		MaxProcs:    DefaultMaxProcs,
		Grace:       5 * time.Minute,
		StateDir:    "/var/lib/bproc",
		BinCache:    DefaultBinCache,
		Nodes:       map[int]string{},
		Commands:    map[string]string{},
	}
}

type configKeyword struct {
	name    string
	minArgs int
	maxArgs int // -1: any
	apply   func(c *Config, args []string) error
}

var configKeywords = []configKeyword{
	{"bprocport", 1, 1, func(c *Config, a []string) error {
		p, err := strconv.Atoi(a[0])
		if err != nil || p <= 0 || p > 65535 {
			return fmt.Errorf("bad port %q", a[0])
		}
		c.Port = p
		return nil
	}},
	{"pingtimeout", 1, 1, func(c *Config, a []string) error {
		s, err := strconv.ParseFloat(a[0], 64)
		// Written so NaN fails too; a day at most, so the Duration cannot
		// overflow into a negative one.
		if err != nil || !(s > 0 && s <= 86400) {
			return fmt.Errorf("bad timeout %q (seconds, more than 0, at most 86400)", a[0])
		}
		c.PingTimeout = time.Duration(s * float64(time.Second))
		return nil
	}},
	{"grace", 1, 1, func(c *Config, a []string) error {
		s, err := strconv.ParseFloat(a[0], 64)
		if err != nil || s < 0 || s > 1e6 {
			return fmt.Errorf("bad grace %q (seconds)", a[0])
		}
		c.Grace = time.Duration(s * float64(time.Second))
		return nil
	}},
	{"statedir", 1, 1, func(c *Config, a []string) error { c.StateDir = a[0]; return nil }},
	{"bincache", 1, 1, func(c *Config, a []string) (err error) { c.BinCache, err = parseBytes(a[0]); return err }},
	{"libcache", 1, 1, func(c *Config, a []string) error { return setNo(&c.NoLibCache, a[0]) }},
	{"keyfile", 1, 1, func(c *Config, a []string) error { c.KeyFile = a[0]; return nil }},
	{"mount", 1, 1, func(c *Config, a []string) error { c.Mount = a[0]; return nil }},
	{"statsfile", 1, 1, func(c *Config, a []string) error { c.StatsFile = a[0]; return nil }},
	{"seal", 1, 1, func(c *Config, a []string) error { return setNo(&c.Plain, a[0]) }},
	{"maxprocs", 1, 1, func(c *Config, a []string) error {
		n, err := strconv.Atoi(a[0])
		if err != nil || n < 0 {
			return fmt.Errorf("bad process count %q", a[0])
		}
		c.MaxProcs = n
		return nil
	}},
	{"http", 1, 1, func(c *Config, a []string) error {
		if _, _, err := net.SplitHostPort(a[0]); err != nil {
			return fmt.Errorf("bad address %q (want host:port): %w", a[0], err)
		}
		c.HTTP = a[0]
		return nil
	}},
	{"httptoken", 1, 1, func(c *Config, a []string) error { c.HTTPToken = a[0]; return nil }},
	{"node", 2, 2, func(c *Config, a []string) error {
		n, err := strconv.Atoi(a[0])
		if err != nil || n < 0 {
			return fmt.Errorf("bad node number %q", a[0])
		}
		ip, err := netip.ParseAddr(a[1])
		if err != nil {
			return fmt.Errorf("bad address %q: %w", a[1], err)
		}
		c.Nodes[n] = ip.String()
		return nil
	}},
	{"iprange", 3, 3, func(c *Config, a []string) error {
		first, err := strconv.Atoi(a[0])
		if err != nil || first < 0 {
			return fmt.Errorf("bad first node %q", a[0])
		}
		lo, err1 := netip.ParseAddr(a[1])
		hi, err2 := netip.ParseAddr(a[2])
		if err1 != nil || err2 != nil || !lo.Is4() || !hi.Is4() || hi.Less(lo) {
			return fmt.Errorf("bad address range %s %s", a[1], a[2])
		}
		for ip, n := lo, first; ; ip, n = ip.Next(), n+1 {
			if n-first >= 65536 {
				return fmt.Errorf("address range %s %s too large", a[1], a[2])
			}
			c.Nodes[n] = ip.String()
			if ip == hi {
				break
			}
		}
		return nil
	}},
	{"reboot", 1, -1, func(c *Config, a []string) error { c.Commands["reboot"] = strings.Join(a, " "); return nil }},
	{"halt", 1, -1, func(c *Config, a []string) error { c.Commands["halt"] = strings.Join(a, " "); return nil }},
	{"pwroff", 1, -1, func(c *Config, a []string) error { c.Commands["pwroff"] = strings.Join(a, " "); return nil }},
}

// ParseConfig reads a config file; errors name the line.
func ParseConfig(r io.Reader) (*Config, error) {
	c := DefaultConfig()
	sc := bufio.NewScanner(r)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		var kw *configKeyword
		for i := range configKeywords {
			if configKeywords[i].name == f[0] {
				kw = &configKeywords[i]
			}
		}
		if kw == nil {
			return nil, fmt.Errorf("line %d: unknown keyword %q", lineNo, f[0])
		}
		args := f[1:]
		if len(args) < kw.minArgs || (kw.maxArgs >= 0 && len(args) > kw.maxArgs) {
			return nil, fmt.Errorf("line %d: %s: wrong number of arguments", lineNo, f[0])
		}
		if err := kw.apply(c, args); err != nil {
			return nil, fmt.Errorf("line %d: %s: %w", lineNo, f[0], err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return c, nil
}

// setNo sets *off from a yes/no directive whose field is the negation
// (libcache no sets NoLibCache); anything else is an error and leaves it.
func setNo(off *bool, v string) error {
	switch v {
	case "yes":
		*off = false
	case "no":
		*off = true
	default:
		return fmt.Errorf("want yes or no, not %q", v)
	}
	return nil
}
