// porttool attacks a bproc 9P port for the end-to-end tests (t/t2200):
//
//	porttool flood [-silent N] [-drip N] [-from IP,...] [-status FILE] ADDR
//	    keeps N silent and N trickling (one byte a second) strangers
//	    connected to ADDR, from the local addresses given in turn,
//	    reconnecting each the server hangs up on; FILE gets
//	    "open N dialed N" every 200 ms
//	porttool relay -listen ADDR [-record FILE] [-corrupt flip|truncate] TO
//	    relays connections to TO; -record saves what the first client sent;
//	    -corrupt flips a byte of, or cuts short, the client's first sealed
//	    frame after the handshake
//	porttool replay FILE ADDR
//	    sends a recorded client's bytes to ADDR and prints the server's
//	    verdict on the proof
//	porttool bad9p -k KEY ADDR CASE
//	    completes the handshake, sends broken 9P (CASE: garbage, huge,
//	    tags) and reports how the server ended the connection
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"bproc/key"
	"bproc/srv"
)

func main() {
	if len(os.Args) < 2 {
		fatalf("usage: porttool flood|relay|replay|bad9p ...")
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "flood":
		err = flood(args)
	case "relay":
		err = relay(args)
	case "replay":
		err = replay(args)
	case "bad9p":
		err = bad9p(args)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fatalf("%s: %v", os.Args[1], err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "porttool: "+format+"\n", args...)
	os.Exit(1)
}

func flood(args []string) error {
	fl := flag.NewFlagSet("flood", flag.ExitOnError)
	silent := fl.Int("silent", 500, "silent connections")
	drip := fl.Int("drip", 50, "connections sending one byte a second")
	status := fl.String("status", "", "file to write the counts to")
	from := fl.String("from", "", "local addresses to connect from, comma-separated")
	fl.Parse(args)
	if fl.NArg() != 1 {
		return errors.New("want ADDR")
	}
	addr := fl.Arg(0)
	var dialers []*net.Dialer
	for _, a := range strings.Split(*from, ",") {
		if a == "" {
			continue
		}
		ip := net.ParseIP(a)
		if ip == nil {
			return fmt.Errorf("bad address %q", a)
		}
		dialers = append(dialers, &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}})
	}
	if len(dialers) == 0 {
		dialers = append(dialers, &net.Dialer{})
	}
	var open, dialed atomic.Int64
	keep := func(d *net.Dialer, trickle bool) {
		greeting := []byte("\x00\x00\x00\x35bproc-handshake-2")
		for {
			c, err := d.Dial("tcp", addr)
			if err != nil {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			open.Add(1)
			dialed.Add(1)
			if trickle {
				for i := 0; ; i++ {
					if _, err := c.Write(greeting[i%len(greeting) : i%len(greeting)+1]); err != nil {
						break
					}
					time.Sleep(time.Second)
				}
			} else {
				var b [1]byte
				c.Read(b[:]) // until the server hangs up
			}
			c.Close()
			open.Add(-1)
			// Not at once: the test machine is shared.
			time.Sleep(200 * time.Millisecond)
		}
	}
	for i := range *silent {
		go keep(dialers[i%len(dialers)], false)
	}
	for i := range *drip {
		go keep(dialers[i%len(dialers)], true)
	}
	for {
		time.Sleep(200 * time.Millisecond)
		line := fmt.Sprintf("open %d dialed %d\n", open.Load(), dialed.Load())
		if *status == "" {
			continue
		}
		if err := os.WriteFile(*status+".tmp", []byte(line), 0o644); err != nil {
			return err
		}
		if err := os.Rename(*status+".tmp", *status); err != nil {
			return err
		}
	}
}

