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
func RenderMemInfo(m *MemInfo) []byte {
	var b bytes.Buffer
	for i, f := range MemFields {
		v, ok := m.Get(i)
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "%-16s%8d", f.Name+":", v)
		if f.KB {
			b.WriteString(" kB")
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// RenderLoadAvg writes "0.19 0.07 0.02 1/89 5179".
func RenderLoadAvg(l *LoadAvg) []byte {
	return fmt.Appendf(nil, "%.2f %.2f %.2f %d/%d %d\n", l.Load1, l.Load5, l.Load15, l.Running, l.Total, l.LastPID)
}

// RenderNetDev writes /proc/net/dev with its two header lines.
func RenderNetDev(ifs []Iface) []byte {
	var b bytes.Buffer
	b.WriteString("Inter-|   Receive                                                |  Transmit\n")
	b.WriteString(" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n")
	for i := range ifs {
		c := &ifs[i].C
		fmt.Fprintf(&b, "%6s: %7d %7d %4d %4d %4d %5d %10d %9d %8d %7d %4d %4d %4d %5d %7d %10d\n",
			ifs[i].Name, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12], c[13], c[14], c[15])
	}
	return b.Bytes()
}

// RenderStat writes the cpu lines and the single-number lines of /proc/stat.
func RenderStat(st *Stat) []byte {
	n := st.Fields
	if n < 4 || n > StatFields {
		n = StatFields
	}
	var b bytes.Buffer
	line := func(name string, t *CPUTimes) {
		b.WriteString(name)
		for i := 0; i < n; i++ {
			b.WriteByte(' ')
			b.WriteString(strconv.FormatUint(t[i], 10))
		}
		b.WriteByte('\n')
	}
	line("cpu ", &st.CPU)
	for i := range st.PerCPU {
		line("cpu"+strconv.Itoa(i), &st.PerCPU[i])
	}
	fmt.Fprintf(&b, "intr %d\nctxt %d\nbtime %d\nprocesses %d\nprocs_running %d\nprocs_blocked %d\n",
		st.Intr, st.Ctxt, st.BootTime, st.Procs, st.Running, st.Blocked)
	return b.Bytes()
}
