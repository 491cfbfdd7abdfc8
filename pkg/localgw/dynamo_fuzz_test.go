package localgw

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func dynamoRequest(d http.Handler, op string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header.Set("X-Amz-Target", dynamoTargetPrefix+op)
	rec := httptest.NewRecorder()
	d.ServeHTTP(rec, req)
	return rec
}

// checkDynamoAnswer fails unless the answer is DynamoDB-shaped: 200 with a
// JSON object, or 4xx/5xx with a JSON {__type, message} naming an error.
func checkDynamoAnswer(t *testing.T, op string, body []byte, rec *httptest.ResponseRecorder) {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %q: answer %d is not a JSON object: %q", op, body, rec.Code, rec.Body.Bytes())
	}
	if rec.Code == http.StatusOK {
		return
	}
	typ, _ := out["__type"].(string)
	msg, _ := out["message"].(string)
	if rec.Code < 400 || rec.Code > 599 || typ == "" || msg == "" {
		t.Fatalf("%s %q: answer %d without an error type and message: %q", op, body, rec.Code, rec.Body.Bytes())
	}
}

func newTestDynamo(t testing.TB) *embeddedDynamo {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := newEmbeddedDynamo(ctx, "streamer-connections", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A panic inside the DynamoDB implementation is one request's 400, not a
// dropped connection, and the endpoint keeps serving.
func TestEmbeddedDynamoRecoversPerRequest(t *testing.T) {
	d := newTestDynamo(t)
	real := d.srv
	d.srv = http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("nil map in the emulator") })
	rec := dynamoRequest(d, "GetItem", []byte(`{}`))
	checkDynamoAnswer(t, "GetItem", nil, rec)
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "#ValidationException") || !strings.Contains(rec.Body.String(), "nil map in the emulator") {
		t.Errorf("panic answered %d %s, want 400 ValidationException", rec.Code, rec.Body.Bytes())
	}
	d.srv = real
	if rec := dynamoRequest(d, "DescribeTable", []byte(`{"TableName":"streamer-connections"}`)); rec.Code != 200 {
		t.Errorf("after a panic, DescribeTable answered %d %s", rec.Code, rec.Body.Bytes())
	}
}

// FuzzEmbeddedDynamoDB sends arbitrary bodies to every operation: each
// answer must be DynamoDB-shaped, and the table must stay describable.
// Seeds include the Scan on an unknown index.
func FuzzEmbeddedDynamoDB(f *testing.F) {
	ops := make([]string, 0, len(dynamoOps))
	for op := range dynamoOps {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	for i, body := range []string{
		`{"TableName":"streamer-connections","IndexName":"nope"}`,
		`{"TableName":"streamer-connections","IndexName":"tenant-index","KeyConditionExpression":"tenant_id = :t","ExpressionAttributeValues":{":t":{"S":"a"}}}`,
		`{"TableName":"streamer-connections","Item":{"connection_id":{"S":"ab-_cd-_ef-_ghI="},"tenant_id":{"S":"t"}},"ReturnValues":"ALL_OLD"}`,
		`{"TableName":"streamer-connections","Key":{"connection_id":{"S":"x"}},"UpdateExpression":"ADD n :one","ExpressionAttributeValues":{":one":{"N":"1"}}}`,
		`{"RequestItems":{"streamer-connections":[{"DeleteRequest":{"Key":{"connection_id":{"S":"x"}}}}]}}`,
		`{"TableName":"streamer-connections","Limit":-1,"ExclusiveStartKey":{"connection_id":{"N":"x"}}}`,
		`{"TableName":null}`, `[]`, `{`, ``,
	} {
		for j := range ops {
			if (i+j)%3 == 0 { // a spread, not the full product
				f.Add(uint8(j), []byte(body))
			}
		}
	}
	d := newTestDynamo(f)
	f.Fuzz(func(t *testing.T, opIndex uint8, body []byte) {
		op := ops[int(opIndex)%len(ops)]
		if op == "DeleteTable" || op == "CreateTable" || op == "UpdateTable" {
			// Changing the table would leave nothing to query; those
			// are exercised against a throwaway table name only.
			body = bytes.ReplaceAll(body, []byte("streamer-connections"), []byte("fuzz-table"))
		}
		checkDynamoAnswer(t, op, body, dynamoRequest(d, op, body))
		if rec := dynamoRequest(d, "DescribeTable", []byte(`{"TableName":"streamer-connections"}`)); rec.Code != 200 {
			t.Fatalf("after %s %q the table is gone or the endpoint broke: %d %s", op, body, rec.Code, rec.Body.Bytes())
		}
	})
}
