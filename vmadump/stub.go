package vmadump

// The restore stub: the empty process an image is restored into.
//
// It is a minimal static ELF written by stubELF below (no compiler needed):
// one executable page at stubBase whose code is exit_group(127), plus a
// PT_GNU_STACK header so the kernel gives it a non-executable stack and no
// READ_IMPLIES_EXEC personality. The restorer starts it traced
// (PTRACE_TRACEME), so it stops at its first instruction and never runs;
// every system call is injected through the vDSO's syscall instruction and
// the stub's own mappings are unmapped before the image's are created.
// If the stub ever ran, it would just exit with status 127.

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// stubBase is an address no ordinary program uses (64 TiB - 1 GiB).
const stubBase = 0x3fffc0000000

func stubELF() []byte {
	const ehdr, phdr = 64, 56
	code := []byte{
		0xbf, 0x7f, 0x00, 0x00, 0x00, // mov edi, 127
		0xb8, 0xe7, 0x00, 0x00, 0x00, // mov eax, 231 (exit_group)
		0x0f, 0x05, // syscall
		0xeb, 0xfe, // jmp .
	}
	codeOff := uint64(ehdr + 2*phdr)
	size := codeOff + uint64(len(code))
	b := make([]byte, size)
	le := binary.LittleEndian
	copy(b, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0})
	le.PutUint16(b[16:], 2)    // ET_EXEC
	le.PutUint16(b[18:], 0x3e) // EM_X86_64
	le.PutUint32(b[20:], 1)    // EV_CURRENT
	le.PutUint64(b[24:], stubBase+codeOff)
	le.PutUint64(b[32:], ehdr) // e_phoff
	le.PutUint16(b[52:], ehdr)
	le.PutUint16(b[54:], phdr)
	le.PutUint16(b[56:], 2) // e_phnum
	p := b[ehdr:]
	le.PutUint32(p[0:], 1) // PT_LOAD
	le.PutUint32(p[4:], 5) // R+X
	le.PutUint64(p[16:], stubBase)
	le.PutUint64(p[24:], stubBase)
	le.PutUint64(p[32:], size)
	le.PutUint64(p[40:], size)
	le.PutUint64(p[48:], pageSize)
	p = b[ehdr+phdr:]
	le.PutUint32(p[0:], 0x6474e551) // PT_GNU_STACK
	le.PutUint32(p[4:], 6)          // RW
	copy(b[codeOff:], code)
	return b
}

var (
	stubOnce sync.Once
	stubPath string
	stubErr  error
)

// stubExecutable returns a path the stub can be executed from: a sealed
// memfd (/proc/self/fd/N, kept open for the life of this process), or a
// file in the temporary directory where memfds may not be executed.
func stubExecutable() (string, error) {
	stubOnce.Do(func() {
		img := stubELF()
		fd, err := unix.MemfdCreate("vmadump-stub", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err == nil {
			if _, err = unix.Write(fd, img); err == nil {
				_, err = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_WRITE|unix.F_SEAL_GROW|unix.F_SEAL_SHRINK)
			}
			if err == nil {
				p := fmt.Sprintf("/proc/self/fd/%d", fd)
				if unix.Access(p, unix.X_OK) == nil {
					stubPath = p
					return
				}
			}
			unix.Close(fd)
		}
		p := filepath.Join(os.TempDir(), fmt.Sprintf("vmadump-stub-%d", os.Getuid()))
		if err := os.WriteFile(p+".tmp", img, 0o755); err != nil {
			stubErr = fmt.Errorf("writing restore stub: %w", err)
			return
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			stubErr = fmt.Errorf("installing restore stub: %w", err)
			return
		}
		stubPath = p
	})
	return stubPath, stubErr
}
