package main

import (
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// notifySocket is where systemd (Type=notify) waits for our state:
// $NOTIFY_SOCKET, taken from the environment once so that nothing the
// master starts (node -1's jobs, the reaper) inherits it and speaks for us.
var notifySocket = takeNotifySocket()

func takeNotifySocket() string {
	s := os.Getenv("NOTIFY_SOCKET")
	os.Unsetenv("NOTIFY_SOCKET")
	return s
}

// sdNotify sends state lines ("READY=1", ...) to the service manager with
// sd_notify(3)'s datagram protocol. Without $NOTIFY_SOCKET it does nothing.
func sdNotify(state ...string) error {
	return notifyTo(notifySocket, state...)
}

func notifyTo(socket string, state ...string) error {
	if socket == "" {
		return nil
	}
	// A leading '@' names a socket in the abstract namespace.
	if strings.HasPrefix(socket, "@") {
		socket = "\x00" + socket[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(state, "\n") + "\n")); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, which RELOADING=1
// carries so systemd can tell this reload from an earlier one.
func monotonicUsec() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "MONOTONIC_USEC=0"
	}
	return fmt.Sprintf("MONOTONIC_USEC=%d", ts.Nano()/1000)
}

// notifyLog reports a failed notification: systemd will time the service
// out, and the log should say why.
func notifyLog(logf func(string, ...any), state ...string) {
	if err := sdNotify(state...); err != nil {
		logf("%v", err)
	}
}
