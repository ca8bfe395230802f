package mcast

import (
	"bytes"
	"fmt"
	"strconv"
)

// The Render functions write a Sample back in the text format of the
// kernel's own /proc files (same field order, widths and headers), so tools
// that parse /proc/<file> can parse the per-node copies unchanged.

// RenderCPUInfo writes one block per cpu with the fields bproc carries.
func RenderCPUInfo(ci *CPUInfo) []byte {
	var b bytes.Buffer
	for i := 0; i < ci.Count; i++ {
		fmt.Fprintf(&b, "processor\t: %d\n", i)
		if ci.Vendor != "" {
			fmt.Fprintf(&b, "vendor_id\t: %s\n", ci.Vendor)
		}
		if ci.Model != "" {
			fmt.Fprintf(&b, "model name\t: %s\n", ci.Model)
		}
		if ci.MHz > 0 {
			fmt.Fprintf(&b, "cpu MHz\t\t: %.3f\n", ci.MHz)
		}
		if ci.Cache != "" {
			fmt.Fprintf(&b, "cache size\t: %s\n", ci.Cache)
		}
		if ci.BogoMIPS > 0 {
			fmt.Fprintf(&b, "bogomips\t: %.2f\n", ci.BogoMIPS)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// RenderMemInfo writes the present fields in MemFields order, padded as
// the kernel pads them ("MemTotal:       24684096 kB").
func RenderMemInfo(m *MemInfo) []byte { return AppendMemInfo(nil, m) }

// AppendMemInfo appends RenderMemInfo's text to b.
func AppendMemInfo(b []byte, m *MemInfo) []byte {
	for i, f := range MemFields {
		v, ok := m.Get(i)
		if !ok {
			continue
		}
		b = append(b, f.Name...)
		b = append(b, ':')
		b = pad(b, 15-len(f.Name))
		b = appendWidth(b, v, 8)
		if f.KB {
			b = append(b, " kB"...)
		}
		b = append(b, '\n')
	}
	return b
}

// RenderLoadAvg writes "0.19 0.07 0.02 1/89 5179".
func RenderLoadAvg(l *LoadAvg) []byte { return AppendLoadAvg(nil, l) }

// AppendLoadAvg appends RenderLoadAvg's text to b.
func AppendLoadAvg(b []byte, l *LoadAvg) []byte {
	for _, v := range []float64{l.Load1, l.Load5, l.Load15} {
		b = strconv.AppendFloat(b, v, 'f', 2, 64)
		b = append(b, ' ')
	}
	b = strconv.AppendUint(b, uint64(l.Running), 10)
	b = append(b, '/')
	b = strconv.AppendUint(b, uint64(l.Total), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(l.LastPID), 10)
	return append(b, '\n')
}

const netDevHeader = "Inter-|   Receive                                                |  Transmit\n" +
	" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"

// netWidths are the kernel's column widths after "%6s: ".
var netWidths = [NetFields]int{7, 7, 4, 4, 4, 5, 10, 9, 8, 7, 4, 4, 4, 5, 7, 10}

// RenderNetDev writes /proc/net/dev with its two header lines.
func RenderNetDev(ifs []Iface) []byte { return AppendNetDev(nil, ifs) }

// AppendNetDev appends RenderNetDev's text to b.
func AppendNetDev(b []byte, ifs []Iface) []byte {
	b = append(b, netDevHeader...)
	for i := range ifs {
		b = pad(b, 6-len(ifs[i].Name))
		b = append(b, ifs[i].Name...)
		b = append(b, ':')
		for j, v := range ifs[i].C {
			b = append(b, ' ')
			b = appendWidth(b, v, netWidths[j])
		}
		b = append(b, '\n')
	}
	return b
}

// RenderStat writes the cpu lines and the single-number lines of /proc/stat.
func RenderStat(st *Stat) []byte { return AppendStat(nil, st) }

// AppendStat appends RenderStat's text to b.
func AppendStat(b []byte, st *Stat) []byte {
	n := st.Fields
	if n < 4 || n > StatFields {
		n = StatFields
	}
	line := func(t *CPUTimes) {
		for i := 0; i < n; i++ {
			b = append(b, ' ')
			b = strconv.AppendUint(b, t[i], 10)
		}
		b = append(b, '\n')
	}
	b = append(b, "cpu "...)
	line(&st.CPU)
	for i := range st.PerCPU {
		b = append(b, "cpu"...)
		b = strconv.AppendInt(b, int64(i), 10)
		line(&st.PerCPU[i])
	}
	for _, f := range []struct {
		name string
		v    uint64
	}{{"intr ", st.Intr}, {"ctxt ", st.Ctxt}, {"btime ", st.BootTime}, {"processes ", st.Procs},
		{"procs_running ", st.Running}, {"procs_blocked ", st.Blocked}} {
		b = append(b, f.name...)
		b = strconv.AppendUint(b, f.v, 10)
		b = append(b, '\n')
	}
	return b
}

// pad appends n spaces (none when n <= 0).
func pad(b []byte, n int) []byte {
	for ; n > 0; n-- {
		b = append(b, ' ')
	}
	return b
}

// appendWidth appends v right-aligned in width columns, as printf's %*d.
func appendWidth(b []byte, v uint64, width int) []byte {
	var tmp [20]byte
	d := strconv.AppendUint(tmp[:0], v, 10)
	return append(pad(b, width-len(d)), d...)
}
