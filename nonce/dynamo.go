package nonce

// This file holds every DynamoDB call the package makes: there is one.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
)

// condNeverConsumed is the condition of the consumption write.
//
// It is plain attribute_not_exists rather than dynaguard.CondAbsentOrExpired
// (which treats an expired item as absent) on purpose. The expired-as-absent
// rule exists for keys that may be claimed again once their item has died —
// a session token, an idempotency key. A nonce ID is never claimed again: it
// is 128 random bits issued once, and its record lives exactly as long as
// the token (ttl = the token's expiry). A token is checked for expiry before
// the write, so a dead record can only ever be met by a dead token, which
// never reaches the write; both conditions therefore give the same answer
// for every write that is made. attribute_not_exists gives it without
// reading the writer's clock, so no clock — however skewed — can ever turn a
// recorded consumption back into an unused nonce.
const condNeverConsumed = "attribute_not_exists(#pk)"

// recordKey is the partition key of a nonce's consumption record: the
// prefix and SHA-256 of the nonce ID (domain-separated), so the table holds
// no ID in the clear. It is not keyed on purpose: the ID is 128 random bits,
// so the hash cannot be reversed, and a key-independent record survives key
// rotation — a token signed before a rotation and replayed after it still
// meets its record.
func recordKey(id *[idLen]byte) string {
	h := sha256.New()
	h.Write([]byte("dynaguard/nonce/record\x00"))
	h.Write(id[:])
	var sum [sha256.Size]byte
	return dynaguard.PrefixNonce + base64.RawURLEncoding.EncodeToString(h.Sum(sum[:0]))
}

// consume records that the nonce was used, with one conditional PutItem:
// nil when this call recorded it, ErrAlreadyUsed when a record already
// existed, and ErrStorage (wrapping the classified DynamoDB error) for
// anything else. It never reads: a read followed by a write would let two
// concurrent submissions both see "unused".
func (m *Manager) consume(ctx context.Context, id *[idLen]byte, expires time.Time) error {
	_, err := m.table.Client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(m.table.Name),
		Item: map[string]types.AttributeValue{
			dynaguard.AttrPK:  dynaguard.S(recordKey(id)),
			dynaguard.AttrTTL: dynaguard.TTLValue(expires),
		},
		ConditionExpression:      aws.String(condNeverConsumed),
		ExpressionAttributeNames: map[string]string{"#pk": dynaguard.AttrPK},
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
