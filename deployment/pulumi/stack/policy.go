package stack

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/pkg/store/schema"
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
	Sid       string                    `json:"Sid,omitempty"`
	Effect    string                    `json:"Effect"`
	Principal map[string]any            `json:"Principal,omitempty"`
	Action    []string                  `json:"Action"`
	Resource  []string                  `json:"Resource,omitempty"` // absent in trust policies
	Condition map[string]map[string]any `json:"Condition,omitempty"`
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
	Name string
	// RouteKey invokes the function; "" for the reaper (a schedule).
	RouteKey string
	// TableActions on the connections table ARN (no index ARNs: no handler
	// queries an index), on every item.
	TableActions []string
	// InternalItemActions on the connections table ARN, only on the
	// internal items InternalKeys (a dynamodb:LeadingKeys condition).
	InternalItemActions []string
	InternalKeys        []string
	// ReadsSecret grants secretsmanager:GetSecretValue on the JWT key secret
	// and kms:Decrypt on the stack's key, via Secrets Manager only.
	ReadsSecret bool
	// Sends grants execute-api:ManageConnections on POST
	// @connections/* of this API's stage. None of our handlers send to
	// clients today (the operator CLI and library users' functions do), so
	// it is false for all of them.
	Sends bool
	// Gets grants execute-api:ManageConnections on GET @connections/* of
	// this API's stage (GetConnection: the reaper asks whether a
	// connection is still there).
	Gets bool
}

// TableActions are the IAM actions of function on the connections table,
// on every item: "dynamodb:" + each of contract.DynamoDBActions(function)
// that is not one of its internal-item actions.
func TableActions(function string) []string {
	var out []string
	for _, op := range contract.DynamoDBActions(function) {
		if !slices.Contains(contract.DynamoDBInternalItemActions(function), op) {
			out = append(out, "dynamodb:"+op)
		}
	}
	return out
}

// InternalItemActions are the IAM actions of function granted only on the
// table's internal items: "dynamodb:" + each of
// contract.DynamoDBInternalItemActions(function).
func InternalItemActions(function string) []string {
	var out []string
	for _, op := range contract.DynamoDBInternalItemActions(function) {
		out = append(out, "dynamodb:"+op)
	}
	return out
}

// ReaperInternalKeys are the internal items the reaper writes: the active
// connection counter (decremented by the zombies it removes) and its
// checkpoint.
func ReaperInternalKeys() []string {
	return []string{schema.ActiveCounterKey, schema.CheckpointKey(contract.ReaperCheckpoint)}
}

func functionSpecs() []functionSpec {
	spec := func(fn string) functionSpec {
		return functionSpec{Name: fn, RouteKey: contract.RouteOf(fn), TableActions: TableActions(fn), InternalItemActions: InternalItemActions(fn)}
	}
	connect := spec(contract.FunctionConnect)
	// The JWT public key, once per cold start.
	connect.ReadsSecret = true
	reaper := spec(contract.FunctionReaper)
	reaper.InternalKeys = ReaperInternalKeys()
	reaper.Gets = true
	return []functionSpec{connect, spec(contract.FunctionDisconnect), spec(contract.FunctionDefault), reaper}
}
