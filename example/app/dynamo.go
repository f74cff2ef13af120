package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
)

// Every DynamoDB call of the example app's own data is in this file.
//
// The app keeps its transfers in the same table as dynaguard, under its own
// key prefix, so two instances of the app see the same transfers:
//
//	pk     S   "app#transfers#" + user ID       one item per user
//	items  L   of M{id S, to S, amount N, at N}  oldest first, at most MaxTransfers
//	ids    SS  the IDs in items                 (for the duplicate condition)
//
// One UpdateItem appends a transfer with list_append, on condition that the
// ID is not there yet and the list is not full; one strongly consistent
// GetItem lists them. A user's transfers are then always read back at once
// and in order, on any instance, at the cost of one item per user (bounded:
// MaxTransfers entries of at most ~150 bytes stay far below DynamoDB's
// 400 KB item limit). A real ledger would store one item per transfer with
// a sort key; this example's table has none, so it keeps a short list.
//
// The item carries no ttl: it is the application's data, not a security
// record, and must not expire.

// PrefixTransfers is the key prefix of the app's own items. It must not
// start like any of dynaguard's prefixes (sess#, nonce#, idem#, user#, uniq#,
// thr#, tok#, rcv#).
const PrefixTransfers = "app#transfers#"

// MaxTransfers bounds the transfers kept per user.
const MaxTransfers = 50

// Transfer is one money transfer of the demo.
type Transfer struct {
	ID      string    `json:"id"`
	To      string    `json:"to"`
	Amount  int64     `json:"amount"`
	Created time.Time `json:"created"`
}

var (
	// errTransfersFull: the user has MaxTransfers transfers already.
	errTransfersFull = errors.New("app: transfer limit reached")
	// errStorage: DynamoDB failed; nothing is known to have been written.
	errStorage = errors.New("app: transfer storage unavailable")
)

type transferStore struct {
	tbl *dynaguard.Table
}

func transfersPK(userID string) string { return PrefixTransfers + userID }

// add appends t to the user's list. If a transfer with t's ID is already
// there (a retry whose first attempt was written, for example after a
// timeout), it returns that transfer and existed=true instead of adding a
// second one.
func (s *transferStore) add(ctx context.Context, userID string, t Transfer) (stored Transfer, existed bool, err error) {
	entry := &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
		"id":     ddb.S(t.ID),
		"to":     ddb.S(t.To),
		"amount": ddb.N(t.Amount),
		"at":     ddb.N(t.Created.UnixMilli()),
	}}
	_, err = s.tbl.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:        aws.String(s.tbl.Name),
		Key:              ddb.Key(transfersPK(userID)),
		UpdateExpression: aws.String("SET #items = list_append(if_not_exists(#items, :empty), :new) ADD #ids :id"),
		ConditionExpression: aws.String("(attribute_not_exists(#ids) OR NOT contains(#ids, :idv)) AND " +
			"(attribute_not_exists(#items) OR size(#items) < :max)"),
		ExpressionAttributeNames: map[string]string{"#items": "items", "#ids": "ids"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":empty": &types.AttributeValueMemberL{Value: []types.AttributeValue{}},
			":new":   &types.AttributeValueMemberL{Value: []types.AttributeValue{entry}},
			":id":    &types.AttributeValueMemberSS{Value: []string{t.ID}},
			":idv":   ddb.S(t.ID),
			":max":   ddb.N(MaxTransfers),
		},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err == nil {
		return t, false, nil
	}
	err = dynaguard.Classify(err)
	var cf *dynaguard.ConditionFailedError
	if !errors.As(err, &cf) {
		return Transfer{}, false, fmt.Errorf("%w: %w", errStorage, err)
	}
	for _, old := range decodeTransfers(cf.Item) {
		if old.ID == t.ID {
			return old, true, nil
		}
	}
	return Transfer{}, false, errTransfersFull
}

// list returns the user's transfers, newest first (one strongly consistent
// GetItem).
func (s *transferStore) list(ctx context.Context, userID string) ([]Transfer, error) {
	out, err := s.tbl.Client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:                aws.String(s.tbl.Name),
		Key:                      ddb.Key(transfersPK(userID)),
		ConsistentRead:           aws.Bool(true),
		ProjectionExpression:     aws.String("#items"),
		ExpressionAttributeNames: map[string]string{"#items": "items"},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errStorage, dynaguard.Classify(err))
	}
	ts := decodeTransfers(out.Item)
	for i, j := 0, len(ts)-1; i < j; i, j = i+1, j-1 {
		ts[i], ts[j] = ts[j], ts[i]
	}
	return ts, nil
}

// decodeTransfers reads the items list, skipping malformed entries.
func decodeTransfers(item map[string]types.AttributeValue) []Transfer {
	l, ok := item["items"].(*types.AttributeValueMemberL)
	if !ok {
		return []Transfer{}
	}
	ts := make([]Transfer, 0, len(l.Value))
	for _, v := range l.Value {
		m, ok := v.(*types.AttributeValueMemberM)
		if !ok {
			continue
		}
		id, ok1 := ddb.Str(m.Value, "id")
		to, ok2 := ddb.Str(m.Value, "to")
		amount, ok3 := ddb.Int(m.Value, "amount")
		at, ok4 := ddb.Int(m.Value, "at")
		if !ok1 || !ok2 || !ok3 || !ok4 {
			continue
		}
		ts = append(ts, Transfer{ID: id, To: to, Amount: amount, Created: time.UnixMilli(at).UTC()})
	}
	return ts
}
