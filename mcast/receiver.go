package mcast

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// ReceiverConfig configures RunReceiver (recvstats).
type ReceiverConfig struct {
	Iface        string        // interface to join the group on; "" = routing default
	Key          []byte        // cluster key (required)
	StatsAddr    string        // where samples arrive; default DefaultGroup:DefaultPort
	RequestAddr  string        // where requests go; default DefaultRequestGroup:DefaultPort
	ShmPath      string        // default DefaultShmPath
	FilesDir     string        // per-node text files; default DefaultFilesDir; "-" = none
	FilesCPU     float64       // share of a core for the files; 0: DefaultFilesCPU; < 0: unlimited
	RequestEvery time.Duration // periodic update requests; default 30 s
	ForgetAfter  time.Duration // silent nodes are cleared after this; default 1 h
	MaxNode      int           // highest node number accepted; default ShmMaxNodes-1
	Log          *log.Logger
	// Ready, when set, is called once the socket listens and the shm file
	// exists (tests, and recvstats' parent when it forks).
	Ready func()
}

func (c *ReceiverConfig) defaults() error {
	if len(c.Key) == 0 {
		return errors.New("recvstats: empty cluster key")
	}
	s, r := GroupAddrs(DefaultPort)
	if c.StatsAddr == "" {
		c.StatsAddr = s
	}
	if c.RequestAddr == "" {
		c.RequestAddr = r
	}
	if c.ShmPath == "" {
		c.ShmPath = DefaultShmPath
	}
	if c.FilesDir == "" {
		c.FilesDir = DefaultFilesDir
	}
	if c.RequestEvery <= 0 {
		c.RequestEvery = 30 * time.Second
	}
	if c.ForgetAfter <= 0 {
		c.ForgetAfter = time.Hour
	}
	if c.MaxNode <= 0 || c.MaxNode >= ShmMaxNodes {
		c.MaxNode = ShmMaxNodes - 1
	}
	if c.Log == nil {
		c.Log = log.Default()
	}
	return nil
}

// nodeState is what the receiver remembers about a node between packets.
type nodeState struct {
	start     int64 // sender session of the last accepted packet
	seq       uint64
	last      time.Time // receiver clock of the last accepted packet
	staleAt   time.Duration
	stale     bool
	static    bool
	prevTime  int64 // sender clock of the previous sample, for rates
	prevCPU   CPUTimes
	prevPer   []CPUTimes
	prevNet   []Iface
	haveRates bool
}

type receiver struct {
	cfg      ReceiverConfig
	shm      *ShmWriter
	files    *filesWriter
	out      *net.UDPConn
	reqDst   *net.UDPAddr
	codec    *Codec
	reqCodec *Codec
	nodes    []*nodeState
	scratch  Sample
	start    int64
	reqSeq   uint64
	lastReq  time.Time
}

// RunReceiver listens for stats packets and keeps the shm file (and the
// per-node files) current until ctx is done. Bad packets are counted in
// the shm header and otherwise ignored.
func RunReceiver(ctx context.Context, cfg ReceiverConfig) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	in, err := listenFD(cfg.Iface, cfg.StatsAddr, scanEvery)
	if err != nil {
		return fmt.Errorf("recvstats: %w", err)
	}
	defer unix.Close(in)
	out, reqDst, err := sendSocket(cfg.Iface, cfg.RequestAddr)
	if err != nil {
		return fmt.Errorf("recvstats: %w", err)
	}
	defer out.Close()
	shm, err := CreateShm(cfg.ShmPath)
	if err != nil {
		return fmt.Errorf("recvstats: %w", err)
	}
	defer shm.Close()
	r := &receiver{cfg: cfg, shm: shm, out: out, reqDst: reqDst, codec: NewCodec(cfg.Key),
		reqCodec: NewCodec(cfg.Key), start: time.Now().UnixNano()}
	r.adoptRecords()
	if cfg.FilesDir != "-" {
		fw, err := newFilesWriter(cfg.FilesDir, cfg.ShmPath, cfg.FilesCPU, cfg.Log)
		if err != nil {
			return fmt.Errorf("recvstats: %w", err)
		}
		stop := make(chan struct{})
		go fw.run(stop)
		defer func() { close(stop); <-fw.done }()
		r.files = fw
		for n := range r.nodes {
			if r.nodes[n] != nil {
				fw.mark(n, true, false)
			}
		}
	}
	if cfg.Ready != nil {
		cfg.Ready()
	}
	return r.loop(ctx, in)
}

