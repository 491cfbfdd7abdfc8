package store

import (
	"strings"
	"unicode/utf8"
)

// MaxEndpointLength bounds the management API URL stored with a record.
const MaxEndpointLength = 2048

// validateID checks a connection id given as an argument or a record key.
// Ids starting with "#" are reserved for internal items (the active counter),
// so no client-supplied id can ever collide with them.
func validateID(field, id string) error {
	switch {
	case id == "":
		return invalid(field, "is required")
	case len(id) > MaxIDLength:
		return invalid(field, "is %d bytes, longer than the limit of %d", len(id), MaxIDLength)
	case !utf8.ValidString(id):
		return invalid(field, "is not valid UTF-8")
	}
	return nil
}

// ValidateConnectionID checks a connection id against the store's key rules:
// non-empty, at most MaxIDLength bytes, valid UTF-8 and not starting with the
// prefix reserved for internal items. No record can have an id it rejects.
func ValidateConnectionID(id string) error {
	if err := validateID("connection_id", id); err != nil {
		return err
	}
	if strings.HasPrefix(id, reservedIDPrefix) {
		return invalid("connection_id", "%q starts with %q, which is reserved for internal items", id, reservedIDPrefix)
	}
	return nil
}

func validateConnectionID(id string) error { return ValidateConnectionID(id) }

// Validate checks a record against the limits before it is written.
func Validate(c Connection) error {
	if err := validateConnectionID(c.ConnectionID); err != nil {
		return err
	}
	if err := validateID("user_id", c.UserID); err != nil {
		return err
	}
	if err := validateID("tenant_id", c.TenantID); err != nil {
		return err
	}
	if len(c.Endpoint) > MaxEndpointLength {
		return invalid("endpoint", "is %d bytes, longer than the limit of %d", len(c.Endpoint), MaxEndpointLength)
	}
	if len(c.Metadata.UserAgent) > MaxUserAgentLength {
		return invalid("metadata.user_agent", "is %d bytes, longer than the limit of %d", len(c.Metadata.UserAgent), MaxUserAgentLength)
	}
	if len(c.Metadata.IPAddress) > MaxIPAddressLength {
		return invalid("metadata.ip_address", "is %d bytes, longer than the limit of %d", len(c.Metadata.IPAddress), MaxIPAddressLength)
	}
	if len(c.Permissions) > MaxPermissions {
		return invalid("permissions", "has %d entries, more than the limit of %d", len(c.Permissions), MaxPermissions)
	}
	for i, p := range c.Permissions {
		if p == "" {
			return invalid("permissions", "entry %d is empty", i)
		}
		if len(p) > MaxPermissionLength {
			return invalid("permissions", "entry %d is %d bytes, longer than the limit of %d", i, len(p), MaxPermissionLength)
		}
	}
	if c.MessagesSent < 0 {
		return invalid("messages_sent", "is negative (%d)", c.MessagesSent)
	}
	if c.MessagesReceived < 0 {
		return invalid("messages_received", "is negative (%d)", c.MessagesReceived)
	}
	if c.TTL < 0 {
		return invalid("ttl", "is negative (%d)", c.TTL)
	}
	return nil
}
