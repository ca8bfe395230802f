package mcast

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Captures in testdata/: x86 is this project's build machine, arm64 an
// AWS Graviton-style node, armv7 a Raspberry Pi (machine-wide fields after
// the processor blocks).

func TestReadSampleCaptures(t *testing.T) {
	tests := []struct {
		dir      string
		count    int
		model    string
		vendor   string
		mhz      float64
		memTotal uint64
		load1    float64
		running  uint32
		ncpu     int
		ifaces   []string
	}{
		{"testdata/x86", 2, "Intel(R) Xeon(R) Processor @ 2.50GHz", "GenuineIntel", 2499.998, 24684096, 0.19, 1, 2, []string{"lo", "ifb0", "ifb1", "eth0"}},
		{"testdata/arm64", 4, "CPU part 0xd0c", "0x41", 0, 7998356, 1.52, 3, 4, []string{"lo", "ens5"}},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			s, err := ReadSample(tt.dir)
			if err != nil {
				t.Fatal(err)
			}
			if s.CPU.Count != tt.count || s.CPU.Model != tt.model || s.CPU.Vendor != tt.vendor || s.CPU.MHz != tt.mhz {
				t.Errorf("cpuinfo = %+v", s.CPU)
			}
			if v, ok := s.Mem.Get(MemTotal); !ok || v != tt.memTotal {
				t.Errorf("MemTotal = %d, %v; want %d", v, ok, tt.memTotal)
			}
			if s.Load.Load1 != tt.load1 || s.Load.Running != tt.running {
				t.Errorf("loadavg = %+v", s.Load)
			}
			if s.Stat.NCPU != tt.ncpu || len(s.Stat.PerCPU) != tt.ncpu || s.Stat.Fields != StatFields {
				t.Errorf("stat: ncpu %d percpu %d fields %d", s.Stat.NCPU, len(s.Stat.PerCPU), s.Stat.Fields)
			}
			// The cpu line is the sum of the cpuN lines, up to rounding
			// in the kernel; check the parse kept columns apart.
			var sum uint64
			for _, c := range s.Stat.PerCPU {
				sum += c[CPUIdle]
			}
			if d := int64(sum) - int64(s.Stat.CPU[CPUIdle]); d < -10 || d > 10 {
				t.Errorf("idle: per-cpu sum %d, total %d", sum, s.Stat.CPU[CPUIdle])
			}
			var names []string
			for _, ifc := range s.Net {
				names = append(names, ifc.Name)
			}
			if !reflect.DeepEqual(names, tt.ifaces) {
				t.Errorf("ifaces = %v, want %v", names, tt.ifaces)
			}
		})
	}
}

func TestCPUInfoLayouts(t *testing.T) {
	b, err := os.ReadFile("testdata/armv7/cpuinfo")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := ParseCPUInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	if ci.Count != 2 || ci.Model != "ARMv7 Processor rev 4 (v7l)" || ci.BogoMIPS != 38.40 {
		t.Errorf("armv7: %+v", ci)
	}
	// No model name in the blocks: the machine-wide Model line is used.
	ci, _ = ParseCPUInfo([]byte("processor\t: 0\nBogoMIPS\t: 1.0\n\nModel\t\t: Pi Zero\n"))
	if ci.Count != 1 || ci.Model != "Pi Zero" {
		t.Errorf("model fallback: %+v", ci)
	}
	// powerpc: "cpu" and "clock".
	ci, _ = ParseCPUInfo([]byte("processor\t: 0\ncpu\t\t: POWER9 (raw)\nclock\t\t: 3800.000000MHz\n\nprocessor\t: 1\ncpu\t\t: POWER9 (raw)\n"))
	if ci.Count != 2 || ci.Model != "POWER9 (raw)" || ci.MHz != 3800 {
		t.Errorf("powerpc: %+v", ci)
	}
	// Empty file: zero cpus here, ReadSample falls back to /proc/stat.
	ci, err = ParseCPUInfo(nil)
	if err != nil || ci.Count != 0 {
		t.Errorf("empty: %+v %v", ci, err)
	}
	// Facts of later processors do not override the first.
	ci, _ = ParseCPUInfo([]byte("processor : 0\ncpu MHz : 1000\n\nprocessor : 1\ncpu MHz : 3000\n"))
	if ci.MHz != 1000 {
		t.Errorf("MHz from second block: %v", ci.MHz)
	}
}

