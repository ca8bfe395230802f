package pspace

import (
	"cmp"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"bproc/fs/slaveproto"
	"bproc/fs/synth"

	"golang.org/x/sys/unix"
)

// The library cache: a dynamically linked binary needs its ELF
// interpreter and the closure of its DT_NEEDED libraries. The master
// resolves them as the dynamic linker would on the master, as the writer
// (a library the writer cannot reach or read is not shipped), ships each
// through the spool like the binary, and the slave fetches those the node
// lacks (job/libs.go). Search order, per object, as glibc's:
//
//   - a name with a slash: that path;
//   - DT_RPATH of the object and of the executable, when the object has no DT_RUNPATH;
//   - the job's LD_LIBRARY_PATH;
//   - DT_RUNPATH of the object;
//   - the directories of /etc/ld.so.conf (and its includes);
//   - the default directories, multiarch first.
//
// $ORIGIN (the object's directory; the executable's real one) is
// expanded; entries with $LIB or $PLATFORM, hwcaps subdirectories,
// LD_PRELOAD and dlopen'ed libraries are not handled. A candidate of
// another ELF class or machine is passed over, as ld.so does. A library
// not found on the master is left for the node to have.

// libWait bounds how long the libraries of one exec wait for room in
// the spool.
const libWait = 5 * time.Second

// maxLibs bounds the closure one exec may ship.
const maxLibs = 512

// elfDeps is what the dynamic linker reads of an ELF file.
type elfDeps struct {
	class   elf.Class
	machine elf.Machine
	interp  string
	needed  []string
	rpath   []string
	runpath []string
}

// readDeps parses what r holds; nil without error when it is not ELF
// (a script). It
// meets users' bytes: debug/elf errors are errors, and a panic in it is
// one too.
func readDeps(r io.ReaderAt) (d *elfDeps, err error) {
	defer func() {
		if p := recover(); p != nil {
			d, err = nil, fmt.Errorf("malformed ELF: %v", p)
		}
	}()
	var magic [4]byte
	if _, err := r.ReadAt(magic[:], 0); err != nil || string(magic[:]) != elf.ELFMAG {
		return nil, nil
	}
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("malformed ELF: %w", err)
	}
	d = &elfDeps{class: f.Class, machine: f.Machine}
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		if p.Filesz > 4096 {
			return nil, fmt.Errorf("malformed ELF: an interpreter path of %d bytes", p.Filesz)
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return nil, fmt.Errorf("malformed ELF: reading its interpreter: %w", err)
		}
		d.interp, _, _ = strings.Cut(string(b), "\x00")
	}
	if f.Section(".dynamic") != nil || d.interp != "" {
		// Errors here mean no dynamic section: nothing needed.
		d.needed, _ = f.DynString(elf.DT_NEEDED)
		for _, s := range dynStrings(f, elf.DT_RPATH) {
			d.rpath = append(d.rpath, filepath.SplitList(s)...)
		}
		for _, s := range dynStrings(f, elf.DT_RUNPATH) {
			d.runpath = append(d.runpath, filepath.SplitList(s)...)
		}
	}
	return d, nil
}

// fileID is a file's identity and version: device, inode, size, mtime and
// ctime (ns). A change to its bytes moves its mtime or ctime (which no user
// can set back), a replacement its inode.
type fileID [5]int64

func idOf(st *syscall.Stat_t) fileID {
	return fileID{int64(st.Dev), int64(st.Ino), st.Size, st.Mtim.Nano(), st.Ctim.Nano()}
}

// depsCache keeps what readDeps found in each version of a file, so a
// launch does not parse its binary and every library again (it was a
// sixth of the master's CPU per launch). The search itself still runs
// each time, as the caller: who may read what, and which file a name
// finds, can change at any time.
var depsCache = struct {
	sync.Mutex
	m      map[fileID]*elfDeps // nil value: not ELF
	parsed int                 // files parsed: tests count them
}{m: map[fileID]*elfDeps{}}

// depsRacy is how long a file must have been unchanged for its parse to
// be kept; a variable for tests.
var depsRacy = 2 * time.Second

