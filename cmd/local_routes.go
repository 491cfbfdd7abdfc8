package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/pay-theory/streamer/pkg/localstack"
)

// maxRoutesFile bounds --routes-file: 300 routes (API Gateway's quota) fit
// in a fraction of it.
const maxRoutesFile = 1 << 20

// routesFile is the --routes-file format (JSON; documented in --help and
// the README):
//
//	{
//	  "route_selection_expression": "$request.body.action",
//	  "routes": [
//	    {"key": "sendmessage", "target": "http://127.0.0.1:9001/2015-03-31/functions/function/invocations", "two_way": true},
//	    {"key": "$connect", "target": "builtin:connect"}
//	  ]
//	}
type routesFile struct {
	RouteSelectionExpression string       `json:"route_selection_expression"`
	Routes                   []routeEntry `json:"routes"`
}

type routeEntry struct {
	Key    string `json:"key"`
	Target string `json:"target"`
	// TwoWay gives the route a route response; absent: two-way only where
	// the deployment makes it so ($default).
	TwoWay *bool `json:"two_way"`
}

// parseRouteFlag reads one --route KEY=TARGET. The key ends at the first
// "=" (a URL's query may hold more).
func parseRouteFlag(s string) (localstack.Route, error) {
	key, target, ok := strings.Cut(s, "=")
	if !ok || key == "" || target == "" {
		return localstack.Route{}, &UsageError{Err: fmt.Errorf("--route %q: want KEY=TARGET, e.g. sendmessage=http://127.0.0.1:9001/2015-03-31/functions/function/invocations or '$default=builtin:default'", s)}
	}
	return localstack.Route{Key: key, Target: target}, nil
}

// localRoutes assembles the routes of --routes-file and --route, and the
// route selection expression (--route-selection over the file's). A key
// given twice, in either or both, is refused: per-route settings would
// otherwise be lost without a word.
func (opts *LocalOptions) localRoutes(ctx context.Context, stdin io.Reader) ([]localstack.Route, string, error) {
	var routes []localstack.Route
	from := map[string]string{} // key -> where it was given
	add := func(r localstack.Route, where string) error {
		if prev, dup := from[r.Key]; dup {
			return &UsageError{Err: fmt.Errorf("route %q is given twice (%s and %s): give each route once", r.Key, prev, where)}
		}
		from[r.Key] = where
		routes = append(routes, r)
		return nil
	}
	expr := ""
	if opts.RoutesFile != "" {
		f, err := readRoutesFile(ctx, opts.RoutesFile, stdin)
		if err != nil {
			return nil, "", err
		}
		expr = f.RouteSelectionExpression
		for i, e := range f.Routes {
			where := fmt.Sprintf("%s routes[%d]", opts.RoutesFile, i)
			if e.Key == "" || e.Target == "" {
				return nil, "", &UsageError{Err: fmt.Errorf("--routes-file: %s needs a \"key\" and a \"target\"", where)}
			}
			if err := add(localstack.Route{Key: e.Key, Target: e.Target, TwoWay: e.TwoWay}, where); err != nil {
				return nil, "", err
			}
		}
	}
	for _, s := range opts.Routes {
		r, err := parseRouteFlag(s)
		if err != nil {
			return nil, "", err
		}
		if err := add(r, "--route "+s); err != nil {
			return nil, "", err
		}
	}
	if opts.RouteSelection != "" {
		expr = opts.RouteSelection
	}
	return routes, expr, nil
}

// readRoutesFile reads and decodes --routes-file ("-" is stdin), refusing
// unknown fields (a misspelt "two_way" must not be ignored) and naming the
// line of a syntax error.
func readRoutesFile(ctx context.Context, name string, stdin io.Reader) (routesFile, error) {
	var f routesFile
	b, err := readInput(ctx, name, stdin, "the routes file", maxRoutesFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return f, &UsageError{Err: fmt.Errorf("--routes-file %s: no such file", name)}
	case err != nil:
		return f, fmt.Errorf("--routes-file %s: %w", name, err)
	case len(b) > maxRoutesFile:
		return f, &UsageError{Err: fmt.Errorf("--routes-file %s: over %d bytes: is it the routes file?", name, maxRoutesFile)}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	bad := func(err error) (routesFile, error) {
		return routesFile{}, &UsageError{Err: fmt.Errorf("--routes-file %s: %s; want JSON like {\"routes\": [{\"key\": \"sendmessage\", \"target\": \"http://...\", \"two_way\": false}]}", name, err)}
	}
	if err := dec.Decode(&f); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			err = fmt.Errorf("line %d: %v", lineOf(b, se.Offset), se)
		case errors.As(err, &te):
			err = fmt.Errorf("line %d: %s is %s, want %s", lineOf(b, te.Offset), te.Field, te.Value, te.Type)
		case errors.Is(err, io.EOF):
			err = errors.New("the file is empty")
		}
		return bad(err)
	}
	if dec.More() {
		return bad(fmt.Errorf("line %d: more after the JSON object", lineOf(b, dec.InputOffset())))
	}
	if len(f.Routes) == 0 && f.RouteSelectionExpression == "" {
		return bad(errors.New("it declares no routes"))
	}
	return f, nil
}

// lineOf is the 1-based line of byte offset off in b.
func lineOf(b []byte, off int64) int {
	off = min(max(off, 0), int64(len(b)))
	return bytes.Count(b[:off], []byte("\n")) + 1
}
