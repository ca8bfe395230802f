package main

// vmadump bench (not in the usage text; t/bench-vmadump.sh runs it):
// dump+restore time of processes with 1, 64 and 512 MB of dirty memory,
// streamed through a pipe as a migration would, beside the machine's own
// limits measured in the same run: memcpy of the same number of bytes and a
// plain read of the same bytes out of the process (process_vm_readv).

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"bproc/cmd/internal/cli"
	"bproc/vmadump"
)

func bench(c *cli.Command, args []string) int {
	flags := newFlags("bench")
	prog := flags.String("prog", "", "the memhog test program (vmadump/testdata/memhog.c, compiled)")
	sizes := flags.String("sizes", "1,64,512", "dirty memory sizes in MB")
	runs := flags.Int("runs", 5, "runs per size (the median is reported)")
	if err := parse(flags, args); err != nil {
		return c.Usage("%v", err)
	}
	if *prog == "" || *runs < 1 {
		return c.Usage("bench needs -prog PATH and -runs >= 1")
	}
	fmt.Printf("vmadump: dump+restore through a pipe (median of %d runs), beside this machine's memcpy and a plain read of the same bytes\n", *runs)
	fmt.Printf("%-8s %12s %10s %12s %12s %10s\n", "dirty", "dump+restore", "GB/s", "memcpy GB/s", "read GB/s", "image")
	for _, s := range strings.Split(*sizes, ",") {
		mb, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || mb <= 0 {
			return c.Usage("bad size %q", s)
		}
		var times, reads, copies []float64
		var image int64
		// Buffers for the baselines, touched once so that no page faults
		// are measured.
		src, dst := make([]byte, mb<<20), make([]byte, mb<<20)
		for i := 0; i < len(src); i += 4096 {
			src[i], dst[i] = 1, 1
		}
		for i := 0; i < *runs; i++ {
			d, rd, n, err := benchOnce(*prog, mb, dst)
			if err != nil {
				return c.Fail(fmt.Errorf("%d MB: %w", mb, err))
			}
			times, reads, image = append(times, d), append(reads, rd), n
			t0 := time.Now()
			copy(dst, src)
			copies = append(copies, time.Since(t0).Seconds())
		}
		src, dst = nil, nil
		runtime.GC()
		bytes := float64(int64(mb) << 20)
		t, r, c := median(times), median(reads), median(copies)
		fmt.Printf("%-8s %9.2f ms %10.2f %12.2f %12.2f %8.1fMB\n", fmt.Sprintf("%d MB", mb), t*1e3, bytes/t/1e9, bytes/c/1e9, bytes/r/1e9, float64(image)/(1<<20))
	}
	fmt.Println("targets: 1 MB in at most 5 ms; at least 1 GB/s end to end at 512 MB")
	return 0
}

func median(v []float64) float64 {
	sort.Float64s(v)
	return v[len(v)/2]
}

// countWriter counts the bytes of the image as they pass.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// benchOnce starts memhog, reads its memory once (the baseline), then
// dumps it into a pipe that Restore reads from, and checks the restored
// process's verdict. It returns the dump+restore and read times in seconds.
func benchOnce(prog string, mb int, buf []byte) (float64, float64, int64, error) {
	cmd := exec.Command(prog, strconv.Itoa(mb))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	var pid int
	var addr uintptr
	if _, err2 := fmt.Sscanf(line, "READY %d %v", &pid, &addr); err != nil || err2 != nil {
		return 0, 0, 0, fmt.Errorf("memhog said %q: %v %v", line, err, err2)
	}

	// Baseline: a plain read of the same bytes out of the process.
	local := []unix.Iovec{{Base: &buf[0]}}
	local[0].SetLen(len(buf))
	t0 := time.Now()
	if _, err := unix.ProcessVMReadv(pid, local, []unix.RemoteIovec{{Base: addr, Len: len(buf)}}, 0); err != nil {
		return 0, 0, 0, fmt.Errorf("process_vm_readv: %w", err)
	}
	readT := time.Since(t0).Seconds()
	runtime.GC()

	rOut, wOut, err := os.Pipe()
	if err != nil {
		return 0, 0, 0, err
	}
	defer rOut.Close()
	pr, pw := io.Pipe()
	cw := &countWriter{w: pw}
	dumpErr := make(chan error, 1)
	var ru0, ru1 unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	t0 = time.Now()
	go func() {
		err := vmadump.Dump(pid, cw, vmadump.DumpOptions{})
		pw.CloseWithError(err)
		dumpErr <- err
	}()
	p, err := vmadump.Restore(pr, vmadump.RestoreOptions{Stdout: wOut})
	if err == nil {
		err = <-dumpErr
	}
	elapsed := time.Since(t0).Seconds()
	unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	if os.Getenv("VMADUMP_TRACE") != "" {
		cpu := func(r unix.Rusage) float64 { return float64(r.Utime.Nano()+r.Stime.Nano()) / 1e9 }
		fmt.Fprintf(os.Stderr, "cpu %.1f ms (user %.1f sys %.1f) wall %.1f ms\n", (cpu(ru1)-cpu(ru0))*1e3,
			float64(ru1.Utime.Nano()-ru0.Utime.Nano())/1e6, float64(ru1.Stime.Nano()-ru0.Stime.Nano())/1e6, elapsed*1e3)
	}
	wOut.Close()
	if err != nil {
		return 0, 0, 0, err
	}
	verdict, _ := io.ReadAll(rOut)
	st, err := p.Wait()
	if err != nil {
		return 0, 0, 0, err
	}
	if !strings.Contains(string(verdict), "VERDICT PASS") || st.ExitCode() != 0 {
		return 0, 0, 0, fmt.Errorf("restored memhog failed its check: %q (exit %d)", verdict, st.ExitCode())
	}
	return elapsed, readT, cw.n, nil
}
