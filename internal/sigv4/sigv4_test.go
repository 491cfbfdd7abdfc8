package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go/encoding/httpbinding"
)

// signBoth signs one request with the SDK's signer and with ours and
// returns both Authorization headers (and fails on any other difference
// in the headers the signers set).
func signBoth(t testing.TB, s *Signer, method, host, basePath, id, ctype string, body []byte, creds aws.Credentials, now time.Time) (sdk, ours string) {
	t.Helper()
	path := basePath + "/@connections/" + httpbinding.EscapePath(id, true)
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	var rd *bytes.Reader
	req, err := http.NewRequest(method, "https://"+host+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(body) > 0 {
		rd = bytes.NewReader(body)
		req.Body, req.ContentLength = http.NoBody, int64(rd.Len())
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("User-Agent", "streamer")
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hash, "execute-api", s.region, now); err != nil {
		t.Fatal(err)
	}
	h := http.Header{"User-Agent": {"streamer"}}
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	sentHost := strings.TrimSuffix(host, ":443")
	s.Sign(h, Request{Method: method, Host: sentHost, Path: path, ContentType: ctype, ContentLength: int64(len(body)), PayloadHash: hash}, creds, now)
	for _, k := range []string{"X-Amz-Date", "X-Amz-Security-Token"} {
		if req.Header.Get(k) != h.Get(k) {
			t.Errorf("%s: SDK %q, ours %q", k, req.Header.Get(k), h.Get(k))
		}
	}
	return req.Header.Get("Authorization"), h.Get("Authorization")
}

// Our signature is the SDK's, byte for byte, across methods, ids that need
// escaping (twice, in the canonical URI), stages, bodies, content types,
// session tokens, regions, days and rotated credentials.
func TestSignMatchesTheSDK(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := "abcXYZ019-._~+/=%@ !*'()é\x00\x7f"
	randID := func() string {
		var b strings.Builder
		for range 1 + r.IntN(24) {
			if r.IntN(8) == 0 {
				b.WriteByte(byte(r.IntN(256)))
			} else {
				b.WriteByte(alphabet[r.IntN(len(alphabet))])
			}
		}
		return b.String()
	}
	signers := map[string]*Signer{}
	for _, region := range []string{"us-east-1", "eu-west-3", "ap-southeast-2"} {
		signers[region] = New(region, "execute-api")
	}
	base := time.Date(2026, 12, 31, 23, 59, 58, 0, time.UTC)
	for i := range 2000 {
		region := []string{"us-east-1", "eu-west-3", "ap-southeast-2"}[r.IntN(3)]
		method, ctype, body := http.MethodGet, "", []byte(nil)
		if r.IntN(2) == 0 {
			method, ctype, body = http.MethodPost, "application/octet-stream", []byte(randID())
		}
		if r.IntN(10) == 0 {
			ctype = "" // a body with no content type
		}
		creds := aws.Credentials{AccessKeyID: fmt.Sprintf("AKIA%d", r.IntN(3)), SecretAccessKey: fmt.Sprintf("secret/%d+x", r.IntN(3))}
		if r.IntN(3) == 0 {
			creds.SessionToken = "IQoJb3JpZ2luX2VjE" + strings.Repeat("A", r.IntN(40)) + "=="
		}
		host := []string{"abc123.execute-api." + region + ".amazonaws.com", "abc123.execute-api." + region + ".amazonaws.com:443", "127.0.0.1:4510", "localhost:8080"}[r.IntN(4)]
		stage := []string{"", "/prod", "/dev-2", "/v1/x"}[r.IntN(4)]
		now := base.Add(time.Duration(r.IntN(5000)) * time.Millisecond) // across midnight and a new year
		sdk, ours := signBoth(t, signers[region], method, host, stage, randID(), ctype, body, creds, now)
		if sdk != ours {
			t.Fatalf("case %d differs:\nSDK  %s\nours %s", i, sdk, ours)
		}
	}
}

// FuzzSignMatchesTheSDK: any id, any body.
func FuzzSignMatchesTheSDK(f *testing.F) {
	for _, id := range []string{"L0SM9cOFvHcCIhw=", "a+b/c=", "", "%41", "é"} {
		f.Add(id, []byte("hi"), "tok")
	}
	s := New("us-east-1", "execute-api")
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, id string, body []byte, token string) {
		method := http.MethodGet
		if len(body) > 0 {
			method = http.MethodPost
		}
		token = strings.Map(func(r rune) rune { // a token is base64: no spaces or controls
			if r <= ' ' || r > '~' {
				return -1
			}
			return r
		}, token)
		creds := aws.Credentials{AccessKeyID: "AKIA", SecretAccessKey: "s", SessionToken: token}
		sdk, ours := signBoth(t, s, method, "h.execute-api.us-east-1.amazonaws.com", "/prod", id, "application/octet-stream", body, creds, now)
		if sdk != ours {
			t.Fatalf("differs:\nSDK  %s\nours %s", sdk, ours)
		}
	})
}

// Concurrent signing with rotating credentials and days stays exact (run
// with -race).
func TestSignConcurrently(t *testing.T) {
	s := New("us-east-1", "execute-api")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				creds := aws.Credentials{AccessKeyID: fmt.Sprintf("AK%d", (g+i)%3), SecretAccessKey: fmt.Sprintf("s%d", (g+i)%3)}
				now := time.Date(2026, 12, 1+i%2, 0, 0, i%60, 0, time.UTC)
				sdk, ours := signBoth(t, s, http.MethodPost, "h.example.com", "/prod", fmt.Sprintf("id%d=", i), "application/octet-stream", []byte("x"), creds, now)
				if sdk != ours {
					t.Errorf("differs:\nSDK  %s\nours %s", sdk, ours)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkSign(b *testing.B) {
	creds := aws.Credentials{AccessKeyID: "AKIA", SecretAccessKey: "s", SessionToken: "tok"}
	sum := sha256.Sum256([]byte("hello"))
	hash := hex.EncodeToString(sum[:])
	path := "/prod/@connections/" + httpbinding.EscapePath("L0SM9cOFvHcCIhw=", true)
	now := time.Now()
	b.Run("sdk", func(b *testing.B) {
		sg := v4.NewSigner()
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequest(http.MethodPost, "https://h.execute-api.us-east-1.amazonaws.com"+path, nil)
			req.ContentLength = 5
			req.Header.Set("Content-Type", "application/octet-stream")
			_ = sg.SignHTTP(context.Background(), creds, req, hash, "execute-api", "us-east-1", now)
		}
	})
	b.Run("ours", func(b *testing.B) {
		s := New("us-east-1", "execute-api")
		b.ReportAllocs()
		for b.Loop() {
			h := make(http.Header, 4)
			h["Content-Type"] = []string{"application/octet-stream"}
			s.Sign(h, Request{Method: http.MethodPost, Host: "h.execute-api.us-east-1.amazonaws.com", Path: path,
				ContentType: "application/octet-stream", ContentLength: 5, PayloadHash: hash}, creds, now)
		}
	})
}
