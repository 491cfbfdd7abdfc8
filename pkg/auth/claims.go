package auth

import "time"

// Claims are the verified claims of a connection token.
type Claims struct {
	UserID      string    // sub
	TenantID    string    // tenant_id
	Permissions []string  // permissions
	Issuer      string    // iss
	Audience    []string  // aud
	ExpiresAt   time.Time // exp
	IssuedAt    time.Time // iat (zero when absent)
	NotBefore   time.Time // nbf (zero when absent)
	ID          string    // jti
}