// readFrame reads one handshake frame: length[4, big-endian] bytes.
func readFrame(r io.Reader) ([]byte, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > 1<<20 {
		return nil, nil, fmt.Errorf("frame of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, nil, err
	}
	return hdr[:], b, nil
}

func relay(args []string) error {
	fl := flag.NewFlagSet("relay", flag.ExitOnError)
	listen := fl.String("listen", "", "address to listen on")
	record := fl.String("record", "", "file to save the first client's bytes in")
	corrupt := fl.String("corrupt", "", "flip or truncate the client's first sealed frame")
	fl.Parse(args)
	if fl.NArg() != 1 || *listen == "" {
		return errors.New("want -listen ADDR TO")
	}
	switch *corrupt {
	case "", "flip", "truncate":
	default:
		return fmt.Errorf("bad -corrupt %q", *corrupt)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	var once sync.Once
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		rec := *record
		first := false
		once.Do(func() { first = true })
		if !first {
			rec = ""
		}
		go func() {
			if err := relayOne(c, fl.Arg(0), rec, *corrupt); err != nil {
				fmt.Fprintf(os.Stderr, "porttool: relay: %v\n", err)
			}
		}()
	}
}

func relayOne(c net.Conn, to, record, corrupt string) error {
	defer c.Close()
	s, err := net.Dial("tcp", to)
	if err != nil {
		return err
	}
	defer s.Close()
	var rec io.Writer = io.Discard
	if record != "" {
		f, err := os.Create(record)
		if err != nil {
			return err
		}
		defer f.Close()
		rec = f
	}
	go func() {
		io.Copy(c, s)
		c.Close()
	}()
	out := io.MultiWriter(s, rec)
	if corrupt != "" {
		// The client's greeting and proof pass untouched, then its first
		// sealed frame is altered.
		for range 2 {
			hdr, b, err := readFrame(c)
			if err != nil {
				return fmt.Errorf("handshake: %w", err)
			}
			out.Write(append(hdr, b...))
		}
		hdr, b, err := readFrame(c)
		if err != nil {
			return fmt.Errorf("first sealed frame: %w", err)
		}
		if corrupt == "truncate" {
			out.Write(append(hdr, b[:len(b)/2]...))
			s.(*net.TCPConn).CloseWrite()
			fmt.Fprintf(os.Stderr, "porttool: relay: cut a sealed frame of %d bytes to %d\n", len(b), len(b)/2)
			io.Copy(io.Discard, c)
			return nil
		}
		b[len(b)/2] ^= 0x01
		out.Write(append(hdr, b...))
		fmt.Fprintf(os.Stderr, "porttool: relay: flipped a bit in a sealed frame of %d bytes\n", len(b))
	}
	io.Copy(out, c)
	return nil
}

func replay(args []string) error {
	if len(args) != 2 {
		return errors.New("want FILE ADDR")
	}
	rec, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	c, err := net.Dial("tcp", args[1])
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(rec); err != nil {
		return err
	}
	if _, _, err := readFrame(c); err != nil {
		return fmt.Errorf("no challenge: %w", err)
	}
	_, verdict, err := readFrame(c)
	if err != nil {
		return fmt.Errorf("no verdict: %w", err)
	}
	fmt.Printf("verdict: %q\n", verdict)
	return nil
}

func bad9p(args []string) error {
	fl := flag.NewFlagSet("bad9p", flag.ExitOnError)
	keyFile := fl.String("k", "", "cluster key file")
	fl.Parse(args)
	if fl.NArg() != 2 {
		return errors.New("want -k KEY ADDR CASE")
	}
	k, err := key.Load(*keyFile)
	if err != nil {
		return err
	}
	var send []byte
	tversion := func(msize uint32) []byte {
		v := "9P2000.L"
		m := binary.LittleEndian.AppendUint32(nil, uint32(13+len(v)))
		m = append(m, 100, 0xff, 0xff)
		m = binary.LittleEndian.AppendUint32(m, msize)
		m = binary.LittleEndian.AppendUint16(m, uint16(len(v)))
		return append(m, v...)
	}
	switch fl.Arg(1) {
	case "garbage":
		send = make([]byte, 4096)
		for i := range send {
			send[i] = byte(i*7 + 3)
		}
	case "huge": // a 4 GiB message
		send = append(tversion(1<<20), 0xff, 0xff, 0xff, 0xff, 118, 1, 0)
	case "tags": // the same tag on every request, then a second Tversion
		send = tversion(1 << 20)
		for range 50 {
			send = append(send, 7, 0, 0, 0, 108 /* Tflush */, 5, 0)
		}
		send = append(send, tversion(4<<20)...)
	default:
		return fmt.Errorf("unknown case %q", fl.Arg(1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", fl.Arg(0))
	if err != nil {
		return err
	}
	defer c.Close()
	host, _ := os.Hostname()
	sess, err := srv.ClientHandshake(c, k, srv.Hello{Role: srv.RoleTool, Uid: uint32(os.Geteuid()), Gid: uint32(os.Getegid()), Host: host})
	if err != nil {
		return err
	}
	if _, err := sess.Write(send); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(sess)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("still connected after 5 s (%d bytes of replies)", len(got))
	}
	fmt.Printf("closed by the server after %d bytes of replies (%v)\n", len(got), err)
	return nil
}
