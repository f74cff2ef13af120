// Package ddb holds the DynamoDB plumbing every component shares: attribute
// values and readers, the key of an item, and the expiry rule for reads and
// write conditions. It is internal: the table layout it serves is documented
// in the root package (dynaguard.AttrPK, AttrTTL, the Prefix constants).
package ddb

import (
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The table's key and TTL attributes (dynaguard.AttrPK and AttrTTL are these).
const (
	AttrPK  = "pk"
	AttrTTL = "ttl"
)

// Condition fragments that treat expired items as absent. Use them with
// ExpressionAttributeNames {"#pk": AttrPK, "#ttl": AttrTTL} (see [ExprNames])
// and the value ":now" set to [NowValue].
//
// An item with ttl = T is live while now < T. Reads apply the same rule with
// [Expired], so a read and a write condition never disagree about an item.
const (
	// CondAbsentOrExpired holds when there is no item, or only a dead one:
	// the condition for claiming a key.
	CondAbsentOrExpired = "(attribute_not_exists(#pk) OR #ttl <= :now)"
	// CondLive holds when the item exists and has not expired: the
	// condition for consuming or updating a record.
	CondLive = "(attribute_exists(#pk) AND #ttl > :now)"
)

// ExprNames returns the ExpressionAttributeNames for the condition fragments,
// plus the given extra name pairs ("#a", "a", "#b", "b", ...).
func ExprNames(extra ...string) map[string]string {
	m := make(map[string]string, 2+len(extra)/2)
	m["#pk"] = AttrPK
	m["#ttl"] = AttrTTL
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

// EpochSeconds returns t as epoch seconds, rounded up, so an item never
// expires before t.
func EpochSeconds(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

// TTLValue is the AttrTTL value for an item that expires at t.
func TTLValue(t time.Time) types.AttributeValue {
	return N(EpochSeconds(t))
}

// NowValue is the ":now" value for the condition fragments: now in whole
// epoch seconds, rounded down.
func NowValue(now time.Time) types.AttributeValue {
	return N(now.Unix())
}

// ExpiresAt returns the item's expiry, and false when it has no valid AttrTTL.
func ExpiresAt(item map[string]types.AttributeValue) (time.Time, bool) {
	s, ok := Int(item, AttrTTL)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(s, 0), true
}

// Expired reports whether the item must be treated as absent at now: it is
// missing, has no valid AttrTTL, or its AttrTTL is at or before now. Every
// dynaguard item carries a TTL, so an item without one is malformed and is
// not trusted.
func Expired(item map[string]types.AttributeValue, now time.Time) bool {
	if item == nil {
		return true
	}
	s, ok := Int(item, AttrTTL)
	return !ok || now.Unix() >= s
}

// S is a string attribute value.
func S(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

// N is a number attribute value.
func N(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

// B is a binary attribute value.
func B(v []byte) types.AttributeValue { return &types.AttributeValueMemberB{Value: v} }

// Bool is a boolean attribute value.
func Bool(v bool) types.AttributeValue { return &types.AttributeValueMemberBOOL{Value: v} }

// Key is the primary key of the item with partition key pk.
func Key(pk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrPK: S(pk)}
}

// Str reads a string attribute.
func Str(item map[string]types.AttributeValue, name string) (string, bool) {
	v, ok := item[name].(*types.AttributeValueMemberS)
	if !ok {
		return "", false
	}
	return v.Value, true
}

// Int reads a number attribute that holds an integer.
func Int(item map[string]types.AttributeValue, name string) (int64, bool) {
	v, ok := item[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v.Value, 10, 64)
	return n, err == nil
}

// Bytes reads a binary attribute.
func Bytes(item map[string]types.AttributeValue, name string) ([]byte, bool) {
	v, ok := item[name].(*types.AttributeValueMemberB)
	if !ok {
		return nil, false
	}
	return v.Value, true
}

// BoolAttr reads a boolean attribute.
func BoolAttr(item map[string]types.AttributeValue, name string) (bool, bool) {
	v, ok := item[name].(*types.AttributeValueMemberBOOL)
	if !ok {
		return false, false
	}
	return v.Value, true
}

// OwnerSessions is the index partition value (dynaguard.AttrGSI1PK) under
// which the sessions of userID are listed.
func OwnerSessions(userID string) string { return "sessions#" + userID }
