// Package stack is the streamer AWS stack: the connections table, the three
// Lambda handlers, the API Gateway WebSocket API in front of them, the JWT
// key secret, and the logs, alarms, dashboard and audit trail around them.
//
// Program is the whole Pulumi program (LoadConfig, Deploy, Export); main.go
// only hands it to pulumi.Run, and the tests run it under pulumi.WithMocks
// with the shipped Pulumi.<env>.yaml files.
package stack

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/apigateway"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/apigatewayv2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/cloudwatch"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/dynamodb"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/kms"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/lambda"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/secretsmanager"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/sns"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/pkg/store/schema"
)

// Lambda settings every function shares.
const (
	Runtime      = "provided.al2023"
	Architecture = "arm64"
	Handler      = "bootstrap"
	TracingMode  = "Active"
)

// Outputs are the stack outputs a user needs to reach the deployment.
type Outputs struct {
	// WebSocketURL is what clients dial: wss://{apiId}.execute-api.{region}.amazonaws.com/{stage}.
	WebSocketURL pulumi.StringOutput
	// ManagementEndpoint is the @connections API base (streamer --endpoint):
	// https://{apiId}.execute-api.{region}.amazonaws.com/{stage}.
	ManagementEndpoint pulumi.StringOutput
	TableName          pulumi.StringOutput
	// FunctionNames maps connect/disconnect/default to the deployed names.
	FunctionNames map[string]pulumi.StringOutput
	JWTSecretARN  pulumi.StringOutput
	KMSKeyARN     pulumi.StringOutput
	Region        string
	Stage         string
	// Issuer and Audience are the iss and aud $connect requires (Audience ""
	// when not checked); Environment names the deployment.
	Issuer             string
	Audience           string
	Environment        string
	AlarmTopicARNs     map[string]pulumi.StringOutput // by severity; empty when alarms are off
	DashboardName      string
	CloudTrailEnabled  bool
	AccessLogGroupName string
}

// Program is the Pulumi program: configuration, resources, exports.
func Program(ctx *pulumi.Context) error {
	cfg, err := LoadConfig(ctx)
	if err != nil {
		return err
	}
	out, err := Deploy(ctx, cfg)
	if err != nil {
		return err
	}
	out.Export(ctx)
	return nil
}

// Export publishes the outputs under stable names (Exports).
func (o *Outputs) Export(ctx *pulumi.Context) {
	for name, v := range o.Exports() {
		ctx.Export(name, v)
	}
}

// Exports are the outputs by their stable names, used by scripts, the
// README and, for the names in contract.ProfileOutputs, `streamer
// --stack` (scripts/deploy.sh saves `pulumi stack output --json` as its
// profile).
func (o *Outputs) Exports() pulumi.Map {
	names := pulumi.StringMap{}
	for fn, n := range o.FunctionNames {
		names[fn] = n
	}
	topics := pulumi.StringMap{}
	for sev, arn := range o.AlarmTopicARNs {
		topics[sev] = arn
	}
	return pulumi.Map{
		contract.OutputWebSocketURL:       o.WebSocketURL,
		contract.OutputManagementEndpoint: o.ManagementEndpoint,
		contract.OutputTableName:          o.TableName,
		contract.OutputRegion:             pulumi.String(o.Region),
		contract.OutputStage:              pulumi.String(o.Stage),
		contract.OutputJWTIssuer:          pulumi.String(o.Issuer),
		contract.OutputJWTAudience:        pulumi.String(o.Audience),
		contract.OutputEnvironment:        pulumi.String(o.Environment),
		"jwtSecretArn":                    o.JWTSecretARN,
		"kmsKeyArn":                       o.KMSKeyARN,
		"dashboardName":                   pulumi.String(o.DashboardName),
		"accessLogGroup":                  pulumi.String(o.AccessLogGroupName),
		"functionNames":                   names,
		"alarmTopics":                     topics,
	}
}

// account is where the stack is deployed, for ARNs built by hand.
type account struct {
	Partition string
	DNSSuffix string
	Region    string
	ID        string
}

func (a account) arn(service, resource string) string {
	return fmt.Sprintf("arn:%s:%s:%s:%s:%s", a.Partition, service, a.Region, a.ID, resource)
}

