package mcast

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchReader reads up to len(bufs) datagrams per system call (recvmmsg):
// on a big cluster recvstats finds a dozen packets waiting at each wake-up.
type batchReader struct {
	bufs  [][]byte
	names []unix.RawSockaddrInet4
	iovs  []unix.Iovec
	msgs  []mmsghdr
}

// mmsghdr is struct mmsghdr of recvmmsg(2).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

func newBatchReader(n, size int) *batchReader {
	b := &batchReader{bufs: make([][]byte, n), names: make([]unix.RawSockaddrInet4, n),
		iovs: make([]unix.Iovec, n), msgs: make([]mmsghdr, n)}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, size)
	}
	return b
}

// read fills the batch from socket fd, waiting for the first datagram
// unless flags has MSG_DONTWAIT (EAGAIN: none came).
func (b *batchReader) read(fd, flags int) (int, error) {
	for i := range b.msgs {
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(len(b.bufs[i]))
		b.msgs[i] = mmsghdr{}
		h := &b.msgs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Namelen = uint32(unsafe.Sizeof(b.names[i]))
		h.Iov = &b.iovs[i]
		h.SetIovlen(1)
	}
	// MSG_TRUNC: a message's len is the datagram's real size, so an
	// oversized one is recognised, not cut and misread. MSG_WAITFORONE:
	// once one datagram is in, take what else is waiting without blocking
	// for more.
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.msgs[0])),
		uintptr(len(b.msgs)), uintptr(unix.MSG_TRUNC|unix.MSG_WAITFORONE|flags), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// packet returns datagram i of the last read: its bytes (cut to the
// buffer), its real size and its sender.
func (b *batchReader) packet(i int) ([]byte, int, netip.Addr) {
	n := int(b.msgs[i].len)
	var addr netip.Addr
	if b.names[i].Family == unix.AF_INET {
		addr = netip.AddrFrom4(b.names[i].Addr)
	}
	return b.bufs[i][:min(n, len(b.bufs[i]))], n, addr
}
