package lambdatest

import "testing"

// OneEMF decodes s like EMF and fails the test unless it holds exactly one
// document (one metric set per invocation), which it returns.
func OneEMF(t testing.TB, s string) EMFDoc {
	t.Helper()
	docs := EMF(t, s)
	if len(docs) != 1 {
		t.Fatalf("want one EMF document, got %d:\n%s", len(docs), s)
	}
	return docs[0]
}
