package mcast

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultRequestGroup carries recvstats' "send now" requests. It differs
// from the stats group so nodes are not handed every other node's stats.
const DefaultRequestGroup = "239.2.11.73"

// GroupAddrs returns the stats and request addresses for port.
func GroupAddrs(port int) (stats, request string) {
	p := strconv.Itoa(port)
	return net.JoinHostPort(DefaultGroup, p), net.JoinHostPort(DefaultRequestGroup, p)
}

func lookupIface(name string) (*net.Interface, error) {
	if name == "" {
		return nil, nil
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", name, err)
	}
	return ifi, nil
}

// listen opens a socket that receives datagrams sent to addr: for a
// multicast group, joined on interface ifname (the routing default when
// empty); for a unicast address (tests), bound to it.
func listen(ifname, addr string) (*net.UDPConn, error) {
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("address %s: %w", addr, err)
	}
	ifi, err := lookupIface(ifname)
	if err != nil {
		return nil, err
	}
	if !ua.IP.IsMulticast() {
		c, err := net.ListenUDP("udp4", ua)
		if err != nil {
			return nil, fmt.Errorf("listening on %s: %w", addr, err)
		}
		return c, nil
	}
	c, err := net.ListenMulticastUDP("udp4", ifi, ua)
	if err != nil {
		return nil, fmt.Errorf("joining %s on %s: %w", addr, ifname, err)
	}
	// Go binds the wildcard address; without this Linux also delivers
	// groups joined by other sockets on the same port (sendstats and
	// recvstats on one host would read each other's traffic).
	if err := setsockopt(c, unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// sendSocket resolves the address addr packets go to and opens the socket
// they leave by (see dialer).
func sendSocket(ifname, addr string) (*net.UDPConn, *net.UDPAddr, error) {
	dst, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("address %s: %w", addr, err)
	}
	out, err := dialer(ifname)
	if err != nil {
		return nil, nil, err
	}
	return out, dst, nil
}

// dialer opens the socket packets are sent from, with multicast going out
// of interface ifname (TTL 1: stats never leave the cluster network).
func dialer(ifname string) (*net.UDPConn, error) {
	ifi, err := lookupIface(ifname)
	if err != nil {
		return nil, err
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		return nil, fmt.Errorf("opening send socket: %w", err)
	}
	if ifi != nil {
		rc, err := c.SyscallConn()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("send socket: %w", err)
		}
		var serr error
		rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptIPMreqn(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifi.Index)})
		})
		if serr != nil {
			c.Close()
			return nil, fmt.Errorf("sending multicast via %s: %w", ifname, serr)
		}
	}
	if err := setsockopt(c, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 1); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func setsockopt(c *net.UDPConn, level, opt, v int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("socket option: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, v) }); err != nil {
		return fmt.Errorf("socket option: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("socket option %d/%d: %w", level, opt, serr)
	}
	return nil
}

// listenFD opens a blocking socket receiving what is sent to addr, as
// listen does, but outside Go's network poller: recvstats blocks in
// recvmmsg itself, so packets that arrive while it deliberately waits
// (coalescing) wake nothing. With the poller every arrival woke a thread,
// several hundred times a second on a big cluster. timeout bounds each
// blocking read.
func listenFD(ifname, addr string, timeout time.Duration) (int, error) {
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return -1, fmt.Errorf("address %s: %w", addr, err)
	}
	ip4 := ua.IP.To4()
	if ip4 == nil {
		return -1, fmt.Errorf("address %s: not IPv4", addr)
	}
	ifi, err := lookupIface(ifname)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	fail := func(what string, err error) (int, error) {
		unix.Close(fd)
		return -1, fmt.Errorf("listening on %s: %s: %w", addr, what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("SO_REUSEADDR", err)
	}
	// Bound to the group itself (not the wildcard): only datagrams sent
	// to the group reach this socket.
	sa := &unix.SockaddrInet4{Port: ua.Port}
	copy(sa.Addr[:], ip4)
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	if ua.IP.IsMulticast() {
		mreq := &unix.IPMreqn{}
		copy(mreq.Multiaddr[:], ip4)
		if ifi != nil {
			mreq.Ifindex = int32(ifi.Index)
		}
		if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq); err != nil {
			return fail("joining the group on "+ifname, err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0); err != nil {
			return fail("IP_MULTICAST_ALL", err)
		}
	}
	// A burst (every node answering a request at once) waits in the
	// kernel instead of being dropped; as root it may exceed rmem_max.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fail("SO_RCVTIMEO", err)
	}
	return fd, nil
}
