package stack

import (
	"encoding/json"
	"fmt"

	"github.com/pay-theory/streamer/contract"
)

// PolicyDocument is an IAM policy document. Building it from types (instead
// of string templates) keeps every statement inspectable by the tests.
type PolicyDocument struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one IAM policy statement. Actions are always listed one by
// one: no statement in this program uses a wildcard action.
type Statement struct {
	Sid       string                       `json:"Sid,omitempty"`
	Effect    string                       `json:"Effect"`
	Principal map[string]any               `json:"Principal,omitempty"`
	Action    []string                     `json:"Action"`
	Resource  []string                     `json:"Resource,omitempty"` // absent in trust policies
	Condition map[string]map[string]string `json:"Condition,omitempty"`
}

func policy(statements ...Statement) PolicyDocument {
	return PolicyDocument{Version: "2012-10-17", Statement: statements}
}

func (d PolicyDocument) JSON() (string, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return "", fmt.Errorf("encode policy document: %w", err)
	}
	return string(b), nil
}

// XRayActions are the only actions granted on Resource "*": AWS X-Ray's
// PutTraceSegments and PutTelemetryRecords support no resource-level
// permissions, so "*" is the only valid resource (the AWS-managed
// AWSXRayDaemonWriteAccess policy does the same). This is the one
// documented exception to ARN scoping in the function roles.
var XRayActions = []string{"xray:PutTraceSegments", "xray:PutTelemetryRecords"}

// functionSpec says what each handler calls, and so what its role allows.
// The DynamoDB actions come from contract/ (DynamoDBActions), which a
// root-module test holds equal to the operations each real handler calls
// on every path; a handler change without the contract change fails there,
// and this program grants exactly the contract's list.
type functionSpec struct {
	Name     string
	RouteKey string
	// TableActions on the connections table ARN (no index ARNs: no handler queries an index).
	TableActions []string
	// ReadsSecret grants secretsmanager:GetSecretValue on the JWT key secret
	// and kms:Decrypt on the stack's key, via Secrets Manager only.
	ReadsSecret bool
	// Sends grants execute-api:ManageConnections on POST
	// @connections/* of this API's stage. None of our handlers send to
	// clients today (the operator CLI and library users' functions do), so
	// it is false for all three.
	Sends bool
}

// TableActions are the IAM actions of function on the connections table:
// "dynamodb:" + each of contract.DynamoDBActions(function).
func TableActions(function string) []string {
	var out []string
	for _, op := range contract.DynamoDBActions(function) {
		out = append(out, "dynamodb:"+op)
	}
	return out
}

func functionSpecs() []functionSpec {
	return []functionSpec{
		{
			Name: contract.FunctionConnect, RouteKey: contract.RouteConnect,
			TableActions: TableActions(contract.FunctionConnect),
			// The JWT public key, once per cold start.
			ReadsSecret: true,
		},
		{
			Name: contract.FunctionDisconnect, RouteKey: contract.RouteDisconnect,
			TableActions: TableActions(contract.FunctionDisconnect),
		},
		{
			Name: contract.FunctionDefault, RouteKey: contract.RouteDefault,
			TableActions: TableActions(contract.FunctionDefault),
		},
	}
}
