// Command bpcp copies files between the master and the nodes of a bproc
// cluster, using nothing but the tree: a remote file is read by running
// cat on its node and written by running a shell's `cat > file` there.
//
//	bpcp [-p] [-r] src... dst
//
// A name `N:path` is on node N (3:/tmp/x, n3:/tmp/x, master:/x), and
// `NODESET:path` on every node of a node set (n[0-3]:/tmp/x, 0-7:/x,
// allup:/x): copies to it go to all those nodes at once (pdcp's job),
// copies from it gather into dst.NODE (rpdcp's). Any other name is local. -p keeps modes and modification times, -r copies
// directories (with tar on both sides).
package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"bproc/client"
	"bproc/cmd/internal/cli"
)

const bufSize = 1 << 20

type options struct {
	preserve, recursive bool
	keyFile             string
}

func main() { cli.Main(run) }

func run(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	// "-1:path" names a file on the master, not an option.
	args = append([]string(nil), args...)
	for i, a := range args {
		if a == "--" {
			break
		}
		if strings.HasPrefix(a, "-1:") {
			args[i] = "master:" + a[3:]
		}
	}
	var o options
	fset := cli.New("bpcp", "[-p] [-r] src... dst", "Copy files; NODE:path names a file on a node (3:/tmp/x), other names are local.", stdout, stderr)
	fset.BoolVarP(&o.preserve, "preserve", "p", false, "keep modes and modification times")
	fset.BoolVarP(&o.recursive, "recursive", "r", false, "copy directories recursively")
	fset.KeyOption(&o.keyFile)
	if code, done := fset.Parse(args); done {
		return code
	}
	if fset.NArg() < 2 {
		return fset.Usage("need a source and a destination")
	}
	var eps []endpoint
	for _, a := range fset.Args() {
		e, err := parseEndpoint(a)
		if err != nil {
			return fset.Usage("%v", err)
		}
		eps = append(eps, e)
	}
	srcs, dst := eps[:len(eps)-1], eps[len(eps)-1]
	var t client.Tree
	needTree := false
	for _, e := range eps {
		needTree = needTree || e.remote
	}
	if needTree {
		var err error
		t, err = client.Connect(client.Options{KeyFile: o.keyFile})
		if err != nil {
			return fset.Fail(err)
		}
		defer t.Close()
	}
	c := &copier{t: t, o: &o}
	if dst.spec != "" {
		for _, s := range srcs {
			if s.spec != "" {
				return fset.Usage("copies from a node set go to one destination, not to %s", dst)
			}
		}
		return c.toNodes(fset, srcs, dst)
	}
	return c.fromNodes(fset, srcs, dst)
}

// parallel is how many nodes a copy to or from a node set works on at once.
const parallel = 16

// expand lists a node set endpoint's nodes.
func (c *copier) expand(e endpoint) ([]int, error) {
	ns, err := client.ParseNodeSpec(e.spec)
	if err != nil {
		return nil, err
	}
	var cluster []client.NodeStatus
	if ns.NeedsList() {
		if cluster, err = client.ListComputeNodes(c.t); err != nil {
			return nil, err
		}
	}
	nodes, err := ns.Resolve(cluster)
	if err == nil && len(nodes) == 0 {
		err = fmt.Errorf("no nodes in %q", e.spec)
	}
	return nodes, err
}

// eachNode runs f for every node, parallel at a time, and returns
// whether all succeeded.
func eachNode(nodes []int, f func(n int) bool) bool {
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := true
	sem := make(chan struct{}, parallel)
	for _, n := range nodes {
		wg.Add(1)
		sem <- struct{}{}
		go func(n int) {
			defer wg.Done()
			defer func() { <-sem }()
			if !f(n) {
				mu.Lock()
				ok = false
				mu.Unlock()
			}
		}(n)
	}
	wg.Wait()
	return ok
}

