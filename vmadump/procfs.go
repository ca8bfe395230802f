package vmadump

// Reading a process's state from /proc, and bulk access to its memory.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

const pageSize = 4096

// mapping is one line of /proc/PID/maps.
type mapping struct {
	start, end uint64
	perms      string // "rwxp"
	offset     uint64
	dev        string
	inode      uint64
	path       string
}

func (m mapping) size() uint64 { return m.end - m.start }

func parseMaps(data []byte) ([]mapping, error) {
	var out []mapping
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 5 {
			return nil, fmt.Errorf("maps line %q: too few fields", line)
		}
		var m mapping
		a, b, ok := strings.Cut(f[0], "-")
		if !ok {
			return nil, fmt.Errorf("maps line %q: bad range", line)
		}
		var err1, err2, err3, err4 error
		m.start, err1 = strconv.ParseUint(a, 16, 64)
		m.end, err2 = strconv.ParseUint(b, 16, 64)
		m.offset, err3 = strconv.ParseUint(f[2], 16, 64)
		m.inode, err4 = strconv.ParseUint(f[4], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil || len(f[1]) != 4 {
			return nil, fmt.Errorf("maps line %q: bad number", line)
		}
		m.perms, m.dev = f[1], f[3]
		// The path is everything after the fifth field; it may hold spaces.
		if len(f) > 5 {
			rest := line
			for i := 0; i < 5; i++ {
				rest = strings.TrimLeft(rest, " ")
				rest = rest[strings.IndexByte(rest, ' ')+1:]
			}
			m.path = strings.TrimLeft(rest, " ")
		}
		out = append(out, m)
	}
	return out, nil
}

func readMaps(pid int) ([]mapping, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, fmt.Errorf("reading maps: %w", err)
	}
	return parseMaps(data)
}

// procStat holds the memory layout fields of /proc/PID/stat.
type procStat struct {
	startCode, endCode, startStack     uint64
	startData, endData, startBrk       uint64
	argStart, argEnd, envStart, envEnd uint64
}

func readStat(pid int) (procStat, error) {
	var s procStat
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("reading stat: %w", err)
	}
	// comm may hold spaces and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return s, fmt.Errorf("stat of %d: malformed", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state); field N is f[N-3].
	get := func(n int) uint64 {
		if n-3 >= len(f) {
			return 0
		}
		v, _ := strconv.ParseUint(f[n-3], 10, 64)
		return v
	}
	if len(f) < 52-3+1 {
		return s, fmt.Errorf("stat of %d: only %d fields", pid, len(f)+2)
	}
	s.startCode, s.endCode, s.startStack = get(26), get(27), get(28)
	s.startData, s.endData, s.startBrk = get(45), get(46), get(47)
	s.argStart, s.argEnd, s.envStart, s.envEnd = get(48), get(49), get(50), get(51)
	return s, nil
}

// keyValues reads a "Key: value" file of /proc (status, fdinfo) and
// returns the values of the keys asked for.
func keyValues(path string, keys ...string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(keys))
	for _, line := range strings.Split(string(data), "\n") {
		k, v, _ := strings.Cut(line, ":")
		if slices.Contains(keys, k) {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out, nil
}

// num parses v in base, 0 when it is missing or malformed.
func num(v string, base int) int64 {
	n, _ := strconv.ParseUint(v, base, 64)
	return int64(n)
}

// procStatus holds the fields of /proc/PID/status we need.
type procStatus struct {
	threads        int
	ppid           int
	sigCgt, sigIgn uint64
	umask          int
}

func readStatus(pid int) (procStatus, error) {
	kv, err := keyValues(fmt.Sprintf("/proc/%d/status", pid), "Threads", "PPid", "SigCgt", "SigIgn", "Umask")
	if err != nil {
		return procStatus{}, fmt.Errorf("reading status: %w", err)
	}
	return procStatus{
		threads: int(num(kv["Threads"], 10)), ppid: int(num(kv["PPid"], 10)),
		sigCgt: uint64(num(kv["SigCgt"], 16)), sigIgn: uint64(num(kv["SigIgn"], 16)),
		umask: int(num(kv["Umask"], 8)),
	}, nil
}

// fdInfo is what /proc/PID/fdinfo/N says of a descriptor.
type fdInfo struct {
	pos   int64
	flags int
}

func readFdInfo(pid, fd int) (fdInfo, error) {
	kv, err := keyValues(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd), "pos", "flags")
	if err != nil {
		return fdInfo{}, err
	}
	return fdInfo{pos: num(kv["pos"], 10), flags: int(num(kv["flags"], 8))}, nil
}

