// Package testenv holds the one rule for tests that need something from
// outside Go (an emulator, a tool, a variable set by scripts/with-dynalite.sh):
// when it is missing the test fails under CI (CI is set), so CI can never
// pass by skipping, and skips elsewhere.
package testenv

import (
	"os"
	"testing"
)

// Missing stops t because what (e.g. "tmux is not installed") is missing:
// it fails when CI is set and skips otherwise. hint says how to provide it.
func Missing(t testing.TB, what, hint string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s: CI must run this test (%s)", what, hint)
		return
	}
	t.Skipf("%s (%s; run make test)", what, hint)
}

// Env returns the environment variable name, stopping t with Missing when
// it is empty.
func Env(t testing.TB, name, hint string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		Missing(t, name+" is not set", hint)
	}
	return v
}
