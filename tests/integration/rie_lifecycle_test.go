package integration_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/internal/rietest"
	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localstack"
)

// TestLifecycleWithBootstrapsUnderRIE runs the same lifecycle as
// TestConnectionLifecycle, but the gateway's $connect, $disconnect and
// $default integrations are the built Lambda bootstraps running under the
// AWS Lambda Runtime Interface Emulator (Lambda Invoke over HTTP), reaching
// the gateway's DynamoDB endpoint through the standard
// AWS_ENDPOINT_URL_DYNAMODB variable — the deployed artifacts behind the
// emulated API Gateway.
func TestLifecycleWithBootstrapsUnderRIE(t *testing.T) {
	rie := rietest.Binary(t)
	buildCtx, cancelBuild := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancelBuild()
	bins := rietest.BuildBootstraps(t, buildCtx, filepath.Join("..", ".."))

	s := startStack(t, localstack.Config{})
	pub, err := auth.EncodePublicKeyPEM(&s.PrivateKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	env := append([]string{
		contract.EnvConnectionsTable + "=" + s.Table,
		contract.EnvJWTIssuer + "=" + s.Issuer,
		contract.EnvJWTPublicKey + "=" + string(pub),
		contract.EnvEnvironment + "=rie",
	}, rietest.LocalAWSEnv(s.DynamoDBEndpoint)...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 30 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	fns := map[string]*rietest.Function{}
	for route, fn := range map[string]string{
		localgw.RouteConnect:    contract.FunctionConnect,
		localgw.RouteDisconnect: contract.FunctionDisconnect,
		localgw.RouteDefault:    contract.FunctionDefault,
	} {
		f := rietest.Start(t, ctx, rie, fn, bins[fn], env)
		fns[fn] = f
		s.Gateway.SetRoute(route, localgw.LambdaInvoke(f.URL, client))
	}

	lifecycle(t, s)

	// The bootstraps really served it: each function's log has its own
	// structured lines, not the in-process handlers'.
	for fn, want := range map[string]string{
		contract.FunctionConnect:    `"operation":"connect"`,
		contract.FunctionDisconnect: `"msg":"connection closed"`,
	} {
		// The emulator copies the function's output to its log on its
		// own time: the lifecycle may be over a moment before the line is.
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(fns[fn].Log.String(), want) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if log := fns[fn].Log.String(); !strings.Contains(log, want) {
			t.Errorf("%s emulator log lacks %s:\n%s", fn, want, log)
		}
	}
}
