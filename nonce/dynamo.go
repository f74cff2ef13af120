package nonce

// This file holds every DynamoDB call the package makes: there is one.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
)

// condNeverConsumed is the condition of the consumption write.
//
// It is plain attribute_not_exists rather than ddb.CondAbsentOrExpired
// (which treats an expired item as absent) on purpose. The expired-as-absent
// rule exists for keys that may be claimed again once their item has died —
// a session token, an idempotency key. A nonce ID is never claimed again: it
// is 128 random bits issued once, and its record lives until the token's
// expiry plus Config.RecordMargin (at least the maximum clock skew). Every
// instance checks a token's expiry before the write, and none whose clock is
// within the skew accepts it after its record's ttl, so a dead record can only
// ever be met by a dead token. attribute_not_exists gives that answer without
// reading the writer's clock, so no clock — however skewed — can ever turn a
// recorded consumption back into an unused nonce while the record exists.
const condNeverConsumed = "attribute_not_exists(#pk)"

// putCondition and putNames are the condition of every consumption write
// and its one name placeholder, shared by all requests; the Manager keeps
// the table name the same way (Manager.tableName). Sharing is safe because
// the AWS SDK only reads an operation's input, never writes to it, and so
// must every dynaguard.API implementation: these are read-only.
var (
	putCondition = aws.String(condNeverConsumed)
	putNames     = map[string]string{"#pk": dynaguard.AttrPK}
)

// recordLabel separates the record key's hash from any other SHA-256 of a
// nonce ID.
const recordLabel = "dynaguard/nonce/record\x00"

// recordKeyLen is the length of a record key: the prefix and 43 characters
// of base64url for 32 bytes.
const recordKeyLen = len(dynaguard.PrefixNonce) + (sha256.Size*8+5)/6

// recordKey is the partition key of a nonce's consumption record: the
// prefix and SHA-256 of the nonce ID (domain-separated), so the table holds
// no ID in the clear. It is not keyed on purpose: the ID is 128 random bits,
// so the hash cannot be reversed, and a key-independent record survives key
// rotation — a token signed before a rotation and replayed after it still
// meets its record.
func recordKey(id *[idLen]byte) string {
	var b [recordKeyLen]byte
	return string(appendRecordKey(b[:0], id))
}

// appendRecordKey appends recordKey(id) to dst, computing it on the stack.
func appendRecordKey(dst []byte, id *[idLen]byte) []byte {
	var in [len(recordLabel) + idLen]byte
	copy(in[copy(in[:], recordLabel):], id[:])
	sum := sha256.Sum256(in[:])
	dst = append(dst, dynaguard.PrefixNonce...)
	return base64.RawURLEncoding.AppendEncode(dst, sum[:])
}

// consume records that the nonce was used, with one conditional PutItem:
// nil when this call recorded it, ErrAlreadyUsed when a record already
// existed, and ErrStorage (wrapping the classified DynamoDB error) for
// anything else. It never reads: a read followed by a write would let two
// concurrent submissions both see "unused".
//
// recordTTL is when DynamoDB may delete the record: the token's expiry plus
// Config.RecordMargin.
func (m *Manager) consume(ctx context.Context, id *[idLen]byte, recordTTL time.Time) error {
	// The record key and the ttl (ddb.TTLValue's number: whole epoch
	// seconds, rounded up) are built in one buffer and converted to one
	// string, then sliced: one allocation for both.
	var buf [recordKeyLen + 20]byte
	kv := string(strconv.AppendInt(appendRecordKey(buf[:0], id), ddb.EpochSeconds(recordTTL), 10))
	_, err := m.table.Client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: m.tableName,
		Item: map[string]types.AttributeValue{
			dynaguard.AttrPK:  &types.AttributeValueMemberS{Value: kv[:recordKeyLen]},
			dynaguard.AttrTTL: &types.AttributeValueMemberN{Value: kv[recordKeyLen:]},
		},
		ConditionExpression:      putCondition,
		ExpressionAttributeNames: putNames,
	})
	if err == nil {
		return nil
	}
	err = dynaguard.Classify(err)
	if dynaguard.IsConditionFailed(err) {
		return ErrAlreadyUsed
	}
	return err
}
