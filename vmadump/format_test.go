package vmadump

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// synthImage builds a small valid image without any process: two regions,
// pages in both, one file reference.
func synthImage(t testing.TB) []byte {
	m := &Meta{
		Arch: "x86_64", Kernel: "test", Comm: "synth", Exe: "/bin/synth", Cwd: "/",
		Auxv: make([]byte, 32), XState: make([]byte, 64),
		FDs: []FD{{FD: 0, Kind: FDStdio, Path: "pipe:[1]"}, {FD: 3, Kind: FDFile, Path: "/etc/hostname", Pos: 3},
			{FD: 10, Kind: FDRestorer, From: 1, Path: "/bproc/node/3/ctl"}, {FD: 11, Kind: FDMem, Path: "pipe:[2]", Data: []byte("0\n")}},
		Regions: []Region{
			{Start: 0x400000, End: 0x402000, Perms: "r-xp", Path: "/bin/synth", Kind: KindFile, Class: "exec", Travel: TravelFile, File: &FileID{Size: 8192}},
			{Start: 0x600000, End: 0x604000, Perms: "rw-p", Kind: KindAnon, Travel: TravelImage},
			{Start: 0x7ffff000, End: 0x80000000, Perms: "r-xp", Kind: KindVDSO, Travel: TravelKernel},
		},
	}
	var buf bytes.Buffer
	e := &encoder{w: &buf}
	page := func(b byte) []byte { return bytes.Repeat([]byte{b}, pageSize) }
	steps := []error{
		e.header(), e.meta(m),
		e.pageRecord([]pageRun{{0x401000, 1}, {0x600000, 2}}, append(page(1), append(page(2), page(3)...)...)),
		e.pageRecord([]pageRun{{0x603000, 1}}, page(4)),
		e.end(),
	}
	for _, err := range steps {
		if err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestSynthRoundTrip(t *testing.T) {
	img := synthImage(t)
	info, err := ReadInfo(bytes.NewReader(img))
	if err != nil {
		t.Fatalf("ReadInfo: %v", err)
	}
	if info.Pages != 4 || info.Bytes != int64(len(img)) {
		t.Errorf("pages %d bytes %d, want 4 and %d", info.Pages, info.Bytes, len(img))
	}
	want := []uint64{1, 3, 0}
	for i, w := range want {
		if info.RegionPages[i] != w {
			t.Errorf("region %d: %d pages, want %d", i, info.RegionPages[i], w)
		}
	}
	var out strings.Builder
	if err := info.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"arch:     x86_64", "file ref + 1 changed pages", "image, 3 pages", "kernel (this host's", "4 pages (16.0K) in the image"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("info output lacks %q:\n%s", s, out.String())
		}
	}
}

// Every truncation of a valid image must be reported, never accepted.
func TestTruncated(t *testing.T) {
	img := synthImage(t)
	for n := 0; n < len(img); n++ {
		_, err := ReadInfo(bytes.NewReader(img[:n]))
		if err == nil {
			t.Fatalf("image cut at %d of %d bytes accepted", n, len(img))
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("cut at %d: error %v does not wrap ErrCorrupt", n, err)
		}
	}
}

// Flipping any single byte must be caught by a checksum or a check.
func TestCorrupt(t *testing.T) {
	img := synthImage(t)
	for i := 0; i < len(img); i++ {
		bad := append([]byte(nil), img...)
		bad[i] ^= 0x40
		if _, err := ReadInfo(bytes.NewReader(bad)); err == nil {
			t.Fatalf("flipped byte %d of %d accepted", i, len(img))
		}
	}
	// Trailing garbage after the end record is not part of the image and
	// is left unread (a restored process may own the rest of the stream).
	r := bytes.NewReader(append(append([]byte(nil), img...), "tail"...))
	if _, err := ReadInfo(r); err != nil {
		t.Fatalf("image followed by bytes: %v", err)
	}
	if r.Len() != 4 {
		t.Errorf("decoder read %d bytes past the image", 4-r.Len())
	}
}

func TestMetaValidate(t *testing.T) {
	base := func() *Meta {
		return &Meta{Arch: "x86_64", Regions: []Region{{Start: 0x1000, End: 0x2000, Perms: "rw-p", Kind: KindAnon, Travel: TravelImage}}}
	}
	cases := []struct {
		name string
		mod  func(m *Meta)
	}{
		{"arch", func(m *Meta) { m.Arch = "arm64" }},
		{"misaligned", func(m *Meta) { m.Regions[0].End = 0x2001 }},
		{"empty", func(m *Meta) { m.Regions[0].End = 0x1000 }},
		{"overlap", func(m *Meta) {
			m.Regions = append(m.Regions, Region{Start: 0x1000, End: 0x3000, Perms: "rw-p", Kind: KindAnon, Travel: TravelImage})
		}},
		{"kernel-space", func(m *Meta) { m.Regions[0].End = 1 << 48 }},
		{"perms", func(m *Meta) { m.Regions[0].Perms = "rw" }},
		{"kind", func(m *Meta) { m.Regions[0].Kind = "weird" }},
		{"travel", func(m *Meta) { m.Regions[0].Travel = TravelKernel }},
		{"fileref", func(m *Meta) { m.Regions[0].Kind, m.Regions[0].Travel = KindFile, TravelFile }},
		{"sig", func(m *Meta) { m.Sigaction = []Sigaction{{Sig: 9}} }},
		{"fd", func(m *Meta) { m.FDs = []FD{{FD: 3, Kind: FDFile, Path: "relative"}} }},
		{"xstate", func(m *Meta) { m.XState = make([]byte, maxXState+1) }},
		{"fd-twice", func(m *Meta) { m.FDs = []FD{{FD: 3, Kind: FDClosed}, {FD: 3, Kind: FDClosed}} }},
		{"restorer-fd", func(m *Meta) { m.FDs = []FD{{FD: 3, Kind: FDRestorer, From: 3}} }},
		{"memfd-size", func(m *Meta) { m.FDs = []FD{{FD: 3, Kind: FDMem, Data: make([]byte, maxMemFD+1)}} }},
	}
	if err := base().validate(); err != nil {
		t.Fatalf("valid meta rejected: %v", err)
	}
	for _, c := range cases {
		m := base()
		c.mod(m)
		if err := m.validate(); err == nil {
			t.Errorf("%s: invalid meta accepted", c.name)
		}
	}
}

