package main

import (
	"context"
	"net"
	"strconv"

	"bproc/job"
)

// serveData listens on the data port for direct output streams, on the
// source address when -s gives one. A port that cannot be had costs only
// the direct streams: the output goes through the master as before.
func serveData(ctx context.Context, s *job.Slave, o *options, k []byte, logger *slaveLog) {
	if o.dataPort == 0 {
		return
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(o.source, strconv.Itoa(o.dataPort)))
	if err != nil {
		logger.Printf("data port: %v (direct streams off)", err)
		return
	}
	s.ServeDirect(ctx, ln, k)
}
