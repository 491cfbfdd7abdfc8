package stack

import (
	"slices"
	"testing"
)

// No handler sends today, so the deployed stack never shows the
// ManageConnections statement; this checks its scoping directly.
func TestSendingFunctionIsScopedToThisStage(t *testing.T) {
	d := &deployed{
		cfg:  Config{StageName: "production"},
		acct: account{Partition: "aws", DNSSuffix: "amazonaws.com", Region: "eu-west-1", ID: "123456789012"},
	}
	spec := functionSpec{Name: "broadcaster", TableActions: []string{"dynamodb:GetItem"}, Sends: true}
	doc := d.rolePolicy(spec, "tableArn", "secretArn", "keyArn", "logArn", "abc123")
	var found bool
	for _, st := range doc.Statement {
		if slices.Contains(st.Action, "execute-api:ManageConnections") {
			found = true
			want := "arn:aws:execute-api:eu-west-1:123456789012:abc123/production/POST/@connections/*"
			if len(st.Action) != 1 || !slices.Equal(st.Resource, []string{want}) {
				t.Errorf("ManageConnections statement %+v, want only %s", st, want)
			}
		}
		if slices.Contains(st.Action, "secretsmanager:GetSecretValue") {
			t.Errorf("a function that does not read the secret got %+v", st)
		}
	}
	if !found {
		t.Error("a sending function has no execute-api:ManageConnections")
	}
	for _, s := range functionSpecs() {
		if s.Sends {
			t.Errorf("%s is marked as sending: no handler sends to clients today", s.Name)
		}
	}
}
