package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
)

// seedNonces is the ANTI-PATTERN the report compares the nonce package
// against, written here only to measure it: the single-use nonce found in
// many tutorials. Issuing stores the nonce (PutItem); consuming reads it
// (GetItem, eventually consistent by default) and, if it is there and not
// expired, deletes it (an unconditional DeleteItem) and accepts it. Between
// the read and the delete a second request with the same nonce reads it
// too, and both are accepted: the race this report demonstrates. It also
// stores the nonce in the clear and costs three calls per form instead of
// one. Do not use it.
type seedNonces struct {
	tbl *dynaguard.Table
	ttl time.Duration
}

const seedPrefix = "seed#"

func (s *seedNonces) key(user, nonce string) string { return seedPrefix + user + "#" + nonce }

// Issue stores a fresh nonce for user and returns it.
func (s *seedNonces) Issue(ctx context.Context, user string) (string, error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	n := base64.RawURLEncoding.EncodeToString(b[:])
	_, err := s.tbl.Client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.tbl.Name),
		Item: item{
			dynaguard.AttrPK: ddb.S(s.key(user, n)),
			"expires_at":     ddb.N(time.Now().Add(s.ttl).Unix()),
		},
	})
	return n, err
}

// Consume reads the nonce and deletes it: check-then-act, not atomic.
func (s *seedNonces) Consume(ctx context.Context, user, nonce string) (bool, error) {
	key := ddb.Key(s.key(user, nonce))
	out, err := s.tbl.Client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.tbl.Name), Key: key})
	if err != nil {
		return false, err
	}
	exp, ok := ddb.Int(out.Item, "expires_at")
	if out.Item == nil || !ok || exp <= time.Now().Unix() {
		return false, nil
	}
	if _, err := s.tbl.Client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(s.tbl.Name), Key: key}); err != nil {
		return false, err
	}
	return true, nil
}