// deployed are the resources later steps refer to.
type deployed struct {
	cfg        Config
	acct       account
	tags       pulumi.StringMap
	key        *kms.Key
	table      *dynamodb.Table
	secret     *secretsmanager.Secret
	api        *apigatewayv2.Api
	accessLogs *cloudwatch.LogGroup
	functions  map[string]*lambda.Function
	fnNames    map[string]string // physical names
	logGroups  map[string]*cloudwatch.LogGroup
	topics     map[string]*sns.Topic // by severity, when alarms are enabled
}

// Deploy declares every resource of the stack.
func Deploy(ctx *pulumi.Context, cfg Config) (*Outputs, error) {
	if err := checkSpecs(); err != nil {
		return nil, err
	}
	acct, err := lookupAccount(ctx)
	if err != nil {
		return nil, err
	}
	d := &deployed{
		cfg:  cfg,
		acct: acct,
		tags: pulumi.StringMap{
			"project":     pulumi.String("streamer"),
			"environment": pulumi.String(cfg.Environment),
			"managed-by":  pulumi.String("pulumi"),
		},
		functions: map[string]*lambda.Function{},
		fnNames:   map[string]string{},
		logGroups: map[string]*cloudwatch.LogGroup{},
	}
	steps := []func(*pulumi.Context) error{
		d.deployKey, d.deployTable, d.deploySecret, d.deployLogGroups, d.deployAPI,
		d.deployFunctions, d.deployStage, d.deployReaperSchedule, d.deployMonitoring, d.deployCloudTrail,
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return nil, err
		}
	}
	return d.outputs(), nil
}

// checkSpecs keeps the role table and the contract's function list in step.
func checkSpecs() error {
	var names []string
	for _, s := range functionSpecs() {
		names = append(names, s.Name)
	}
	want := contract.Functions()
	sort.Strings(names)
	sort.Strings(want)
	if !slices.Equal(names, want) {
		return fmt.Errorf("stack: functions with IAM specs %v differ from contract.Functions() %v: add the new function to functionSpecs in stack/policy.go", names, want)
	}
	for _, s := range functionSpecs() {
		if (len(s.InternalItemActions) > 0) != (len(s.InternalKeys) > 0) {
			return fmt.Errorf("stack: function %s: internal-item actions %v need the internal keys they are granted on (and keys need actions): see functionSpecs in stack/policy.go", s.Name, s.InternalItemActions)
		}
	}
	return nil
}

func lookupAccount(ctx *pulumi.Context) (account, error) {
	id, err := aws.GetCallerIdentity(ctx, nil)
	if err != nil {
		return account{}, fmt.Errorf("look up the AWS account (are AWS credentials configured?): %w", err)
	}
	region, err := aws.GetRegion(ctx, nil)
	if err != nil {
		return account{}, fmt.Errorf("look up the AWS region (set `pulumi config set aws:region ...`): %w", err)
	}
	part, err := aws.GetPartition(ctx, nil)
	if err != nil {
		return account{}, fmt.Errorf("look up the AWS partition: %w", err)
	}
	return account{Partition: part.Partition, DNSSuffix: part.DnsSuffix, Region: region.Name, ID: id.AccountId}, nil
}

func (d *deployed) name(suffix string) string { return d.cfg.NamePrefix + "-" + suffix }

// retentionDaysOnDestroy: keys and secrets are recoverable for this long after
// a destroy; short in dev so stacks can be recreated quickly.
func (d *deployed) recoveryDays() int {
	if d.cfg.DeletionProtection {
		return 30
	}
	return 7
}

