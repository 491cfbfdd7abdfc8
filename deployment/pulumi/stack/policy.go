package stack

import (
	"encoding/json"
	"fmt"

	"github.com/pay-theory/streamer/lambda/contract"
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
// The deployment tests hold their own copy of this table, written from the
// handlers' code, so a change here without a matching handler change fails.
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

func functionSpecs() []functionSpec {
	return []functionSpec{
		{
			Name: contract.FunctionConnect, RouteKey: "$connect",
			// PutItem saves the connection record; UpdateItem keeps the
			// active-connections counter.
			TableActions: []string{"dynamodb:PutItem", "dynamodb:UpdateItem"},
			ReadsSecret:  true,
		},
		{
			Name: contract.FunctionDisconnect, RouteKey: "$disconnect",
			// DeleteItem removes the record and returns it (ReturnValues
			// ALL_OLD) for the summary log line, so no GetItem is needed;
			// UpdateItem decrements the active-connections counter.
			TableActions: []string{"dynamodb:DeleteItem", "dynamodb:UpdateItem"},
		},
		{
			Name: contract.FunctionDefault, RouteKey: "$default",
			// UpdateItem touches last_ping and the message counters, with a
			// condition so a deleted record is never resurrected.
			TableActions: []string{"dynamodb:UpdateItem"},
		},
	}
}
