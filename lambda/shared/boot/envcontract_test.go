package boot_test

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/lambda/shared/boot"
	"github.com/pay-theory/streamer/pkg/auth"
)

// The environment contract, from the handlers' side: the deployment sets
// exactly the contract's Deployed variables (deployment/pulumi tests), so
// every variable the handlers' code reads must be in contract.Vars of that
// function or in the explicit allow-list contract.PlatformVars, and nothing
// in either list may be stale. Names are recorded where the code reads them:
// the getenv that Load and Wire are given (os.Getenv in boot.Main), and every
// os.Getenv / os.LookupEnv call in lambda/ (found by parsing the sources).

// recorder is a getenv that records the names asked for.
type recorder struct {
	mu   sync.Mutex
	env  map[string]string
	read map[string]bool
}

func newRecorder(env map[string]string) *recorder {
	return &recorder{env: env, read: map[string]bool{}}
}

func (r *recorder) getenv(k string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.read[k] = true
	return r.env[k]
}

func (r *recorder) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for k := range r.read {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func varNames(fn string) []string {
	var out []string
	for _, v := range contract.Vars(fn) {
		out = append(out, v.Name)
	}
	return out
}

var testPublicKeyPEM = sync.OnceValues(func() ([]byte, error) {
	key, err := auth.GenerateKeyPair(0)
	if err != nil {
		return nil, err
	}
	return auth.EncodePublicKeyPEM(&key.PublicKey)
})

// scenarios are environments that drive Load down each of its branches for
// fn: nothing set, and everything set (one key source at a time for
// $connect, each of them; with and without the SDK endpoint variables).
func scenarios(t *testing.T, fn string) []map[string]string {
	t.Helper()
	pub, err := testPublicKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]string{
		contract.EnvConnectionsTable:      "conns",
		contract.EnvJWTPublicKey:          string(pub),
		contract.EnvJWTPublicKeySecretARN: "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt",
		contract.EnvJWTJWKSURL:            "https://auth.example.com/.well-known/jwks.json",
		contract.EnvJWTIssuer:             "https://auth.example.com",
		contract.EnvJWTAudience:           "streamer",
		contract.EnvLogLevel:              "debug",
		contract.EnvEnvironment:           "test",
		contract.EnvMetricsNamespace:      "Test",
		contract.EnvOTLPEndpoint:          "",
		contract.EnvManagementEndpoint:    "https://abc123.execute-api.us-east-1.amazonaws.com/prod",
	}
	full := func(keyVar string) map[string]string {
		m := map[string]string{}
		for _, v := range contract.Vars(fn) {
			if slices.Contains(contract.KeyVars(), v.Name) && v.Name != keyVar {
				continue
			}
			m[v.Name] = values[v.Name]
		}
		return m
	}
	out := []map[string]string{{}}
	keyVars := []string{""}
	if slices.ContainsFunc(contract.Vars(fn), func(v contract.Var) bool { return slices.Contains(contract.KeyVars(), v.Name) }) {
		keyVars = contract.KeyVars()
	}
	for _, kv := range keyVars {
		out = append(out, full(kv))
		withPlatform := full(kv)
		withPlatform[contract.EnvLambdaFunctionName] = "streamer-" + fn
		withPlatform[contract.EnvEndpointURL] = "http://127.0.0.1:8000"
		out = append(out, withPlatform)
	}
	return out
}

// TestLoadReadsOnlyContractVars records every variable Load reads for each
// function: each is in contract.Vars(fn) or contract.PlatformVars(), and
// every contract variable of fn is read (a stale entry would deploy a
// variable nothing reads).
func TestLoadReadsOnlyContractVars(t *testing.T) {
	platform := contract.PlatformVars()
	for _, fn := range contract.Functions() {
		rec := newRecorder(nil)
		for _, env := range scenarios(t, fn) {
			rec.env = env
			_, _ = boot.Load(fn, rec.getenv)
		}
		read := rec.names()
		for _, name := range read {
			if !slices.Contains(varNames(fn), name) && !slices.Contains(platform, name) {
				t.Errorf("%s: Load reads %s, which is neither in contract.Vars(%q) (deployed by the IaC) nor in contract.PlatformVars()", fn, name, fn)
			}
		}
		for _, name := range varNames(fn) {
			if !slices.Contains(read, name) {
				t.Errorf("%s: contract.Vars(%q) lists %s but Load never reads it: a stale contract variable", fn, fn, name)
			}
		}
	}
}

type nopHandler struct{}

func (nopHandler) Handle(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	return events.APIGatewayProxyResponse{StatusCode: 200}, nil
}

