// directpeer is the tests' and benchmarks' other end of a direct stream:
//
//	directpeer use FILE             use the proc/PID/direct line in FILE: stdout and stderr to ours
//	directpeer stranger ADDR DATA   send DATA to a data port, print its answer
//	directpeer serve ADDR [FILE]    (bench) send what each client asks for: BYTES, plain or sealed, or FILE through cat
//	directpeer get ADDR BYTES [seal|pipe|sealpipe] (bench) ask serve for BYTES and read them
//
// serve/get are the peers of `bpsh N cat`: raw TCP between two namespaces,
// and the same with AES-128-GCM frames (srv's sealing) over it. With pipe
// (sealpipe), serve sends FILE as `cat FILE` writes it into a pipe (and
// seals each read of it): the hop every job's output takes to its slave,
// which the other peers leave out.
package main

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"bproc/client"
	"bproc/fs/slaveproto"
	"bproc/srv"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: directpeer use FILE | stranger ADDR DATA | serve ADDR [FILE] | get ADDR BYTES [seal|pipe|sealpipe]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "use":
		err = use(os.Args[2])
	case "stranger":
		err = stranger(os.Args[2], strings.ReplaceAll(os.Args[3], `\n`, "\n"))
	case "serve":
		file := ""
		if len(os.Args) > 3 {
			file = os.Args[3]
		}
		err = serve(os.Args[2], file)
	case "get":
		n, _ := strconv.ParseInt(os.Args[3], 10, 64)
		mode := byte(0)
		if len(os.Args) > 4 {
			mode = map[string]byte{"seal": 1, "pipe": 2, "sealpipe": 3}[os.Args[4]]
		}
		err = get(os.Args[2], n, mode)
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

// serve: each client sends a key[16], nonces[2x32], mode[1], bytes[8];
// serve sends that many bytes from memory (mode 0 plain, 1 sealed), or
// file's first bytes as cat writes them into a pipe (mode 2; 3 sealed).
func serve(addr, file string) error {
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
			n := int64(binary.BigEndian.Uint64(req[81:]))
			if req[80] == 2 {
				servePipe(c, file, n)
				return
			}
			var w io.Writer = c
			if req[80] == 1 || req[80] == 3 {
				sc, err := srv.SealStream(c, req[:16], req[16:48], req[48:80], false)
				if err != nil {
					return
				}
				w = sc
			}
			if req[80] == 3 {
				serveSealedPipe(w, file, n)
				return
			}
			for left := n; left > 0; {
				k := min(left, int64(len(buf)))
				if _, err := w.Write(buf[:k]); err != nil {
					return
				}
				left -= k
			}
		}()
	}
}

// catPipe starts `cat file` writing into a pipe of the size a job's stdout
// has (job/spawn.go) and gives its read end; wait closes it and reaps cat.
func catPipe(file string) (*os.File, func(), error) {
	cmd := exec.Command("cat", file)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	pr := out.(*os.File)
	unix.FcntlInt(pr.Fd(), unix.F_SETPIPE_SZ, 1<<20)
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	return pr, func() { pr.Close(); cmd.Wait() }, nil
}

// servePipe sends n bytes of file as cat writes them into a pipe, spliced
// from the pipe to the socket as bpslave does with seal no.
func servePipe(c net.Conn, file string, n int64) {
	pr, wait, err := catPipe(file)
	if err != nil {
		return
	}
	defer wait()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return
	}
	rc.Write(func(sock uintptr) bool {
		for n > 0 {
			k, err := unix.Splice(int(pr.Fd()), nil, int(sock), nil, int(min(n, 1<<20)), unix.SPLICE_F_MOVE)
			if err == unix.EAGAIN {
				return false // the socket is full: wait for it
			}
			if err != nil || k == 0 {
				return true
			}
			n -= k
		}
		return true
	})
}

// serveSealedPipe sends n bytes of file as cat writes them into a pipe,
// each read of the pipe (into one buffer) written to w, a sealed stream:
// what bpslave's sealed direct stream does (job/splice.go, sealOut).
func serveSealedPipe(w io.Writer, file string, n int64) {
	pr, wait, err := catPipe(file)
	if err != nil {
		return
	}
	defer wait()
	buf := make([]byte, 1<<20-8<<10) // the slave's ioBuf
	for n > 0 {
		k, err := pr.Read(buf[:min(n, int64(len(buf)))])
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return
			}
			n -= int64(k)
		}
		if err != nil {
			return
		}
	}
}

func get(addr string, n int64, mode byte) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	var req [16 + 64 + 1 + 8]byte
	rand.Read(req[:80])
	req[80] = mode
	seal := mode == 1 || mode == 3
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