// depsCacheMax bounds the cache; past it, it starts again empty.
const depsCacheMax = 4096

// cachedDeps is readDeps of f (whose stat is st), from the cache when this
// version of the file was read before. The result is shared: read only.
func cachedDeps(f *os.File, st *syscall.Stat_t) (*elfDeps, error) {
	id := idOf(st)
	depsCache.Lock()
	d, ok := depsCache.m[id]
	depsCache.Unlock()
	if ok {
		return d, nil
	}
	d, err := readDeps(f)
	depsCache.Lock()
	depsCache.parsed++
	depsCache.Unlock()
	if err != nil {
		return nil, err // not kept: an error is rare, and reported each time
	}
	// A file changed within the clock's granularity of its last change
	// may change again without a new ctime: not kept until it has been
	// still for a while (git's racy-file rule).
	if time.Since(time.Unix(st.Ctim.Unix())) < depsRacy {
		return d, nil
	}
	depsCache.Lock()
	if len(depsCache.m) >= depsCacheMax {
		depsCache.m = map[fileID]*elfDeps{}
	}
	depsCache.m[id] = d
	depsCache.Unlock()
	return d, nil
}

func dynStrings(f *elf.File, tag elf.DynTag) []string {
	s, _ := f.DynString(tag)
	return s
}

// multiarch names the Debian multiarch directory of a machine.
var multiarch = map[elf.Machine]string{
	elf.EM_X86_64:  "x86_64-linux-gnu",
	elf.EM_AARCH64: "aarch64-linux-gnu",
	elf.EM_386:     "i386-linux-gnu",
	elf.EM_ARM:     "arm-linux-gnueabihf",
	elf.EM_PPC64:   "powerpc64le-linux-gnu",
	elf.EM_RISCV:   "riscv64-linux-gnu",
	elf.EM_S390:    "s390x-linux-gnu",
}

// defaultDirs are the linker's own directories for a binary like d.
func defaultDirs(d *elfDeps) []string {
	var dirs []string
	if m := multiarch[d.machine]; m != "" {
		dirs = append(dirs, "/lib/"+m, "/usr/lib/"+m)
	}
	if d.class == elf.ELFCLASS64 {
		dirs = append(dirs, "/lib64", "/usr/lib64")
	}
	return append(dirs, "/lib", "/usr/lib")
}

// ldConfDirs reads the directories of an ld.so.conf and its includes
// (globs, relative to the file's directory), at most depth deep.
func ldConfDirs(path string, depth int) []string {
	var rec confRecorder
	return readConfDirs(path, depth, &rec)
}

// confRecorder notes what a reading of ld.so.conf depended on
// (libcache.go); keep false when it cannot tell.
type confRecorder struct {
	deps   []seen
	noKeep bool
}

func (rec *confRecorder) note(path string) {
	rec.deps = append(rec.deps, seen{path, statOf(path)})
}

func readConfDirs(path string, depth int, rec *confRecorder) []string {
	if depth > 8 {
		rec.noKeep = true
		return nil
	}
	rec.note(path) // before the read: a change after it is seen next time
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var dirs []string
	for _, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' || r == ':' || r == '=' })
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "include":
			for _, g := range f[1:] {
				if !filepath.IsAbs(g) {
					g = filepath.Join(filepath.Dir(path), g)
				}
				if d := globDir(g); d != "" {
					rec.note(d)
				} else {
					rec.noKeep = true
				}
				matches, _ := filepath.Glob(g)
				for _, m := range matches {
					dirs = append(dirs, readConfDirs(m, depth+1, rec)...)
				}
			}
		case "hwcap":
		default:
			for _, d := range f {
				if filepath.IsAbs(d) {
					dirs = append(dirs, d)
				}
			}
		}
	}
	return dirs
}

// ldConf is the master's /etc/ld.so.conf; a variable for tests.
var ldConf = "/etc/ld.so.conf"

// libObject is one resolved file: where it is on the master, what it needs.
type libObject struct {
	path string
	deps *elfDeps
}

