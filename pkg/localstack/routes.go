package localstack

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/aws/aws-lambda-go/events"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/pkg/localgw"
)

// Targets naming the stack's own in-process handlers.
const (
	BuiltinConnect    = "builtin:connect"
	BuiltinDisconnect = "builtin:disconnect"
	BuiltinDefault    = "builtin:default"
	// TargetInProcess is the target RouteInfo reports for a route set
	// through Config.Integrations.
	TargetInProcess = "in-process"
)

// builtinRoutes are API Gateway's special routes, in the order a reader
// expects them, each with the builtin handler that serves it by default.
var builtinRoutes = []Route{
	{Key: localgw.RouteConnect, Target: BuiltinConnect},
	{Key: localgw.RouteDisconnect, Target: BuiltinDisconnect},
	{Key: localgw.RouteDefault, Target: BuiltinDefault},
}

// builtinByKey and builtinByTarget are the place in builtinRoutes of the
// route with that key, or served by that builtin handler; -1 when none.
func builtinByKey(key string) int {
	return slices.IndexFunc(builtinRoutes, func(r Route) bool { return r.Key == key })
}

func builtinByTarget(target string) int {
	return slices.IndexFunc(builtinRoutes, func(r Route) bool { return r.Target == target })
}

// Limits on Config.Routes.
const (
	// MaxRoutes is API Gateway's quota of routes per API.
	MaxRoutes = 300
	// MaxRouteKeyLength bounds a route key (a choice: AWS documents no
	// limit; a key longer than this is surely a mistake).
	MaxRouteKeyLength = 128
	// DefaultRouteProbeTimeout bounds the probe of one Invoke URL.
	DefaultRouteProbeTimeout = 2 * time.Second
)

// invokePathHint is the path every Lambda Invoke API serves (the Runtime
// Interface Emulator's function is named "function").
const invokePathHint = "/2015-03-31/functions/function/invocations"

// Route points a route key at a target: one of the stack's own handlers
// (BuiltinConnect, BuiltinDisconnect, BuiltinDefault) or a Lambda Invoke URL
// such as http://127.0.0.1:9001/2015-03-31/functions/function/invocations,
// which the Runtime Interface Emulator (aws-lambda-rie) and `sam local
// start-lambda` serve.
type Route struct {
	// Key is the route key: $connect, $disconnect, $default, or a key of
	// your own that the route selection expression yields (sendmessage).
	// Keys are free-form on AWS; here they must be 1 to MaxRouteKeyLength
	// printable characters without surrounding spaces, and a key starting
	// with "$" must be one of the three above.
	Key string
	// Target is a builtin handler or an Invoke URL (http or https, path
	// /2015-03-31/functions/NAME/invocations). builtin:connect serves only
	// $connect, builtin:disconnect only $disconnect, and builtin:default
	// serves messages ($default or a key of your own).
	Target string
	// TwoWay sets whether the route has a route response (its integration's
	// response body reaches the client); nil => contract.IsTwoWayRoute(Key),
	// as the deployment decides.
	TwoWay *bool
}

// RouteInfo is a route in effect on a running stack.
type RouteInfo struct {
	Key string
	// Target is a builtin name, an Invoke URL, or TargetInProcess.
	Target string
	TwoWay bool
}

// ErrRouteUnreachable matches a route whose Invoke URL nothing answered at
// when Start probed it.
var ErrRouteUnreachable = errors.New("localstack: nothing answers at the route's invoke endpoint")

// RouteError is a route Start cannot set up. Err matches ErrConfig (a bad
// key or target, or the key given twice) or ErrRouteUnreachable.
type RouteError struct {
	Key    string
	Target string
	Err    error
}

func (e *RouteError) Error() string { return "route " + strconv.Quote(e.Key) + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *RouteError) Unwrap() error { return e.Err }

// invalidRoute is a route problem: ErrConfig without its generic text.
type invalidRoute string

func (e invalidRoute) Error() string        { return string(e) }
func (e invalidRoute) Is(target error) bool { return target == ErrConfig }

// unreachable is a failed probe.
type unreachable struct {
	addr, url string
	err       error
}

func (e *unreachable) Error() string {
	return fmt.Sprintf("nothing answers at %s (%s): %v; start the function's emulator first (aws-lambda-rie, sam local start-lambda) or fix the URL",
		e.addr, e.url, e.err)
}
func (e *unreachable) Unwrap() error        { return e.err }
func (e *unreachable) Is(target error) bool { return target == ErrRouteUnreachable }

// checkRoutes reports every problem of routes at once (errors.Join of
// *RouteError), and a key that Integrations sets too.
func checkRoutes(routes []Route, integrations map[string]localgw.Integration) error {
	if len(routes) > MaxRoutes {
		return fmt.Errorf("%w: %d routes: API Gateway allows at most %d per API", ErrConfig, len(routes), MaxRoutes)
	}
	var errs []error
	seen := make(map[string]int, len(routes))
	for i, r := range routes {
		bad := func(format string, args ...any) {
			errs = append(errs, &RouteError{Key: r.Key, Target: r.Target, Err: invalidRoute(fmt.Sprintf(format, args...))})
		}
		if j, dup := seen[r.Key]; dup {
			bad("given twice (routes %d and %d): give each route once", j+1, i+1)
			continue
		}
		seen[r.Key] = i
		if _, dup := integrations[r.Key]; dup {
			bad("set both in Config.Routes and Config.Integrations")
			continue
		}
		if why := checkRouteKey(r.Key); why != "" {
			bad("%s", why)
			continue
		}
		if why := checkTarget(r.Key, r.Target); why != "" {
			bad("%s", why)
		}
	}
	return errors.Join(errs...)
}

