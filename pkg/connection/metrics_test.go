package connection

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
)

type nopAPI struct{}

func (nopAPI) PostToConnection(context.Context, *apigatewaymanagementapi.PostToConnectionInput, ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.PostToConnectionOutput, error) {
	return &apigatewaymanagementapi.PostToConnectionOutput{}, nil
}
func (nopAPI) GetConnection(context.Context, *apigatewaymanagementapi.GetConnectionInput, ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.GetConnectionOutput, error) {
	return &apigatewaymanagementapi.GetConnectionOutput{}, nil
}
func (nopAPI) DeleteConnection(context.Context, *apigatewaymanagementapi.DeleteConnectionInput, ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.DeleteConnectionOutput, error) {
	return &apigatewaymanagementapi.DeleteConnectionOutput{}, nil
}

func TestNewManagementClientOptions(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	c := NewManagementClient("https://abc123.execute-api.eu-west-2.amazonaws.com/prod/", ClientOptions{})
	o := c.Options()
	if o.Region != "eu-west-2" || aws.ToString(o.BaseEndpoint) != "https://abc123.execute-api.eu-west-2.amazonaws.com/prod" {
		t.Errorf("region %q endpoint %q", o.Region, aws.ToString(o.BaseEndpoint))
	}
	if o.Retryer.MaxAttempts() != 1 || o.RetryMaxAttempts != 1 || o.Retryer.IsErrorRetryable(errors.New("x")) {
		t.Errorf("retryer %T max %d", o.Retryer, o.RetryMaxAttempts)
	}
	if _, ok := o.Credentials.(*aws.CredentialsCache); !ok {
		t.Errorf("non-loopback credentials %T, want the lazily loaded default chain", o.Credentials)
	}
	if hc, ok := o.HTTPClient.(*http.Client); !ok || hc.Transport.(*http.Transport).MaxConnsPerHost != DefaultMaxConns {
		t.Errorf("http client %T", o.HTTPClient)
	}
	local := NewManagementClient("http://127.0.0.1:4510/local", ClientOptions{}).Options()
	if local.Region != "us-east-1" {
		t.Errorf("loopback region %q", local.Region)
	}
	creds, err := local.Credentials.Retrieve(context.Background())
	if err != nil || creds.AccessKeyID == "" {
		t.Errorf("loopback credentials %v %v", creds, err)
	}
	t.Setenv("AWS_REGION", "ap-south-1")
	if r := NewManagementClient("https://ws.example.com/prod", ClientOptions{}).Options().Region; r != "ap-south-1" {
		t.Errorf("custom domain region %q", r)
	}
	if r := NewManagementClient("https://ws.example.com/prod", ClientOptions{Region: "sa-east-1"}).Options().Region; r != "sa-east-1" {
		t.Errorf("explicit region %q", r)
	}
	tp := NewTransport(0)
	if tp.MaxConnsPerHost != DefaultMaxConns || tp.MaxIdleConnsPerHost != DefaultMaxConns || tp.DisableKeepAlives {
		t.Errorf("transport %+v", tp)
	}
}
