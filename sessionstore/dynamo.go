package sessionstore

// Every DynamoDB call the store makes is in this file, so that a reader can
// follow request → Store method → table in one place. The methods here build
// requests and classify errors; the decisions (what is live, when to skip a
// write, what an error means for scs) are made in store.go and owner.go.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
)

// Attributes of a session item, besides dynaguard.AttrPK, AttrTTL, AttrGSI1PK
// and AttrGSI1SK. The layout is described in the package documentation.
const (
	attrData    = "data"    // B: session data as scs encoded it, or sealed (see attrEnc)
	attrExp     = "exp"     // N: precise expiry, Unix nanoseconds (ttl is this rounded up to seconds)
	attrVer     = "ver"     // N: write counter, the guard of a rotation move
	attrCreated = "created" // N: first write, Unix nanoseconds
	attrSeen    = "seen"    // N: last write, Unix nanoseconds
	attrEnc     = "enc"     // S: ID of the key that sealed data; absent when data is plaintext
	attrUA      = "ua"      // S: user agent given to Bind
	attrIP      = "ip"      // S: client IP given to Bind
	attrTomb    = "tomb"    // BOOL: the item is a tombstone (deleted, revoked or moved)
	attrMoved   = "moved"   // S: on a tombstone left by a rotation move, the pk the session moved to
)

// exprNames names every attribute an expression of this file may use. Each
// request passes only the names its expressions use (DynamoDB rejects unused
// names), so the maps below are built once and shared read-only.
func exprNames(names ...string) map[string]string {
	m := make(map[string]string, len(names))
	for _, n := range names {
		m["#"+n] = n
	}
	return m
}

// The commit is one UpdateItem. SET keeps attributes the commit does not
// mention — the owner written by an earlier commit above all — and REMOVE
// turns an expired tombstone back into a plain session item. The condition
// refuses to write over a live tombstone: that is what makes Delete win over a
// request that loaded the session before it was deleted.
const (
	commitSet = "SET #data = :data, #exp = :exp, #ttl = :ttl, #seen = :now, " +
		"#created = if_not_exists(#created, :now), #ver = if_not_exists(#ver, :zero) + :one"
	commitSetEnc   = ", #enc = :enc"
	commitSetOwner = ", #gsi1pk = :owner, #gsi1sk = :bound, #ua = :ua, #ip = :ip"
	commitRemove   = " REMOVE #tomb, #moved"
	commitRemEnc   = ", #enc"
	// A live tombstone blocks the write; an expired one (its ttl at or
	// before now) does not. Same rule as ddb.CondLive.
	commitCond = "attribute_not_exists(#tomb) OR #ttl <= :nows"
)

// commitExpr holds the four UpdateItem variants: sealed or plaintext data,
// with or without a pending owner binding.
type commitExpr struct {
	update *string
	names  map[string]string
}

// Request parts that never change are built once and shared by every
// request: the SDK reads its input and never modifies it.
var (
	commitCondExpr = aws.String(commitCond)
	attrZero       = ddb.N(0)
	attrOne        = ddb.N(1)
)

var commitExprs = func() (v [2][2]commitExpr) {
	for enc := 0; enc < 2; enc++ {
		for own := 0; own < 2; own++ {
			u := commitSet
			names := []string{dynaguard.AttrTTL, attrData, attrExp, attrSeen, attrCreated, attrVer, attrTomb, attrMoved, attrEnc}
			if enc == 1 {
				u += commitSetEnc
			}
			if own == 1 {
				u += commitSetOwner
				names = append(names, dynaguard.AttrGSI1PK, dynaguard.AttrGSI1SK, attrUA, attrIP)
			}
			u += commitRemove
			if enc == 0 {
				u += commitRemEnc
			}
			v[enc][own] = commitExpr{update: aws.String(u), names: exprNames(names...)}
		}
	}
	return v
}()

// sessionWrite is one commit.
type sessionWrite struct {
	pk    string
	data  []byte
	enc   string // key ID when data is sealed
	exp   time.Time
	now   time.Time
	owner *binding // nil: leave the owner as it is
}