func checkRouteKey(key string) string {
	switch {
	case key == "":
		return "the route key is empty: name the route, e.g. sendmessage or $default"
	case len(key) > MaxRouteKeyLength:
		return fmt.Sprintf("the route key is %d bytes long: at most %d", len(key), MaxRouteKeyLength)
	case strings.TrimSpace(key) != key:
		return "the route key starts or ends with a space"
	case strings.ContainsFunc(key, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }):
		return "the route key holds a control or invisible character"
	case strings.HasPrefix(key, "$") && builtinByKey(key) < 0:
		// The gateway never selects a "$" key for a message, as AWS.
		return "route keys starting with $ are reserved: use $connect, $disconnect, $default or a key without $"
	}
	return ""
}

// checkTarget says what is wrong with target for key ("" when nothing).
func checkTarget(key, target string) string {
	if name, ok := strings.CutPrefix(target, "builtin:"); ok {
		i := builtinByTarget(target)
		switch {
		case i < 0:
			return fmt.Sprintf("unknown target %q: the builtin handlers are %s, %s and %s", target, BuiltinConnect, BuiltinDisconnect, BuiltinDefault)
		case target == BuiltinDefault && (key == localgw.RouteConnect || key == localgw.RouteDisconnect):
			return fmt.Sprintf("%s handles messages: use it on $default or a key of your own, not %s", target, key)
		case target != BuiltinDefault && key != builtinRoutes[i].Key:
			return fmt.Sprintf("%s handles only %s (the %s event), not %s", target, builtinRoutes[i].Key, name, key)
		}
		return ""
	}
	if target == "" {
		return "no target: give a Lambda Invoke URL (http://127.0.0.1:9001" + invokePathHint + ") or " + BuiltinConnect + "|disconnect|default"
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Sprintf("unknown target %q: want a Lambda Invoke URL (http://HOST:PORT%s) or %s|disconnect|default", target, invokePathHint, BuiltinConnect)
	}
	if u.User != nil {
		return fmt.Sprintf("target %q carries credentials in the URL: the Invoke API takes none", u.Redacted())
	}
	if !isInvokePath(u.Path) {
		return fmt.Sprintf("target %q is not a Lambda Invoke URL: its path must be /2015-03-31/functions/NAME/invocations (the emulator's: %s://%s%s)",
			target, u.Scheme, u.Host, invokePathHint)
	}
	return ""
}

// isInvokePath reports whether p is the Lambda Invoke API's path,
// /2015-03-31/functions/{FunctionName}/invocations.
func isInvokePath(p string) bool {
	name, ok := strings.CutPrefix(p, "/2015-03-31/functions/")
	if !ok {
		return false
	}
	name, ok = strings.CutSuffix(name, "/invocations")
	return ok && name != "" && !strings.Contains(name, "/")
}

func isBuiltin(target string) bool { return builtinByTarget(target) >= 0 }

// probeRoutes checks that something listens at each Invoke URL's host and
// port, each address once and all at the same time. It opens a TCP
// connection and closes it: an HTTP request would be an invocation (the
// emulator invokes the function on any method), running the user's code.
func probeRoutes(ctx context.Context, routes []Route, timeout time.Duration) error {
	byAddr := map[string][]Route{}
	for _, r := range routes {
		if isBuiltin(r.Target) {
			continue
		}
		u, _ := url.Parse(r.Target) // checked by checkRoutes
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		addr := net.JoinHostPort(u.Hostname(), port)
		byAddr[addr] = append(byAddr[addr], r)
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	d := net.Dialer{Timeout: timeout}
	for addr, rs := range byAddr {
		wg.Go(func() {
			c, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				_ = c.Close()
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, r := range rs {
				errs = append(errs, &RouteError{Key: r.Key, Target: r.Target, Err: &unreachable{addr: addr, url: r.Target, err: err}})
			}
		})
	}
	wg.Wait()
	slices.SortFunc(errs, func(a, b error) int { return cmp.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// sortRoutes orders route infos as a reader expects them: $connect,
// $disconnect, $default, then the other keys in order.
func sortRoutes(rs []RouteInfo) {
	rank := func(k string) int {
		if i := builtinByKey(k); i >= 0 {
			return i
		}
		return len(builtinRoutes)
	}
	slices.SortFunc(rs, func(a, b RouteInfo) int {
		return cmp.Or(cmp.Compare(rank(a.Key), rank(b.Key)), cmp.Compare(a.Key, b.Key))
	})
}

// twoWay is whether key is two-way: r's own setting, else the contract's.
func (r Route) twoWay() bool {
	if r.TwoWay != nil {
		return *r.TwoWay
	}
	return contract.IsTwoWayRoute(r.Key)
}

// oneAtATime invokes an Invoke URL one event at a time, the others waiting
// their turn within their integration timeout. The emulator behind it is
// one execution environment, which runs one invocation at a time, and
// aws-lambda-rie does not queue: a second concurrent invocation crashes it
// ("ReserveFailed: AlreadyReserved", then a nil pointer panic), which two
// clients sending at once would do. On AWS, Lambda runs concurrent
// invocations in more environments; here they queue.
type oneAtATime struct {
	in  localgw.Integration
	env chan struct{} // shared by every route to the same URL
}

func (o oneAtATime) Invoke(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	select {
	case o.env <- struct{}{}:
	case <-ctx.Done():
		return events.APIGatewayProxyResponse{}, ctx.Err()
	}
	defer func() { <-o.env }()
	return o.in.Invoke(ctx, ev)
}
