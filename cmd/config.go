package cmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
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
	endpointEnv        = "STREAMER_ENDPOINT"
	wsURLEnv           = "STREAMER_WS_URL"
	tableEnv           = "STREAMER_TABLE"
	regionEnv          = "AWS_REGION"
	keyDirEnv          = "STREAMER_KEY_DIR"
	timeoutEnv         = "STREAMER_TIMEOUT"
	issuerEnv          = "STREAMER_ISSUER"
	stackEnv           = "STREAMER_STACK"
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
	// Stack names a stack profile (see LoadStackProfile).
	Stack string
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
	// From a stack profile (--stack), else "": the profile's name, the aud
	// the stack's $connect requires, and its environment (the dashboard's
	// CloudWatch dimension).
	Stack       string
	Audience    string
	Environment string
}

// Local reports whether the management endpoint is on this machine, where
// static dummy credentials are used instead of the AWS credential chain.
func (c Config) Local() bool { return connection.IsLoopbackEndpoint(c.Endpoint) }

// ResolveConfig applies flag > environment > default for every setting
// (Factory.Config slips a stack profile's values in beneath the
// environment: StackProfile.beneath).
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
		Endpoint:         strings.TrimRight(pick(fl.Endpoint, endpointEnv, DefaultEndpoint), "/"),
		WSURL:            pick(fl.WSURL, wsURLEnv, DefaultWSURL),
		Table:            pick(fl.Table, tableEnv, schema.DefaultTableName),
		Region:           pick(fl.Region, regionEnv, getenv("AWS_DEFAULT_REGION")),
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

// Stack profiles. `--stack NAME` (or STREAMER_STACK) takes the endpoint,
// the WebSocket URL, the table, the region, the issuer and audience, and
// the environment from a deployed stack's outputs, so an operator cannot
// get them wrong. scripts/deploy.sh saves them after each deployment: the
// stack's `pulumi stack output --json`, as <user config dir>/streamer/stacks/NAME.json
// (the names are contract.ProfileOutputs). A flag or environment variable
// still wins over the profile. A value holding a / or ending in .json is a
// file path instead (a profile saved by CI, or copied from a colleague).

// maxStackProfileBytes bounds a profile file: the outputs of a stack are
// a few KB.
const maxStackProfileBytes = 256 << 10

// StackProfile is what the CLI takes from a stack profile.
type StackProfile struct {
	Name, Path                            string
	Endpoint, WSURL, Table, Region, Stage string
	Issuer, Audience, Environment         string
}

// DefaultStackDir is where scripts/deploy.sh saves stack profiles:
// <user config dir>/streamer/stacks, beside `streamer local`'s keys.
func DefaultStackDir() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no user config directory (%w); give --stack a profile's path", err)
	}
	return filepath.Join(dir, "streamer", "stacks"), nil
}

// LoadStackProfile reads the profile stack names: a file path, or the
// name of a profile in the directory dir returns (DefaultStackDir when
// nil). Errors say what to do (exit 1; a malformed name is a usage error).
func LoadStackProfile(stack string, dir func() (string, error)) (StackProfile, error) {
	p := StackProfile{Name: stack, Path: stack}
	if !strings.ContainsRune(stack, '/') && !strings.ContainsRune(stack, filepath.Separator) && !strings.HasSuffix(stack, ".json") {
		// Stack names take the characters of a stage (deploy.sh takes no others).
		if err := contract.CheckStage(stack); err != nil {
			return p, &UsageError{Err: fmt.Errorf("--stack %q names neither a deployed stack (dev, staging, production: letters, digits, - and _) nor a profile file (a path, or a name ending in .json)", stack)}
		}
		if dir == nil {
			dir = DefaultStackDir
		}
		d, err := dir()
		if err != nil {
			return p, err
		}
		p.Path = filepath.Join(d, stack+".json")
	}
	data, err := readProfile(p.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return p, fmt.Errorf("no profile for stack %s at %s\nhint: deploy it with `make deploy STACK=%s` (scripts/deploy.sh saves the profile), or save its outputs yourself: pulumi stack output --json --stack %s > %s", stack, p.Path, stack, stack, shellQuote(p.Path))
	}
	if err != nil {
		return p, fmt.Errorf("stack profile %s: %w", p.Path, err)
	}
	var outputs map[string]any
	if err := json.Unmarshal(data, &outputs); err != nil {
		return p, fmt.Errorf("stack profile %s is not the JSON of `pulumi stack output --json`: %w", p.Path, err)
	}
	var missing []string
	get := func(name string) string {
		v, ok := outputs[name].(string)
		if !ok || (v == "" && name != contract.OutputJWTAudience) {
			missing = append(missing, name)
		}
		return v
	}
	p.Endpoint, p.WSURL, p.Table = get(contract.OutputManagementEndpoint), get(contract.OutputWebSocketURL), get(contract.OutputTableName)
	p.Region, p.Stage, p.Issuer = get(contract.OutputRegion), get(contract.OutputStage), get(contract.OutputJWTIssuer)
	p.Audience, p.Environment = get(contract.OutputJWTAudience), get(contract.OutputEnvironment)
	if len(missing) > 0 {
		return p, fmt.Errorf("stack profile %s lacks the output(s) %s\nhint: it predates them or is not a stack's outputs: redeploy with `make deploy STACK=%s` (or run `pulumi up`, then save `pulumi stack output --json` again)", p.Path, strings.Join(missing, ", "), stack)
	}
	return p, nil
}

// readProfile reads a profile: a regular file of at most
// maxStackProfileBytes.
func readProfile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", st.Mode().Type())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxStackProfileBytes+1))
	if err == nil && len(b) > maxStackProfileBytes {
		err = fmt.Errorf("larger than %d KB, more than any stack's outputs", maxStackProfileBytes>>10)
	}
	return b, err
}

// beneath returns getenv with the profile's values beneath the
// environment's: flag > environment > profile > default, for every
// setting the profile holds.
func (p StackProfile) beneath(getenv func(string) string) func(string) string {
	vals := map[string]string{endpointEnv: p.Endpoint, wsURLEnv: p.WSURL, tableEnv: p.Table, regionEnv: p.Region, issuerEnv: p.Issuer}
	return func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return vals[k]
	}
}
