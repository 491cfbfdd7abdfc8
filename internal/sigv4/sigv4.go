// Package sigv4 signs the requests of the Management API hot path (a
// PostToConnection or GetConnection per target) with AWS Signature
// Version 4, producing byte for byte the Authorization the AWS SDK's
// v4.Signer produces for the same request (the tests compare the two), at
// a fraction of its CPU. The SDK's signer is general: it copies and sorts
// every header, parses the query and escapes the path through fmt on each
// call, which made it the largest single cost of a direct post. Here the
// request has one fixed shape (an already escaped path, no query, at most
// host, content-length, content-type, x-amz-date and x-amz-security-token
// signed), the signing key is derived once per day, region and
// credentials, and the canonical request is written into a reused buffer.
package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

const algorithm = "AWS4-HMAC-SHA256"

// Request is what a signature covers of one request.
type Request struct {
	Method string
	// Host is the Host header as sent: no port when it is the scheme's
	// default (the SDK strips it too).
	Host string
	// Path is the request path exactly as sent (already escaped, no
	// query); its canonical form escapes it once more, as the SDK does
	// for every service but S3.
	Path string
	// ContentType is signed when not empty.
	ContentType string
	// ContentLength is signed when positive.
	ContentLength int64
	// PayloadHash is the body's hex SHA-256.
	PayloadHash string
}

// Signer signs for one region and service. It is safe for concurrent use.
type Signer struct {
	region, service string
	key             atomic.Pointer[signingKey]
	date            atomic.Pointer[stamp]
	bufs            sync.Pool // *[]byte
}

// New returns a Signer for service (for example "execute-api") in region.
func New(region, service string) *Signer {
	return &Signer{region: region, service: service}
}

// signingKey is a derived key with the credentials and day it is for, and
// a pool of HMACs keyed with it (an HMAC's Reset keeps its key pads).
type signingKey struct {
	akid, secret, day, scope string
	macs                     sync.Pool
}

// stamp caches the formatted time of one second.
type stamp struct {
	unix     int64
	amz, day string // 20060102T150405Z, 20060102
}

// Sign sets X-Amz-Date, X-Amz-Security-Token (when creds carry a session
// token) and Authorization on h for r, signed at now.
func (s *Signer) Sign(h http.Header, r Request, creds aws.Credentials, now time.Time) {
	st := s.stampFor(now)
	k := s.keyFor(creds, st.day)
	h["X-Amz-Date"] = []string{st.amz}
	if creds.SessionToken != "" {
		h["X-Amz-Security-Token"] = []string{creds.SessionToken}
	}

	bp, _ := s.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	b := (*bp)[:0]
	signed := signedHeaders[btoi(r.ContentLength > 0)<<2|btoi(r.ContentType != "")<<1|btoi(creds.SessionToken != "")]

	// The canonical request.
	b = append(b, r.Method...)
	b = append(b, '\n')
	b = appendEscapedPath(b, r.Path)
	b = append(b, "\n\n"...) // no query
	if r.ContentLength > 0 {
		b = append(b, "content-length:"...)
		b = strconv.AppendInt(b, r.ContentLength, 10)
		b = append(b, '\n')
	}
	if r.ContentType != "" {
		b = append(b, "content-type:"...)
		b = append(b, r.ContentType...)
		b = append(b, '\n')
	}
	b = append(b, "host:"...)
	b = append(b, r.Host...)
	b = append(b, "\nx-amz-date:"...)
	b = append(b, st.amz...)
	b = append(b, '\n')
	if creds.SessionToken != "" {
		b = append(b, "x-amz-security-token:"...)
		b = append(b, creds.SessionToken...)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	b = append(b, signed...)
	b = append(b, '\n')
	b = append(b, r.PayloadHash...)
	sum := sha256.Sum256(b)

	// The string to sign, in the same buffer.
	b = append(b[:0], algorithm...)
	b = append(b, '\n')
	b = append(b, st.amz...)
	b = append(b, '\n')
	b = append(b, k.scope...)
	b = append(b, '\n')
	b = hex.AppendEncode(b, sum[:])
	mac := k.macs.Get().(hash.Hash)
	mac.Reset()
	mac.Write(b)
	var sig [sha256.Size]byte
	mac.Sum(sig[:0])
	k.macs.Put(mac)

	b = append(b[:0], algorithm+" Credential="...)
	b = append(b, creds.AccessKeyID...)
	b = append(b, '/')
	b = append(b, k.scope...)
	b = append(b, ", SignedHeaders="...)
	b = append(b, signed...)
	b = append(b, ", Signature="...)
	b = hex.AppendEncode(b, sig[:])
	h["Authorization"] = []string{string(b)}
	*bp = b
	s.bufs.Put(bp)
}

// signedHeaders are the SignedHeaders lists, indexed by content-length <<
// 2 | content-type << 1 | x-amz-security-token (each 1 when signed):
// constants, so a signature builds no list.
var signedHeaders = [8]string{
	"host;x-amz-date",
	"host;x-amz-date;x-amz-security-token",
	"content-type;host;x-amz-date",
	"content-type;host;x-amz-date;x-amz-security-token",
	"content-length;host;x-amz-date",
	"content-length;host;x-amz-date;x-amz-security-token",
	"content-length;content-type;host;x-amz-date",
	"content-length;content-type;host;x-amz-date;x-amz-security-token",
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// stampFor formats now (UTC), once per second.
func (s *Signer) stampFor(now time.Time) *stamp {
	now = now.UTC()
	unix := now.Unix()
	if st := s.date.Load(); st != nil && st.unix == unix {
		return st
	}
	st := &stamp{unix: unix, amz: now.Format("20060102T150405Z"), day: now.Format("20060102")}
	s.date.Store(st)
	return st
}

// keyFor returns the signing key for creds on day, deriving it when the
// credentials (they rotate) or the day changed.
func (s *Signer) keyFor(creds aws.Credentials, day string) *signingKey {
	if k := s.key.Load(); k != nil && k.day == day && k.akid == creds.AccessKeyID && k.secret == creds.SecretAccessKey {
		return k
	}
	kDate := hmacSHA256([]byte("AWS4"+creds.SecretAccessKey), day)
	kRegion := hmacSHA256(kDate, s.region)
	kService := hmacSHA256(kRegion, s.service)
	kSigning := hmacSHA256(kService, "aws4_request")
	k := &signingKey{akid: creds.AccessKeyID, secret: creds.SecretAccessKey, day: day,
		scope: day + "/" + s.region + "/" + s.service + "/aws4_request"}
	k.macs.New = func() any { return hmac.New(sha256.New, kSigning) }
	s.key.Store(k)
	return k
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// appendEscapedPath appends path escaped as a SigV4 canonical URI: every
// byte but the unreserved ones (A-Z a-z 0-9 - . _ ~) and '/' as %XX, so
// an escaped path's '%' becomes "%25" (what the SDK's signer writes).
func appendEscapedPath(b []byte, path string) []byte { return appendEscaped(b, path, true) }

// AppendEscaped appends s escaped as one path segment the way the AWS SDKs
// escape a path parameter: every byte but the unreserved ones as %XX
// ('/' included).
func AppendEscaped(b []byte, s string) []byte { return appendEscaped(b, s, false) }

func appendEscaped(b []byte, s string, keepSlash bool) []byte {
	const hexUpper = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) || (keepSlash && c == '/') {
			b = append(b, c)
		} else {
			b = append(b, '%', hexUpper[c>>4], hexUpper[c&15])
		}
	}
	return b
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}
