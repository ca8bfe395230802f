package client

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// BecomeUser checks an rsh-style -l NAME and, for root naming another
// user, takes that user's credentials for the rest of the process (the
// tree runs work as its caller, so that is how root runs work as NAME).
// NAME must be the caller's own name or uid unless the caller is root. It
// returns the user's home directory.
func BecomeUser(name string) (string, error) {
	me, err := user.Current()
	if err != nil {
		return "", fmt.Errorf("who am I: %w", err)
	}
	if name == "" || name == me.Username || name == me.Uid {
		return me.HomeDir, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		if u, err = user.LookupId(name); err != nil {
			return "", fmt.Errorf("-l %s: no such user", name)
		}
	}
	if u.Uid == me.Uid {
		return u.HomeDir, nil
	}
	if os.Getuid() != 0 {
		return "", fmt.Errorf("-l %s: Permission denied (only root may run commands as another user)", name)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	var groups []int
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.Atoi(g); err == nil {
				groups = append(groups, n)
			}
		}
	}
	// Groups and gid first: after setuid there is no way back.
	if err := syscall.Setgroups(groups); err != nil {
		return "", fmt.Errorf("-l %s: setgroups: %w", name, err)
	}
	if err := syscall.Setresgid(gid, gid, gid); err != nil {
		return "", fmt.Errorf("-l %s: setgid: %w", name, err)
	}
	if err := syscall.Setresuid(uid, uid, uid); err != nil {
		return "", fmt.Errorf("-l %s: setuid: %w", name, err)
	}
	os.Setenv("HOME", u.HomeDir)
	os.Setenv("USER", u.Username)
	os.Setenv("LOGNAME", u.Username)
	return u.HomeDir, nil
}
