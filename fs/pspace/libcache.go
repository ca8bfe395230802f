package pspace

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"bproc/fs/slaveproto"
	"bproc/fs/synth"

	"golang.org/x/sys/unix"
)

// What a launch resolves is kept for the next one, checked by stat-level
// keys (fileID: device, inode, size, mtime, ctime) so that any change is
// seen: reading ld.so.conf and its includes, and probing every candidate
// path of every library, was most of the master's own work per launch.
//
//   - ld.so.conf: the directories it names, kept with the stat of every
//     file read and of every directory an include globbed; any of them
//     changed (or gone, or come) and it is read again.
//   - A closure: the libraries one binary version needs, for one caller
//     (uid, gid, groups: who may search what), one LD_LIBRARY_PATH and one
//     ld.so.conf. Kept with the stat, as that caller, of every path the
//     search tried (the misses too: a library put where one was missing is
//     found). Each is one stat in place of an open, a stat and a close.
//
// A file changed within the clock's granularity of now may change again
// without a new ctime: nothing is kept while one of them is that young
// (depsRacy, git's racy-file rule). The cache decides only which paths
// are listed: every library shipped is opened again as the caller, with
// its checks (openReadable), at each launch.

// statKey is what a stat said of a path: its fileID, or the errno.
type statKey struct {
	id    fileID
	errno syscall.Errno
}

func statOf(path string) statKey {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		errno, _ := err.(syscall.Errno)
		return statKey{errno: max(errno, 1)}
	}
	return statKey{id: fileID{int64(st.Dev), int64(st.Ino), st.Size, st.Mtim.Nano(), st.Ctim.Nano()}}
}

// young reports whether k is a file changed too recently to be trusted.
func (k statKey) young(now time.Time) bool {
	return k.errno == 0 && now.Sub(time.Unix(0, k.id[4])) < depsRacy
}

// seen is one path a cached result depends on, with what its stat said.
type seen struct {
	path string
	key  statKey
}

// unchanged stats every path again: true when each says the same.
func unchanged(deps []seen) bool {
	for _, d := range deps {
		if statOf(d.path) != d.key {
			return false
		}
	}
	return true
}

// settled: none of deps changed just now.
func settled(deps []seen) bool {
	now := time.Now()
	for _, d := range deps {
		if d.key.young(now) {
			return false
		}
	}
	return true
}

// confCache keeps the last reading of each ld.so.conf path.
var confCache = struct {
	sync.Mutex
	m     map[string]*confEntry
	reads int // readings of the files: tests count them
}{m: map[string]*confEntry{}}

type confEntry struct {
	dirs []string
	deps []seen
}

// cachedConfDirs is ldConfDirs(path), read again only when one of the
// files or globbed directories changed. The result is shared: read only.
func cachedConfDirs(path string) []string {
	confCache.Lock()
	e := confCache.m[path]
	confCache.Unlock()
	if e != nil && unchanged(e.deps) {
		return e.dirs
	}
	var rec confRecorder
	dirs := readConfDirs(path, 0, &rec)
	confCache.Lock()
	defer confCache.Unlock()
	confCache.reads++
	if !rec.noKeep && settled(rec.deps) {
		confCache.m[path] = &confEntry{dirs: dirs, deps: rec.deps}
	} else {
		delete(confCache.m, path)
	}
	return dirs
}

// closureKey names one resolution: the binary's version and path (its
// real path when $ORIGIN needs it), the caller, LD_LIBRARY_PATH, the
// directories of ld.so.conf.
type closureKey struct {
	exe, path, real, ldLibPath, conf, groups string
	uid, gid                                 uint32
}

func newClosureKey(exe string, r *libResolver, real string, c *synth.Caller) closureKey {
	gs := make([]string, len(c.Groups))
	for i, g := range c.Groups {
		gs[i] = strconv.FormatUint(uint64(g), 10)
	}
	return closureKey{exe: exe, path: r.exe.path, real: real, ldLibPath: strings.Join(r.ldLibPath, "\x00"),
		conf: strings.Join(r.conf, "\x00"), groups: strings.Join(gs, ","), uid: c.Uid, gid: c.Gid}
}

type closureEntry struct {
	libs  []slaveproto.Lib
	probe []seen
}

// closureCache keeps resolved closures; bounded, past closureCacheMax it
// starts again empty.
var closureCache = struct {
	sync.Mutex
	m        map[closureKey]*closureEntry
	resolved int // closures searched afresh: tests count them
}{m: map[closureKey]*closureEntry{}}

const closureCacheMax = 1024

// cachedClosure is r.closure() for key, from the cache while every path
// it tried stats the same; it must run with the caller's credentials
// (asCaller), as the search itself.
func cachedClosure(key closureKey, r *libResolver) []slaveproto.Lib {
	closureCache.Lock()
	e := closureCache.m[key]
	closureCache.Unlock()
	if e != nil && unchanged(e.probe) {
		return slices.Clone(e.libs)
	}
	r.record = true
	libs := r.closure()
	closureCache.Lock()
	defer closureCache.Unlock()
	closureCache.resolved++
	if !settled(r.probed) {
		delete(closureCache.m, key)
		return libs
	}
	if len(closureCache.m) >= closureCacheMax {
		closureCache.m = map[closureKey]*closureEntry{}
	}
	closureCache.m[key] = &closureEntry{libs: slices.Clone(libs), probe: r.probed}
	return libs
}

// globDir is the directory an include pattern lists, "" when a directory
// part holds a pattern itself (then the reading is not kept).
func globDir(pattern string) string {
	d := filepath.Dir(pattern)
	if strings.ContainsAny(d, `*?[\`) {
		return ""
	}
	return d
}