func (d *deployed) deployKey(ctx *pulumi.Context) error {
	a := d.acct
	root := fmt.Sprintf("arn:%s:iam::%s:root", a.Partition, a.ID)
	// A key policy is a resource policy: Resource "*" there means "this key".
	// The account statement delegates use of the key to IAM (the function
	// roles' policies), with the administrative and cryptographic actions
	// spelled out instead of kms:*.
	doc := policy(
		Statement{
			Sid: "AccountAdministersAndDelegatesToIAM", Effect: "Allow",
			Principal: map[string]any{"AWS": root},
			Action: []string{
				"kms:CancelKeyDeletion", "kms:CreateAlias", "kms:CreateGrant", "kms:Decrypt", "kms:DeleteAlias",
				"kms:DescribeKey", "kms:DisableKey", "kms:DisableKeyRotation", "kms:EnableKey", "kms:EnableKeyRotation",
				"kms:Encrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:GetKeyPolicy",
				"kms:GetKeyRotationStatus", "kms:ListAliases", "kms:ListGrants", "kms:ListKeyPolicies",
				"kms:ListKeyRotations", "kms:ListResourceTags", "kms:PutKeyPolicy", "kms:ReEncryptFrom", "kms:ReEncryptTo",
				"kms:RetireGrant", "kms:RevokeGrant", "kms:RotateKeyOnDemand", "kms:ScheduleKeyDeletion",
				"kms:TagResource", "kms:UntagResource", "kms:UpdateAlias", "kms:UpdateKeyDescription",
			},
			Resource: []string{"*"},
		},
		Statement{
			// CloudWatch alarms publish to the KMS-encrypted SNS topics.
			Sid: "CloudWatchPublishesToEncryptedTopics", Effect: "Allow",
			Principal: map[string]any{"Service": "cloudwatch.amazonaws.com"},
			Action:    []string{"kms:Decrypt", "kms:GenerateDataKey"},
			Resource:  []string{"*"},
			Condition: map[string]map[string]any{"StringEquals": {"aws:SourceAccount": a.ID}},
		},
	)
	js, err := doc.JSON()
	if err != nil {
		return err
	}
	d.key, err = kms.NewKey(ctx, "key", &kms.KeyArgs{
		Description:          pulumi.Sprintf("streamer %s: connections table, JWT key secret, alarm topics", d.cfg.Environment),
		EnableKeyRotation:    pulumi.Bool(true),
		DeletionWindowInDays: pulumi.Int(d.recoveryDays()),
		Policy:               pulumi.String(js),
		Tags:                 d.tags,
	})
	if err != nil {
		return err
	}
	_, err = kms.NewAlias(ctx, "key-alias", &kms.AliasArgs{
		Name:        pulumi.String("alias/" + d.cfg.NamePrefix),
		TargetKeyId: d.key.KeyId,
	})
	return err
}

func (d *deployed) deployTable(ctx *pulumi.Context) error {
	t := schema.Connections()
	var attrs dynamodb.TableAttributeArray
	for _, a := range t.Attributes {
		attrs = append(attrs, dynamodb.TableAttributeArgs{Name: pulumi.String(a.Name), Type: pulumi.String(string(a.Type))})
	}
	var gsis dynamodb.TableGlobalSecondaryIndexArray
	for _, ix := range t.Indexes {
		g := dynamodb.TableGlobalSecondaryIndexArgs{
			Name:           pulumi.String(ix.Name),
			HashKey:        pulumi.String(ix.HashKey),
			ProjectionType: pulumi.String("ALL"),
		}
		if ix.RangeKey != "" {
			g.RangeKey = pulumi.String(ix.RangeKey)
		}
		gsis = append(gsis, g)
	}
	var err error
	d.table, err = dynamodb.NewTable(ctx, "connections", &dynamodb.TableArgs{
		Name:                      pulumi.String(d.cfg.TableName),
		BillingMode:               pulumi.String("PAY_PER_REQUEST"),
		HashKey:                   pulumi.String(t.HashKey),
		Attributes:                attrs,
		GlobalSecondaryIndexes:    gsis,
		Ttl:                       dynamodb.TableTtlArgs{AttributeName: pulumi.String(t.TTLAttribute), Enabled: pulumi.Bool(true)},
		PointInTimeRecovery:       dynamodb.TablePointInTimeRecoveryArgs{Enabled: pulumi.Bool(true)},
		ServerSideEncryption:      dynamodb.TableServerSideEncryptionArgs{Enabled: pulumi.Bool(true), KmsKeyArn: d.key.Arn},
		DeletionProtectionEnabled: pulumi.Bool(d.cfg.DeletionProtection),
		Tags:                      d.tags,
	}, pulumi.Protect(d.cfg.DeletionProtection))
	return err
}

