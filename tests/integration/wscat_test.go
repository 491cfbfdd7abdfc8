package integration_test

import (
	"context"

	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"

	"github.com/pay-theory/streamer/internal/testenv"
	"github.com/pay-theory/streamer/pkg/localstack"
	"github.com/pay-theory/streamer/pkg/store"
)

// TestWscatReceivesSDKPost: wscat (npm), a client nobody here wrote,
// connects with a minted token and receives a message posted through the
// plain AWS SDK management client, configured as a user would for AWS with
// only the endpoint changed.
func TestWscatReceivesSDKPost(t *testing.T) {
	wscat := testenv.Env(t, "STREAMER_TEST_WSCAT", "scripts/with-dynalite.sh sets it")
	s := startStack(t, localstack.Config{})
	tok := mint(t, s, "wscat-user", "tenant-w")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, wscat, "-c", s.WebSocketURL+"?Authorization="+tok)
	proc := startLines(t, cmd, true) // wscat exits at stdin EOF: startLines keeps it open
	defer proc.Stop()
	lines := proc.Lines

	// The record appears once $connect has accepted the upgrade.
	var id string
	deadline := time.Now().Add(30 * time.Second)
	for id == "" {
		for c, err := range storeIDs(ctx, s, store.ListQuery{UserID: "wscat-user"}) {
			if err != nil {
				t.Fatal(err)
			}
			id = c
		}
		if id == "" {
			if time.Now().After(deadline) {
				t.Fatal("wscat never connected (no record)")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	api := apigatewaymanagementapi.New(apigatewaymanagementapi.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.ManagementEndpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", ""),
	})
	// $connect writes the record before the gateway has finished the
	// upgrade (a post then is 410, as on AWS): wait until it answers.
	for {
		_, err := api.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(id)})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway never knew connection %s: %v", id, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := api.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{
		ConnectionId: aws.String(id), Data: []byte("hello from the SDK"),
	}); err != nil {
		t.Fatalf("PostToConnection: %v", err)
	}
	var seen []string
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("wscat exited before the message arrived; output: %q", seen)
			}
			seen = append(seen, line)
			if strings.Contains(line, "hello from the SDK") {
				return
			}
		case <-ctx.Done():
			t.Fatalf("message not received by wscat; output: %q", seen)
		}
	}
}
