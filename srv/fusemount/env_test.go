package fusemount

import (
	"os"
	"slices"
	"testing"
)

// procEnv gives a process's environment and cwd only to a caller of the
// process's own uid: a pid reused by another user gives nothing.
func TestProcEnvSameUidOnly(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	// /proc/PID/environ is the environment at exec; the test binary's
	// PATH is there (go test passes it on).
	env, cwd, ok := procEnv(os.Getpid(), uint32(os.Getuid()))
	if !ok || cwd != wd || !slices.ContainsFunc(env, func(kv string) bool { return len(kv) > 5 && kv[:5] == "PATH=" }) {
		t.Errorf("own process: ok=%v cwd=%q (want %q), %d variables", ok, cwd, wd, len(env))
	}
	if env, cwd, ok := procEnv(os.Getpid(), uint32(os.Getuid())+4242); ok || env != nil || cwd != "" {
		t.Errorf("another uid got ok=%v cwd=%q env=%d variables", ok, cwd, len(env))
	}
	if _, _, ok := procEnv(1<<30, uint32(os.Getuid())); ok {
		t.Error("a pid that does not exist gave an environment")
	}
}