// adoptRecords takes over the nodes an earlier recvstats left in a reused
// file: they show as stale until they speak again.
func (r *receiver) adoptRecords() {
	var rec Record
	for n := 0; n < r.shm.Nodes(); n++ {
		if r.shm.Read(n, &rec) && rec.Flags&RecPresent != 0 {
			st := r.state(n)
			st.start, st.seq = rec.Start, rec.SenderSeq // no replays across a restart
			st.last = time.Unix(0, rec.Updated)
			st.staleAt = time.Duration(rec.StaleAfter())
			st.static = rec.Flags&RecStatic != 0
			st.stale = true
			r.shm.Update(n, func(rec *Record) { rec.Flags |= RecStale })
		}
	}
}

func (r *receiver) state(node int) *nodeState {
	if node >= len(r.nodes) {
		r.nodes = append(r.nodes, make([]*nodeState, node+1-len(r.nodes))...)
	}
	if r.nodes[node] == nil {
		r.nodes[node] = &nodeState{}
	}
	return r.nodes[node]
}

// coalesce is how long the receiver lets packets gather in the socket
// after draining it: on a big cluster one wake-up then handles dozens of
// packets instead of one, for a delay far below an interval.
const coalesce = 50 * time.Millisecond

// scanEvery is how often stale nodes are looked for (and the longest a
// blocking read waits).
const scanEvery = 100 * time.Millisecond

func (r *receiver) loop(ctx context.Context, fd int) error {
	var stopping atomic.Bool
	go func() { <-ctx.Done(); stopping.Store(true); unix.Shutdown(fd, unix.SHUT_RD) }()
	br := newBatchReader(32, MaxPacket+1)
	// A new recvstats asks at once (and twice more, against loss) so it
	// has the whole cluster within a fraction of a second.
	startup := []time.Duration{0, 150 * time.Millisecond, 400 * time.Millisecond}
	began := time.Now()
	nextReq := began
	nextScan := began
	flags := 0 // first read of a round blocks, the rest only drain
	for !stopping.Load() {
		now := time.Now()
		if !now.Before(nextReq) {
			r.request(now)
			if len(startup) > 1 {
				startup = startup[1:]
				nextReq = began.Add(startup[0])
			} else {
				nextReq = now.Add(r.cfg.RequestEvery)
			}
		}
		if !now.Before(nextScan) {
			r.scan(now)
			nextScan = now.Add(scanEvery)
		}
		n, err := br.read(fd, flags)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			if flags != 0 { // drained: let the next packets gather
				flags = 0
				time.Sleep(coalesce)
			}
			continue
		case err != nil:
			if stopping.Load() {
				return nil
			}
			r.cfg.Log.Printf("recvstats: reading: %v", err)
			time.Sleep(10 * time.Millisecond) // transient; do not spin
			continue
		case n == 0: // shut down
			continue
		}
		for i := 0; i < n; i++ {
			p, size, addr := br.packet(i)
			if size > len(p) {
				r.shm.Count(CtrReceived, 1)
				r.shm.Count(CtrOversized, 1)
				continue
			}
			r.handle(p, addr, time.Now())
		}
		flags = unix.MSG_DONTWAIT
	}
	return nil
}