// writeSession commits a session with one conditional UpdateItem. A live
// tombstone makes it fail with an error matching dynaguard.ErrConditionFailed;
// if that tombstone was left by a rotation move, movedTo says where the
// session went (from the same round trip).
func (s *Store) writeSession(ctx context.Context, w sessionWrite) (movedTo string, err error) {
	enc, own := 0, 0
	vals := map[string]types.AttributeValue{
		":data": ddb.B(w.data),
		":exp":  ddb.N(w.exp.UnixNano()),
		":ttl":  ddb.TTLValue(w.exp),
		":now":  ddb.N(w.now.UnixNano()),
		":nows": ddb.NowValue(w.now),
		":zero": attrZero,
		":one":  attrOne,
	}
	if w.enc != "" {
		enc = 1
		vals[":enc"] = ddb.S(w.enc)
	}
	if w.owner != nil {
		own = 1
		vals[":owner"] = ddb.S(ddb.OwnerSessions(w.owner.userID))
		vals[":bound"] = ddb.S(sortKey(w.owner.at))
		vals[":ua"] = ddb.S(w.owner.info.UserAgent)
		vals[":ip"] = ddb.S(w.owner.info.IP)
	}
	e := commitExprs[enc][own]
	_, err = s.tbl.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           s.tableName,
		Key:                                 ddb.Key(w.pk),
		UpdateExpression:                    e.update,
		ConditionExpression:                 commitCondExpr,
		ExpressionAttributeNames:            e.names,
		ExpressionAttributeValues:           vals,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	return movedFrom(dynaguard.Classify(err))
}

// movedFrom returns err with, when it is a failed condition whose old item is
// a tombstone left by a rotation move, the pk the session moved to.
func movedFrom(err error) (string, error) {
	var cf *dynaguard.ConditionFailedError
	if errors.As(err, &cf) {
		to, _ := ddb.Str(cf.Item, attrMoved)
		return to, err
	}
	return "", err
}

// getItem reads one item, strongly consistent unless the store was
// configured otherwise. A missing item is (nil, nil).
func (s *Store) getItem(ctx context.Context, pk string) (map[string]types.AttributeValue, error) {
	out, err := s.tbl.Client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      s.tableName,
		Key:            ddb.Key(pk),
		ConsistentRead: s.consistent,
	})
	if err != nil {
		return nil, dynaguard.Classify(err)
	}
	return out.Item, nil
}

// tombstone is the whole item that replaces a deleted session: no data, no
// owner (so it leaves the index at once), a short ttl.
func (s *Store) tombstone(pk string, now time.Time, movedTo string) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		dynaguard.AttrPK:  ddb.S(pk),
		dynaguard.AttrTTL: ddb.TTLValue(now.Add(s.tombTTL)),
		attrTomb:          ddb.Bool(true),
	}
	if movedTo != "" {
		item[attrMoved] = ddb.S(movedTo)
	}
	return item
}

// putTombstones replaces the items under pks with tombstones,
// unconditionally: one PutItem for one key, one BatchWriteItem (per 25 keys)
// while a rotation keeps several secrets. Tombstoning an absent key is
// deliberate: it also stops a commit that has not landed yet.
func (s *Store) putTombstones(ctx context.Context, pks []string, now time.Time) error {
	if len(pks) == 1 {
		_, err := s.tbl.Client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: s.tableName,
			Item:      s.tombstone(pks[0], now, ""),
		})
		return dynaguard.Classify(err)
	}
	for start := 0; start < len(pks); start += 25 {
		end := min(start+25, len(pks))
		reqs := make([]types.WriteRequest, 0, end-start)
		for _, pk := range pks[start:end] {
			reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: s.tombstone(pk, now, "")}})
		}
		pending := map[string][]types.WriteRequest{s.tbl.Name: reqs}
		for attempt := 0; len(pending) > 0; attempt++ {
			if attempt > 0 {
				if err := backoff(ctx, attempt); err != nil {
					return err
				}
			}
			if attempt == maxBatchAttempts {
				return fmt.Errorf("%w: %d tombstones still unprocessed after %d attempts", dynaguard.ErrThrottled, len(pending[s.tbl.Name]), attempt)
			}
			out, err := s.tbl.Client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
			if err != nil {
				return dynaguard.Classify(err)
			}
			pending = out.UnprocessedItems
		}
	}
	return nil
}

var (
	moveNewNames = exprNames(dynaguard.AttrPK)
	moveOldNames = exprNames(attrVer, attrTomb)
)

// move copies a live session found under a previous secret to its key under
// the current secret and leaves a tombstone pointing to it at the old key, in
// one transaction. It fails (ErrTransactionCanceled) when the new key is
// already taken — another request moved it, or Delete tombstoned it — or the
// old item changed since it was read (its ver differs or it is a tombstone).
func (s *Store) move(ctx context.Context, oldPK string, ver int64, newItem map[string]types.AttributeValue, now time.Time) error {
	newPK, _ := ddb.Str(newItem, dynaguard.AttrPK)
	_, err := s.tbl.Client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
		TransactItems: []types.TransactWriteItem{
			{Put: &types.Put{
				TableName:                s.tableName,
				Item:                     newItem,
				ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
				ExpressionAttributeNames: moveNewNames,
			}},
			{Put: &types.Put{
				TableName:                 s.tableName,
				Item:                      s.tombstone(oldPK, now, newPK),
				ConditionExpression:       aws.String("#ver = :ver AND attribute_not_exists(#tomb)"),
				ExpressionAttributeNames:  moveOldNames,
				ExpressionAttributeValues: map[string]types.AttributeValue{":ver": ddb.N(ver)},
			}},
		},
	})
	return dynaguard.Classify(err)
}

