package contract_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/pay-theory/streamer/contract"
)

func TestDynamoDBActionsAreSortedAndKnown(t *testing.T) {
	known := []string{contract.DynamoDBPutItem, contract.DynamoDBUpdateItem, contract.DynamoDBDeleteItem,
		contract.DynamoDBScan, contract.DynamoDBBatchWriteItem}
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

// The internal-item operations are a sorted subset of the function's
// operations.
func TestDynamoDBInternalItemActionsAreASubset(t *testing.T) {
	scoped := 0
	for _, fn := range contract.Functions() {
		got := contract.DynamoDBInternalItemActions(fn)
		if !slices.IsSorted(got) {
			t.Errorf("%s: DynamoDBInternalItemActions %v not sorted", fn, got)
		}
		for _, op := range got {
			scoped++
			if !slices.Contains(contract.DynamoDBActions(fn), op) {
				t.Errorf("%s: internal-item operation %s is not in DynamoDBActions %v", fn, op, contract.DynamoDBActions(fn))
			}
		}
	}
	if scoped == 0 {
		t.Error("no function's operations are scoped to internal items: the reaper's UpdateItem should be")
	}
}

// Every function is invoked by its route, except the reaper (a schedule);
// no two functions share a route.
func TestRouteOf(t *testing.T) {
	seen := map[string]string{}
	for _, fn := range contract.Functions() {
		r := contract.RouteOf(fn)
		if (r == "") != (fn == contract.FunctionReaper) {
			t.Errorf("RouteOf(%s) = %q", fn, r)
		}
		if r != "" && seen[r] != "" {
			t.Errorf("%s and %s share the route %s", fn, seen[r], r)
		}
		seen[r] = fn
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

func TestCheckStage(t *testing.T) {
	for _, ok := range []string{"local", "dev", "production", "v1_2-beta", "A", strings.Repeat("s", contract.MaxStageLength)} {
		if err := contract.CheckStage(ok); err != nil {
			t.Errorf("CheckStage(%q) = %v, want nil", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"":         "it is empty",
		"a\nb":     `"a\nb"`,
		"a/b":      `"a/b"`,
		"a b":      `"a b"`,
		"a.b":      `"a.b"`,
		"$default": `"$default"`,
		"étape":    `"étape"`,
		"a\u202eb": `"a\u202eb"`,
		strings.Repeat("s", contract.MaxStageLength+1): "it is 129 bytes long",
	} {
		err := contract.CheckStage(bad)
		if !errors.Is(err, contract.ErrInvalidStage) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), contract.StageRule) {
			t.Errorf("CheckStage(%q) = %v, want ErrInvalidStage saying %s and the rule", bad, err, want)
		}
	}
}

// Only $default replies to the client: $connect and $disconnect can have no
// route response on API Gateway (the upgrade and the close carry no frame).
func TestTwoWayRoutes(t *testing.T) {
	if got := contract.TwoWayRoutes(); !slices.Equal(got, []string{contract.RouteDefault}) {
		t.Errorf("TwoWayRoutes() = %v, want [$default]", got)
	}
	for key, want := range map[string]bool{contract.RouteDefault: true, contract.RouteConnect: false, contract.RouteDisconnect: false, "ping": false} {
		if got := contract.IsTwoWayRoute(key); got != want {
			t.Errorf("IsTwoWayRoute(%q) = %v, want %v", key, got, want)
		}
	}
}