func (d *deployed) deploySecret(ctx *pulumi.Context) error {
	var err error
	// The value (the PEM public key) is put out of band with
	// `aws secretsmanager put-secret-value`: Pulumi never holds key material.
	d.secret, err = secretsmanager.NewSecret(ctx, "jwt-public-key", &secretsmanager.SecretArgs{
		Name:                 pulumi.String(d.cfg.NamePrefix + "/jwt-public-key"),
		Description:          pulumi.String("PEM RSA public key that verifies streamer JWTs on $connect (set with aws secretsmanager put-secret-value)"),
		KmsKeyId:             d.key.Arn,
		RecoveryWindowInDays: pulumi.Int(d.recoveryDays()),
		Tags:                 d.tags,
	})
	return err
}

func (d *deployed) deployLogGroups(ctx *pulumi.Context) error {
	for _, fn := range contract.Functions() {
		d.fnNames[fn] = d.name(fn)
		lg, err := cloudwatch.NewLogGroup(ctx, "logs-"+fn, &cloudwatch.LogGroupArgs{
			Name:            pulumi.String("/aws/lambda/" + d.fnNames[fn]),
			RetentionInDays: pulumi.Int(d.cfg.LogRetentionDays),
			Tags:            d.tags,
		})
		if err != nil {
			return err
		}
		d.logGroups[fn] = lg
	}
	var err error
	d.accessLogs, err = cloudwatch.NewLogGroup(ctx, "logs-api-access", &cloudwatch.LogGroupArgs{
		Name:            pulumi.String(d.accessLogGroupName()),
		RetentionInDays: pulumi.Int(d.cfg.LogRetentionDays),
		Tags:            d.tags,
	})
	return err
}

func (d *deployed) accessLogGroupName() string { return "/aws/apigateway/" + d.name("access") }

func (d *deployed) deployAPI(ctx *pulumi.Context) error {
	var err error
	d.api, err = apigatewayv2.NewApi(ctx, "websocket", &apigatewayv2.ApiArgs{
		Name:                     pulumi.String(d.cfg.NamePrefix),
		Description:              pulumi.String("streamer WebSocket API (" + d.cfg.Environment + ")"),
		ProtocolType:             pulumi.String("WEBSOCKET"),
		RouteSelectionExpression: pulumi.String(contract.RouteSelectionExpression),
		Tags:                     d.tags,
	})
	return err
}

// environment returns the variables deployed on fn: exactly the contract's
// Deployed variables. A Deployed variable this program has no value for is
// an error, so a handler cannot gain a variable the IaC silently lacks.
func (d *deployed) environment(fn string) (pulumi.StringMap, error) {
	values := map[string]pulumi.StringInput{
		contract.EnvConnectionsTable:      d.table.Name,
		contract.EnvLogLevel:              pulumi.String(d.cfg.LogLevel),
		contract.EnvEnvironment:           pulumi.String(d.cfg.Environment),
		contract.EnvMetricsNamespace:      pulumi.String(d.cfg.MetricsNamespace),
		contract.EnvJWTPublicKeySecretARN: d.secret.Arn,
		contract.EnvJWTIssuer:             pulumi.String(d.cfg.JWT.Issuer),
		contract.EnvJWTAudience:           pulumi.String(d.cfg.JWT.Audience),
		contract.EnvManagementEndpoint:    d.managementEndpoint(),
	}
	env := pulumi.StringMap{}
	for _, v := range contract.Vars(fn) {
		if !v.Deployed {
			continue
		}
		val, ok := values[v.Name]
		if !ok {
			return nil, fmt.Errorf("stack: function %s reads %s (contract.Vars marks it Deployed) but the stack has no value for it: add it to environment() in stack/stack.go", fn, v.Name)
		}
		env[v.Name] = val
	}
	return env, nil
}

