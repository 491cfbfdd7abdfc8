package store

import (
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/pay-theory/streamer/pkg/store/schema"
)

// Attribute names that only this package uses.
const (
	attrUserAgent = "user_agent"
	attrIPAddress = "ip_address"
	attrActive    = "active_connections" // on the counter item
)

// MarshalItem encodes a record as a DynamoDB item: times as epoch
// milliseconds (numbers, so the GSIs sort by them), ttl as epoch seconds.
// Empty optional attributes are left out. It does not validate or default.
func MarshalItem(c Connection) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		schema.AttrConnectionID:     &types.AttributeValueMemberS{Value: c.ConnectionID},
		schema.AttrUserID:           &types.AttributeValueMemberS{Value: c.UserID},
		schema.AttrTenantID:         &types.AttributeValueMemberS{Value: c.TenantID},
		schema.AttrConnectedAt:      num(millis(c.ConnectedAt)),
		schema.AttrMessagesSent:     num(c.MessagesSent),
		schema.AttrMessagesReceived: num(c.MessagesReceived),
		schema.AttrTTL:              num(c.TTL),
	}
	if c.Endpoint != "" {
		item[schema.AttrEndpoint] = &types.AttributeValueMemberS{Value: c.Endpoint}
	}
	if !c.LastPing.IsZero() {
		item[schema.AttrLastPing] = num(millis(c.LastPing))
	}
	meta := map[string]types.AttributeValue{}
	if c.Metadata.UserAgent != "" {
		meta[attrUserAgent] = &types.AttributeValueMemberS{Value: c.Metadata.UserAgent}
	}
	if c.Metadata.IPAddress != "" {
		meta[attrIPAddress] = &types.AttributeValueMemberS{Value: c.Metadata.IPAddress}
	}
	if len(meta) > 0 {
		item[schema.AttrMetadata] = &types.AttributeValueMemberM{Value: meta}
	}
	if len(c.Permissions) > 0 {
		// A list, not a string set: sets reject duplicates and lose order.
		l := make([]types.AttributeValue, len(c.Permissions))
		for i, p := range c.Permissions {
			l[i] = &types.AttributeValueMemberS{Value: p}
		}
		item[schema.AttrPermissions] = &types.AttributeValueMemberL{Value: l}
	}
	return item
}

// UnmarshalItem decodes an item written by MarshalItem. Times come back in
// UTC with millisecond precision.
func UnmarshalItem(item map[string]types.AttributeValue) (Connection, error) {
	var c Connection
	var err error
	str := func(name string) string {
		if v, ok := item[name].(*types.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	number := func(name string) int64 {
		if err != nil {
			return 0
		}
		v, ok := item[name].(*types.AttributeValueMemberN)
		if !ok {
			return 0
		}
		n, perr := strconv.ParseInt(v.Value, 10, 64)
		if perr != nil {
			err = fmt.Errorf("store: attribute %s holds %q, not an integer: %w", name, v.Value, perr)
		}
		return n
	}
	c.ConnectionID = str(schema.AttrConnectionID)
	c.UserID = str(schema.AttrUserID)
	c.TenantID = str(schema.AttrTenantID)
	c.Endpoint = str(schema.AttrEndpoint)
	if _, ok := item[schema.AttrConnectedAt]; ok {
		c.ConnectedAt = time.UnixMilli(number(schema.AttrConnectedAt)).UTC()
	}
	if _, ok := item[schema.AttrLastPing]; ok {
		c.LastPing = time.UnixMilli(number(schema.AttrLastPing)).UTC()
	}
	c.MessagesSent = number(schema.AttrMessagesSent)
	c.MessagesReceived = number(schema.AttrMessagesReceived)
	c.TTL = number(schema.AttrTTL)
	if m, ok := item[schema.AttrMetadata].(*types.AttributeValueMemberM); ok {
		if v, ok := m.Value[attrUserAgent].(*types.AttributeValueMemberS); ok {
			c.Metadata.UserAgent = v.Value
		}
		if v, ok := m.Value[attrIPAddress].(*types.AttributeValueMemberS); ok {
			c.Metadata.IPAddress = v.Value
		}
	}
	switch p := item[schema.AttrPermissions].(type) {
	case *types.AttributeValueMemberL:
		for _, v := range p.Value {
			if s, ok := v.(*types.AttributeValueMemberS); ok {
				c.Permissions = append(c.Permissions, s.Value)
			}
		}
	case *types.AttributeValueMemberSS: // tolerate records written by other tools
		c.Permissions = append(c.Permissions, p.Value...)
	}
	return c, err
}

func num(n int64) *types.AttributeValueMemberN {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func keyOf(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{schema.AttrConnectionID: &types.AttributeValueMemberS{Value: id}}
}
