// Package key reads and creates the cluster key: a shared secret, like
// MUNGE's key, that every bpmaster, bpslave and remote tool must hold to
// take part in the cluster's 9P handshake.
package key

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// DefaultPath is where the cluster key lives on every machine.
const DefaultPath = "/etc/bproc/cluster.key"

// maxKeyFile bounds what Load reads, so a wrong path (a device, a huge
// file) gives an error instead of exhausting memory.
const maxKeyFile = 64 << 10

// minKey is the shortest key accepted: guessable keys defeat the handshake.
const minKey = 16

// newKeyBytes is the amount of randomness in a created key.
const newKeyBytes = 32

// Load reads the key file at path. It refuses a missing file, an empty key,
// a file that is not a regular file, a file owned by another user than the
// effective uid, and a file that group or others may read or write: a key
// others can read is no secret, one they can write is no proof.
// Surrounding white space is not part of the key.
func Load(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("cluster key %s: is a symbolic link, refusing it", path)
		}
		return nil, fmt.Errorf("cluster key: %w", err)
	}
	defer f.Close()
	// Check the opened file, not the path, so nothing can be swapped in
	// between the check and the read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cluster key: %w", err)
	}
	if err := checkMode(path, fi); err != nil {
		return nil, err
	}
	buf, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("cluster key %s: reading: %w", path, err)
	}
	if len(buf) > maxKeyFile {
		return nil, fmt.Errorf("cluster key %s: larger than %d bytes", path, maxKeyFile)
	}
	k := bytes.TrimSpace(buf)
	if len(k) == 0 {
		return nil, fmt.Errorf("cluster key %s: file is empty", path)
	}
	if len(k) < minKey {
		return nil, fmt.Errorf("cluster key %s: %d bytes is too short to be secret (at least %d; bpmaster makes 64 hex digits)", path, len(k), minKey)
	}
	return append([]byte(nil), k...), nil
}

// checkMode enforces the ownership and permission rules on an opened key.
func checkMode(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("cluster key %s: not a regular file (%v)", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("cluster key %s: mode %04o lets group or others access it; run chmod 600 %s", path, perm, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if euid := uint32(os.Geteuid()); st.Uid != euid {
			return fmt.Errorf("cluster key %s: owned by uid %d, not by the current user (uid %d)", path, st.Uid, euid)
		}
	}
	return nil
}

// LoadOrCreate loads the key at path, creating it first when it does not
// exist: 32 random bytes written as hex, mode 0600, its parent directory
// created with mode 0755 if needed. bpmaster uses this so a fresh cluster
// needs no setup; the key must then be copied to the nodes.
func LoadOrCreate(path string) ([]byte, error) {
	k, err := Load(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("cluster key: creating directory: %w", err)
	}
	raw := make([]byte, newKeyBytes)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("cluster key: generating: %w", err)
	}
	// O_EXCL: if another process created the key meanwhile, use theirs.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return Load(path)
		}
		return nil, fmt.Errorf("cluster key: creating: %w", err)
	}
	_, werr := f.WriteString(hex.EncodeToString(raw) + "\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("cluster key %s: writing: %w", path, err)
	}
	return Load(path)
}
