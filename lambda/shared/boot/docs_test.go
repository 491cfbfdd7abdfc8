package boot_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pay-theory/streamer/contract"
)

// TestDocsCoverContract keeps docs/lambda.md in step with contract/.
func TestDocsCoverContract(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "lambda.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, fn := range contract.Functions() {
		for _, v := range contract.Vars(fn) {
			if !strings.Contains(doc, "`"+v.Name+"`") {
				t.Errorf("docs/lambda.md does not document %s (used by %s)", v.Name, fn)
			}
		}
	}
	for _, m := range contract.Metrics() {
		if !strings.Contains(doc, "`"+m+"`") {
			t.Errorf("docs/lambda.md does not document metric %s", m)
		}
	}
}
