package vmadump

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Info describes an image: its metadata and how many bytes each region
// carries in it. ReadInfo reads and checks the whole image to fill it.
type Info struct {
	Meta *Meta
	// RegionPages[i] is the number of pages of Meta.Regions[i] in the image.
	RegionPages []uint64
	Pages       uint64 // total pages in the image
	Bytes       int64  // total size of the image
}

// ReadInfo reads a whole image from r, verifying every checksum, without
// restoring anything. It returns an error for any malformed input.
func ReadInfo(r io.Reader) (*Info, error) {
	ir, err := openImage(r)
	if err != nil {
		return nil, err
	}
	info := &Info{Meta: ir.Meta, RegionPages: make([]uint64, len(ir.Meta.Regions))}
	for {
		runs, _, err := ir.nextPages()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		for _, run := range runs {
			info.RegionPages[ir.Meta.regionAt(run.addr, run.npages*pageSize)] += run.npages
			info.Pages += run.npages
		}
	}
	info.Bytes = ir.d.n
	return info, nil
}

func human(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fK", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

// how says in words how a region travels.
func how(r Region, pages uint64) string {
	switch r.Travel {
	case TravelKernel:
		return "kernel (this host's, moved into place)"
	case TravelFile:
		if pages > 0 {
			return fmt.Sprintf("file ref + %d changed pages", pages)
		}
		return "file ref"
	}
	if pages == 0 {
		return "image (all zero)"
	}
	return fmt.Sprintf("image, %d pages", pages)
}

// WriteText prints the information for people, as `vmadump info` does.
func (info *Info) WriteText(w io.Writer) error {
	m := info.Meta
	var b strings.Builder
	fmt.Fprintf(&b, "arch:     %s\n", m.Arch)
	fmt.Fprintf(&b, "kernel:   %s\n", m.Kernel)
	fmt.Fprintf(&b, "host:     %s\n", m.Host)
	fmt.Fprintf(&b, "time:     %s\n", m.Time.Format("2006-01-02 15:04:05.000 MST"))
	fmt.Fprintf(&b, "pid:      %d\n", m.PID)
	fmt.Fprintf(&b, "comm:     %s\n", m.Comm)
	fmt.Fprintf(&b, "exe:      %s\n", m.Exe)
	args := make([]string, len(m.Cmdline))
	for i, a := range m.Cmdline {
		args[i] = a
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\") || !strconv.CanBackquote(a) {
			args[i] = strconv.Quote(a)
		}
	}
	fmt.Fprintf(&b, "cmdline:  %s\n", strings.Join(args, " "))
	fmt.Fprintf(&b, "cwd:      %s\n", m.Cwd)
	fmt.Fprintf(&b, "flags:    %s\n", m.Flags)
	fmt.Fprintf(&b, "rip:      %#x\n", m.Regs.Rip)
	fmt.Fprintf(&b, "xstate:   %d bytes\n", len(m.XState))
	fmt.Fprintf(&b, "sigmask:  %#x, %d handlers\n", m.SigMask, len(m.Sigaction))
	if m.Rseq != nil {
		fmt.Fprintf(&b, "rseq:     %#x (%d bytes)\n", m.Rseq.Addr, m.Rseq.Size)
	}
	fmt.Fprintf(&b, "brk:      %#x-%#x\n", m.MM.StartBrk, m.MM.Brk)
	if th := m.Thread; th.AltStackSize > 0 && th.AltStackFlags&2 == 0 {
		fmt.Fprintf(&b, "altstack: %#x (%d bytes)\n", th.AltStackSP, th.AltStackSize)
	}
	for i, it := range m.Thread.Itimers {
		if it[2] != 0 || it[3] != 0 {
			fmt.Fprintf(&b, "itimer:   %s %d.%06ds left, interval %d.%06ds\n", []string{"real", "virtual", "prof"}[i], it[2], it[3], it[0], it[1])
		}
	}
	b.WriteString("fds:\n")
	for _, f := range m.FDs {
		what := map[string]string{
			FDFile: fmt.Sprintf("reopened, offset %d", f.Pos), FDDir: "reopened",
			FDStdio: "connected to the restorer's", FDClosed: "closed on restore",
			FDRestorer: "dup of the restorer's " + stdioName(f.From), FDMem: fmt.Sprintf("memfd of %d bytes", len(f.Data)),
		}[f.Kind]
		fmt.Fprintf(&b, "  %3d %-6s %s  (%s)\n", f.FD, f.Kind, f.Path, what)
	}
	b.WriteString("regions:\n")
	tw := tabwriter.NewWriter(&b, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  start\tend\tperms\tsize\tkind\ttravels\tpath")
	var mapped uint64
	for i, r := range m.Regions {
		mapped += r.Size()
		kind := r.Kind
		if r.Class != "" {
			kind += "/" + r.Class
		}
		fmt.Fprintf(tw, "  %012x\t%012x\t%s\t%s\t%s\t%s\t%s\n", r.Start, r.End, r.Perms, human(r.Size()), kind, how(r, info.RegionPages[i]), r.Path)
	}
	tw.Flush()
	fmt.Fprintf(&b, "total:    %d regions, %s mapped, %d pages (%s) in the image, image %s\n",
		len(m.Regions), human(mapped), info.Pages, human(info.Pages*pageSize), human(uint64(info.Bytes)))
	_, err := io.WriteString(w, b.String())
	return err
}

func stdioName(fd int) string {
	if fd >= 0 && fd <= 2 {
		return []string{"stdin", "stdout", "stderr"}[fd]
	}
	return fmt.Sprintf("fd %d", fd)
}
