package stack_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"gopkg.in/yaml.v3"

	"github.com/pay-theory/streamer/deployment/pulumi/stack"
)

// The fake account the mocks answer for.
const (
	testAccount = "123456789012"
	testRegion  = "us-east-1"
	testAPIID   = "a1b2c3d4e5"
)

// recorded is one resource the program registered, with its inputs as plain
// Go values (strings, float64, bool, []any, map[string]any).
type recorded struct {
	Type   string
	Name   string
	Inputs map[string]any
	// Outputs are the state the mocks answered (inputs plus computed ARNs).
	Outputs map[string]any
}

func (r recorded) str(key string) string {
	s, _ := r.Inputs[key].(string)
	return s
}

func (r recorded) out(key string) string {
	s, _ := r.Outputs[key].(string)
	return s
}

// mocks records every resource and answers like AWS would, with plausible
// ARNs, so policies built from outputs can be checked exactly.
type mocks struct {
	mu        sync.Mutex
	resources []recorded
}

func (m *mocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	switch args.Token {
	case "aws:index/getCallerIdentity:getCallerIdentity":
		return resource.NewPropertyMapFromMap(map[string]any{
			"accountId": testAccount, "id": testAccount, "arn": "arn:aws:iam::" + testAccount + ":user/deployer", "userId": "AIDATEST",
		}), nil
	case "aws:index/getRegion:getRegion":
		return resource.NewPropertyMapFromMap(map[string]any{"name": testRegion, "id": testRegion}), nil
	case "aws:index/getPartition:getPartition":
		return resource.NewPropertyMapFromMap(map[string]any{
			"partition": "aws", "id": "aws", "dnsSuffix": "amazonaws.com", "reverseDnsPrefix": "com.amazonaws",
		}), nil
	}
	return nil, fmt.Errorf("mocks: unexpected invoke %s", args.Token)
}

func (m *mocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	in := args.Inputs.Mappable()
	out := map[string]any{}
	for k, v := range in {
		out[k] = v
	}
	name, _ := in["name"].(string)
	if name == "" {
		name = args.Name
	}
	id := args.Name + "-id"
	arn := func(service, res string) string {
		return fmt.Sprintf("arn:aws:%s:%s:%s:%s", service, testRegion, testAccount, res)
	}
	switch args.TypeToken {
	case "aws:kms/key:Key":
		id = "key-0001"
		out["keyId"] = id
		out["arn"] = arn("kms", "key/"+id)
	case "aws:dynamodb/table:Table":
		id = name
		out["arn"] = arn("dynamodb", "table/"+name)
	case "aws:secretsmanager/secret:Secret":
		out["arn"] = arn("secretsmanager", "secret:"+name+"-AbCdEf")
	case "aws:cloudwatch/logGroup:LogGroup":
		id = name
		out["arn"] = arn("logs", "log-group:"+name)
	case "aws:apigatewayv2/api:Api":
		id = testAPIID
		out["apiEndpoint"] = fmt.Sprintf("wss://%s.execute-api.%s.amazonaws.com", id, testRegion)
		out["executionArn"] = arn("execute-api", id)
		out["arn"] = fmt.Sprintf("arn:aws:apigateway:%s::/apis/%s", testRegion, id)
	case "aws:lambda/function:Function":
		id = name
		out["arn"] = arn("lambda", "function:"+name)
		out["invokeArn"] = fmt.Sprintf("arn:aws:apigateway:%s:lambda:path/2015-03-31/functions/%s/invocations", testRegion, out["arn"])
	case "aws:iam/role:Role":
		id = name
		out["arn"] = "arn:aws:iam::" + testAccount + ":role/" + name
	case "aws:sns/topic:Topic":
		out["arn"] = arn("sns", name)
		id = out["arn"].(string)
	case "aws:s3/bucketV2:BucketV2":
		bucket, _ := in["bucket"].(string)
		id = bucket
		out["arn"] = "arn:aws:s3:::" + bucket
	default:
		out["arn"] = arn(strings.Split(args.TypeToken, ":")[1], args.Name)
	}
	m.mu.Lock()
	m.resources = append(m.resources, recorded{Type: args.TypeToken, Name: args.Name, Inputs: in, Outputs: out})
	m.mu.Unlock()
	return id, resource.NewPropertyMapFromMap(out), nil
}

// deployment is one run of the program under mocks.
type deployment struct {
	env       string
	yaml      map[string]any // the streamer: keys of Pulumi.<env>.yaml, decoded
	resources []recorded
	outputs   map[string]any
}

