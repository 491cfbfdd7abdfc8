package cmd

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/localstack"
	"github.com/pay-theory/streamer/pkg/store/schema"
)

// Defaults: with nothing configured every command targets a running
// `streamer local` on its default port.
const (
	DefaultEndpoint    = "http://" + localstack.DefaultListen + "/" + localstack.DefaultStage
	DefaultWSURL       = "ws://" + localstack.DefaultListen + "/" + localstack.DefaultStage
	DefaultIssuer      = localstack.DefaultIssuer
	DefaultTimeout     = 10 * time.Second
	DefaultLocalRegion = "us-east-1"
	keyDirEnv          = "STREAMER_KEY_DIR"
	timeoutEnv         = "STREAMER_TIMEOUT"
	issuerEnv          = "STREAMER_ISSUER"
)

// timeoutFlag is --timeout: a positive duration. 0 is refused (exit 2)
// rather than read as "the default" or "no bound": every network call is
// bounded, and a 0 that silently meant 10s misled.
type timeoutFlag struct{ d *time.Duration }

func (t timeoutFlag) String() string {
	if t.d == nil || *t.d == 0 {
		return ""
	}
	return t.d.String()
}

func (t timeoutFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("not a duration like 10s or 1m30s")
	}
	if d <= 0 {
		return fmt.Errorf("want a positive duration like 10s (the default): every network call is bounded")
	}
	*t.d = d
	return nil
}

func (timeoutFlag) Type() string { return "duration" }

// GlobalFlags are the raw values of the root's persistent flags. Empty (or
// zero) means "not given": ResolveConfig then falls back to the environment
// and the defaults.
type GlobalFlags struct {
	Endpoint         string
	WSURL            string
	Table            string
	Region           string
	Profile          string
	DynamoDBEndpoint string
	KeyDir           string
	Issuer           string
	Timeout          time.Duration
}

// Config is the resolved configuration every command works from. It is
// resolved once per process (Factory.Config) so all commands agree.
type Config struct {
	Endpoint         string        // management API base URL with stage
	WSURL            string        // WebSocket URL clients connect to
	Table            string        // DynamoDB table
	Region           string        // AWS region ("" => SDK default chain)
	Profile          string        // AWS shared-config profile
	DynamoDBEndpoint string        // "" => the SDK's regional endpoint
	KeyDir           string        // holds jwt-private.pem / jwt-public.pem
	Issuer           string        // JWT iss minted and expected
	Timeout          time.Duration // bound of each network call
}

// Local reports whether the management endpoint is on this machine, where
// static dummy credentials are used instead of the AWS credential chain.
func (c Config) Local() bool { return connection.IsLoopbackEndpoint(c.Endpoint) }