var revokeNames = exprNames(dynaguard.AttrGSI1PK, attrTomb, dynaguard.AttrTTL)

// revokeItem tombstones the session under pk if, and only if, it is a live
// session owned by owner — one conditional PutItem. When the condition fails
// it reports the pk the session moved to, if the old item says so.
func (s *Store) revokeItem(ctx context.Context, pk, owner string, now time.Time) (revoked bool, movedTo string, err error) {
	_, err = s.tbl.Client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                           s.tableName,
		Item:                                s.tombstone(pk, now, ""),
		ConditionExpression:                 aws.String("#gsi1pk = :owner AND attribute_not_exists(#tomb) AND #ttl > :nows"),
		ExpressionAttributeNames:            revokeNames,
		ExpressionAttributeValues:           map[string]types.AttributeValue{":owner": ddb.S(owner), ":nows": ddb.NowValue(now)},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err == nil {
		return true, "", nil
	}
	movedTo, err = movedFrom(dynaguard.Classify(err))
	if dynaguard.IsConditionFailed(err) {
		return false, movedTo, nil
	}
	return false, "", err
}

var ownerQueryNames = exprNames(dynaguard.AttrGSI1PK)

// ownerKeys lists the pks under owner in the index (keys only, so the Query
// reads almost nothing), newest binding first. The index is eventually
// consistent: callers re-read or re-check every item it names.
func (s *Store) ownerKeys(ctx context.Context, owner string) ([]string, error) {
	var pks []string
	in := &dynamodb.QueryInput{
		TableName:                 s.tableName,
		IndexName:                 aws.String(dynaguard.IndexGSI1),
		KeyConditionExpression:    aws.String("#gsi1pk = :owner"),
		ExpressionAttributeNames:  ownerQueryNames,
		ExpressionAttributeValues: map[string]types.AttributeValue{":owner": ddb.S(owner)},
		ScanIndexForward:          aws.Bool(false),
	}
	p := dynamodb.NewQueryPaginator(s.tbl.Client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, dynaguard.Classify(err)
		}
		for _, it := range page.Items {
			if pk, ok := ddb.Str(it, dynaguard.AttrPK); ok {
				pks = append(pks, pk)
			}
		}
	}
	return pks, nil
}

var listNames = exprNames(dynaguard.AttrPK, dynaguard.AttrTTL, dynaguard.AttrGSI1PK, attrExp, attrCreated, attrSeen, attrUA, attrIP, attrTomb)

const listProjection = "#pk, #ttl, #gsi1pk, #exp, #created, #seen, #ua, #ip, #tomb"

// getMany reads the items under pks with strongly consistent BatchGetItem
// calls (100 keys each), without their data. Missing items are left out.
func (s *Store) getMany(ctx context.Context, pks []string) ([]map[string]types.AttributeValue, error) {
	var items []map[string]types.AttributeValue
	for start := 0; start < len(pks); start += 100 {
		end := min(start+100, len(pks))
		keys := make([]map[string]types.AttributeValue, 0, end-start)
		for _, pk := range pks[start:end] {
			keys = append(keys, ddb.Key(pk))
		}
		pending := map[string]types.KeysAndAttributes{s.tbl.Name: {
			Keys:                     keys,
			ConsistentRead:           aws.Bool(true),
			ProjectionExpression:     aws.String(listProjection),
			ExpressionAttributeNames: listNames,
		}}
		for attempt := 0; len(pending) > 0; attempt++ {
			if attempt > 0 {
				if err := backoff(ctx, attempt); err != nil {
					return nil, err
				}
			}
			if attempt == maxBatchAttempts {
				return nil, fmt.Errorf("%w: %d sessions still unread after %d attempts", dynaguard.ErrThrottled, len(pending[s.tbl.Name].Keys), attempt)
			}
			out, err := s.tbl.Client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: pending})
			if err != nil {
				return nil, dynaguard.Classify(err)
			}
			items = append(items, out.Responses[s.tbl.Name]...)
			pending = out.UnprocessedKeys
		}
	}
	return items, nil
}

// maxBatchAttempts bounds the retries of unprocessed batch items; the SDK has
// already retried each call itself.
const maxBatchAttempts = 6

// backoff waits before retry attempt n (1, 2, ...): 25 ms doubling, at most
// 800 ms, or until ctx ends.
func backoff(ctx context.Context, n int) error {
	d := 25 * time.Millisecond << min(n-1, 5)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// sortKey renders t as the gsi1sk of a bound session: fixed-width decimal
// Unix nanoseconds, so the index sorts by binding time.
func sortKey(t time.Time) string {
	s := strconv.FormatInt(t.UnixNano(), 10)
	const width = 20
	if len(s) < width {
		s = "00000000000000000000"[:width-len(s)] + s
	}
	return s
}
