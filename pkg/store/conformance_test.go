package store_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/pay-theory/streamer/pkg/store/dynamotest"
	"github.com/pay-theory/streamer/pkg/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformanceMinidyn(t *testing.T) {
	storetest.Run(t, dynamotest.Start)
}

func TestConformanceDynalite(t *testing.T) {
	if os.Getenv(dynamotest.EnvEndpoint) == "" {
		dynamotest.Dynalite(t) // skips, or fails under CI, saying what is missing
	}
	storetest.Run(t, dynamotest.Dynalite)
}