// toNodes copies the sources to dst's path on every node of its set.
func (c *copier) toNodes(fset *cli.Command, srcs []endpoint, dst endpoint) int {
	nodes, err := c.expand(dst)
	if err != nil {
		return fset.Errorf("%s: %v", dst, err)
	}
	c.startProgress(fset.Stderr, srcs, len(nodes))
	defer c.stopProgress()
	var mu sync.Mutex
	ok := eachNode(nodes, func(n int) bool {
		d := endpoint{remote: true, node: n, path: dst.path}
		return c.copyAll(srcs, d, "", func(err error) {
			mu.Lock()
			defer mu.Unlock()
			c.clearProgress()
			fset.Fail(err)
		})
	})
	if !ok {
		return cli.ExitFail
	}
	return 0
}

// fromNodes copies the sources to dst; a source on a node set is fetched
// from every node of it, into dst.NODE (dst/NAME.NODE when dst is a
// directory).
func (c *copier) fromNodes(fset *cli.Command, srcs []endpoint, dst endpoint) int {
	fail := func(err error) { c.clearProgress(); fset.Fail(err) }
	if len(srcs) > 1 {
		isDir, err := c.isDir(dst)
		if err != nil {
			return fset.Errorf("%s: %v", dst, err)
		}
		if !isDir {
			return fset.Errorf("%s: not a directory (copying several files)", dst)
		}
	}
	c.startProgress(fset.Stderr, srcs, 1)
	defer c.stopProgress()
	code := 0
	for _, s := range srcs {
		if s.spec == "" {
			if !c.copyAll([]endpoint{s}, dst, "", fail) {
				code = cli.ExitFail
			}
			continue
		}
		nodes, err := c.expand(s)
		if err != nil {
			code = fset.Errorf("%s: %v", s, err)
			continue
		}
		isDir, err := c.isDir(dst)
		if err != nil {
			code = fset.Errorf("%s: %v", dst, err)
			continue
		}
		var mu sync.Mutex
		ok := eachNode(nodes, func(n int) bool {
			src := endpoint{remote: true, node: n, path: s.path}
			d, suffix := dst, "."+strconv.Itoa(n)
			if !isDir {
				d.path += suffix
				suffix = ""
			}
			return c.copyAll([]endpoint{src}, d, suffix, func(err error) {
				mu.Lock()
				defer mu.Unlock()
				fail(err)
			})
		})
		if !ok {
			code = cli.ExitFail
		}
	}
	return code
}

// copyAll copies srcs to dst (into it, when several), reporting each
// failure; suffix goes after the name a copy takes in a directory.
func (c *copier) copyAll(srcs []endpoint, dst endpoint, suffix string, fail func(error)) bool {
	if len(srcs) > 1 {
		isDir, err := c.isDir(dst)
		if err != nil {
			fail(fmt.Errorf("%s: %v", dst, err))
			return false
		}
		if !isDir {
			fail(fmt.Errorf("%s: not a directory (copying several files)", dst))
			return false
		}
	}
	ok := true
	for _, s := range srcs {
		if err := c.copy(s, dst, suffix); err != nil {
			fail(err)
			ok = false
		}
	}
	return ok
}

// endpoint is a file name, local or on a node.
type endpoint struct {
	remote bool
	node   int
	path   string
	spec   string // a node set: the endpoint is on each of its nodes
}

func (e endpoint) String() string {
	if e.spec != "" {
		return e.spec + ":" + e.path
	}
	if e.remote {
		return fmt.Sprintf("%d:%s", e.node, e.path)
	}
	return e.path
}

var (
	remoteRe = regexp.MustCompile(`^(-1|n?[0-9]+|master):(.*)$`)
	setRe    = regexp.MustCompile(`^[-0-9a-z\[\],^&.]+$`)
	// shPrefix is what dash puts before its messages ("sh: 2: ").
	shPrefix = regexp.MustCompile(`(?m)^sh: [0-9]+: `)
)

