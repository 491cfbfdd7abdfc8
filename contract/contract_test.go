package contract_test

import (
	"slices"
	"testing"

	"github.com/pay-theory/streamer/contract"
)

func TestDynamoDBActionsAreSortedAndKnown(t *testing.T) {
	known := []string{contract.DynamoDBPutItem, contract.DynamoDBUpdateItem, contract.DynamoDBDeleteItem}
	for _, fn := range contract.Functions() {
		got := contract.DynamoDBActions(fn)
		if len(got) == 0 || !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Errorf("%s: DynamoDBActions %v: want a non-empty sorted set", fn, got)
		}
		for _, op := range got {
			if !slices.Contains(known, op) {
				t.Errorf("%s: %s has no DynamoDB* constant", fn, op)
			}
		}
	}
	if contract.DynamoDBActions("nope") != nil {
		t.Error("an unknown function has DynamoDB actions")
	}
}

// A platform variable is set by the runtime (or a local user), never by the
// IaC: it must not also be a contract variable, which the IaC deploys.
func TestPlatformVarsAreNotContractVars(t *testing.T) {
	for _, fn := range contract.Functions() {
		for _, v := range contract.Vars(fn) {
			if slices.Contains(contract.PlatformVars(), v.Name) {
				t.Errorf("%s is both a platform variable and in Vars(%q)", v.Name, fn)
			}
		}
	}
}
