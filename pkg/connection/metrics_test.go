package connection

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

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

func TestHistogramBuckets(t *testing.T) {
	for _, v := range []uint64{0, 1, 7, 8, 9, 15, 16, 17, 1000, 123456789, 1 << 40, 1<<63 + 12345} {
		lo, hi := bucketRange(bucketOf(v))
		if v < lo || v >= hi && hi != 0 {
			t.Errorf("%d in bucket [%d,%d)", v, lo, hi)
		}
		if v >= 16 && float64(hi-lo)/float64(lo) > 0.125 {
			t.Errorf("bucket of %d too wide: [%d,%d)", v, lo, hi)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	s := h.Snapshot()
	check := func(name string, got, want time.Duration) {
		if d := float64(got-want) / float64(want); d < -0.07 || d > 0.07 {
			t.Errorf("%s = %v, want ≈%v", name, got, want)
		}
	}
	check("p50", s.P50, 500*time.Microsecond)
	check("p90", s.P90, 900*time.Microsecond)
	check("p99", s.P99, 990*time.Microsecond)
	check("mean", s.Mean, 500*time.Microsecond)
	if s.Count != 1000 || s.Max != time.Millisecond {
		t.Errorf("%+v", s)
	}
	var empty histogram
	if s := empty.Snapshot(); s.Count != 0 || s.P99 != 0 {
		t.Errorf("empty %+v", s)
	}
}

func TestHistogramConcurrent(t *testing.T) {
	var h histogram
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10000 {
				h.Record(time.Duration(g*i) * time.Nanosecond)
				if i%1000 == 0 {
					_ = h.Snapshot()
				}
			}
		}()
	}
	wg.Wait()
	if s := h.Snapshot(); s.Count != 80000 {
		t.Errorf("count %d", s.Count)
	}
}

func BenchmarkHistogramRecordParallel(b *testing.B) {
	var h histogram
	b.RunParallel(func(pb *testing.PB) {
		d := time.Duration(1)
		for pb.Next() {
			h.Record(d)
			d += 997
		}
	})
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
