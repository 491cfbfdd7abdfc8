package stack_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/archive"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/deployment/pulumi/stack"
	"github.com/pay-theory/streamer/pkg/store/schema"
)

// Resource type tokens.
const (
	tKey          = "aws:kms/key:Key"
	tAlias        = "aws:kms/alias:Alias"
	tTable        = "aws:dynamodb/table:Table"
	tSecret       = "aws:secretsmanager/secret:Secret"
	tLogGroup     = "aws:cloudwatch/logGroup:LogGroup"
	tRole         = "aws:iam/role:Role"
	tRolePolicy   = "aws:iam/rolePolicy:RolePolicy"
	tAttachment   = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
	tFunction     = "aws:lambda/function:Function"
	tPermission   = "aws:lambda/permission:Permission"
	tAPI          = "aws:apigatewayv2/api:Api"
	tIntegration  = "aws:apigatewayv2/integration:Integration"
	tRoute        = "aws:apigatewayv2/route:Route"
	tRouteResp    = "aws:apigatewayv2/routeResponse:RouteResponse"
	tStage        = "aws:apigatewayv2/stage:Stage"
	tAccount      = "aws:apigateway/account:Account"
	tMetricFilter = "aws:cloudwatch/logMetricFilter:LogMetricFilter"
	tQuery        = "aws:cloudwatch/queryDefinition:QueryDefinition"
	tDashboard    = "aws:cloudwatch/dashboard:Dashboard"
	tAlarm        = "aws:cloudwatch/metricAlarm:MetricAlarm"
	tTopic        = "aws:sns/topic:Topic"
	tTrail        = "aws:cloudtrail/trail:Trail"
	tBucket       = "aws:s3/bucketV2:BucketV2"
	tBucketPolicy = "aws:s3/bucketPolicy:BucketPolicy"
	tPublicBlock  = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
	tBucketSSE    = "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2"
	tEventRule    = "aws:cloudwatch/eventRule:EventRule"
	tEventTarget  = "aws:cloudwatch/eventTarget:EventTarget"
	tInvokeConfig = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
)

// otherActions is what each handler calls outside DynamoDB, written from
// the handlers' code (lambda/connect, lambda/disconnect, lambda/default)
// independently of the stack's own table: a role that grants more or less
// fails here. The DynamoDB actions are contract.DynamoDBActions, which a
// root-module test (lambda/*/bootstrap) holds equal to the operations each
// real handler calls on every path.
var otherActions = map[string][]string{
	contract.FunctionConnect: {
		"secretsmanager:GetSecretValue", "kms:Decrypt", // JWT public key, once per cold start
		"logs:CreateLogStream", "logs:PutLogEvents",
		"xray:PutTraceSegments", "xray:PutTelemetryRecords",
	},
	contract.FunctionDisconnect: {
		"logs:CreateLogStream", "logs:PutLogEvents",
		"xray:PutTraceSegments", "xray:PutTelemetryRecords",
	},
	contract.FunctionDefault: {
		"logs:CreateLogStream", "logs:PutLogEvents",
		"xray:PutTraceSegments", "xray:PutTelemetryRecords",
	},
	contract.FunctionReaper: {
		"execute-api:ManageConnections", // GetConnection, on GET @connections/* of this stage only
		"logs:CreateLogStream", "logs:PutLogEvents",
		"xray:PutTraceSegments", "xray:PutTelemetryRecords",
	},
}

// dynamoActions is contract.DynamoDBActions(fn) as sorted IAM actions.
func dynamoActions(fn string) []string {
	var out []string
	for _, op := range contract.DynamoDBActions(fn) {
		out = append(out, "dynamodb:"+op)
	}
	sort.Strings(out)
	return out
}

// wantActions is everything fn's role must allow, and nothing more.
func wantActions(fn string) []string {
	out := append(dynamoActions(fn), otherActions[fn]...)
	sort.Strings(out)
	return out
}

// routed counts the functions a route invokes (all but the reaper).
func routed() int {
	n := 0
	for _, fn := range contract.Functions() {
		if contract.RouteOf(fn) != "" {
			n++
		}
	}
	return n
}

// scheduled reports whether the shipped stack file of d schedules the reaper.
func (d *deployment) scheduled() bool {
	s, _ := d.yamlVal("reaper", "schedule").(string)
	return s != ""
}

func TestInventory(t *testing.T) {
	for _, env := range environments {
		t.Run(env, func(t *testing.T) {
			d := deploy(t, env)
			alarms := d.yamlBool("alarms", "enabled")
			trail := d.yamlBool("cloudTrail")
			accountRole := d.yamlBool("apiGatewayAccountRole")
			n, r := len(contract.Functions()), routed()
			sched := 0
			if d.scheduled() {
				sched = 1
			}
			want := map[string]int{
				tKey: 1, tAlias: 1, tTable: 1, tSecret: 1,
				tLogGroup: n + 1, tRolePolicy: n, tFunction: n, tPermission: r + sched,
				tAPI: 1, tIntegration: r, tRoute: r, tRouteResp: len(contract.TwoWayRoutes()), tStage: 1,
				tMetricFilter: n, tQuery: 5, tDashboard: 1,
				tRole: n, tInvokeConfig: 1, tEventRule: sched, tEventTarget: sched,
			}
			if accountRole {
				want[tRole]++
				want[tAttachment] = 1
				want[tAccount] = 1
			}
			if alarms {
				want[tTopic] = 2
			}
			if trail {
				want[tTrail], want[tBucket], want[tBucketPolicy], want[tPublicBlock], want[tBucketSSE] = 1, 1, 1, 1, 1
			}
			for typ, count := range want {
				if got := len(d.ofType(typ)); got != count {
					t.Errorf("%s: %d × %s, want %d", env, got, typ, count)
				}
			}
			// Nothing unexpected either (alarms are counted in TestAlarms).
			for _, r := range d.resources {
				if _, ok := want[r.Type]; !ok && r.Type != tAlarm && r.Type != "pulumi:pulumi:Stack" &&
					r.Type != "aws:sns/topicSubscription:TopicSubscription" {
					t.Errorf("%s: unexpected resource %s %s", env, r.Type, r.Name)
				}
			}
			if !alarms && len(d.ofType(tAlarm)) != 0 {
				t.Errorf("%s: alarms are disabled but %d alarms exist", env, len(d.ofType(tAlarm)))
			}
			if alarms && len(d.ofType(tAlarm)) == 0 {
				t.Errorf("%s: alarms enabled but none exist", env)
			}
		})
	}
}