// Bits of a /proc/PID/pagemap entry.
const (
	pmPresent = 1 << 63
	pmSwapped = 1 << 62
	pmFile    = 1 << 61 // file page or shared anonymous
)

// pagemap reads the pagemap entries of [start, end).
func readPagemap(f *os.File, start, end uint64) ([]uint64, error) {
	n := (end - start) / pageSize
	buf := make([]byte, n*8)
	if _, err := f.ReadAt(buf, int64(start/pageSize*8)); err != nil {
		return nil, fmt.Errorf("reading pagemap at %#x: %w", start, err)
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(buf[i*8:])
	}
	return out, nil
}

// maxIov is the kernel's IOV_MAX.
const maxIov = 1024

// span is a range of remote memory.
type span struct{ addr, len uint64 }

// remoteIO moves bytes between local buf and the remote spans (their total
// length equals len(buf)) with as few system calls as the kernel allows:
// process_vm_readv/writev with up to IOV_MAX spans a call. A span the call
// may not touch (a read-only page for process_vm_writev, PROT_NONE for
// both) stops it short; that span alone goes through /proc/PID/mem, which
// uses FOLL_FORCE, and the batch carries on after it.
func remoteIO(pid int, mem *os.File, buf []byte, spans []span, write bool) error {
	off := 0
	remote := make([]unix.RemoteIovec, 0, min(len(spans), maxIov))
	for len(spans) > 0 {
		n := min(len(spans), maxIov)
		total := 0
		remote = remote[:0]
		for _, s := range spans[:n] {
			remote = append(remote, unix.RemoteIovec{Base: uintptr(s.addr), Len: int(s.len)})
			total += int(s.len)
		}
		local := []unix.Iovec{{Base: &buf[off]}}
		local[0].SetLen(total)
		var got int
		var err error
		if write {
			got, err = unix.ProcessVMWritev(pid, local, remote, 0)
		} else {
			got, err = unix.ProcessVMReadv(pid, local, remote, 0)
		}
		if err != nil && err != unix.EFAULT && err != unix.ENOMEM {
			return fmt.Errorf("process_vm_%s %d: %w", rw(write), pid, err)
		}
		got = max(got, 0)
		done, i := 0, 0
		for i < n && done+int(spans[i].len) <= got {
			done += int(spans[i].len)
			i++
		}
		if i < n {
			// spans[i] stopped the call: finish it through /proc/PID/mem.
			s, from := spans[i], got-done
			if err := memIO(mem, buf[off+done+from:off+done+int(s.len)], s.addr+uint64(from), write); err != nil {
				return err
			}
			done += int(s.len)
			i++
		}
		off += done
		spans = spans[i:]
	}
	return nil
}

func rw(write bool) string {
	if write {
		return "writev"
	}
	return "readv"
}

// memIO reads or writes b at addr through /proc/PID/mem.
func memIO(mem *os.File, b []byte, addr uint64, write bool) error {
	var err error
	if write {
		_, err = mem.WriteAt(b, int64(addr))
	} else {
		_, err = mem.ReadAt(b, int64(addr))
	}
	if err != nil {
		return fmt.Errorf("/proc/PID/mem %s at %#x (%d bytes): %w", map[bool]string{true: "write", false: "read"}[write], addr, len(b), err)
	}
	return nil
}

// isZero reports whether a page holds only zero bytes.
func isZero(p []byte) bool {
	return bytes.Equal(p, zeroPage[:len(p)])
}

var zeroPage [pageSize]byte

// ownVDSO returns the bytes of this process's own [vdso]: the kernel maps
// the same image into every process, so it stands for any new process's.
func ownVDSO() ([]byte, mapping, error) {
	maps, err := readMaps(os.Getpid())
	if err != nil {
		return nil, mapping{}, err
	}
	for _, m := range maps {
		if m.path == "[vdso]" {
			b, err := readSelfMem(m.start, m.size())
			return b, m, err
		}
	}
	return nil, mapping{}, fmt.Errorf("this process has no [vdso] mapping")
}

// syscallOffset finds the bytes of a syscall instruction (0f 05) in a vDSO.
func syscallOffset(vdso []byte) (uint64, error) {
	i := bytes.Index(vdso, []byte{0x0f, 0x05})
	if i < 0 {
		return 0, fmt.Errorf("no syscall instruction in the vDSO")
	}
	return uint64(i), nil
}

func readSelfMem(addr, n uint64) ([]byte, error) {
	f, err := os.Open("/proc/self/mem")
	if err != nil {
		return nil, fmt.Errorf("opening /proc/self/mem: %w", err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, int64(addr)); err != nil {
		return nil, fmt.Errorf("reading own memory at %#x: %w", addr, err)
	}
	return b, nil
}
