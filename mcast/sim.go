package mcast

import (
	"context"
	"fmt"
	"time"
)

// Simulate sends real, signed stats packets for count nodes numbered from
// cfg.Node, each at cfg.Interval, spread evenly over the interval: the load
// generator of the benchmarks (sendstats --simulate). Every node's counters
// advance between its packets, so the receiver does all its usual work.
// It reads cfg.Procfs once for the base sample. Static facts travel with
// every 10th packet of a node, as with a real sender.
func Simulate(ctx context.Context, cfg SenderConfig, count int) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	if count <= 0 || cfg.Node+count > ShmMaxNodes {
		return fmt.Errorf("simulate: %d nodes from %d: out of range", count, cfg.Node)
	}
	base, err := ReadSample(cfg.Procfs)
	if err != nil {
		return err
	}
	out, dst, err := sendSocket(cfg.Iface, cfg.StatsAddr)
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	defer out.Close()
	codec := NewCodec(cfg.Key)
	start := time.Now().UnixNano()
	s := *base
	s.Stat.PerCPU = append([]CPUTimes(nil), base.Stat.PerCPU...)
	s.Net = append([]Iface(nil), base.Net...)
	seq := make([]uint64, count)
	// Send in small batches every 5 ms: a 1 ms ticker costs the
	// generator more than the receiver it measures.
	const step = 5 * time.Millisecond
	batches := max(1, int(cfg.Interval/step))
	tick := time.NewTicker(cfg.Interval / time.Duration(batches))
	defer tick.Stop()
	var sent, errs uint64
	for b := 0; ; b = (b + 1) % batches {
		select {
		case <-ctx.Done():
			if errs > 0 {
				cfg.Log.Printf("simulate: %d of %d sends failed", errs, sent)
			}
			return nil
		case <-tick.C:
		}
		for i := b * count / batches; i < (b+1)*count/batches; i++ {
			seq[i]++
			k := seq[i]
			// Node i is i% busy: user and idle advance by one interval's
			// worth of ticks per cpu, split accordingly.
			ticks := uint64(cfg.Interval / (10 * time.Millisecond))
			busy := ticks * uint64(i%100) / 100
			for c := range s.Stat.PerCPU {
				s.Stat.PerCPU[c][CPUUser] = base.Stat.PerCPU[c][CPUUser] + k*busy
				s.Stat.PerCPU[c][CPUIdle] = base.Stat.PerCPU[c][CPUIdle] + k*(ticks-busy)
			}
			n := uint64(len(s.Stat.PerCPU))
			s.Stat.CPU[CPUUser] = base.Stat.CPU[CPUUser] + k*busy*n
			s.Stat.CPU[CPUIdle] = base.Stat.CPU[CPUIdle] + k*(ticks-busy)*n
			for j := range s.Net {
				s.Net[j].C[NetRxBytes] = base.Net[j].C[NetRxBytes] + k*uint64(1000*i)
				s.Net[j].C[NetTxBytes] = base.Net[j].C[NetTxBytes] + k*uint64(500*i)
			}
			s.Load.Load1 = float64(i%100) / 10
			h := Header{Node: int32(cfg.Node + i), Start: start, Seq: k, Time: time.Now().UnixNano(),
				Interval: uint32(cfg.Interval / time.Millisecond)}
			if k%10 == 1 {
				h.Flags = FlagStatic
			}
			p, err := codec.EncodeStats(h, &s)
			if err == nil {
				_, err = out.WriteToUDP(p, dst)
			}
			sent++
			if err != nil {
				errs++
			}
		}
	}
}