var environments = []string{"dev", "staging", "production"}

// stackConfig loads the shipped Pulumi.<env>.yaml the way the Pulumi CLI
// passes it to a program: "namespace:key" => string, objects as JSON.
func stackConfig(t *testing.T, env string) (map[string]string, map[string]any) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "Pulumi."+env+".yaml"))
	if err != nil {
		t.Fatalf("read the shipped stack config: %v", err)
	}
	var file struct {
		Config map[string]any `yaml:"config"`
	}
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatalf("Pulumi.%s.yaml: %v", env, err)
	}
	cfg := map[string]string{}
	streamer := map[string]any{}
	for k, v := range file.Config {
		switch v := v.(type) {
		case string:
			cfg[k] = v
		case bool:
			cfg[k] = strconv.FormatBool(v)
		case int:
			cfg[k] = strconv.Itoa(v)
		case float64:
			cfg[k] = strconv.FormatFloat(v, 'f', -1, 64)
		default:
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("Pulumi.%s.yaml %s: %v", env, k, err)
			}
			cfg[k] = string(b)
		}
		if rest, ok := strings.CutPrefix(k, stack.ConfigNamespace+":"); ok {
			streamer[rest] = v
		}
	}
	return cfg, streamer
}

func withConfig(cfg map[string]string) pulumi.RunOption {
	return func(ri *pulumi.RunInfo) { ri.Config = cfg }
}

// deploy runs the real program (LoadConfig + Deploy) against the shipped
// stack file of env and returns every registered resource and the outputs.
func deploy(t *testing.T, env string) *deployment {
	t.Helper()
	return deployWith(t, env, nil)
}

// deployWith is deploy with extra "namespace:key" config values (JSON for
// objects) over the shipped file's.
func deployWith(t *testing.T, env string, extra map[string]string) *deployment {
	t.Helper()
	cfg, streamer := stackConfig(t, env)
	maps.Copy(cfg, extra)
	m := &mocks{}
	outputs := map[string]any{}
	var outMu sync.Mutex
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		c, err := stack.LoadConfig(ctx)
		if err != nil {
			return err
		}
		out, err := stack.Deploy(ctx, c)
		if err != nil {
			return err
		}
		out.Export(ctx)
		record := func(key string, o pulumi.StringOutput) {
			o.ApplyT(func(v string) string {
				outMu.Lock()
				outputs[key] = v
				outMu.Unlock()
				return v
			})
		}
		record("webSocketUrl", out.WebSocketURL)
		record("managementEndpoint", out.ManagementEndpoint)
		record("tableName", out.TableName)
		for fn, n := range out.FunctionNames {
			record("functionNames."+fn, n)
		}
		for sev, arn := range out.AlarmTopicARNs {
			record("alarmTopics."+sev, arn)
		}
		// What Export publishes, by name ("export.<name>"). Exported in
		// turn, so the run waits for each value to be recorded.
		for name, v := range out.Exports() {
			ctx.Export("recorded."+name, pulumi.ToOutput(v).ApplyT(func(x any) any {
				outMu.Lock()
				outputs["export."+name] = x
				outMu.Unlock()
				return x
			}))
		}
		return nil
	}, pulumi.WithMocks(stack.ConfigNamespace, env, m), withConfig(cfg))
	if err != nil {
		t.Fatalf("deploy %s: %v", env, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rs := append([]recorded(nil), m.resources...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].Type+rs[i].Name < rs[j].Type+rs[j].Name })
	return &deployment{env: env, yaml: streamer, resources: rs, outputs: outputs}
}

func (d *deployment) ofType(typ string) []recorded {
	var out []recorded
	for _, r := range d.resources {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

func (d *deployment) one(t *testing.T, typ, name string) recorded {
	t.Helper()
	for _, r := range d.resources {
		if r.Type == typ && r.Name == name {
			return r
		}
	}
	t.Fatalf("%s: no %s named %q", d.env, typ, name)
	return recorded{}
}

// yamlObj reads a nested streamer: value of the shipped file (nil when absent).
func (d *deployment) yamlVal(path ...string) any {
	var cur any = d.yaml
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func (d *deployment) yamlNum(path ...string) float64 {
	switch v := d.yamlVal(path...).(type) {
	case int:
		return float64(v)
	case float64:
		return v
	}
	return 0
}

func (d *deployment) yamlBool(path ...string) bool {
	b, _ := d.yamlVal(path...).(bool)
	return b
}