// rolePolicy is the least-privilege inline policy of one function.
func (d *deployed) rolePolicy(spec functionSpec, tableArn, secretArn, keyArn, logGroupArn, apiID string) PolicyDocument {
	var st []Statement
	if len(spec.TableActions) > 0 { // IAM rejects a statement without actions
		st = append(st, Statement{Sid: "ConnectionsTable", Effect: "Allow", Action: spec.TableActions, Resource: []string{tableArn}})
	}
	if len(spec.InternalItemActions) > 0 {
		// Item-level access: only the items whose partition key is one of
		// these internal keys (ForAllValues: every key the request names).
		st = append(st, Statement{
			Sid: "ConnectionsTableInternalItems", Effect: "Allow", Action: spec.InternalItemActions, Resource: []string{tableArn},
			Condition: map[string]map[string]any{"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": spec.InternalKeys}},
		})
	}
	st = append(st,
		Statement{
			Sid: "OwnLogGroup", Effect: "Allow",
			Action:   []string{"logs:CreateLogStream", "logs:PutLogEvents"},
			Resource: []string{logGroupArn + ":*"},
		},
		Statement{Sid: "XRayNoResourceLevelPermissions", Effect: "Allow", Action: XRayActions, Resource: []string{"*"}},
	)
	if spec.ReadsSecret {
		st = append(st,
			Statement{Sid: "JWTPublicKey", Effect: "Allow", Action: []string{"secretsmanager:GetSecretValue"}, Resource: []string{secretArn}},
			Statement{
				Sid: "DecryptJWTPublicKeyViaSecretsManager", Effect: "Allow",
				Action: []string{"kms:Decrypt"}, Resource: []string{keyArn},
				Condition: map[string]map[string]any{"StringEquals": {
					"kms:ViaService": fmt.Sprintf("secretsmanager.%s.%s", d.acct.Region, d.acct.DNSSuffix),
				}},
			},
		)
	}
	if spec.Sends {
		st = append(st, Statement{
			Sid: "PostToConnections", Effect: "Allow", Action: []string{"execute-api:ManageConnections"},
			Resource: []string{d.acct.arn("execute-api", apiID+"/"+d.cfg.StageName+"/POST/@connections/*")},
		})
	}
	if spec.Gets {
		st = append(st, Statement{
			Sid: "GetConnections", Effect: "Allow", Action: []string{"execute-api:ManageConnections"},
			Resource: []string{d.acct.arn("execute-api", apiID+"/"+d.cfg.StageName+"/GET/@connections/*")},
		})
	}
	return policy(st...)
}

func (d *deployed) deployFunctions(ctx *pulumi.Context) error {
	trust, err := policy(Statement{
		Effect: "Allow", Principal: map[string]any{"Service": "lambda.amazonaws.com"},
		Action:    []string{"sts:AssumeRole"},
		Condition: map[string]map[string]any{"StringEquals": {"aws:SourceAccount": d.acct.ID}},
	}).JSON()
	if err != nil {
		return err
	}
	for _, spec := range functionSpecs() {
		fn := spec.Name
		fc := d.cfg.Functions[fn]
		role, err := iam.NewRole(ctx, "role-"+fn, &iam.RoleArgs{
			Name:             pulumi.String(d.name(fn)),
			Description:      pulumi.String("streamer " + fn + " handler: least privilege"),
			AssumeRolePolicy: pulumi.String(trust),
			Tags:             d.tags,
		})
		if err != nil {
			return err
		}
		doc := pulumi.All(d.table.Arn, d.secret.Arn, d.key.Arn, d.logGroups[fn].Arn, d.api.ID()).ApplyT(
			func(v []any) (string, error) {
				return d.rolePolicy(spec, v[0].(string), v[1].(string), v[2].(string), v[3].(string), string(v[4].(pulumi.ID))).JSON()
			}).(pulumi.StringOutput)
		rp, err := iam.NewRolePolicy(ctx, "policy-"+fn, &iam.RolePolicyArgs{
			Name:   pulumi.String(d.name(fn)),
			Role:   role.Name,
			Policy: doc,
		})
		if err != nil {
			return err
		}
		env, err := d.environment(fn)
		if err != nil {
			return err
		}
		description := "streamer " + spec.RouteKey + " handler"
		if spec.RouteKey == "" {
			description = "streamer " + fn + ": removes the records of connections whose $disconnect was lost (scheduled)"
		}
		args := &lambda.FunctionArgs{
			Name:          pulumi.String(d.fnNames[fn]),
			Description:   pulumi.String(description),
			Role:          role.Arn,
			Runtime:       pulumi.String(Runtime),
			Architectures: pulumi.StringArray{pulumi.String(Architecture)},
			Handler:       pulumi.String(Handler),
			Code:          pulumi.NewFileArchive(filepath.Join(d.cfg.LambdaZipDir, fn+".zip")),
			MemorySize:    pulumi.Int(fc.MemoryMB),
			Timeout:       pulumi.Int(fc.TimeoutSeconds),
			TracingConfig: lambda.FunctionTracingConfigArgs{Mode: pulumi.String(TracingMode)},
			Environment:   lambda.FunctionEnvironmentArgs{Variables: env},
			// Text keeps the platform's REPORT line plain text, which the
			// Init Duration metric filter parses; handler lines stay JSON.
			LoggingConfig: lambda.FunctionLoggingConfigArgs{LogFormat: pulumi.String("Text"), LogGroup: d.logGroups[fn].Name},
			Tags:          d.tags,
		}
		if fc.ReservedConcurrency > 0 {
			args.ReservedConcurrentExecutions = pulumi.Int(fc.ReservedConcurrency)
		}
		f, err := lambda.NewFunction(ctx, "fn-"+fn, args, pulumi.DependsOn([]pulumi.Resource{rp, d.logGroups[fn]}))
		if err != nil {
			return err
		}
		d.functions[fn] = f
	}
	return nil
}

