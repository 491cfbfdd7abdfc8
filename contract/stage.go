package contract

import (
	"errors"
	"fmt"
)

// MaxStageLength is API Gateway's limit on the length of a stage name.
const MaxStageLength = 128

// StageRule says in words which stage names API Gateway accepts.
const StageRule = "1 to 128 letters, digits, - and _"

// ErrInvalidStage is what CheckStage's errors match.
var ErrInvalidStage = errors.New("invalid stage name")

// CheckStage checks a stage name (the first path segment of every URL of a
// WebSocket API: wss://ID.execute-api.REGION.amazonaws.com/STAGE) against
// API Gateway's rule: 1 to MaxStageLength ASCII letters, digits, '-' and
// '_'. Every place that takes a stage applies it (streamer local --stage,
// the endpoint URLs the CLI is given, the local gateway's configuration,
// the deployed stack's stageName), so a stage one of them accepts works
// everywhere. The error matches ErrInvalidStage and quotes the name with
// its control characters escaped.
func CheckStage(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: it is empty; use %s (API Gateway's rule)", ErrInvalidStage, StageRule)
	case len(name) > MaxStageLength:
		return fmt.Errorf("%w: it is %d bytes long; use %s (API Gateway's rule)", ErrInvalidStage, len(name), StageRule)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w %q: use %s (API Gateway's rule)", ErrInvalidStage, name, StageRule)
		}
	}
	return nil
}
