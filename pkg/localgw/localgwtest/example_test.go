package localgwtest_test

import (
	"context"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localgw/localgwtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestStart is also the usage example: a gateway, a client, a post through
// the SDK, the message at the client.
func TestStart(t *testing.T) {
	ids := make(chan string, 1)
	s := localgwtest.Start(t, localgw.Config{
		EmbeddedDynamoDB: true,
		Routes: map[string]localgw.Integration{
			localgw.RouteConnect: localgw.HandlerFunc(func(_ context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
				ids <- ev.RequestContext.ConnectionID
				return events.APIGatewayProxyResponse{StatusCode: 200}, nil
			}),
		},
	})
	ctx := t.Context()
	c, _, err := websocket.Dial(ctx, s.WSURL, &websocket.DialOptions{HTTPClient: s.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	id := <-ids
	if _, err := s.ManagementClient().PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{
		ConnectionId: aws.String(id), Data: []byte("hello"),
	}); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.Read(ctx); err != nil || string(msg) != "hello" {
		t.Fatalf("read %q %v", msg, err)
	}
	if s.DynamoDBEndpoint != s.BaseURL || s.DynamoDBClient() == nil || s.Table == "" {
		t.Errorf("DynamoDB endpoint %q table %q", s.DynamoDBEndpoint, s.Table)
	}
}