// handle takes one datagram.
func (r *receiver) handle(p []byte, from netip.Addr, now time.Time) {
	r.shm.Count(CtrReceived, 1)
	h, secs, err := r.codec.Decode(p, &r.scratch)
	if err != nil {
		r.shm.Count(dropCounter(err), 1)
		return
	}
	if h.Type != TypeStats || h.Node < 0 || int(h.Node) > r.cfg.MaxNode {
		r.shm.Count(CtrBadNode, 1)
		return
	}
	node := int(h.Node)
	isNew := node >= len(r.nodes) || r.nodes[node] == nil || r.nodes[node].stale
	st := r.state(node)
	if !st.newer(h) {
		r.shm.Count(CtrReplayed, 1)
		return
	}
	if h.Start != st.start {
		st.haveRates = false // new sender session: counters restart
	}
	st.start, st.seq, st.last, st.stale = h.Start, h.Seq, now, false
	iv := time.Duration(h.Interval) * time.Millisecond
	if iv <= 0 {
		iv = time.Second
	}
	st.staleAt = StaleIntervals * iv
	s := &r.scratch
	static := secs&HaveStatic != 0
	err = r.shm.Update(node, func(rec *Record) {
		rec.Flags = RecPresent | rec.Flags&RecStatic
		rec.Updated = now.UnixNano()
		rec.SentTime, rec.Start, rec.SenderSeq, rec.Interval = h.Time, h.Start, h.Seq, int64(iv)
		rec.Addr = from.As16()
		if static {
			rec.Flags |= RecStatic
			rec.StaticTime = now.UnixNano()
			rec.MHz, rec.BogoMIPS = s.CPU.MHz, s.CPU.BogoMIPS
			setStr(rec.Vendor[:], s.CPU.Vendor)
			setStr(rec.Model[:], s.CPU.Model)
			setStr(rec.Cache[:], s.CPU.Cache)
		}
		if secs&HaveMem != 0 {
			rec.Mem, rec.MemHave = s.Mem.V, s.Mem.Have
		}
		if secs&HaveLoad != 0 {
			rec.Load = [3]float64{s.Load.Load1, s.Load.Load5, s.Load.Load15}
			rec.Running, rec.Total, rec.LastPID = s.Load.Running, s.Load.Total, s.Load.LastPID
		}
		if secs&HaveStat != 0 {
			r.storeStat(rec, st, h, s)
		}
		// The cpu count: /proc/stat's cpuN lines every packet (cpus
		// come and go with hotplug), cpuinfo's count when it travels.
		if secs&HaveStat != 0 {
			rec.NCPU = uint32(s.Stat.NCPU)
		}
		if static {
			rec.NCPU = max(rec.NCPU, uint32(s.CPU.Count))
		}
		if secs&HaveNet != 0 {
			r.storeNet(rec, st, h, s)
		}
		if secs&HaveStat != 0 {
			st.prevTime = h.Time
			st.haveRates = true
		}
	})
	if err != nil {
		r.shm.Count(CtrBadNode, 1)
		return
	}
	r.shm.Count(CtrAccepted, 1)
	st.static = st.static || static
	if !st.static && now.Sub(r.lastReq) > time.Second {
		r.request(now) // e.g. our requests were lost: ask for the static facts
	}
	if r.files != nil {
		r.files.mark(node, static, isNew)
	}
}

// newer is the replay check: a packet must come from a later sender
// session, or the same session with a higher sequence. A node silent for
// its stale time may come back with any other session (its clock may
// have stepped back across a reboot).
func (st *nodeState) newer(h Header) bool {
	if st.start == 0 {
		return true
	}
	if h.Start == st.start {
		return h.Seq > st.seq
	}
	return h.Start > st.start || st.stale
}

