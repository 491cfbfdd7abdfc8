package localgw

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// twoWay marks a route that has a route response.
type twoWay struct{ Integration }

// TwoWay marks in as a two-way route: one with a route response, whose
// integration's response body is sent back to the client. On API Gateway
// every other route is one-way and its response body is dropped, so the
// gateway drops it too. pkg/localstack marks the routes the deployment
// gives a route response (contract.TwoWayRoutes) and those its
// Config.Routes declare two-way.
func TwoWay(in Integration) Integration {
	if in == nil || IsTwoWay(in) {
		return in
	}
	return twoWay{in}
}

// IsTwoWay reports whether in was marked with TwoWay.
func IsTwoWay(in Integration) bool {
	_, ok := in.(twoWay)
	return ok
}

// Route returns the integration set for a route key (nil when none), as
// set: wrapped in TwoWay for a two-way route. Wrap it to observe a route
// and set it back with SetRoute.
func (g *Gateway) Route(key string) Integration {
	g.routesMu.RLock()
	defer g.routesMu.RUnlock()
	return g.routes[key]
}

// selector is a parsed route selection expression: literal text and
// $request.body variables, evaluated against each message.
type selector []selectorPart

type selectorPart struct {
	lit  string   // literal text when path is nil
	path []string // JSON path into the body
}

const bodyVar = "request.body."

// parseSelectionExpression parses API Gateway's selection expression
// language as far as route selection uses it
// (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-selection-expressions.html):
// "$" starts a variable, "${...}" bounds one, "\$" is a literal "$". Only
// $request.body.* variables exist for route selection.
func parseSelectionExpression(expr string) (selector, error) {
	bad := func(why string) error {
		return fmt.Errorf("%w: RouteSelectionExpression %q %s; use $request.body.<field> (e.g. %q) or a template such as \"${request.body.type}/${request.body.action}\"",
			ErrInvalidConfig, expr, why, DefaultRouteSelectionExpression)
	}
	var sel selector
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			sel = append(sel, selectorPart{lit: lit.String()})
			lit.Reset()
		}
	}
	vars := 0
	for i := 0; i < len(expr); {
		switch {
		case strings.HasPrefix(expr[i:], `\$`):
			lit.WriteByte('$')
			i += 2
		case expr[i] == '$':
			var name string
			if strings.HasPrefix(expr[i:], "${") {
				end := strings.IndexByte(expr[i:], '}')
				if end < 0 {
					return nil, bad("has an unclosed ${")
				}
				name, i = expr[i+2:i+end], i+end+1
			} else {
				j := i + 1
				for j < len(expr) && isNameByte(expr[j]) {
					j++
				}
				for j > i+1 && expr[j-1] == '.' {
					j-- // a trailing "." is literal text
				}
				name, i = expr[i+1:j], j
			}
			rest, ok := strings.CutPrefix(name, bodyVar)
			if !ok || rest == "" {
				return nil, bad(fmt.Sprintf("uses $%s, which route selection does not have", name))
			}
			path := strings.Split(rest, ".")
			for _, p := range path {
				if p == "" {
					return nil, bad("has an empty field name")
				}
			}
			flush()
			sel = append(sel, selectorPart{path: path})
			vars++
		default:
			lit.WriteByte(expr[i])
			i++
		}
	}
	flush()
	if vars == 0 {
		return nil, bad("has no $request.body variable")
	}
	return sel, nil
}

func isNameByte(b byte) bool {
	return b == '_' || b == '.' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

// eval returns the route key for a message body, or false when the body is
// not a JSON object or lacks (or has null for) a variable's field.
func (sel selector) eval(body []byte) (string, bool) {
	var b strings.Builder
	for _, p := range sel {
		if p.path == nil {
			b.WriteString(p.lit)
			continue
		}
		v, ok := lookupJSON(body, p.path)
		if !ok {
			return "", false
		}
		b.WriteString(v)
	}
	return b.String(), true
}

// lookupJSON finds path in a JSON object and returns the value as route
// selection sees it: a string's text, any other value stringified as its
// JSON text (42 → "42", true → "true", objects compacted).
func lookupJSON(body []byte, path []string) (string, bool) {
	raw := json.RawMessage(body)
	for _, field := range path {
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil {
			return "", false
		}
		v, ok := obj[field]
		if !ok {
			return "", false
		}
		raw = v
	}
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0, string(raw) == "null":
		return "", false
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	}
	var out bytes.Buffer
	if json.Compact(&out, raw) != nil {
		return "", false
	}
	return out.String(), true
}