func TestParseFlags(t *testing.T) {
	cases := []struct {
		in   string
		want Flags
		err  bool
	}{
		{"", 0, false}, {"none", 0, false}, {"all", DumpAll, false}, {"libs", DumpLibs, false},
		{"libs,exec", DumpLibs | DumpExec, false}, {"other, EXEC", DumpOther | DumpExec, false}, {"bogus", 0, true},
	}
	for _, c := range cases {
		got, err := ParseFlags(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("ParseFlags(%q) = %v, %v; want %v, err %v", c.in, got, err, c.want, c.err)
		}
	}
	if DumpAll.String() != "libs,exec,other" || Flags(0).String() != "none" {
		t.Errorf("String: %q %q", DumpAll.String(), Flags(0).String())
	}
}

// Fuzz inputs stay small: on each input that finds new coverage the fuzzer
// runs a minimizer whose cost grows with the square of the input's length,
// so a seed holding whole 4 KiB pages stalled fuzzing at 0 execs/s for the
// minimizer's full minute, again and again. Pages are synthesized from a
// small input instead (FuzzRecords), and large raw inputs are not decoded.
const maxFuzzInput = 8 << 10

// synthMetaImage is synthImage without its page records: the same
// metadata, a valid image, small enough to fuzz.
func synthMetaImage(t testing.TB) []byte {
	ir, err := openImage(bytes.NewReader(synthImage(t)))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	e := &encoder{w: &buf}
	for _, err := range []error{e.header(), e.meta(ir.Meta), e.end()} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// FuzzReadInfo feeds arbitrary bytes to the decoder: it must return an
// error or a description, never panic or allocate without bound.
func FuzzReadInfo(f *testing.F) {
	img := synthMetaImage(f)
	f.Add(img)
	f.Add(img[:100])
	f.Add([]byte(imageMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			return
		}
		info, err := ReadInfo(bytes.NewReader(data))
		if err == nil {
			var sb strings.Builder
			if err := info.WriteText(&sb); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// withPages expands a page record's fuzzed table: after the run table
// (count, then address and page count per run) come as many zero pages as
// the runs announce (at most 16), then the input's remaining bytes, so
// the payload's length can still disagree with its table.
func withPages(table []byte) []byte {
	if len(table) < 8 {
		return table
	}
	nr := uint64(binary.LittleEndian.Uint32(table))
	end := 8 + 16*min(nr, uint64(len(table)-8)/16)
	var total uint64
	for i := uint64(8); i+16 <= end; i += 16 {
		total += min(binary.LittleEndian.Uint64(table[i+8:]), 16)
	}
	total = min(total, 16)
	out := make([]byte, 0, uint64(len(table))+total*pageSize)
	out = append(out, table[:end]...)
	out = append(out, make([]byte, total*pageSize)...)
	return append(out, table[end:]...)
}

// FuzzRecords fuzzes what lies behind the checksums: the metadata JSON and
// a page record's run table are fuzzed, then framed with valid CRCs, so the
// fuzzer reaches validation and page-run checks that random bytes in a
// whole image (FuzzReadInfo) almost never get past.
func FuzzRecords(f *testing.F) {
	img := synthImage(f)
	ir, err := openImage(bytes.NewReader(img))
	if err != nil {
		f.Fatal(err)
	}
	meta, _ := json.Marshal(ir.Meta)
	runs, data, err := ir.nextPages()
	if err != nil {
		f.Fatal(err)
	}
	var e encoder
	var pages bytes.Buffer
	e.w = &pages
	e.pageRecord(runs, data)
	rec := pages.Bytes()[8 : pages.Len()-4]
	table := rec[:len(rec)-len(data)]
	if got := withPages(table); len(got) != len(rec) || !bytes.Equal(got[:len(table)], table) {
		f.Fatal("withPages does not rebuild the seed's page record")
	}
	image := func(meta, table []byte, npages uint64) *bytes.Buffer {
		var buf bytes.Buffer
		e := &encoder{w: &buf}
		e.header()
		e.record(recMeta, meta)
		e.record(recPages, withPages(table))
		e.pages = npages
		e.end()
		return &buf
	}
	if _, err := ReadInfo(image(meta, table, uint64(len(data)/pageSize))); err != nil {
		f.Fatalf("the seed is no valid image: %v", err)
	}
	f.Add(meta, table, uint64(len(data)/pageSize))
	f.Fuzz(func(t *testing.T, meta, table []byte, npages uint64) {
		if len(meta)+len(table) > maxFuzzInput {
			return
		}
		info, err := ReadInfo(image(meta, table, npages))
		if err == nil {
			var sb strings.Builder
			if err := info.WriteText(&sb); err != nil {
				t.Fatal(err)
			}
		}
	})
}