func (r *receiver) storeStat(rec *Record, st *nodeState, h Header, s *Sample) {
	rates := st.haveRates && h.Time > st.prevTime
	rec.CPU = s.Stat.CPU
	rec.StatFields = uint32(s.Stat.Fields)
	rec.Intr, rec.Ctxt, rec.BootTime, rec.Procs = s.Stat.Intr, s.Stat.Ctxt, s.Stat.BootTime, s.Stat.Procs
	rec.ProcsRun, rec.ProcsBlk = s.Stat.Running, s.Stat.Blocked
	if rates {
		rec.CPUPct = busyPct(&st.prevCPU, &s.Stat.CPU)
	} else {
		rec.CPUPct = 0
	}
	n := min(len(s.Stat.PerCPU), MaxCPUs)
	rec.NPerCPU = uint32(n)
	copy(rec.PerCPU[:n], s.Stat.PerCPU)
	for i := 0; i < n; i++ {
		if rates && i < len(st.prevPer) {
			rec.PerCPUPct[i] = busyPct(&st.prevPer[i], &s.Stat.PerCPU[i])
		} else {
			rec.PerCPUPct[i] = 0
		}
	}
	st.prevCPU = s.Stat.CPU
	st.prevPer = append(st.prevPer[:0], s.Stat.PerCPU...)
}

// busyPct is the percentage of time between two samples a cpu was not idle.
func busyPct(prev, cur *CPUTimes) float32 {
	total := float64(cur.Total()) - float64(prev.Total())
	idle := float64(cur.Idle()) - float64(prev.Idle())
	if total <= 0 {
		return 0
	}
	return float32(min(100, max(0, 100*(total-idle)/total)))
}

func (r *receiver) storeNet(rec *Record, st *nodeState, h Header, s *Sample) {
	dt := float64(h.Time-st.prevTime) / 1e9
	rates := st.haveRates && dt > 0
	n := min(len(s.Net), MaxIfaces)
	rec.NIf = uint32(n)
	rec.RxRate, rec.TxRate = 0, 0
	for i := 0; i < n; i++ {
		ifc := &s.Net[i]
		ri := &rec.Net[i]
		setStr(ri.Name[:], ifc.Name)
		ri.C = ifc.C
		ri.RxRate, ri.TxRate = 0, 0
		if !rates {
			continue
		}
		for j := range st.prevNet {
			if st.prevNet[j].Name == ifc.Name {
				ri.RxRate = float64(sub(ifc.C[NetRxBytes], st.prevNet[j].C[NetRxBytes])) / dt
				ri.TxRate = float64(sub(ifc.C[NetTxBytes], st.prevNet[j].C[NetTxBytes])) / dt
				break
			}
		}
		if ifc.Name != "lo" {
			rec.RxRate += ri.RxRate
			rec.TxRate += ri.TxRate
		}
	}
	st.prevNet = append(st.prevNet[:0], s.Net...)
}

func dropCounter(err error) int {
	switch {
	case errors.Is(err, ErrTooBig):
		return CtrOversized
	case errors.Is(err, ErrShort):
		return CtrShort
	case errors.Is(err, ErrMagic), errors.Is(err, ErrVersion):
		return CtrBadMagic
	case errors.Is(err, ErrMAC):
		return CtrBadMAC
	}
	return CtrMalformed
}

// request multicasts "send now" to every node.
func (r *receiver) request(now time.Time) {
	r.lastReq = now
	r.reqSeq++
	p, err := r.reqCodec.EncodeRequest(Header{Node: -1, Start: r.start, Seq: r.reqSeq, Time: now.UnixNano()})
	if err == nil {
		_, err = r.out.WriteToUDP(p, r.reqDst)
	}
	if err != nil {
		r.cfg.Log.Printf("recvstats: requesting updates: %v", err)
		return
	}
	r.shm.Count(CtrRequests, 1)
}

// scan marks nodes stale whose packets stopped, and forgets nodes silent
// for ForgetAfter (their slot reads as down, their files go away).
func (r *receiver) scan(now time.Time) {
	for n, st := range r.nodes {
		if st == nil {
			continue
		}
		quiet := now.Sub(st.last)
		switch {
		case quiet > r.cfg.ForgetAfter:
			r.shm.Update(n, func(rec *Record) { rec.Flags = 0 })
			r.nodes[n] = nil
		case !st.stale && quiet > st.staleAt:
			st.stale = true
			r.shm.Update(n, func(rec *Record) { rec.Flags |= RecStale })
		default:
			continue
		}
		if r.files != nil {
			r.files.mark(n, false, true)
		}
	}
}