// parseEndpoint reads NODE:path or a local path. A colon after anything
// but a node number is part of a local name.
func parseEndpoint(s string) (endpoint, error) {
	m := remoteRe.FindStringSubmatch(s)
	if m == nil {
		if s == "" {
			return endpoint{}, fmt.Errorf("empty file name")
		}
		if set, p, ok := strings.Cut(s, ":"); ok && setRe.MatchString(set) {
			// A node set; hostnames are not taken, so that a local
			// name with a colon stays local.
			if ns, err := client.ParseNodeSpec(set); err == nil && !ns.HasHostnames() {
				if p == "" {
					return endpoint{}, fmt.Errorf("%q: empty path after the nodes", s)
				}
				return endpoint{remote: true, spec: set, path: p}, nil
			}
		}
		return endpoint{path: s}, nil
	}
	node := client.Master
	if m[1] != "master" {
		n, err := strconv.Atoi(strings.TrimPrefix(m[1], "n"))
		if err != nil {
			return endpoint{}, fmt.Errorf("%q: bad node number", s)
		}
		node = n
	}
	if m[2] == "" {
		return endpoint{}, fmt.Errorf("%q: empty path after the node", s)
	}
	return endpoint{remote: true, node: node, path: m[2]}, nil
}

// copier does the copies of one run.
type copier struct {
	t client.Tree
	o *options
	progress
}

// meta is what -p keeps.
type meta struct {
	mode  fs.FileMode
	mtime int64
	ok    bool
}

// isDir reports whether e is an existing directory.
func (c *copier) isDir(e endpoint) (bool, error) {
	if !e.remote {
		fi, err := os.Stat(e.path)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, errors.New(client.Strerror(client.ErrnoOf(err)))
		}
		return fi.IsDir(), nil
	}
	rp, err := c.start(e.node, []string{"/bin/sh", "-c", `test -d "$1"`, "sh", e.path}, nil)
	if err != nil {
		return false, err
	}
	st, stderr, err := rp.finish()
	if err != nil {
		return false, err
	}
	if st.Kind != client.Exited || st.Code > 1 {
		return false, fmt.Errorf("test -d: %s%s", st.Describe(), stderr)
	}
	return st.Code == 0, nil
}

// copy copies one source to dst, into it when dst is a directory. A file
// is written under a temporary name beside its destination and renamed
// over it only once the whole source has arrived and its reader has ended
// well: a failed copy leaves the destination as it was.
func (c *copier) copy(src, dst endpoint, suffix string) error {
	kind, m, r, done, err := c.openSource(src)
	if err != nil {
		return fmt.Errorf("%s: %v", src, err)
	}
	if kind == 'D' && !c.o.recursive {
		r.Close()
		done()
		return fmt.Errorf("%s: is a directory (use -r)", src)
	}
	base := path.Base(strings.TrimRight(src.path, "/")) + suffix
	cs := &checkedSource{r: c.counted(r), done: done}
	werr := c.writeDest(dst, base, kind, m, cs)
	if werr != nil {
		// Nobody reads the rest: stop the source instead of leaving it
		// blocked on a full stream.
		if k, ok := r.(interface{ Kill() }); ok {
			k.Kill()
		}
	}
	r.Close()
	rerr := cs.finish()
	if rerr != nil {
		return fmt.Errorf("%s: %v", src, rerr)
	}
	if werr != nil {
		return fmt.Errorf("%s: %v", dst, werr)
	}
	return nil
}

// checkedSource is a source that reaches EOF only once its reader (a cat
// or tar on a node, a local tar) has ended well; otherwise the reader's
// error comes instead, and the writer does not commit.
type checkedSource struct {
	r       io.Reader
	done    func() error
	once    sync.Once
	err     error
	readErr error // a local source's read error, the source's fault
}

func (s *checkedSource) Read(b []byte) (int, error) {
	n, err := s.r.Read(b)
	if err == io.EOF {
		if ferr := s.finish(); ferr != nil {
			return n, ferr
		}
	} else if err != nil && s.readErr == nil {
		s.readErr = err
	}
	return n, err
}

// finish waits for the source's reader, once; the writer is done with
// Read by then.
func (s *checkedSource) finish() error {
	s.once.Do(func() { s.err = s.done() })
	if s.err == nil && s.readErr != nil {
		var pe *fs.PathError
		if errors.As(s.readErr, &pe) {
			return errors.New(client.Strerror(client.ErrnoOf(s.readErr)))
		}
		return s.readErr
	}
	return s.err
}

