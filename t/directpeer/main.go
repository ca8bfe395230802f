// directpeer is the tests' and benchmarks' other end of a direct stream:
//
//	directpeer use FILE             use the proc/PID/direct line in FILE: stdout and stderr to ours
//	directpeer stranger ADDR DATA   send DATA to a data port, print its answer
//	directpeer serve ADDR           (bench) send what each client asks for: BYTES, plain or sealed
//	directpeer get ADDR BYTES [seal] (bench) ask serve for BYTES and read them
//
// serve/get are the peers of `bpsh N cat`: raw TCP between two namespaces,
// and the same with AES-128-GCM frames (srv's sealing) over it.
package main

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"bproc/client"
	"bproc/fs/slaveproto"
	"bproc/srv"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: directpeer use FILE | stranger ADDR DATA | serve ADDR | get ADDR BYTES [seal]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "use":
		err = use(os.Args[2])
	case "stranger":
		err = stranger(os.Args[2], strings.ReplaceAll(os.Args[3], `\n`, "\n"))
	case "serve":
		err = serve(os.Args[2])
	case "get":
		n, _ := strconv.ParseInt(os.Args[3], 10, 64)
		err = get(os.Args[2], n, len(os.Args) > 4 && os.Args[4] == "seal")
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "directpeer:", err)
		os.Exit(1)
	}
}

func use(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	d, err := slaveproto.ParseDirect(string(b))
	if err != nil {
		return err
	}
	ds, err := client.DialDirect(d)
	if err != nil {
		return err
	}
	o, _ := ds.Stdout()
	e, _ := ds.Stderr()
	var wg sync.WaitGroup
	var errs [2]error
	wg.Add(2)
	go func() { defer wg.Done(); _, errs[0] = io.Copy(os.Stdout, o) }()
	go func() { defer wg.Done(); _, errs[1] = io.Copy(os.Stderr, e) }()
	wg.Wait()
	if errs[0] != nil {
		return errs[0]
	}
	return errs[1]
}

// stranger prints the data port's answer and how long it took.
func stranger(addr, data string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	t0 := time.Now()
	if data != "" {
		c.Write([]byte(data))
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	b, _ := io.ReadAll(c)
	if len(b) > 2 {
		b = b[2:] // code, length
	}
	fmt.Printf("%s\n%d ms\n", b, time.Since(t0).Milliseconds())
	return nil
}

// serve: each client sends a key[16], nonces[2x32], sealed[1], bytes[8];
// serve sends that many bytes from memory.
func serve(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	rand.Read(buf)
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			var req [16 + 64 + 1 + 8]byte
			if _, err := io.ReadFull(c, req[:]); err != nil {
				return
			}
			var w io.Writer = c
			if req[80] == 1 {
				sc, err := srv.SealStream(c, req[:16], req[16:48], req[48:80], false)
				if err != nil {
					return
				}
				w = sc
			}
			for left := int64(binary.BigEndian.Uint64(req[81:])); left > 0; {
				k := min(left, int64(len(buf)))
				if _, err := w.Write(buf[:k]); err != nil {
					return
				}
				left -= k
			}
		}()
	}
}

func get(addr string, n int64, seal bool) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	var req [16 + 64 + 1 + 8]byte
	rand.Read(req[:80])
	if seal {
		req[80] = 1
	}
	binary.BigEndian.PutUint64(req[81:], uint64(n))
	if _, err := c.Write(req[:]); err != nil {
		return err
	}
	var r io.Reader = bufio.NewReaderSize(c, 1<<20)
	if seal {
		if r, err = srv.SealStream(c, req[:16], req[16:48], req[48:80], true); err != nil {
			return err
		}
	}
	got, err := io.CopyBuffer(io.Discard, io.LimitReader(r, n), make([]byte, 1<<20))
	if err == nil && got != n {
		err = fmt.Errorf("got %d bytes of %d", got, n)
	}
	return err
}
