package testenv_test

import (
	"testing"

	"github.com/pay-theory/streamer/internal/testenv"
)

// recorder notes how Missing stopped it.
type recorder struct {
	testing.TB
	failed, skipped bool
	msg             string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = true
	r.msg = format
}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = true
	r.msg = format
}

func TestMissingFailsUnderCIAndSkipsElsewhere(t *testing.T) {
	t.Setenv("CI", "true")
	r := &recorder{}
	testenv.Missing(r, "tool is not installed", "install it")
	if !r.failed || r.skipped {
		t.Fatalf("under CI: failed=%v skipped=%v, want a failure", r.failed, r.skipped)
	}
	t.Setenv("CI", "")
	r = &recorder{}
	testenv.Missing(r, "tool is not installed", "install it")
	if r.failed || !r.skipped {
		t.Fatalf("outside CI: failed=%v skipped=%v, want a skip", r.failed, r.skipped)
	}
}

func TestEnvReturnsTheValue(t *testing.T) {
	t.Setenv("STREAMER_TESTENV_PROBE", "v")
	r := &recorder{}
	if got := testenv.Env(r, "STREAMER_TESTENV_PROBE", "set it"); got != "v" || r.failed || r.skipped {
		t.Fatalf("Env = %q (failed=%v skipped=%v), want v", got, r.failed, r.skipped)
	}
	t.Setenv("STREAMER_TESTENV_PROBE", "")
	t.Setenv("CI", "")
	r = &recorder{}
	testenv.Env(r, "STREAMER_TESTENV_PROBE", "set it")
	if !r.skipped {
		t.Fatal("an empty variable outside CI did not skip")
	}
}