// Remote scripts. $1 is always the path; cat and tar do the copying.
const (
	// readScript says what $1 is on a first line ("F MODE MTIME" or "D"),
	// then sends the file, or the directory as a tar stream.
	readScript = `if [ -d "$1" ]; then echo D; exec tar -cf - -C "$1" .; fi
s=$(stat -L -c '%a %Y' -- "$1") || exit 1
[ -r "$1" ] || { cat -- "$1"; exit 1; }
echo "F $s"; exec cat -- "$1"`
	// writeScript writes stdin to $1, or to $1/$2 when $1 is a directory,
	// through a temporary file renamed over it. stdin must end with $3, a
	// random token bpcp sends only once its source has ended well: a
	// source that failed, or a bpcp that died, leaves the file as it was.
	// $4, when set, is "MODE MTIME" to apply; else an existing file keeps
	// its mode.
	writeScript = `f="$1"; [ -d "$f" ] && f="$f/$2"
[ -L "$f" ] && f=$(readlink -f -- "$f")
case $f in */*) d=${f%/*} ;; *) d=. ;; esac
t=$(mktemp "$d/.${f##*/}.bpcp-XXXXXX" 2>&1) || { echo "${t##*: }" >&2; exit 1; }
trap 'rm -f -- "$t"' EXIT
cat > "$t" || exit 1
[ "$(tail -c ${#3} -- "$t")" = "$3" ] || { echo "the copy was cut short" >&2; exit 1; }
dd if=/dev/null of="$t" bs=1 seek=$(($(wc -c <"$t") - ${#3})) 2>/dev/null || exit 1
if [ -n "$4" ]; then set -- "$t" $4; chmod "$2" "$1" && touch -m -d "@$3" "$1" || exit 1
elif [ -e "$f" ]; then chmod "$(stat -L -c %a -- "$f")" "$t" && { chown "$(stat -L -c %u:%g -- "$f")" "$t" 2>/dev/null; true; } || exit 1
else chmod "$(printf %o $((0666 & ~$(umask))))" "$t" || exit 1; fi
mv -f -- "$t" "$f" && trap - EXIT`
	// writeDirScript unpacks a tar stream into $1, or into $1/$2 when $1
	// is an existing directory.
	writeDirScript = `d="$1"; [ -d "$d" ] && d="$d/$2"
mkdir -p "$d" && exec tar -xpf - -C "$d"`
)

// openSource starts reading src. kind is 'F' for a file, 'D' for a
// directory (r is then a tar stream). done waits for the reader and
// returns its error.
func (c *copier) openSource(src endpoint) (kind byte, m meta, r io.ReadCloser, done func() error, err error) {
	if !src.remote {
		return c.openLocal(src.path)
	}
	if !c.o.preserve && !c.o.recursive {
		// The plain case: cat, nothing else.
		rp, err := c.start(src.node, []string{"/bin/cat", "--", src.path}, nil)
		if err != nil {
			return 0, meta{}, nil, nil, err
		}
		return 'F', meta{}, &procReader{rp.out, rp.out, rp}, rp.wait, nil
	}
	rp, err := c.start(src.node, []string{"/bin/sh", "-c", readScript, "sh", src.path}, nil)
	if err != nil {
		return 0, meta{}, nil, nil, err
	}
	br := bufio.NewReaderSize(rp.out, 4096)
	line, lerr := br.ReadString('\n')
	if lerr != nil {
		rp.out.Close()
		if werr := rp.wait(); werr != nil {
			return 0, meta{}, nil, nil, werr
		}
		return 0, meta{}, nil, nil, fmt.Errorf("no header from the node: %v", lerr)
	}
	f := strings.Fields(line)
	rc := &procReader{io.MultiReader(br, rp.out), rp.out, rp}
	switch {
	case len(f) == 1 && f[0] == "D":
		return 'D', meta{}, rc, rp.wait, nil
	case len(f) == 3 && f[0] == "F":
		mode, err1 := strconv.ParseUint(f[1], 8, 32)
		mt, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 == nil && err2 == nil {
			return 'F', meta{mode: fs.FileMode(mode) & fs.ModePerm, mtime: mt, ok: true}, rc, rp.wait, nil
		}
	}
	rp.out.Close()
	rp.wait()
	return 0, meta{}, nil, nil, fmt.Errorf("bad header %q from the node", strings.TrimSpace(line))
}

