package mcast

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"path/filepath"
	"sync"
	"time"
)

// SenderConfig configures RunSender (sendstats).
type SenderConfig struct {
	Node        int           // this node's number (required, >= 0)
	Iface       string        // interface multicast leaves by and requests arrive on; "" = routing default
	Interval    time.Duration // between samples; default 1 s
	Key         []byte        // cluster key (required)
	Procfs      string        // where /proc is; default "/proc"
	StatsAddr   string        // where samples go; default DefaultGroup:DefaultPort
	RequestAddr string        // where requests arrive; default DefaultRequestGroup:DefaultPort
	StaticEvery int           // send the static facts every this many packets; default 10
	Log         *log.Logger   // nil: standard logger
}

func (c *SenderConfig) defaults() error {
	if c.Node < 0 {
		return fmt.Errorf("sendstats: node number %d: must be >= 0", c.Node)
	}
	if len(c.Key) == 0 {
		return errors.New("sendstats: empty cluster key")
	}
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.Interval < 10*time.Millisecond {
		return fmt.Errorf("sendstats: interval %v: below 10ms", c.Interval)
	}
	if c.Procfs == "" {
		c.Procfs = "/proc"
	}
	s, r := GroupAddrs(DefaultPort)
	if c.StatsAddr == "" {
		c.StatsAddr = s
	}
	if c.RequestAddr == "" {
		c.RequestAddr = r
	}
	if c.StaticEvery <= 0 {
		c.StaticEvery = 10
	}
	if c.Log == nil {
		c.Log = log.Default()
	}
	return nil
}

// RunSender multicasts this node's /proc every interval, and at once (after
// a short random delay, so a thousand nodes do not answer in the same
// millisecond) when recvstats asks. It returns when ctx is done, or with
// an error when it cannot start. Errors reading /proc or sending are logged
// (once per kind until they clear) and retried on the next tick.
func RunSender(ctx context.Context, cfg SenderConfig) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	out, dst, err := sendSocket(cfg.Iface, cfg.StatsAddr)
	if err != nil {
		return fmt.Errorf("sendstats: %w", err)
	}
	defer out.Close()
	in, err := listen(cfg.Iface, cfg.RequestAddr)
	if err != nil {
		return fmt.Errorf("sendstats: %w", err)
	}
	defer in.Close()

	// A request triggers one immediate full packet; several requests
	// close together collapse into one.
	requests := make(chan struct{}, 1)
	go listenRequests(ctx, in, cfg.Key, requests)
	go func() { <-ctx.Done(); in.Close() }()

	s := &sender{cfg: cfg, out: out, dst: dst, codec: NewCodec(cfg.Key), start: time.Now().UnixNano()}
	s.send(true) // at start, everything
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	var jitter <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			s.send(s.seq%uint64(cfg.StaticEvery) == 0)
		case <-requests:
			if jitter == nil {
				d := min(cfg.Interval/2, 200*time.Millisecond)
				jitter = time.After(rand.N(d + 1))
			}
		case <-jitter:
			jitter = nil
			s.send(true)
		}
	}
}

type sender struct {
	cfg     SenderConfig
	out     *net.UDPConn
	dst     *net.UDPAddr
	codec   *Codec
	start   int64
	seq     uint64
	prev    *Sample
	lastErr string
}

func (s *sender) send(static bool) {
	// cpuinfo is only read when it travels: on many-cpu machines it is
	// the largest file and it does not change.
	cur := new(Sample)
	var err error
	if static || s.prev == nil {
		cur, err = ReadSample(s.cfg.Procfs)
	} else {
		cur.CPU = s.prev.CPU
		err = readDynamic(s.cfg.Procfs, cur)
		static = false
	}
	if err != nil {
		s.logOnce(fmt.Sprintf("reading %s: %v", s.cfg.Procfs, err))
		return
	}
	cur.Clamp(s.prev)
	s.prev = cur
	s.seq++
	h := Header{Node: int32(s.cfg.Node), Start: s.start, Seq: s.seq, Time: time.Now().UnixNano(),
		Interval: uint32(s.cfg.Interval / time.Millisecond)}
	if static {
		h.Flags |= FlagStatic
	}
	p, err := s.codec.EncodeStats(h, cur)
	for errors.Is(err, ErrTooBig) && len(cur.Stat.PerCPU) > 0 {
		// Huge machines: drop per-cpu detail until it fits.
		cur.Stat.PerCPU = cur.Stat.PerCPU[:len(cur.Stat.PerCPU)/2]
		p, err = s.codec.EncodeStats(h, cur)
	}
	if err != nil {
		s.logOnce(fmt.Sprintf("encoding: %v", err))
		return
	}
	if _, err := s.out.WriteToUDP(p, s.dst); err != nil {
		s.logOnce(fmt.Sprintf("sending to %v: %v", s.dst, err))
		return
	}
	if s.lastErr != "" {
		s.cfg.Log.Printf("sendstats: node %d: sending again", s.cfg.Node)
		s.lastErr = ""
	}
}

func (s *sender) logOnce(msg string) {
	if msg != s.lastErr {
		s.cfg.Log.Printf("sendstats: node %d: %s", s.cfg.Node, msg)
		s.lastErr = msg
	}
}

// procBufs holds readDynamic's file buffers between samples.
var procBufs = sync.Pool{New: func() any { return new([4][]byte) }}

// readDynamic reads everything but cpuinfo (which s may already hold).
func readDynamic(procfs string, s *Sample) error {
	bufs := procBufs.Get().(*[4][]byte)
	defer procBufs.Put(bufs)
	for i, f := range []struct {
		name  string
		parse func([]byte) error
	}{
		{"meminfo", func(b []byte) (err error) { s.Mem, err = ParseMemInfo(b); return }},
		{"loadavg", func(b []byte) (err error) { s.Load, err = ParseLoadAvg(b); return }},
		{"stat", func(b []byte) (err error) { s.Stat, err = ParseStat(b); return }},
		{"net/dev", func(b []byte) (err error) { s.Net, err = ParseNetDev(b); return }},
	} {
		p := filepath.Join(procfs, f.name)
		b, err := readProcInto(p, bufs[i])
		if err != nil {
			return err
		}
		bufs[i] = b
		if err := f.parse(b); err != nil {
			return fmt.Errorf("parsing %s: %w", p, err)
		}
	}
	// Some kernels (and containers) list fewer "processor" entries than
	// cpus in /proc/stat; trust the larger.
	s.CPU.Count = max(s.CPU.Count, s.Stat.NCPU)
	return nil
}

// listenRequests passes verified requests on; anything else is ignored.
func listenRequests(ctx context.Context, in *net.UDPConn, key []byte, out chan<- struct{}) {
	codec := NewCodec(key)
	buf := make([]byte, MaxPacket+1)
	var lastStart int64
	var lastSeq uint64
	for {
		n, _, err := in.ReadFromUDP(buf)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			time.Sleep(10 * time.Millisecond) // transient (e.g. ENOBUFS); do not spin
			continue
		}
		h, err := codec.Verify(buf[:n])
		if err != nil || h.Type != TypeRequest {
			continue
		}
		// Replayed requests would only cost a packet each; still, a
		// request must be newer than the last one from that recvstats.
		if h.Start == lastStart && h.Seq <= lastSeq {
			continue
		}
		lastStart, lastSeq = h.Start, h.Seq
		select {
		case out <- struct{}{}:
		default:
		}
	}
}