// ResolveConfig applies flag > environment > default for every setting.
// defaultKeyDir is localstack.DefaultKeyDir in production (one definition,
// so `streamer local` and `streamer token mint` agree); when it fails (no
// home directory) KeyDir stays "" and the commands that need keys say so.
func ResolveConfig(fl GlobalFlags, getenv func(string) string, defaultKeyDir func() (string, error)) (Config, error) {
	pick := func(flag, env, def string) string {
		if flag != "" {
			return flag
		}
		if v := getenv(env); v != "" {
			return v
		}
		return def
	}
	c := Config{
		Endpoint:         strings.TrimRight(pick(fl.Endpoint, "STREAMER_ENDPOINT", DefaultEndpoint), "/"),
		WSURL:            pick(fl.WSURL, "STREAMER_WS_URL", DefaultWSURL),
		Table:            pick(fl.Table, "STREAMER_TABLE", schema.DefaultTableName),
		Region:           pick(fl.Region, "AWS_REGION", getenv("AWS_DEFAULT_REGION")),
		Profile:          pick(fl.Profile, "AWS_PROFILE", ""),
		DynamoDBEndpoint: pick(fl.DynamoDBEndpoint, contract.EnvEndpointURLDynamoDB, ""),
		KeyDir:           pick(fl.KeyDir, keyDirEnv, ""),
		Issuer:           pick(fl.Issuer, issuerEnv, DefaultIssuer),
		Timeout:          fl.Timeout,
	}
	eu, err := url.Parse(c.Endpoint)
	if err != nil || (eu.Scheme != "http" && eu.Scheme != "https") || eu.Host == "" {
		return Config{}, &UsageError{Err: fmt.Errorf("--endpoint %q is not an http(s) URL like %s or https://abc123.execute-api.us-east-1.amazonaws.com/prod", redactURL(c.Endpoint), DefaultEndpoint)}
	}
	wu, err := url.Parse(c.WSURL)
	if err != nil || (wu.Scheme != "ws" && wu.Scheme != "wss") || wu.Host == "" {
		return Config{}, &UsageError{Err: fmt.Errorf("--ws-url %q is not a ws(s) URL like %s", redactURL(c.WSURL), DefaultWSURL)}
	}
	if err := checkURLStage("--endpoint", c.Endpoint, eu, DefaultEndpoint); err != nil {
		return Config{}, err
	}
	if err := checkURLStage("--ws-url", c.WSURL, wu, DefaultWSURL); err != nil {
		return Config{}, err
	}
	local := connection.IsLoopbackEndpoint(c.Endpoint)
	if c.DynamoDBEndpoint == "" && local {
		// The local gateway serves the DynamoDB API on its own listener
		// (requests carrying X-Amz-Target), so derive it from the endpoint.
		c.DynamoDBEndpoint = eu.Scheme + "://" + eu.Host
	}
	if c.Region == "" {
		if local {
			c.Region = DefaultLocalRegion
		} else {
			c.Region = connection.RegionFromEndpoint(c.Endpoint)
		}
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
		if v := getenv(timeoutEnv); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return Config{}, &UsageError{Err: fmt.Errorf("%s=%q is not a positive duration like 10s", timeoutEnv, v)}
			}
			c.Timeout = d
		}
	}
	if c.Timeout < 0 {
		return Config{}, &UsageError{Err: fmt.Errorf("--timeout must be positive, got %s", c.Timeout)}
	}
	if c.KeyDir == "" {
		if defaultKeyDir == nil {
			defaultKeyDir = localstack.DefaultKeyDir
		}
		if dir, err := defaultKeyDir(); err == nil {
			c.KeyDir = dir
		}
	}
	return c, nil
}

// checkURLStage applies API Gateway's stage rule (contract.CheckStage) to
// the stage an endpoint URL names: the whole path of an execute-api URL
// (https://ID.execute-api.REGION.amazonaws.com/STAGE) or of a local
// gateway (loopback). Other hosts are custom domains, whose paths are API
// mappings with rules of their own, and pass as given. flag and
// localExample (for a loopback URL) word the error.
func checkURLStage(flag, raw string, u *url.URL, localExample string) error {
	local, aws := stageInPath(u)
	if !local && !aws {
		return nil
	}
	example := localExample
	if aws {
		example = u.Scheme + "://" + u.Host + "/dev"
	}
	stage := strings.Trim(u.Path, "/")
	err := contract.CheckStage(stage)
	if err == nil {
		return nil
	}
	if strings.Contains(stage, "/") {
		err = fmt.Errorf("%w: the path holds more than the stage", contract.ErrInvalidStage)
	}
	return &UsageError{Err: fmt.Errorf("%s %q: its path must be the API's stage alone, as in %s: %w", flag, redactURL(raw), example, err)}
}

// stageInPath reports whether u's path is a stage: u is on this machine
// (streamer local) or an execute-api endpoint.
func stageInPath(u *url.URL) (local, aws bool) {
	h := strings.ToLower(u.Hostname())
	if ip := net.ParseIP(h); h == "localhost" || ip != nil && ip.IsLoopback() {
		return true, false
	}
	return false, strings.Contains(h, ".execute-api.") && (strings.HasSuffix(h, ".amazonaws.com") || strings.HasSuffix(h, ".amazonaws.com.cn"))
}