// libResolver finds a binary's closure as one caller.
type libResolver struct {
	exe       *libObject
	ldLibPath []string
	conf      []string
	record    bool   // note each path probed, with its stat, in probed
	probed    []seen // (libcache.go)
}

// expand substitutes $ORIGIN in a search entry; "" for one it cannot take.
func expand(entry, origin string) string {
	entry = strings.ReplaceAll(entry, "${ORIGIN}", origin)
	entry = strings.ReplaceAll(entry, "$ORIGIN", origin)
	if strings.Contains(entry, "$") || !filepath.IsAbs(entry) {
		return ""
	}
	return entry
}

// dirs lists where a name needed by obj is looked for.
func (r *libResolver) dirs(obj *libObject) []string {
	var dirs []string
	add := func(entries []string, origin string) {
		for _, e := range entries {
			if e = expand(e, origin); e != "" {
				dirs = append(dirs, e)
			}
		}
	}
	if len(obj.deps.runpath) == 0 {
		add(obj.deps.rpath, filepath.Dir(obj.path))
		if obj != r.exe {
			add(r.exe.deps.rpath, filepath.Dir(r.exe.path))
		}
	}
	add(r.ldLibPath, "")
	add(obj.deps.runpath, filepath.Dir(obj.path))
	dirs = append(dirs, r.conf...)
	return append(dirs, defaultDirs(r.exe.deps)...)
}

// probe opens path as it stands (the caller's credentials are this
// thread's) and parses it; nil when it is not a library the executable
// could load.
func (r *libResolver) probe(path string) *elfDeps {
	if r.record {
		// Before the open: a change after it is seen next time.
		r.probed = append(r.probed, seen{path, statOf(path)})
	}
	fd, err := unix.Openat2(unix.AT_FDCWD, path, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Size > maxBinary {
		return nil
	}
	d, err := cachedDeps(f, &st)
	if err != nil || d == nil || d.class != r.exe.deps.class || d.machine != r.exe.deps.machine {
		return nil
	}
	return d
}

// closure resolves what the executable needs, breadth first as ld.so
// loads: the interpreter first, then each library once.
func (r *libResolver) closure() []slaveproto.Lib {
	var libs []slaveproto.Lib
	if r.exe.deps.interp != "" {
		libs = append(libs, slaveproto.Lib{Path: r.exe.deps.interp, Interp: true})
	}
	seenName, seenPath := map[string]bool{}, map[string]bool{r.exe.deps.interp: true}
	queue := []*libObject{r.exe}
	for len(queue) > 0 && len(libs) < maxLibs {
		obj := queue[0]
		queue = queue[1:]
		for _, name := range obj.deps.needed {
			if name == "" || seenName[name] {
				continue
			}
			seenName[name] = true
			cands := []string{name}
			if !strings.Contains(name, "/") {
				cands = nil
				for _, d := range r.dirs(obj) {
					cands = append(cands, filepath.Join(d, name))
				}
			}
			for _, p := range cands {
				if !filepath.IsAbs(p) {
					continue
				}
				d := r.probe(p)
				if d == nil {
					continue
				}
				if !seenPath[p] {
					seenPath[p] = true
					libs = append(libs, slaveproto.Lib{Path: p})
					queue = append(queue, &libObject{path: p, deps: d})
				}
				break
			}
		}
	}
	return libs
}

// resolveLibs lists what the binary at path (spooled as spooled) needs
// on a node, searched as caller c with the job's environment.
func resolveLibs(path, spooled string, env []string, c *synth.Caller) ([]slaveproto.Lib, error) {
	d, err := depsOfFile(spooled)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	id := statOf(spooled)
	return resolveWith(path, fmt.Sprint(id), d, env, c)
}

// depsOfFile is cachedDeps of the file at path.
func depsOfFile(path string) (*elfDeps, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading its copy: %w", err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err = syscall.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("its copy: %w", err)
	}
	return cachedDeps(f, &st)
}