// procReader is a remote process's output; Kill stops the process.
type procReader struct {
	io.Reader
	io.Closer
	rp *remoteProc
}

func (r *procReader) Kill() { r.rp.p.Kill(syscall.SIGKILL) }

func (c *copier) openLocal(p string) (byte, meta, io.ReadCloser, func() error, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, meta{}, nil, nil, errors.New(client.Strerror(client.ErrnoOf(err)))
	}
	m := meta{mode: fi.Mode().Perm(), mtime: fi.ModTime().Unix(), ok: true}
	if fi.IsDir() {
		if !c.o.recursive {
			return 'D', m, io.NopCloser(strings.NewReader("")), func() error { return nil }, nil
		}
		cmd := exec.Command("tar", "-cf", "-", "-C", p, ".")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return 0, meta{}, nil, nil, err
		}
		if err := cmd.Start(); err != nil {
			return 0, meta{}, nil, nil, fmt.Errorf("starting tar: %v", err)
		}
		return 'D', m, out, func() error {
			if err := cmd.Wait(); err != nil {
				return fmt.Errorf("tar: %v %s", err, strings.TrimSpace(stderr.String()))
			}
			return nil
		}, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return 0, meta{}, nil, nil, errors.New(client.Strerror(client.ErrnoOf(err)))
	}
	return 'F', m, f, func() error { return nil }, nil
}

// writeDest writes r to dst (or dst/base when dst is a directory).
func (c *copier) writeDest(dst endpoint, base string, kind byte, m meta, r io.Reader) error {
	if !dst.remote {
		if kind == 'D' {
			return writeLocalDir(dst.path, base, c.o.preserve, r)
		}
		return c.writeLocalFile(dst.path, base, m, r)
	}
	var argv []string
	if kind == 'D' {
		argv = []string{"/bin/sh", "-c", writeDirScript, "sh", dst.path, base}
	} else {
		// What ends the data: 26 random base32 letters and digits.
		tok := rand.Text()
		argv = []string{"/bin/sh", "-c", writeScript, "sh", dst.path, base, tok}
		if c.o.preserve && m.ok {
			argv = append(argv, fmt.Sprintf("%o %d", m.mode, m.mtime))
		}
		// The token follows the data only if the source ended well (a
		// checkedSource fails its last read otherwise).
		r = io.MultiReader(r, strings.NewReader(tok))
	}
	rp, err := c.start(dst.node, argv, r)
	if err != nil {
		return err
	}
	return rp.wait()
}