// deployRoute declares one route: its Lambda proxy integration, the route
// (with a route response when twoWay) and the permission for this API's
// stage and route, and no other, to invoke the function. name suffixes the
// resource names. It returns what the stage must wait for.
func (d *deployed) deployRoute(ctx *pulumi.Context, name, key string, invokeArn, function pulumi.StringInput, twoWay bool) ([]pulumi.Resource, error) {
	integ, err := apigatewayv2.NewIntegration(ctx, "integration-"+name, &apigatewayv2.IntegrationArgs{
		ApiId:             d.api.ID(),
		IntegrationType:   pulumi.String("AWS_PROXY"),
		IntegrationMethod: pulumi.String("POST"),
		IntegrationUri:    invokeArn,
	})
	if err != nil {
		return nil, err
	}
	ra := &apigatewayv2.RouteArgs{
		ApiId:    d.api.ID(),
		RouteKey: pulumi.String(key),
		// $connect is authorized by the connect function itself (JWT
		// verification before any record exists; non-2xx refuses the
		// upgrade). WebSocket authorizers can only sit on $connect.
		AuthorizationType: pulumi.String("NONE"),
		Target:            pulumi.Sprintf("integrations/%s", integ.ID()),
	}
	// A two-way route sends its handler's response body back to the client.
	if twoWay {
		ra.RouteResponseSelectionExpression = pulumi.String(contract.RouteResponseKey)
	}
	route, err := apigatewayv2.NewRoute(ctx, "route-"+name, ra)
	if err != nil {
		return nil, err
	}
	deps := []pulumi.Resource{route}
	if twoWay {
		rr, err := apigatewayv2.NewRouteResponse(ctx, "route-response-"+name, &apigatewayv2.RouteResponseArgs{
			ApiId:            d.api.ID(),
			RouteId:          route.ID(),
			RouteResponseKey: pulumi.String(contract.RouteResponseKey),
		})
		if err != nil {
			return nil, err
		}
		deps = append(deps, rr)
	}
	// Invocation only from this API's stage and route.
	_, err = lambda.NewPermission(ctx, "invoke-"+name, &lambda.PermissionArgs{
		Action:    pulumi.String("lambda:InvokeFunction"),
		Function:  function,
		Principal: pulumi.String("apigateway.amazonaws.com"),
		SourceArn: pulumi.Sprintf("%s/%s/%s", d.api.ExecutionArn, d.cfg.StageName, key),
	})
	return deps, err
}