func TestDevIsVerboseUnprotectedAndSilent(t *testing.T) {
	d := deploy(t, "dev")
	if n := len(d.ofType(tAlarm)) + len(d.ofType(tTopic)); n != 0 {
		t.Errorf("dev has %d alarms/topics, want none", n)
	}
	for _, f := range d.ofType(tFunction) {
		if lvl := envVars(f)[contract.EnvLogLevel]; lvl != "debug" {
			t.Errorf("dev %s LOG_LEVEL = %q, want debug", f.Name, lvl)
		}
	}
	if d.one(t, tTable, "connections").Inputs["deletionProtectionEnabled"] != false {
		t.Error("dev table has deletion protection")
	}
	prod := deploy(t, "production")
	if prod.one(t, tTable, "connections").Inputs["deletionProtectionEnabled"] != true {
		t.Error("production table lacks deletion protection")
	}
	devDays := d.one(t, tLogGroup, "logs-connect").Inputs["retentionInDays"].(float64)
	prodDays := prod.one(t, tLogGroup, "logs-connect").Inputs["retentionInDays"].(float64)
	if devDays >= prodDays {
		t.Errorf("log retention dev %v days, production %v: dev should be shorter", devDays, prodDays)
	}
	for _, lg := range append(d.ofType(tLogGroup), prod.ofType(tLogGroup)...) {
		if lg.Inputs["retentionInDays"] == nil {
			t.Errorf("log group %s has no retention", lg.Name)
		}
	}
}

func TestTableEqualsSchema(t *testing.T) {
	want := schema.Connections()
	for _, env := range environments {
		d := deploy(t, env)
		tb := d.one(t, tTable, "connections")
		key := d.one(t, tKey, "key")
		if tb.str("hashKey") != want.HashKey {
			t.Errorf("%s: hash key %q, want %q", env, tb.str("hashKey"), want.HashKey)
		}
		if tb.Inputs["rangeKey"] != nil {
			t.Errorf("%s: table has a range key %v; the schema has none", env, tb.Inputs["rangeKey"])
		}
		var attrs []string
		for _, a := range tb.Inputs["attributes"].([]any) {
			m := a.(map[string]any)
			attrs = append(attrs, fmt.Sprintf("%s:%s", m["name"], m["type"]))
		}
		var wantAttrs []string
		for _, a := range want.Attributes {
			wantAttrs = append(wantAttrs, fmt.Sprintf("%s:%s", a.Name, a.Type))
		}
		sort.Strings(attrs)
		sort.Strings(wantAttrs)
		if !slices.Equal(attrs, wantAttrs) {
			t.Errorf("%s: attributes %v, want %v", env, attrs, wantAttrs)
		}
		var gsis, wantGSIs []string
		for _, g := range tb.Inputs["globalSecondaryIndexes"].([]any) {
			m := g.(map[string]any)
			gsis = append(gsis, fmt.Sprintf("%s(%s,%v)%s", m["name"], m["hashKey"], m["rangeKey"], m["projectionType"]))
		}
		for _, ix := range want.Indexes {
			wantGSIs = append(wantGSIs, fmt.Sprintf("%s(%s,%s)ALL", ix.Name, ix.HashKey, ix.RangeKey))
		}
		sort.Strings(gsis)
		sort.Strings(wantGSIs)
		if !slices.Equal(gsis, wantGSIs) {
			t.Errorf("%s: indexes %v, want %v", env, gsis, wantGSIs)
		}
		ttl := tb.Inputs["ttl"].(map[string]any)
		if ttl["attributeName"] != want.TTLAttribute || ttl["enabled"] != true {
			t.Errorf("%s: ttl %v, want %s enabled", env, ttl, want.TTLAttribute)
		}
		if tb.str("billingMode") != "PAY_PER_REQUEST" {
			t.Errorf("%s: billing mode %q", env, tb.str("billingMode"))
		}
		if pitr := tb.Inputs["pointInTimeRecovery"].(map[string]any); pitr["enabled"] != true {
			t.Errorf("%s: point-in-time recovery %v", env, pitr)
		}
		sse := tb.Inputs["serverSideEncryption"].(map[string]any)
		if sse["enabled"] != true || sse["kmsKeyArn"] != key.out("arn") {
			t.Errorf("%s: SSE %v, want enabled with the stack's CMK %s", env, sse, key.out("arn"))
		}
		if got, want := tb.Inputs["deletionProtectionEnabled"], d.yamlBool("deletionProtection"); got != want {
			t.Errorf("%s: deletion protection %v, want %v", env, got, want)
		}
		if !strings.HasPrefix(tb.str("name"), schema.DefaultTableName) {
			t.Errorf("%s: table name %q does not start with %q", env, tb.str("name"), schema.DefaultTableName)
		}
		if key.Inputs["enableKeyRotation"] != true {
			t.Errorf("%s: KMS key rotation off", env)
		}
		if sec := d.one(t, tSecret, "jwt-public-key"); sec.str("kmsKeyId") != key.out("arn") {
			t.Errorf("%s: secret encrypted with %q, want the stack's CMK", env, sec.str("kmsKeyId"))
		}
	}
}

func envVars(f recorded) map[string]string {
	out := map[string]string{}
	env, _ := f.Inputs["environment"].(map[string]any)
	vars, _ := env["variables"].(map[string]any)
	for k, v := range vars {
		out[k], _ = v.(string)
	}
	return out
}