// writeLocalFile writes r to a temporary file beside the destination and
// renames it over the destination once r has ended well. The file gets
// the source's mode with -p, else the existing destination's mode and
// owner (as far as we may), else 0666 less the umask.
func (c *copier) writeLocalFile(dst, base string, m meta, r io.Reader) error {
	target := dst
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		target = filepath.Join(dst, base)
	}
	// Through a symlink, as cp writes: replace what it points to.
	if real, err := filepath.EvalSymlinks(target); err == nil {
		target = real
	}
	f, err := createBeside(target)
	if err != nil {
		return errors.New(client.Strerror(client.ErrnoOf(err)))
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	_, cerr := client.Copy(f, r, bufSize)
	if cerr != nil {
		return cerr
	}
	if c.o.preserve && m.ok {
		if err := f.Chmod(m.mode); err != nil {
			return err
		}
	} else if fi, err := os.Stat(target); err == nil {
		if err := f.Chmod(fi.Mode().Perm()); err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			f.Chown(int(st.Uid), int(st.Gid)) // only root may give a file away
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if c.o.preserve && m.ok {
		mt := time.Unix(m.mtime, 0)
		if err := os.Chtimes(f.Name(), time.Now(), mt); err != nil {
			return err
		}
	}
	if err := os.Rename(f.Name(), target); err != nil {
		return errors.New(client.Strerror(client.ErrnoOf(err)))
	}
	committed = true
	return nil
}

// createBeside creates a new file in target's directory, named after it,
// with mode 0666 less the umask (os.CreateTemp's files are 0600).
func createBeside(target string) (*os.File, error) {
	dir, name := filepath.Split(target)
	for {
		p := filepath.Join(dir, "."+name+".bpcp-"+rand.Text())
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
}

func writeLocalDir(dst, base string, preserve bool, r io.Reader) error {
	target := dst
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		target = filepath.Join(dst, base)
	}
	if err := os.MkdirAll(target, 0o777); err != nil {
		return errors.New(client.Strerror(client.ErrnoOf(err)))
	}
	args := []string{"-xf", "-", "-C", target}
	if preserve {
		args = append([]string{"-p"}, args...)
	}
	cmd := exec.Command("tar", args...)
	cmd.Stdin = r
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("tar: %v %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// remoteProc is a command running on a node for bpcp.
type remoteProc struct {
	p      *client.Proc
	out    io.ReadCloser
	stderr *bytes.Buffer
	path   string // the file it works on, to shorten its messages
	wg     sync.WaitGroup
	inErr  error
}

// start runs argv on node; stdin (nil: /dev/null) is fed to it.
func (c *copier) start(node int, argv []string, stdin io.Reader) (*remoteProc, error) {
	p, err := client.Exec(c.t, node, argv, client.ExecOptions{NullStdin: stdin == nil, NoLookPath: true})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !errors.As(err, new(*client.ExecError)) {
			return nil, fmt.Errorf("node %d: no such node", node)
		}
		return nil, fmt.Errorf("node %d: %v", node, err)
	}
	rp := &remoteProc{p: p, stderr: &bytes.Buffer{}, path: argv[len(argv)-1]}
	if len(argv) > 4 {
		rp.path = argv[4] // the scripts' $1
	}
	out, err := p.Stdout()
	if err != nil {
		p.Kill(syscall.SIGKILL)
		return nil, fmt.Errorf("node %d: opening stdout: %s", node, client.ErrText(err))
	}
	rp.out = out
	rp.wg.Add(1)
	go func() {
		defer rp.wg.Done()
		e, err := p.Stderr()
		if err != nil {
			return
		}
		defer e.Close()
		io.Copy(rp.stderr, io.LimitReader(e, 64<<10))
		io.Copy(io.Discard, e)
	}()
	if stdin != nil {
		rp.wg.Add(1)
		go func() {
			defer rp.wg.Done()
			client.BlockInterrupts()
			w, err := p.Stdin()
			if err != nil {
				rp.inErr = err
				return
			}
			if _, err := client.Copy(w, stdin, bufSize); err != nil && !errors.Is(err, syscall.EPIPE) {
				rp.inErr = err
			}
			w.Close()
		}()
	}
	return rp, nil
}

// finish waits for the process and returns how it ended and its stderr.
func (rp *remoteProc) finish() (client.Status, string, error) {
	if rp.out != nil {
		io.Copy(io.Discard, rp.out)
		rp.out.Close()
	}
	st, err := rp.p.Wait()
	rp.wg.Wait()
	msg := strings.TrimSpace(rp.stderr.String())
	if msg != "" {
		msg = ": " + msg
	}
	return st, msg, err
}

// wait is finish for copies: any failure is an error with the node's
// text, its "prog: PATH: " prefix taken off.
func (rp *remoteProc) wait() error {
	st, msg, err := rp.finish()
	if err != nil {
		return fmt.Errorf("waiting: %s", client.ErrText(err))
	}
	if !st.Success() {
		msg = shPrefix.ReplaceAllString(strings.TrimPrefix(msg, ": "), "")
		if i := strings.Index(msg, ": "+rp.path+": "); i >= 0 && !strings.Contains(msg[:i], "\n") {
			msg = msg[i+len(rp.path)+4:]
		} else if i := strings.Index(msg, "'"+rp.path+"': "); i >= 0 && !strings.Contains(msg[:i], "\n") {
			msg = msg[i+len(rp.path)+4:]
		}
		if msg == "" {
			msg = st.Describe()
		}
		return errors.New(msg)
	}
	if rp.inErr != nil {
		return fmt.Errorf("sending data: %s", client.ErrText(rp.inErr))
	}
	return nil
}