func (d *deployed) deployStage(ctx *pulumi.Context) error {
	var routes []pulumi.Resource
	for _, spec := range functionSpecs() {
		if spec.RouteKey == "" {
			continue // invoked by its schedule (deployReaperSchedule)
		}
		f := d.functions[spec.Name]
		// Two-way exactly where the contract says (the local gateway reads
		// the same list).
		deps, err := d.deployRoute(ctx, spec.Name, spec.RouteKey, f.InvokeArn, f.Name, contract.IsTwoWayRoute(spec.RouteKey))
		if err != nil {
			return err
		}
		routes = append(routes, deps...)
	}
	// Routes of your own ("custom-" keeps their names apart from ours).
	for _, r := range d.cfg.Routes {
		invokeArn := fmt.Sprintf("arn:%s:apigateway:%s:lambda:path/2015-03-31/functions/%s/invocations", d.acct.Partition, d.acct.Region, r.FunctionArn)
		deps, err := d.deployRoute(ctx, "custom-"+r.Key, r.Key, pulumi.String(invokeArn), pulumi.String(r.FunctionArn), r.TwoWay)
		if err != nil {
			return err
		}
		routes = append(routes, deps...)
	}

	deps := routes
	if d.cfg.APIGatewayAccountRole {
		acc, err := d.deployAPIGatewayAccount(ctx)
		if err != nil {
			return err
		}
		deps = append(deps, acc)
	}
	_, err := apigatewayv2.NewStage(ctx, "stage", &apigatewayv2.StageArgs{
		ApiId:      d.api.ID(),
		Name:       pulumi.String(d.cfg.StageName),
		AutoDeploy: pulumi.Bool(true),
		DefaultRouteSettings: apigatewayv2.StageDefaultRouteSettingsArgs{
			ThrottlingBurstLimit: pulumi.Int(d.cfg.Throttling.BurstLimit),
			ThrottlingRateLimit:  pulumi.Float64(d.cfg.Throttling.RateLimit),
			LoggingLevel:         pulumi.String(d.cfg.APILoggingLevel),
			// Data trace would log full messages, tokens included: never.
			DataTraceEnabled:       pulumi.Bool(false),
			DetailedMetricsEnabled: pulumi.Bool(d.cfg.Alarms.Enabled),
		},
		AccessLogSettings: apigatewayv2.StageAccessLogSettingsArgs{
			DestinationArn: d.accessLogs.Arn,
			Format:         pulumi.String(AccessLogFormat),
		},
		Tags: d.tags,
	}, pulumi.DependsOn(deps))
	return err
}

// AccessLogFormat is one JSON line per WebSocket event. correlation_id is the
// API Gateway request id, the same value the handlers log, so one Logs
// Insights query follows a request across the gateway and the functions.
const AccessLogFormat = `{"correlation_id":"$context.requestId","connection_id":"$context.connectionId",` +
	`"event_type":"$context.eventType","route_key":"$context.routeKey","status":"$context.status",` +
	`"request_time_epoch":"$context.requestTimeEpoch","source_ip":"$context.identity.sourceIp",` +
	`"user_agent":"$context.identity.userAgent","integration_latency_ms":"$context.integrationLatency",` +
	`"error":"$context.error.message"}`

// deployAPIGatewayAccount sets the account-wide role API Gateway uses to
// write WebSocket stage logs (required for access and execution logging).
// It is account-level infrastructure serving every API in the account, so
// it uses the AWS-managed policy made for it rather than an inline policy
// scoped to this stack.
func (d *deployed) deployAPIGatewayAccount(ctx *pulumi.Context) (pulumi.Resource, error) {
	trust, err := policy(Statement{
		Effect: "Allow", Principal: map[string]any{"Service": "apigateway.amazonaws.com"},
		Action: []string{"sts:AssumeRole"},
	}).JSON()
	if err != nil {
		return nil, err
	}
	role, err := iam.NewRole(ctx, "apigateway-cloudwatch", &iam.RoleArgs{
		Name:             pulumi.String(d.name("apigateway-cloudwatch")),
		Description:      pulumi.String("API Gateway account logging role (account-wide)"),
		AssumeRolePolicy: pulumi.String(trust),
		Tags:             d.tags,
	})
	if err != nil {
		return nil, err
	}
	att, err := iam.NewRolePolicyAttachment(ctx, "apigateway-cloudwatch", &iam.RolePolicyAttachmentArgs{
		Role:      role.Name,
		PolicyArn: pulumi.Sprintf("arn:%s:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs", d.acct.Partition),
	})
	if err != nil {
		return nil, err
	}
	return apigateway.NewAccount(ctx, "apigateway-account", &apigateway.AccountArgs{
		CloudwatchRoleArn: role.Arn,
		ResetOnDelete:     pulumi.Bool(true),
	}, pulumi.DependsOn([]pulumi.Resource{att}))
}