// resolveWith lists what the binary at path needs, d being its parse
// and exe naming its version (its hash), searched as caller c with the
// job's environment; the closure comes from the cache while nothing it
// depends on changed (libcache.go).
func resolveWith(path, exe string, d *elfDeps, env []string, c *synth.Caller) ([]slaveproto.Lib, error) {
	if d == nil || d.interp == "" {
		return nil, nil // a script, a static binary or a broken one: left to the node
	}
	r := &libResolver{exe: &libObject{path: path, deps: d}, conf: cachedConfDirs(ldConf)}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "LD_LIBRARY_PATH="); ok {
			r.ldLibPath = strings.FieldsFunc(v, func(r rune) bool { return r == ':' || r == ';' })
		}
	}
	var libs []slaveproto.Lib
	err := asCaller(c, func() error {
		// $ORIGIN of the executable is its real directory (ld.so reads
		// /proc/self/exe): looked up only when its search path uses it.
		real := ""
		if usesOrigin(d.rpath) || usesOrigin(d.runpath) {
			if p, err := filepath.EvalSymlinks(path); err == nil {
				r.exe.path, real = p, p
			}
		}
		libs = cachedClosure(newClosureKey(exe, r, real, c), r)
		return nil
	})
	return libs, err
}

func usesOrigin(entries []string) bool {
	return slices.ContainsFunc(entries, func(e string) bool { return strings.Contains(e, "$") })
}

// openReadable opens a library as caller c: a regular file c may read,
// and for a user's job one everyone may read.
func openReadable(path string, c *synth.Caller) (*os.File, binID, error) {
	return openShippable(path, c, func(st *syscall.Stat_t) error {
		switch {
		case !c.Root() && !readBit(c, st.Mode, st.Uid, st.Gid):
			return fmt.Errorf("%s: %w", path, syscall.EACCES)
		case !c.Root() && st.Mode&0o444 != 0o444:
			// The node's cache is shared by its users: a library not
			// everyone may read is kept there 0711, which the dynamic
			// linker (reading it as the job's user) cannot load. Root's
			// jobs can.
			return fmt.Errorf("%s: not readable by everyone, so not shipped for a user's job: %w", path, syscall.EACCES)
		}
		return nil
	})
}

// spooledPath is where the spool keeps the binary with that hash.
func (b *binCache) spooledPath(hash string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return filepath.Join(b.dir, hash)
}

// loadLibs spools what the binary of lease bin (at path) needs and
// returns it for the start message, with the leases to release once the
// job has started. A library that cannot be read or spooled is left out
// (the node may have it; if not, its dynamic linker says which is
// missing); a cancelled exec or a master shutting down is an error.
func (m *Master) loadLibs(ctx context.Context, path string, bin *binLease, env []string, c *synth.Caller) ([]slaveproto.Lib, []*binLease, error) {
	d, err := m.bins.depsOf(bin)
	if err != nil {
		return nil, nil, nil
	}
	libs, err := resolveWith(path, bin.hash, d, env, c)
	if err != nil || len(libs) == 0 {
		return nil, nil, nil
	}
	var out []slaveproto.Lib
	var leases []*binLease
	// A spool full of what starting jobs hold is waited for a little,
	// not the binary's whole while: the job may well run without.
	lctx, cancel := context.WithTimeout(ctx, libWait)
	defer cancel()
	for _, l := range libs {
		lease, err := m.bins.loadWith(lctx, l.Path, c, openReadable)
		if ctx.Err() != nil || errors.Is(err, syscall.ESHUTDOWN) {
			m.bins.releaseAll(leases)
			if err == nil {
				m.bins.release(lease)
			}
			return nil, nil, fmt.Errorf("shipping the libraries of %s: %w", path, cmp.Or(err, error(syscall.EINTR)))
		}
		if err != nil {
			continue
		}
		leases = append(leases, lease)
		l.Hash, l.Size, l.Public = lease.hash, lease.size, lease.public
		out = append(out, l)
	}
	return out, leases, nil
}

func (b *binCache) releaseAll(leases []*binLease) {
	for _, l := range leases {
		b.release(l)
	}
}