// TestWireReadsOnlyContractVars runs the whole cold start of boot.Main
// (Wire: Load, logging, tracing, the AWS SDK, metrics, build) with a
// recording getenv: nothing on that path may read a variable the contract
// does not list. The AWS SDK reads its own variables (AWS_REGION, the
// credentials chain) from the process environment, outside this contract:
// see contract.PlatformVars.
func TestWireReadsOnlyContractVars(t *testing.T) {
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, fn := range contract.Functions() {
		// Everything set (for $connect with the PEM key, the first key source).
		rec := newRecorder(scenarios(t, fn)[1])
		var built bool
		_, err := boot.Wire(fn, rec.getenv, io.Discard, func(context.Context, boot.Env) (boot.Handler, error) {
			built = true
			return nopHandler{}, nil
		})
		if err != nil || !built {
			t.Fatalf("%s: Wire = %v (built %v)", fn, err, built)
		}
		for _, name := range rec.names() {
			if !slices.Contains(varNames(fn), name) && !slices.Contains(contract.PlatformVars(), name) {
				t.Errorf("%s: the cold start reads %s, which is neither in contract.Vars(%q) nor in contract.PlatformVars()", fn, name, fn)
			}
		}
	}
}

// contractConsts maps "contract.Name" to the value of every string constant
// of contract/, so source calls like os.Getenv(contract.EnvX) resolve.
func contractConsts(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	pkgs, err := filepath.Glob(filepath.Join(root, "..", "contract", "*.go"))
	if err != nil || len(pkgs) == 0 {
		t.Fatalf("contract/ sources not found under %s: %v", root, err)
	}
	for _, p := range pkgs {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							out["contract."+name.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
		}
	}
	return out
}

// TestSourcesReadOnlyContractVars finds every os.Getenv, os.LookupEnv and
// os.Environ in the non-test sources of lambda/: each must name (by literal
// or contract/ constant) a variable of contract.Vars or
// contract.PlatformVars. The one exception is boot.Main handing os.Getenv
// to Load, whose reads the tests above record.
func TestSourcesReadOnlyContractVars(t *testing.T) {
	root := filepath.Join("..", "..")
	consts := contractConsts(t, root)
	allowed := append([]string(nil), contract.PlatformVars()...)
	for _, fn := range contract.Functions() {
		allowed = append(allowed, varNames(fn)...)
	}
	var direct []string // names read directly, outside Load
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		osName := ""
		for _, im := range f.Imports {
			if im.Path.Value == `"os"` {
				osName = "os"
				if im.Name != nil {
					osName = im.Name.Name
				}
			}
		}
		if osName == "" {
			return nil
		}
		calls := map[ast.Expr]*ast.CallExpr{}
		ast.Inspect(f, func(n ast.Node) bool {
			if c, ok := n.(*ast.CallExpr); ok {
				calls[c.Fun] = c
			}
			return true
		})
		rel, _ := filepath.Rel(root, path)
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); !ok || x.Name != osName ||
				(sel.Sel.Name != "Getenv" && sel.Sel.Name != "LookupEnv" && sel.Sel.Name != "Environ") {
				return true
			}
			where := fset.Position(sel.Pos())
			where.Filename = "lambda/" + filepath.ToSlash(rel)
			call, isCall := calls[sel]
			if !isCall {
				if filepath.ToSlash(rel) == "shared/boot/main.go" && sel.Sel.Name == "Getenv" {
					return true // boot.Main's getenv for Load: recorded above
				}
				t.Errorf("%s: os.%s used as a value: pass variables through boot.Load, whose reads are recorded", where, sel.Sel.Name)
				return true
			}
			if sel.Sel.Name == "Environ" || len(call.Args) != 1 {
				t.Errorf("%s: os.%s reads variables the contract cannot list", where, sel.Sel.Name)
				return true
			}
			name, ok := "", false
			switch a := call.Args[0].(type) {
			case *ast.BasicLit:
				if a.Kind == token.STRING {
					name, _ = strconv.Unquote(a.Value)
					ok = true
				}
			case *ast.SelectorExpr:
				if x, isIdent := a.X.(*ast.Ident); isIdent && x.Name == "contract" {
					name, ok = consts["contract."+a.Sel.Name]
				}
			}
			switch {
			case !ok:
				t.Errorf("%s: os.%s with a computed name: use a contract/ constant", where, sel.Sel.Name)
			case !slices.Contains(allowed, name):
				t.Errorf("%s: reads %s, which is in neither contract.Vars nor contract.PlatformVars()", where, name)
			default:
				direct = append(direct, name)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(direct) == 0 {
		t.Error("no direct environment reads found: the scan did not see lambda/ (observability reads _X_AMZN_TRACE_ID)")
	}

	// The allow-list is exact: every platform variable is read somewhere.
	read := map[string]bool{}
	for _, n := range direct {
		read[n] = true
	}
	for _, fn := range contract.Functions() {
		rec := newRecorder(nil)
		for _, env := range scenarios(t, fn) {
			rec.env = env
			_, _ = boot.Load(fn, rec.getenv)
		}
		for _, n := range rec.names() {
			read[n] = true
		}
	}
	for _, p := range contract.PlatformVars() {
		if !read[p] {
			t.Errorf("contract.PlatformVars() lists %s but no handler code reads it: remove it", p)
		}
	}
}