func TestFunctions(t *testing.T) {
	for _, env := range environments {
		d := deploy(t, env)
		table := d.one(t, tTable, "connections")
		secret := d.one(t, tSecret, "jwt-public-key")
		for _, fn := range contract.Functions() {
			f := d.one(t, tFunction, "fn-"+fn)
			if f.str("runtime") != "provided.al2023" || f.str("handler") != "bootstrap" {
				t.Errorf("%s/%s: runtime %q handler %q", env, fn, f.str("runtime"), f.str("handler"))
			}
			if arch := f.Inputs["architectures"]; fmt.Sprint(arch) != "[arm64]" {
				t.Errorf("%s/%s: architectures %v, want [arm64]", env, fn, arch)
			}
			if tc, _ := f.Inputs["tracingConfig"].(map[string]any); tc["mode"] != "Active" {
				t.Errorf("%s/%s: tracing %v, want Active", env, fn, tc)
			}
			code, ok := f.Inputs["code"].(*archive.Archive)
			if !ok || !strings.HasSuffix(code.Path, "dist/"+fn+".zip") {
				t.Errorf("%s/%s: code %#v, want the archive dist/%s.zip", env, fn, f.Inputs["code"], fn)
			}

			// Environment: exactly the contract's Deployed variables.
			got := envVars(f)
			var gotNames, wantNames []string
			for k := range got {
				gotNames = append(gotNames, k)
			}
			for _, v := range contract.Vars(fn) {
				if v.Deployed {
					wantNames = append(wantNames, v.Name)
				}
			}
			sort.Strings(gotNames)
			sort.Strings(wantNames)
			if !slices.Equal(gotNames, wantNames) {
				t.Errorf("%s/%s: environment %v, want the contract's deployed vars %v", env, fn, gotNames, wantNames)
			}
			if got[contract.EnvConnectionsTable] != table.str("name") {
				t.Errorf("%s/%s: %s=%q, want the table %q", env, fn, contract.EnvConnectionsTable, got[contract.EnvConnectionsTable], table.str("name"))
			}
			if lvl, _ := d.yamlVal("logLevel").(string); got[contract.EnvLogLevel] != lvl {
				t.Errorf("%s/%s: LOG_LEVEL %q, want %q from the stack file", env, fn, got[contract.EnvLogLevel], lvl)
			}
			if got[contract.EnvEnvironment] != env {
				t.Errorf("%s/%s: ENVIRONMENT %q", env, fn, got[contract.EnvEnvironment])
			}
			if fn == contract.FunctionConnect {
				if got[contract.EnvJWTPublicKeySecretARN] != secret.out("arn") {
					t.Errorf("%s: secret ARN var %q, want %q", env, got[contract.EnvJWTPublicKeySecretARN], secret.out("arn"))
				}
				if iss, _ := d.yamlVal("jwt", "issuer").(string); got[contract.EnvJWTIssuer] != iss || iss == "" {
					t.Errorf("%s: issuer %q, want %q", env, got[contract.EnvJWTIssuer], iss)
				}
			}

			// Sizing from the shipped stack file.
			if m := d.yamlNum("functions", fn, "memoryMb"); m != 0 && f.Inputs["memorySize"] != m {
				t.Errorf("%s/%s: memory %v, want %v", env, fn, f.Inputs["memorySize"], m)
			}
			if s := d.yamlNum("functions", fn, "timeoutSeconds"); s != 0 && f.Inputs["timeout"] != s {
				t.Errorf("%s/%s: timeout %v, want %v", env, fn, f.Inputs["timeout"], s)
			}
			if fn == contract.FunctionReaper && got[contract.EnvManagementEndpoint] != d.outputs["managementEndpoint"] {
				t.Errorf("%s/%s: %s=%q, want the stack's management endpoint %v", env, fn, contract.EnvManagementEndpoint,
					got[contract.EnvManagementEndpoint], d.outputs["managementEndpoint"])
			}
			rc := d.yamlNum("functions", fn, "reservedConcurrency")
			if rc == 0 && f.Inputs["reservedConcurrentExecutions"] != nil {
				t.Errorf("%s/%s: reserved concurrency %v, want unreserved", env, fn, f.Inputs["reservedConcurrentExecutions"])
			}
			if rc != 0 && f.Inputs["reservedConcurrentExecutions"] != rc {
				t.Errorf("%s/%s: reserved concurrency %v, want %v", env, fn, f.Inputs["reservedConcurrentExecutions"], rc)
			}
			lg := d.one(t, tLogGroup, "logs-"+fn)
			if lc, _ := f.Inputs["loggingConfig"].(map[string]any); lc["logGroup"] != lg.str("name") || lc["logFormat"] != "Text" {
				t.Errorf("%s/%s: logging config %v, want Text into %s", env, fn, lc, lg.str("name"))
			}
			if lg.str("name") != "/aws/lambda/"+f.str("name") {
				t.Errorf("%s/%s: log group %q is not the function's %q", env, fn, lg.str("name"), "/aws/lambda/"+f.str("name"))
			}
		}
		if env == "production" {
			if d.one(t, tFunction, "fn-connect").Inputs["memorySize"].(float64) <= deploy(t, "dev").one(t, tFunction, "fn-connect").Inputs["memorySize"].(float64) {
				t.Error("production connect is not sized above dev")
			}
		}
	}
}

// doc is a parsed policy document; Action and Resource may be a string or a list.
type doc struct {
	Statement []struct {
		Sid       string
		Effect    string
		Principal any
		Action    any
		Resource  any
		Condition map[string]map[string]any
	}
}

func list(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			out = append(out, e.(string))
		}
		return out
	}
	return nil
}

func parseDoc(t *testing.T, where, js string) doc {
	t.Helper()
	var d doc
	if err := json.Unmarshal([]byte(js), &d); err != nil {
		t.Fatalf("%s: policy is not JSON: %v\n%s", where, err, js)
	}
	if len(d.Statement) == 0 {
		t.Fatalf("%s: policy has no statements", where)
	}
	return d
}

// TestNoWildcardActions checks every policy document of the stack: role
// policies, trust policies, the key policy and the trail bucket policy.
func TestNoWildcardActions(t *testing.T) {
	for _, env := range environments {
		d := deploy(t, env)
		var docs int
		for _, r := range d.resources {
			for _, field := range []string{"policy", "assumeRolePolicy"} {
				js := r.str(field)
				if js == "" {
					continue
				}
				docs++
				for _, st := range parseDoc(t, r.Name, js).Statement {
					actions := list(st.Action)
					if len(actions) == 0 {
						t.Errorf("%s %s: statement %q has no actions", env, r.Name, st.Sid)
					}
					for _, a := range actions {
						if strings.Contains(a, "*") {
							t.Errorf("%s %s %s: wildcard action %q", env, r.Type, r.Name, a)
						}
					}
				}
			}
		}
		if docs < 2*len(contract.Functions())+1 {
			t.Errorf("%s: only %d policy documents found: the check did not see the roles", env, docs)
		}
	}
}