func TestManyCPUs(t *testing.T) {
	const n = 300
	var b strings.Builder
	fmt.Fprintf(&b, "cpu  %d 0 %d %d 0 0 0 0 0 0\n", n, n, n*10)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "cpu%d %d 0 1 10 0 0 0 0 0 0\n", i, i)
	}
	b.WriteString("ctxt 5\n")
	st, err := ParseStat([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if st.NCPU != n || len(st.PerCPU) != MaxCPUs {
		t.Fatalf("ncpu %d, kept %d; want %d, %d", st.NCPU, len(st.PerCPU), n, MaxCPUs)
	}
	if st.PerCPU[MaxCPUs-1][CPUUser] != MaxCPUs-1 || st.Ctxt != 5 {
		t.Errorf("last kept cpu %v, ctxt %d", st.PerCPU[MaxCPUs-1], st.Ctxt)
	}
}

func TestMissingFields(t *testing.T) {
	// 2.4-era /proc/stat: four fields per cpu line, no procs_* lines.
	st, err := ParseStat([]byte("cpu  1 2 3 4\ncpu0 1 2 3 4\npage 5 6\nbtime 77\n"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Fields != 4 || st.CPU[CPUIdle] != 4 || st.CPU[CPUIOWait] != 0 || st.BootTime != 77 {
		t.Errorf("old stat: %+v", st)
	}
	if got := string(RenderStat(&st)); !strings.HasPrefix(got, "cpu  1 2 3 4\ncpu0 1 2 3 4\n") {
		t.Errorf("old stat rendered with invented fields:\n%s", got)
	}
	// meminfo without MemAvailable (kernels before 3.14).
	m, err := ParseMemInfo([]byte("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\nNewField: 3 kB\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Get(MemAvailable); ok {
		t.Error("MemAvailable reported present")
	}
	if u := m.Used(); u != 600 {
		t.Errorf("Used = %d, want 600", u)
	}
	// loadavg with only the three loads.
	l, err := ParseLoadAvg([]byte("1.00 2.00 3.00\n"))
	if err != nil || l.Load15 != 3 || l.Total != 0 {
		t.Errorf("short loadavg: %+v %v", l, err)
	}
	// Old net/dev with the name touching the first number.
	ifs, err := ParseNetDev([]byte("h1\nh2\n  eth0:12345 10 0 0 0 0 0 0 678 9 0 0 0 0 0 0\n"))
	if err != nil || len(ifs) != 1 || ifs[0].C[NetRxBytes] != 12345 || ifs[0].C[NetTxBytes] != 678 {
		t.Errorf("old net/dev: %+v %v", ifs, err)
	}
}

func TestBadInput(t *testing.T) {
	bad := []struct {
		name  string
		parse func() error
	}{
		{"stat without cpu line", func() error { _, err := ParseStat([]byte("ctxt 1\n")); return err }},
		{"stat bad number", func() error { _, err := ParseStat([]byte("cpu  1 x 3 4\n")); return err }},
		{"meminfo bad number", func() error { _, err := ParseMemInfo([]byte("MemTotal: lots kB\n")); return err }},
		{"loadavg empty", func() error { _, err := ParseLoadAvg(nil); return err }},
		{"loadavg nan", func() error { _, err := ParseLoadAvg([]byte("NaN 1 1 1/1 1")); return err }},
		{"net/dev short line", func() error { _, err := ParseNetDev([]byte("eth0: 1 2 3\n")); return err }},
		{"missing dir", func() error { _, err := ReadSample("testdata/nonexistent"); return err }},
	}
	for _, tt := range bad {
		if err := tt.parse(); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
	// Binary junk parses to something or fails; it never panics.
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(i * 7)
	}
	ParseCPUInfo(junk)
	ParseMemInfo(junk)
	ParseLoadAvg(junk)
	ParseStat(junk)
	ParseNetDev(junk)
}

// Rendering then parsing gives back what was parsed: the per-node files
// are readable by the same parsers as /proc.
func TestRenderRoundTrip(t *testing.T) {
	for _, dir := range []string{"testdata/x86", "testdata/arm64"} {
		s, err := ReadSample(dir)
		if err != nil {
			t.Fatal(err)
		}
		ci, _ := ParseCPUInfo(RenderCPUInfo(&s.CPU))
		if ci.Vendor != s.CPU.Vendor || ci.Model != s.CPU.Model || ci.Count != s.CPU.Count || ci.MHz != s.CPU.MHz || ci.Cache != s.CPU.Cache {
			t.Errorf("%s cpuinfo: %+v != %+v", dir, ci, s.CPU)
		}
		m, _ := ParseMemInfo(RenderMemInfo(&s.Mem))
		if m != s.Mem {
			t.Errorf("%s meminfo differs", dir)
		}
		l, _ := ParseLoadAvg(RenderLoadAvg(&s.Load))
		if l != s.Load {
			t.Errorf("%s loadavg: %+v != %+v", dir, l, s.Load)
		}
		st, _ := ParseStat(RenderStat(&s.Stat))
		if !reflect.DeepEqual(st, s.Stat) {
			t.Errorf("%s stat: %+v != %+v", dir, st, s.Stat)
		}
		n, _ := ParseNetDev(RenderNetDev(s.Net))
		if !reflect.DeepEqual(n, s.Net) {
			t.Errorf("%s net: %+v != %+v", dir, n, s.Net)
		}
	}
	// The kernel's own layout, byte for byte, for the fixed-format files.
	for _, f := range []struct {
		file   string
		render func(*Sample) []byte
	}{
		{"loadavg", func(s *Sample) []byte { return RenderLoadAvg(&s.Load) }},
		{"net/dev", func(s *Sample) []byte { return RenderNetDev(s.Net) }},
	} {
		want, _ := os.ReadFile("testdata/x86/" + f.file)
		s, _ := ReadSample("testdata/x86")
		if got := f.render(s); string(got) != string(want) {
			t.Errorf("%s rendered:\n%s\nwant:\n%s", f.file, got, want)
		}
	}
}

// meminfo too, for the fields bproc carries.
func TestMemInfoKernelLayout(t *testing.T) {
	raw, _ := os.ReadFile("testdata/x86/meminfo")
	var want strings.Builder
	for _, l := range strings.SplitAfter(string(raw), "\n") {
		name, _, _ := strings.Cut(l, ":")
		if _, ok := memIndex[name]; ok {
			want.WriteString(l)
		}
	}
	m, _ := ParseMemInfo(raw)
	if got := string(RenderMemInfo(&m)); got != want.String() {
		t.Errorf("meminfo rendered:\n%s\nwant:\n%s", got, want.String())
	}
}

func TestClamp(t *testing.T) {
	prev, _ := ReadSample("testdata/x86")
	cur, _ := ReadSample("testdata/x86")
	cur.Stat.CPU[CPUUser] = prev.Stat.CPU[CPUUser] - 1 // went backwards
	cur.Stat.CPU[CPUIdle] = prev.Stat.CPU[CPUIdle] + 5
	cur.Stat.PerCPU[1][CPUSystem] = 0
	cur.Net[3].C[NetRxBytes] = 1 // eth0 counter reset
	cur.Net[0], cur.Net[3] = cur.Net[3], cur.Net[0]
	cur.Stat.Ctxt = 0
	cur.Clamp(prev)
	if cur.Stat.CPU[CPUUser] != prev.Stat.CPU[CPUUser] || cur.Stat.CPU[CPUIdle] != prev.Stat.CPU[CPUIdle]+5 {
		t.Errorf("cpu not clamped: %v vs %v", cur.Stat.CPU, prev.Stat.CPU)
	}
	if cur.Stat.PerCPU[1][CPUSystem] != prev.Stat.PerCPU[1][CPUSystem] || cur.Stat.Ctxt != prev.Stat.Ctxt {
		t.Error("per-cpu or ctxt not clamped")
	}
	if cur.Net[0].Name != "eth0" || cur.Net[0].C[NetRxBytes] != prev.Net[3].C[NetRxBytes] {
		t.Errorf("net not clamped by name: %+v", cur.Net[0])
	}
}

func TestRealProc(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Skip("no /proc on this machine:", err)
	}
	s, err := ReadSample("/proc")
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU.Count < 1 || s.Stat.CPU.Total() == 0 || len(s.Net) == 0 {
		t.Errorf("implausible sample from /proc: %+v", s)
	}
	if v, ok := s.Mem.Get(MemTotal); !ok || v == 0 {
		t.Error("no MemTotal in /proc/meminfo")
	}
}

func TestStatScalars(t *testing.T) {
	st, err := ParseStat([]byte("cpu  1 2 3 4\nintr 11 0 1\nctxt 12\nbtime 13\nprocesses 14\nprocs_running 15\nprocs_blocked 16\nsoftirq 99 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := []uint64{st.Intr, st.Ctxt, st.BootTime, st.Procs, st.Running, st.Blocked}
	if want := []uint64{11, 12, 13, 14, 15, 16}; !slices.Equal(got, want) {
		t.Errorf("intr ctxt btime processes procs_running procs_blocked: %v, want %v", got, want)
	}
}