// managementEndpoint is the @connections base URL of the API's stage.
func (d *deployed) managementEndpoint() pulumi.StringOutput {
	return pulumi.Sprintf("https://%s.execute-api.%s.%s/%s", d.api.ID(), d.acct.Region, d.acct.DNSSuffix, d.cfg.StageName)
}

// deployReaperSchedule invokes the reaper on the stack's schedule
// (streamer:reaper.schedule; none: the function is deployed and can be
// invoked by hand). Lambda does not retry a failed run: the next scheduled
// one resumes from the checkpoint anyway.
func (d *deployed) deployReaperSchedule(ctx *pulumi.Context) error {
	f := d.functions[contract.FunctionReaper]
	if _, err := lambda.NewFunctionEventInvokeConfig(ctx, "invoke-config-"+contract.FunctionReaper, &lambda.FunctionEventInvokeConfigArgs{
		FunctionName:         f.Name,
		MaximumRetryAttempts: pulumi.Int(0),
	}); err != nil {
		return err
	}
	if d.cfg.Reaper.Schedule == "" {
		return nil
	}
	rule, err := cloudwatch.NewEventRule(ctx, "schedule-"+contract.FunctionReaper, &cloudwatch.EventRuleArgs{
		Name:               pulumi.String(d.name(contract.FunctionReaper)),
		Description:        pulumi.String("streamer " + d.cfg.Environment + ": run the reaper (zombie connection records)"),
		ScheduleExpression: pulumi.String(d.cfg.Reaper.Schedule),
		State:              pulumi.String("ENABLED"),
		Tags:               d.tags,
	})
	if err != nil {
		return err
	}
	perm, err := lambda.NewPermission(ctx, "invoke-"+contract.FunctionReaper, &lambda.PermissionArgs{
		Action:    pulumi.String("lambda:InvokeFunction"),
		Function:  f.Name,
		Principal: pulumi.String("events.amazonaws.com"),
		SourceArn: rule.Arn,
	})
	if err != nil {
		return err
	}
	_, err = cloudwatch.NewEventTarget(ctx, "schedule-"+contract.FunctionReaper, &cloudwatch.EventTargetArgs{
		Rule: rule.Name,
		Arn:  f.Arn,
	}, pulumi.DependsOn([]pulumi.Resource{perm}))
	return err
}

func (d *deployed) outputs() *Outputs {
	o := &Outputs{
		WebSocketURL:       pulumi.Sprintf("%s/%s", d.api.ApiEndpoint, d.cfg.StageName),
		ManagementEndpoint: d.managementEndpoint(),
		TableName:          d.table.Name,
		FunctionNames:      map[string]pulumi.StringOutput{},
		JWTSecretARN:       d.secret.Arn,
		KMSKeyARN:          d.key.Arn,
		Region:             d.acct.Region,
		Stage:              d.cfg.StageName,
		Issuer:             d.cfg.JWT.Issuer,
		Audience:           d.cfg.JWT.Audience,
		Environment:        d.cfg.Environment,
		AlarmTopicARNs:     map[string]pulumi.StringOutput{},
		DashboardName:      d.name("dashboard"),
		CloudTrailEnabled:  d.cfg.CloudTrail,
		AccessLogGroupName: d.accessLogGroupName(),
	}
	for fn, f := range d.functions {
		o.FunctionNames[fn] = f.Name
	}
	for sev, t := range d.topics {
		o.AlarmTopicARNs[sev] = t.Arn
	}
	return o
}