func TestFunctionPolicies(t *testing.T) {
	xray := []string{"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
	for _, env := range environments {
		d := deploy(t, env)
		table := d.one(t, tTable, "connections").out("arn")
		secret := d.one(t, tSecret, "jwt-public-key").out("arn")
		key := d.one(t, tKey, "key").out("arn")
		for _, fn := range contract.Functions() {
			own := d.one(t, tLogGroup, "logs-"+fn).out("arn")
			// Each service's actions may only touch this stack's resource of that kind.
			allowed := map[string][]string{
				"dynamodb":       {table},
				"secretsmanager": {secret},
				"kms":            {key},
				"logs":           {own + ":*"},
				"xray":           {"*"}, // X-Ray has no resource-level permissions: the documented exception
				// GetConnection only, on this API's stage.
				"execute-api": {fmt.Sprintf("arn:aws:execute-api:%s:%s:%s/%s/GET/@connections/*", testRegion, testAccount, testAPIID, env)},
			}
			internal := list(stringsAny(contract.DynamoDBInternalItemActions(fn), "dynamodb:"))
			p := d.one(t, tRolePolicy, "policy-"+fn)
			role := d.one(t, tRole, "role-"+fn)
			if p.str("role") != role.str("name") {
				t.Errorf("%s/%s: policy attached to role %q, want %q", env, fn, p.str("role"), role.str("name"))
			}
			if f := d.one(t, tFunction, "fn-"+fn); f.str("role") != role.out("arn") {
				t.Errorf("%s/%s: function runs as %q, want its own role %q", env, fn, f.str("role"), role.out("arn"))
			}
			var got, gotDynamo []string
			for _, st := range parseDoc(t, p.Name, p.str("policy")).Statement {
				if st.Effect != "Allow" {
					t.Errorf("%s/%s: unexpected %s statement", env, fn, st.Effect)
				}
				actions := list(st.Action)
				got = append(got, actions...)
				for _, a := range actions {
					if strings.HasPrefix(a, "dynamodb:") {
						gotDynamo = append(gotDynamo, a)
					}
				}
				if len(list(st.Resource)) == 0 {
					t.Errorf("%s/%s: statement %q has no Resource", env, fn, st.Sid)
				}
				for _, a := range actions {
					svc, _, _ := strings.Cut(a, ":")
					for _, res := range list(st.Resource) {
						if !slices.Contains(allowed[svc], res) {
							t.Errorf("%s/%s: %s on %q: not this stack's %s resource (allowed %v)", env, fn, a, res, svc, allowed[svc])
						}
					}
				}
				if slices.Contains(list(st.Resource), "*") && !isSubset(actions, xray) {
					t.Errorf("%s/%s: Resource \"*\" with %v: only X-Ray may use it", env, fn, actions)
				}
				if slices.Contains(actions, "kms:Decrypt") && st.Condition["StringEquals"]["kms:ViaService"] != "secretsmanager."+testRegion+".amazonaws.com" {
					t.Errorf("%s/%s: kms:Decrypt not restricted to Secrets Manager: %v", env, fn, st.Condition)
				}
				// Internal-item actions only with the LeadingKeys condition
				// naming exactly the counter and the checkpoint, and alone.
				for _, a := range actions {
					if !slices.Contains(internal, a) {
						continue
					}
					keys := list(st.Condition["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"])
					sort.Strings(keys)
					want := []string{schema.ActiveCounterKey, schema.CheckpointKey(contract.ReaperCheckpoint)}
					sort.Strings(want)
					if !slices.Equal(keys, want) || !isSubset(actions, internal) || len(st.Condition) != 1 {
						t.Errorf("%s/%s: %s granted with %v (condition %v), want only with dynamodb:LeadingKeys %v", env, fn, a, actions, st.Condition, want)
					}
				}
			}
			sort.Strings(gotDynamo)
			if want := dynamoActions(fn); !slices.Equal(gotDynamo, want) || len(want) == 0 {
				t.Errorf("%s/%s: role allows DynamoDB %v, contract.DynamoDBActions(%q) is exactly %v", env, fn, gotDynamo, fn, want)
			}
			sort.Strings(got)
			if want := wantActions(fn); !slices.Equal(got, want) {
				t.Errorf("%s/%s: role allows %v, handler calls exactly %v", env, fn, got, want)
			}
			trust := parseDoc(t, role.Name, role.str("assumeRolePolicy"))
			if trust.Statement[0].Resource != nil {
				t.Errorf("%s/%s: trust policy has a Resource (IAM rejects it): %v", env, fn, trust.Statement[0].Resource)
			}
			if p := fmt.Sprint(trust.Statement[0].Principal); p != "map[Service:lambda.amazonaws.com]" || len(trust.Statement) != 1 {
				t.Errorf("%s/%s: trust policy %v, want lambda.amazonaws.com only", env, fn, trust.Statement)
			}
		}
	}
}

// stringsAny is each of ss with prefix, as a JSON-decoded list.
func stringsAny(ss []string, prefix string) []any {
	out := []any{}
	for _, s := range ss {
		out = append(out, prefix+s)
	}
	return out
}

func isSubset(a, of []string) bool {
	for _, x := range a {
		if !slices.Contains(of, x) {
			return false
		}
	}
	return true
}

func TestWebSocketAPI(t *testing.T) {
	for _, env := range environments {
		d := deploy(t, env)
		api := d.one(t, tAPI, "websocket")
		if api.str("protocolType") != "WEBSOCKET" || api.str("routeSelectionExpression") != "$request.body.action" {
			t.Errorf("%s: api %v", env, api.Inputs)
		}
		stage := d.one(t, tStage, "stage")
		stageName := stage.str("name")
		if stageName != env {
			t.Errorf("%s: stage %q, want the environment name", env, stageName)
		}
		integrations := map[string]recorded{}
		for _, in := range d.ofType(tIntegration) {
			if in.str("integrationType") != "AWS_PROXY" || in.str("apiId") != testAPIID {
				t.Errorf("%s: integration %s %v", env, in.Name, in.Inputs)
			}
			integrations[in.Name+"-id"] = in
		}
		routes := map[string]recorded{}
		for _, r := range d.ofType(tRoute) {
			routes[r.str("routeKey")] = r
		}
		for _, fn := range contract.Functions() {
			key := contract.RouteOf(fn)
			if key == "" {
				for _, p := range d.ofType(tPermission) {
					if p.str("principal") == "apigateway.amazonaws.com" && p.str("function") == d.one(t, tFunction, "fn-"+fn).str("name") {
						t.Errorf("%s: API Gateway may invoke %s, which no route invokes", env, fn)
					}
				}
				continue
			}
			r, ok := routes[key]
			if !ok {
				t.Errorf("%s: no route %s", env, key)
				continue
			}
			f := d.one(t, tFunction, "fn-"+fn)
			integ, ok := integrations[strings.TrimPrefix(r.str("target"), "integrations/")]
			if !ok || integ.str("integrationUri") != f.out("invokeArn") {
				t.Errorf("%s: route %s targets %q, want the integration invoking %s", env, key, r.str("target"), f.str("name"))
			}
			perm := d.one(t, tPermission, "invoke-"+fn)
			wantSrc := fmt.Sprintf("arn:aws:execute-api:%s:%s:%s/%s/%s", testRegion, testAccount, testAPIID, stageName, key)
			if perm.str("principal") != "apigateway.amazonaws.com" || perm.str("sourceArn") != wantSrc ||
				perm.str("function") != f.str("name") || perm.str("action") != "lambda:InvokeFunction" {
				t.Errorf("%s: permission %v, want invoke of %s from %s", env, perm.Inputs, f.str("name"), wantSrc)
			}
		}
		// Route responses both ways: exactly the contract's two-way routes
		// have one (the local gateway drops the bodies of all others).
		responses := map[string]recorded{}
		for _, rr := range d.ofType(tRouteResp) {
			responses[rr.str("routeId")] = rr
		}
		for _, fn := range contract.Functions() {
			key := contract.RouteOf(fn)
			if key == "" {
				continue // no route
			}
			sel := routes[key].str("routeResponseSelectionExpression")
			rr, has := responses["route-"+fn+"-id"]
			if contract.IsTwoWayRoute(key) {
				if sel != contract.RouteResponseKey || !has || rr.str("routeResponseKey") != contract.RouteResponseKey {
					t.Errorf("%s: two-way route %s: selection %q, route response %v", env, key, sel, rr.Inputs)
				}
				continue
			}
			if sel != "" || has {
				t.Errorf("%s: one-way route %s has a route response (selection %q, %v)", env, key, sel, rr.Inputs)
			}
		}
		if len(responses) != len(contract.TwoWayRoutes()) {
			t.Errorf("%s: %d route responses, want one per two-way route %v", env, len(responses), contract.TwoWayRoutes())
		}

		s := stage.Inputs["defaultRouteSettings"].(map[string]any)
		if s["throttlingBurstLimit"] != d.yamlNum("throttling", "burstLimit") || s["throttlingRateLimit"] != d.yamlNum("throttling", "rateLimit") {
			t.Errorf("%s: throttling %v, want burst %v rate %v", env, s, d.yamlNum("throttling", "burstLimit"), d.yamlNum("throttling", "rateLimit"))
		}
		if s["dataTraceEnabled"] != false {
			t.Errorf("%s: data trace logs full messages: must be off", env)
		}
		al := stage.Inputs["accessLogSettings"].(map[string]any)
		if al["destinationArn"] != d.one(t, tLogGroup, "logs-api-access").out("arn") {
			t.Errorf("%s: access logs go to %v", env, al["destinationArn"])
		}
		var format map[string]string
		if err := json.Unmarshal([]byte(al["format"].(string)), &format); err != nil || format["correlation_id"] != "$context.requestId" {
			t.Errorf("%s: access log format %v (%v)", env, al["format"], err)
		}

		// Outputs.
		wantWS := fmt.Sprintf("wss://%s.execute-api.%s.amazonaws.com/%s", testAPIID, testRegion, stageName)
		wantMgmt := fmt.Sprintf("https://%s.execute-api.%s.amazonaws.com/%s", testAPIID, testRegion, stageName)
		if d.outputs["webSocketUrl"] != wantWS || d.outputs["managementEndpoint"] != wantMgmt {
			t.Errorf("%s: outputs ws %v mgmt %v, want %s and %s", env, d.outputs["webSocketUrl"], d.outputs["managementEndpoint"], wantWS, wantMgmt)
		}
		if d.outputs["tableName"] != d.one(t, tTable, "connections").str("name") {
			t.Errorf("%s: tableName output %v", env, d.outputs["tableName"])
		}
		for _, fn := range contract.Functions() {
			if d.outputs["functionNames."+fn] != d.one(t, tFunction, "fn-"+fn).str("name") {
				t.Errorf("%s: functionNames.%s output %v", env, fn, d.outputs["functionNames."+fn])
			}
		}
		// The profile `streamer --stack` reads (scripts/deploy.sh saves
		// the exports): every name it needs, with this stack's values.
		aud, _ := d.yamlVal("jwt", "audience").(string)
		iss, _ := d.yamlVal("jwt", "issuer").(string)
		profile := map[string]any{
			contract.OutputWebSocketURL: wantWS, contract.OutputManagementEndpoint: wantMgmt,
			contract.OutputTableName: d.one(t, tTable, "connections").str("name"), contract.OutputRegion: testRegion,
			contract.OutputStage: stageName, contract.OutputJWTIssuer: iss, contract.OutputJWTAudience: aud,
			contract.OutputEnvironment: env,
		}
		for _, name := range contract.ProfileOutputs() {
			if got, ok := d.outputs["export."+name]; !ok || got != profile[name] || (name != contract.OutputJWTAudience && got == "") {
				t.Errorf("%s: exported %s = %v (exported %v), want %q", env, name, got, ok, profile[name])
			}
		}
	}
}

// metricQueries flattens an alarm's metric math into "id=namespace/metric/stat" and expressions.
func alarmMetrics(a recorded) (metrics []map[string]any, expr string) {
	for _, q := range a.Inputs["metricQueries"].([]any) {
		m := q.(map[string]any)
		if e, ok := m["expression"].(string); ok && e != "" {
			expr = e
			continue
		}
		metrics = append(metrics, m["metric"].(map[string]any))
	}
	return metrics, expr
}

func TestAlarms(t *testing.T) {
	for _, env := range []string{"staging", "production"} {
		d := deploy(t, env)
		topics := map[string]string{}
		for _, tp := range d.ofType(tTopic) {
			topics[strings.TrimPrefix(tp.Name, "alarms-")] = tp.out("arn")
			if tp.str("kmsMasterKeyId") != d.one(t, tKey, "key").out("arn") {
				t.Errorf("%s: topic %s not encrypted with the stack key", env, tp.Name)
			}
		}
		alarms := map[string]recorded{}
		for _, a := range d.ofType(tAlarm) {
			alarms[strings.TrimPrefix(a.Name, "alarm-")] = a
			if a.str("comparisonOperator") != "GreaterThanThreshold" {
				t.Errorf("%s: %s compares %s", env, a.Name, a.str("comparisonOperator"))
			}
			if a.Name == "alarm-"+stack.KeySourceErrorsAlarmID || a.Name == "alarm-"+stack.ReaperErrorsAlarmID {
				continue // their own fixed periods, checked below
			}
			if ev := a.Inputs["evaluationPeriods"]; ev != d.yamlNum("alarms", "evaluationPeriods") {
				t.Errorf("%s: %s evaluates %v periods, want %v", env, a.Name, ev, d.yamlNum("alarms", "evaluationPeriods"))
			}
		}
		check := func(id string, threshold float64, severity string) recorded {
			t.Helper()
			a, ok := alarms[id]
			if !ok {
				t.Errorf("%s: no alarm %s", env, id)
				return recorded{}
			}
			if a.Inputs["threshold"] != threshold {
				t.Errorf("%s: %s threshold %v, want %v", env, id, a.Inputs["threshold"], threshold)
			}
			acts := list(a.Inputs["alarmActions"])
			if len(acts) != 1 || acts[0] != topics[severity] || topics[severity] == "" {
				t.Errorf("%s: %s notifies %v, want the %s topic %s", env, id, acts, severity, topics[severity])
			}
			return a
		}
		period := d.yamlNum("alarms", "periodSeconds")
		for _, fn := range contract.Functions() {
			if contract.RouteOf(fn) == "" {
				continue // the reaper's alarm is its own (below)
			}
			name := d.one(t, tFunction, "fn-"+fn).str("name")
			for sev, key := range map[string]string{"low": "errorRateLowPercent", "high": "errorRateHighPercent"} {
				a := check(fn+"-error-rate-"+sev, d.yamlNum("alarms", key), sev)
				metrics, expr := alarmMetrics(a)
				if expr != "IF(invocations > 0, 100 * errors / invocations, 0)" || len(metrics) != 2 {
					t.Errorf("%s: %s math %q over %v", env, a.Name, expr, metrics)
				}
				for _, m := range metrics {
					if m["namespace"] != "AWS/Lambda" || m["dimensions"].(map[string]any)["FunctionName"] != name || m["period"] != period {
						t.Errorf("%s: %s metric %v", env, a.Name, m)
					}
				}
			}
			init := check(fn+"-init-duration", d.yamlNum("alarms", "initDurationMs"), "low")
			if init.str("metricName") != stack.InitDurationMetricName(name) || init.str("statistic") != "Maximum" {
				t.Errorf("%s: init alarm on %q %q", env, init.str("metricName"), init.str("statistic"))
			}
			// The filter that feeds it exists on the function's own log group.
			found := false
			for _, mf := range d.ofType(tMetricFilter) {
				tr := mf.Inputs["metricTransformation"].(map[string]any)
				if tr["name"] == stack.InitDurationMetricName(name) && mf.str("logGroupName") == "/aws/lambda/"+name &&
					strings.Contains(mf.str("pattern"), `init_label1="Init"`) && tr["value"] == "$init_duration" {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: no Init Duration metric filter for %s", env, name)
			}
			rc := d.yamlNum("functions", fn, "reservedConcurrency")
			if rc > 0 {
				check(fn+"-concurrency", rc*d.yamlNum("alarms", "concurrencyPercent")/100, "high")
			}
		}
		limit := d.yamlNum("accountConcurrencyLimit")
		if limit == 0 {
			limit = stack.DefaultAccountConcurrencyLimit
		}
		check("account-concurrency", limit*d.yamlNum("alarms", "concurrencyPercent")/100, "high")
		auth := check("auth-failures", d.yamlNum("alarms", "authFailures"), "high")
		if auth.str("namespace") != contract.DefaultMetricsNamespace || auth.str("metricName") != contract.MetricAuthenticationFailures ||
			auth.Inputs["dimensions"].(map[string]any)[contract.DimensionEnvironment] != env {
			t.Errorf("%s: auth alarm %v", env, auth.Inputs)
		}
		// Any KeySourceErrors datapoint in 5 minutes pages: $connect cannot get the token keys.
		ks := check(stack.KeySourceErrorsAlarmID, 0, "high")
		if ks.str("namespace") != contract.DefaultMetricsNamespace || ks.str("metricName") != contract.MetricKeySourceErrors ||
			ks.str("statistic") != "Sum" || ks.Inputs["period"] != float64(300) || ks.Inputs["evaluationPeriods"] != float64(1) ||
			fmt.Sprint(ks.Inputs["dimensions"]) != fmt.Sprintf("map[%s:%s]", contract.DimensionEnvironment, env) {
			t.Errorf("%s: key source alarm %v, want Sum of %s/%s{%s=%s} > 0 over one 300 s period", env, ks.Inputs,
				contract.DefaultMetricsNamespace, contract.MetricKeySourceErrors, contract.DimensionEnvironment, env)
		}
		table := d.one(t, tTable, "connections").str("name")
		ev := check("dynamodb-throttle-events", d.yamlNum("alarms", "dynamoThrottles"), "high")
		metrics, _ := alarmMetrics(ev)
		seen := map[string]bool{}
		for _, m := range metrics {
			if m["dimensions"].(map[string]any)["TableName"] != table {
				t.Errorf("%s: throttle metric on another table: %v", env, m)
			}
			seen[m["metricName"].(string)] = true
		}
		if !seen["ReadThrottleEvents"] || !seen["WriteThrottleEvents"] {
			t.Errorf("%s: throttle-events alarm watches %v", env, seen)
		}
		rq := check("dynamodb-throttled-requests", d.yamlNum("alarms", "dynamoThrottles"), "high")
		metrics, _ = alarmMetrics(rq)
		var ops []string
		for _, m := range metrics {
			if m["metricName"] != "ThrottledRequests" {
				t.Errorf("%s: %v", env, m)
			}
			ops = append(ops, m["dimensions"].(map[string]any)["Operation"].(string))
		}
		sort.Strings(ops)
		var wantOps []string
		for _, fn := range contract.Functions() {
			for _, op := range contract.DynamoDBActions(fn) {
				if !slices.Contains(wantOps, op) {
					wantOps = append(wantOps, op)
				}
			}
		}
		sort.Strings(wantOps)
		if !slices.Equal(ops, wantOps) || len(wantOps) == 0 {
			t.Errorf("%s: throttled-requests alarm watches %v, want the contract's operations %v", env, ops, wantOps)
		}

		// The reaper: ReaperErrors + its Lambda Errors over an hour, low.
		reaperName := d.one(t, tFunction, "fn-"+contract.FunctionReaper).str("name")
		ra := check(stack.ReaperErrorsAlarmID, d.yamlNum("alarms", "reaperErrors"), "low")
		rm, rexpr := alarmMetrics(ra)
		if rexpr != "FILL(reaper_errors, 0) + FILL(function_errors, 0)" || len(rm) != 2 || ra.Inputs["evaluationPeriods"] != float64(1) {
			t.Errorf("%s: reaper alarm %q over %v", env, rexpr, rm)
		}
		for _, m := range rm {
			dims := m["dimensions"].(map[string]any)
			ok := m["period"] == float64(stack.ReaperErrorsPeriodSeconds) && m["stat"] == "Sum" &&
				(m["namespace"] == contract.DefaultMetricsNamespace && m["metricName"] == contract.MetricReaperErrors && dims[contract.DimensionEnvironment] == env ||
					m["namespace"] == "AWS/Lambda" && m["metricName"] == "Errors" && dims["FunctionName"] == reaperName)
			if !ok {
				t.Errorf("%s: reaper alarm metric %v", env, m)
			}
		}

		// Inventory: exactly these alarms, nothing more.
		wantIDs := []string{"account-concurrency", "auth-failures", stack.KeySourceErrorsAlarmID,
			"dynamodb-throttle-events", "dynamodb-throttled-requests", stack.ReaperErrorsAlarmID}
		for _, fn := range contract.Functions() {
			if contract.RouteOf(fn) == "" {
				continue
			}
			wantIDs = append(wantIDs, fn+"-error-rate-low", fn+"-error-rate-high", fn+"-init-duration")
			if d.yamlNum("functions", fn, "reservedConcurrency") > 0 {
				wantIDs = append(wantIDs, fn+"-concurrency")
			}
		}
		var gotIDs []string
		for id := range alarms {
			gotIDs = append(gotIDs, id)
		}
		sort.Strings(wantIDs)
		sort.Strings(gotIDs)
		if !slices.Equal(gotIDs, wantIDs) {
			t.Errorf("%s: alarms %v, want exactly %v", env, gotIDs, wantIDs)
		}
	}
	// Staging pages earlier than production.
	st, pr := deploy(t, "staging"), deploy(t, "production")
	for _, k := range []string{"errorRateLowPercent", "errorRateHighPercent", "authFailures", "initDurationMs"} {
		if st.yamlNum("alarms", k) >= pr.yamlNum("alarms", k) {
			t.Errorf("staging %s %v is not below production's %v", k, st.yamlNum("alarms", k), pr.yamlNum("alarms", k))
		}
	}
}

func TestDashboardAndQueries(t *testing.T) {
	for _, env := range environments {
		d := deploy(t, env)
		body := d.one(t, tDashboard, "dashboard").str("dashboardBody")
		var parsed struct {
			Widgets []struct {
				Properties struct {
					Title   string  `json:"title"`
					Metrics [][]any `json:"metrics"`
				} `json:"properties"`
			} `json:"widgets"`
		}
		if err := json.Unmarshal([]byte(body), &parsed); err != nil {
			t.Fatalf("%s: dashboard body: %v", env, err)
		}
		shown := map[string]bool{}
		for _, w := range parsed.Widgets {
			for _, m := range w.Properties.Metrics {
				shown[fmt.Sprint(m[0])+"/"+fmt.Sprint(m[1])] = true
			}
		}
		want := []string{"AWS/Lambda/Errors", "AWS/Lambda/Duration", "AWS/ApiGateway/ConnectCount", "AWS/ApiGateway/MessageCount",
			"AWS/DynamoDB/ReadThrottleEvents", "AWS/DynamoDB/WriteThrottleEvents", "AWS/DynamoDB/ThrottledRequests"}
		for _, m := range contract.Metrics() {
			want = append(want, contract.DefaultMetricsNamespace+"/"+m)
		}
		for _, fn := range contract.Functions() {
			want = append(want, contract.DefaultMetricsNamespace+"/"+stack.InitDurationMetricName(d.one(t, tFunction, "fn-"+fn).str("name")))
		}
		for _, w := range want {
			if !shown[w] {
				t.Errorf("%s: dashboard lacks %s", env, w)
			}
		}
		if !strings.Contains(body, testAPIID) {
			t.Errorf("%s: dashboard API metrics are not for this API", env)
		}
		reaper := map[string]bool{}
		for _, w := range parsed.Widgets {
			if w.Properties.Title == stack.ReaperWidgetTitle {
				for _, m := range w.Properties.Metrics {
					reaper[fmt.Sprint(m[:4]...)] = true
				}
			}
		}
		reaperName := d.one(t, tFunction, "fn-"+contract.FunctionReaper).str("name")
		for _, m := range [][]any{
			{contract.DefaultMetricsNamespace, contract.MetricZombieRecordsRemoved, contract.DimensionEnvironment, env},
			{contract.DefaultMetricsNamespace, contract.MetricReaperErrors, contract.DimensionEnvironment, env},
			{"AWS/Lambda", "Errors", "FunctionName", reaperName},
		} {
			if !reaper[fmt.Sprint(m...)] {
				t.Errorf("%s: the reaper widget lacks %v (has %v)", env, m, reaper)
			}
		}

		queries := map[string]string{}
		for _, q := range d.ofType(tQuery) {
			queries[q.str("name")] = q.str("queryString")
			if len(list(q.Inputs["logGroupNames"])) < len(contract.Functions()) {
				t.Errorf("%s: query %s searches %v", env, q.str("name"), q.Inputs["logGroupNames"])
			}
		}
		prefix := "streamer/" + env + "/"
		slow := d.yamlNum("slowSendMs")
		if slow == 0 {
			slow = stack.DefaultSlowSendMs
		}
		for name, must := range map[string]string{
			"by-correlation-id":       "filter correlation_id =",
			"by-connection-id":        "filter connection_id =",
			"auth-failures-by-reason": "by reason",
			"slow-sends":              fmt.Sprintf("duration_ms > %v", slow),
			"reaper-runs":             `filter msg = "reaper run"`,
		} {
			if q, ok := queries[prefix+name]; !ok || !strings.Contains(q, must) {
				t.Errorf("%s: saved query %s = %q, want it to contain %q", env, prefix+name, q, must)
			}
		}
	}
}

func TestCloudTrail(t *testing.T) {
	for _, env := range environments {
		d := deploy(t, env)
		if !d.yamlBool("cloudTrail") {
			if len(d.ofType(tTrail)) != 0 {
				t.Errorf("%s: trail exists with cloudTrail off", env)
			}
			continue
		}
		table := d.one(t, tTable, "connections").out("arn")
		trail := d.one(t, tTrail, "table-data-events")
		sel := fmt.Sprint(trail.Inputs["advancedEventSelectors"])
		for _, want := range []string{"eventCategory", "Data", "AWS::DynamoDB::Table", table} {
			if !strings.Contains(sel, want) {
				t.Errorf("%s: trail selectors %s lack %q", env, sel, want)
			}
		}
		bucket := d.one(t, tBucket, "trail-bucket")
		if trail.str("s3BucketName") != bucket.str("bucket") {
			t.Errorf("%s: trail writes to %q, not the stack's bucket %q", env, trail.str("s3BucketName"), bucket.str("bucket"))
		}
		pab := d.one(t, tPublicBlock, "trail-bucket")
		for _, k := range []string{"blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"} {
			if pab.Inputs[k] != true {
				t.Errorf("%s: public access block %s = %v", env, k, pab.Inputs[k])
			}
		}
		bp := parseDoc(t, "bucket policy", d.one(t, tBucketPolicy, "trail-bucket").str("policy"))
		trailArn := fmt.Sprintf("arn:aws:cloudtrail:%s:%s:trail/%s", testRegion, testAccount, trail.str("name"))
		for _, st := range bp.Statement {
			if fmt.Sprint(st.Principal) != "map[Service:cloudtrail.amazonaws.com]" || st.Condition["StringEquals"]["aws:SourceArn"] != trailArn {
				t.Errorf("%s: bucket statement %s open to %v under %v", env, st.Sid, st.Principal, st.Condition)
			}
			for _, r := range list(st.Resource) {
				if !strings.HasPrefix(r, bucket.out("arn")) {
					t.Errorf("%s: bucket policy resource %q outside the bucket", env, r)
				}
			}
		}
	}
}

func TestValidate(t *testing.T) {
	base := stack.Config{JWT: stack.JWT{Issuer: "i"}}.WithDefaults("dev")
	if err := base.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	cases := map[string]func(*stack.Config){
		"streamer:jwt.issuer":         func(c *stack.Config) { c.JWT.Issuer = "" },
		"streamer:logRetentionDays 4": func(c *stack.Config) { c.LogRetentionDays = 4 },
		"streamer:logLevel":           func(c *stack.Config) { c.LogLevel = "loud" },
		"streamer:functions.connect.timeoutSeconds 60": func(c *stack.Config) {
			c.Functions["connect"] = stack.FunctionConfig{MemoryMB: 256, TimeoutSeconds: 60}
		},
		"streamer:functions.conect: unknown function": func(c *stack.Config) { c.Functions["conect"] = stack.FunctionConfig{MemoryMB: 256, TimeoutSeconds: 5} },
		"streamer:functions.reaper.timeoutSeconds 901": func(c *stack.Config) {
			c.Functions["reaper"] = stack.FunctionConfig{MemoryMB: 256, TimeoutSeconds: 901}
		},
		`streamer:reaper.schedule "every 15 minutes"`:                              func(c *stack.Config) { c.Reaper.Schedule = "every 15 minutes" },
		`streamer:reaper.schedule "rate(1 minutes)": use a singular unit`:          func(c *stack.Config) { c.Reaper.Schedule = "rate(1 minutes)" },
		`streamer:reaper.schedule "rate(15 minute)": use a singular unit`:          func(c *stack.Config) { c.Reaper.Schedule = "rate(15 minute)" },
		`streamer:reaper.schedule "rate(0 minutes)"`:                               func(c *stack.Config) { c.Reaper.Schedule = "rate(0 minutes)" },
		`streamer:reaper.schedule "cron(0 * * *)": a cron expression has 6 fields`: func(c *stack.Config) { c.Reaper.Schedule = "cron(0 * * *)" },
		"streamer:alarms.reaperErrors -1":                                          func(c *stack.Config) { c.Alarms.ReaperErrors = -1 },
		"errorRateLowPercent (5) must be below":                                    func(c *stack.Config) { c.Alarms.ErrorRateLowPercent = 5 },
		"streamer:alarms.periodSeconds 45":                                         func(c *stack.Config) { c.Alarms.PeriodSeconds = 45 },
		`streamer:routes[0].key "$default"`: func(c *stack.Config) {
			c.Routes = []stack.Route{{Key: "$default", FunctionArn: "arn:aws:lambda:us-east-1:123456789012:function:f"}}
		},
		`streamer:routes[1].key "chat": given twice`: func(c *stack.Config) {
			c.Routes = []stack.Route{{Key: "chat", FunctionArn: "arn:aws:lambda:us-east-1:123456789012:function:f"}, {Key: "chat", FunctionArn: "arn:aws:lambda:us-east-1:123456789012:function:g"}}
		},
		`streamer:routes[0].functionArn "chat-fn": want arn:aws:lambda`: func(c *stack.Config) { c.Routes = []stack.Route{{Key: "chat", FunctionArn: "chat-fn"}} },
	}
	if base.Functions["reaper"].TimeoutSeconds != stack.DefaultReaperTimeoutSeconds || base.Functions["connect"].TimeoutSeconds != stack.DefaultTimeoutSeconds {
		t.Errorf("default timeouts %v", base.Functions)
	}
	for _, ok := range []string{"", "rate(1 minute)", "rate(15 minutes)", "rate(2 hours)", "rate(1 day)", "cron(0/15 * * * ? *)"} {
		c := base
		c.Reaper.Schedule = ok
		c.Functions = map[string]stack.FunctionConfig{"reaper": {MemoryMB: 256, TimeoutSeconds: 900}}
		if err := c.WithDefaults("dev").Validate(); err != nil {
			t.Errorf("schedule %q, reaper timeout 900: %v", ok, err)
		}
	}
	for want, mutate := range cases {
		c := base
		c.Functions = map[string]stack.FunctionConfig{}
		for k, v := range base.Functions {
			c.Functions[k] = v
		}
		mutate(&c)
		err := c.Validate()
		if !errors.Is(err, stack.ErrInvalidConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v", want, err)
		}
	}
}

// TestLoadConfigRejects runs the real program with a broken stack config: the
// deployment fails before any resource, naming the key.
func TestLoadConfigRejects(t *testing.T) {
	cfg, _ := stackConfig(t, "dev")
	delete(cfg, "streamer:jwt")
	cfg["streamer:logRetentionDays"] = "three"
	m := &mocks{}
	err := pulumi.RunErr(stack.Program, pulumi.WithMocks(stack.ConfigNamespace, "dev", m), withConfig(cfg))
	if err == nil || !strings.Contains(err.Error(), "streamer:logRetentionDays") {
		t.Fatalf("got %v, want an error naming streamer:logRetentionDays", err)
	}
	cfg["streamer:logRetentionDays"] = "3"
	err = pulumi.RunErr(stack.Program, pulumi.WithMocks(stack.ConfigNamespace, "dev", m), withConfig(cfg))
	if err == nil || !strings.Contains(err.Error(), "streamer:jwt.issuer is required") {
		t.Fatalf("got %v, want the missing issuer named", err)
	}
	for _, r := range m.resources {
		if r.Type != "pulumi:pulumi:Stack" {
			t.Errorf("resource %s %s registered despite invalid config", r.Type, r.Name)
		}
	}
}

// The reaper: scheduled per environment (off in dev), invoked only by its
// rule, never retried by Lambda (the next run resumes), and given the
// management endpoint.
func TestReaperSchedule(t *testing.T) {
	for _, env := range environments {
		d := deploy(t, env)
		f := d.one(t, tFunction, "fn-"+contract.FunctionReaper)
		ic := d.one(t, tInvokeConfig, "invoke-config-"+contract.FunctionReaper)
		if ic.str("functionName") != f.str("name") || ic.Inputs["maximumRetryAttempts"] != float64(0) {
			t.Errorf("%s: invoke config %v, want no retries for %s", env, ic.Inputs, f.str("name"))
		}
		schedule, _ := d.yamlVal("reaper", "schedule").(string)
		if env == "dev" && schedule != "" || env == "production" && schedule != "rate(15 minutes)" {
			t.Errorf("%s: shipped schedule %q", env, schedule)
		}
		if schedule == "" {
			if len(d.ofType(tEventRule)) != 0 {
				t.Errorf("%s: a schedule without streamer:reaper.schedule", env)
			}
			continue
		}
		rule := d.one(t, tEventRule, "schedule-"+contract.FunctionReaper)
		if rule.str("scheduleExpression") != schedule || rule.str("state") != "ENABLED" {
			t.Errorf("%s: rule %v, want %s enabled", env, rule.Inputs, schedule)
		}
		target := d.one(t, tEventTarget, "schedule-"+contract.FunctionReaper)
		if target.str("rule") != rule.str("name") || target.str("arn") != f.out("arn") {
			t.Errorf("%s: target %v, want the reaper %s on rule %s", env, target.Inputs, f.out("arn"), rule.str("name"))
		}
		perm := d.one(t, tPermission, "invoke-"+contract.FunctionReaper)
		if perm.str("principal") != "events.amazonaws.com" || perm.str("sourceArn") != rule.out("arn") ||
			perm.str("function") != f.str("name") || perm.str("action") != "lambda:InvokeFunction" {
			t.Errorf("%s: permission %v, want invoke of %s by its rule %s only", env, perm.Inputs, f.str("name"), rule.out("arn"))
		}
	}
}

// streamer:routes adds routes of your own, served by functions deployed
// elsewhere: an AWS_PROXY integration invoking each function, the route
// (with a route response only when twoWay), a permission scoped to this
// stage and route, and the stage deployed after them.
func TestRoutesOfYourOwn(t *testing.T) {
	const (
		chatArn  = "arn:aws:lambda:us-east-1:123456789012:function:chat-sendmessage"
		aliasArn = "arn:aws:lambda:us-east-1:123456789012:function:chat-history:live"
	)
	d := deployWith(t, "dev", map[string]string{
		"streamer:routes": `[{"key":"sendmessage","functionArn":"` + chatArn + `"},{"key":"history","functionArn":"` + aliasArn + `","twoWay":true}]`,
	})
	stageName := d.one(t, tStage, "stage").str("name")
	routes := map[string]recorded{}
	for _, r := range d.ofType(tRoute) {
		routes[r.str("routeKey")] = r
	}
	for _, c := range []struct {
		key, arn string
		twoWay   bool
	}{{"sendmessage", chatArn, false}, {"history", aliasArn, true}} {
		r, ok := routes[c.key]
		if !ok {
			t.Fatalf("no route %s among %v", c.key, routes)
		}
		integ := d.one(t, tIntegration, "integration-custom-"+c.key)
		wantURI := "arn:aws:apigateway:" + testRegion + ":lambda:path/2015-03-31/functions/" + c.arn + "/invocations"
		if integ.str("integrationUri") != wantURI || integ.str("integrationType") != "AWS_PROXY" || r.str("target") != "integrations/integration-custom-"+c.key+"-id" {
			t.Errorf("%s: integration %v, route target %q", c.key, integ.Inputs, r.str("target"))
		}
		perm := d.one(t, tPermission, "invoke-custom-"+c.key)
		wantSrc := fmt.Sprintf("arn:aws:execute-api:%s:%s:%s/%s/%s", testRegion, testAccount, testAPIID, stageName, c.key)
		if perm.str("function") != c.arn || perm.str("sourceArn") != wantSrc || perm.str("principal") != "apigateway.amazonaws.com" {
			t.Errorf("%s: permission %v, want %s invoked from %s", c.key, perm.Inputs, c.arn, wantSrc)
		}
		var rr *recorded
		for _, x := range d.ofType(tRouteResp) {
			if x.str("routeId") == "route-custom-"+c.key+"-id" {
				rr = &x
			}
		}
		if sel := r.str("routeResponseSelectionExpression"); c.twoWay != (rr != nil) || c.twoWay != (sel == contract.RouteResponseKey) {
			t.Errorf("%s: two-way %v, but route response %v and selection %q", c.key, c.twoWay, rr, sel)
		}
	}
	if n, own := len(d.ofType(tRoute)), routed(); n != own+2 {
		t.Errorf("%d routes, want the stack's %d and 2 of your own", n, own)
	}
}
