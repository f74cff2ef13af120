package idempotency

// Every DynamoDB call of the package is in this file: the claim (one
// conditional PutItem that also answers duplicates), the lease renewal, the
// final mark, the completion and the release — the last four conditional on
// the owner token of the claim.

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

// Attribute names of an idempotency record, besides dynaguard.AttrPK and
// dynaguard.AttrTTL.
const (
	attrState   = "state"    // S: "running" or "done"
	attrOwner   = "owner"    // S: the claim's owner token (running only)
	attrLease   = "lease_ms" // N: lease expiry in epoch milliseconds (running only)
	attrFP      = "fp"       // B: keyed fingerprint of the request (HMAC, PurposeIdempotencyFingerprint)
	attrFinal   = "final"    // BOOL: the outcome is final — the record is never taken over (running only)
	attrFence   = "fence"    // N: the claim's fencing token (epoch milliseconds of the claim)
	attrStatus  = "status"   // N: HTTP status (done, HTTP only)
	attrResp    = "resp"     // B: the stored response (done)
	attrEnc     = "enc"      // S: "gzip" when resp is compressed
	attrKID     = "kid"      // S: ID of the key resp is sealed with
	attrOmitted = "omitted"  // N: length of a body that was too large to keep
)

// The claim succeeds when the key is free: no record, an expired one, or a
// running one whose lease lapsed at least MaxClockSkew ago (:nowms is now
// minus the skew) — and then only for the same request (same fingerprint),
// so a different payload under a crashed request's key is refused (422)
// rather than executed in its place, and never when the record is marked
// final: its holder has taken effect, and a second run is what the mark is
// there to prevent.
const condClaim = ddb.CondAbsentOrExpired +
	" OR (#state = :running AND #lease <= :nowms AND #fp = :fp AND attribute_not_exists(#final))"

// Renewal, completion and release hold only while this claim still owns the
// record. A worker whose lease lapsed and was taken over can therefore never
// extend, overwrite or delete the new owner's record.
const condOwner = "#state = :running AND #owner = :owner"

type store struct {
	tbl  *dynaguard.Table
	name *string // the table's name for request inputs
}

func newStore(tbl *dynaguard.Table) store {
	return store{tbl: tbl, name: aws.String(tbl.Name)}
}

// The parts of requests that never change are built once and shared by
// every request: the SDK reads its input and never modifies it.
var (
	exprCondClaim = aws.String(condClaim)
	exprCondOwner = aws.String(condOwner)
	exprRenew     = aws.String("SET #lease = :lease, #ttl = :ttl")
	exprMark      = aws.String("SET #lease = :lease, #ttl = :ttl, #final = :true")
	namesClaim    = ddb.ExprNames("#state", attrState, "#lease", attrLease, "#fp", attrFP, "#final", attrFinal)
	namesMark     = map[string]string{"#state": attrState, "#owner": attrOwner, "#lease": attrLease, "#ttl": dynaguard.AttrTTL, "#final": attrFinal}
	namesRenew    = map[string]string{"#state": attrState, "#owner": attrOwner, "#lease": attrLease, "#ttl": dynaguard.AttrTTL}
	namesRelease  = map[string]string{"#state": attrState, "#owner": attrOwner}
	valRunning    = ddb.S(stateRunning)
	valDone       = ddb.S(stateDone)
	// completeExprs holds the update expression and names of complete for
	// each combination of the optional attributes (completeStatus | ...).
	completeExprs = func() (v [16]struct {
		update *string
		names  map[string]string
	}) {
		for f := range v {
			names := map[string]string{"#state": attrState, "#owner": attrOwner, "#lease": attrLease,
				"#ttl": dynaguard.AttrTTL, "#resp": attrResp}
			set := "SET #state = :done, #ttl = :ttl, #resp = :resp"
			for _, o := range []struct {
				flag       int
				name, attr string
			}{{completeStatus, "status", attrStatus}, {completeEnc, "enc", attrEnc}, {completeKID, "kid", attrKID}, {completeOmitted, "omitted", attrOmitted}} {
				if f&o.flag != 0 {
					set += ", #" + o.name + " = :" + o.name
					names["#"+o.name] = o.attr
				}
			}
			v[f].update = aws.String(set + " REMOVE #owner, #lease, #final")
			names["#final"] = attrFinal
			v[f].names = names
		}
		return v
	}()
)

// The optional attributes of a completed record.
const (
	completeStatus = 1 << iota
	completeEnc
	completeKID
	completeOmitted
)

func epochMillis(t time.Time) int64 { return t.UnixMilli() }

// claimReq is one claim attempt.
type claimReq struct {
	pk, owner string
	fp        []byte
	final     bool // the outcome is final from the start (Rules.StoreServerErrors)
	now       time.Time
	lease     time.Duration
	retention time.Duration
	skew      time.Duration
}

var valTrue = &types.AttributeValueMemberBOOL{Value: true}

// claim writes a running record owned by c.owner. It returns (nil, false,
// nil) when the claim succeeded — tookOver when it replaced a running record
// whose lease had lapsed (ReturnValues=ALL_OLD on the same write: the old
// item comes back only when there was one) —, the existing record when the
// key is taken (from the same round trip:
// ReturnValuesOnConditionCheckFailure=ALL_OLD), and an error when DynamoDB
// failed — the caller must then refuse the request.
func (s *store) claim(ctx context.Context, c claimReq) (_ *record, tookOver bool, _ error) {
	item := map[string]types.AttributeValue{
		dynaguard.AttrPK:  ddb.S(c.pk),
		dynaguard.AttrTTL: ddb.TTLValue(c.now.Add(c.retention)),
		attrState:         valRunning,
		attrOwner:         ddb.S(c.owner),
		attrLease:         ddb.N(epochMillis(c.now.Add(c.lease))),
		attrFP:            ddb.B(c.fp),
		attrFence:         ddb.N(epochMillis(c.now)),
	}
	if c.final {
		item[attrFinal] = valTrue
	}
	// A lease counts as lapsed only MaxClockSkew after its expiry.
	lapsedBy, fp := c.now.Add(-c.skew), c.fp
	out, err := s.tbl.Client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                s.name,
		Item:                     item,
		ReturnValues:             types.ReturnValueAllOld,
		ConditionExpression:      exprCondClaim,
		ExpressionAttributeNames: namesClaim,
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now":     ddb.NowValue(c.now),
			":nowms":   ddb.N(epochMillis(lapsedBy)),
			":running": valRunning,
			":fp":      ddb.B(fp),
		},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err == nil {
		state, _ := ddb.Str(out.Attributes, attrState)
		return nil, state == stateRunning, nil
	}
	err = dynaguard.Classify(err)
	var cf *dynaguard.ConditionFailedError
	if errors.As(err, &cf) {
		if cf.Item == nil {
			// The condition failed, so an item existed; DynamoDB always
			// returns it when asked. Without it there is no safe answer.
			return nil, false, fmt.Errorf("%w: claim refused without the stored record", ErrUnavailable)
		}
		rec, err := parseRecord(cf.Item)
		return rec, false, err
	}
	return nil, false, fmt.Errorf("%w: claim: %w", ErrUnavailable, err)
}

// renew extends the lease (and the record's expiry, so a handler that runs
// longer than the retention still holds its key). It returns ErrLeaseLost
// when the claim no longer owns the record.
func (s *store) renew(ctx context.Context, pk, owner string, now time.Time, lease, retention time.Duration) error {
	_, err := s.tbl.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                s.name,
		Key:                      ddb.Key(pk),
		UpdateExpression:         exprRenew,
		ConditionExpression:      exprCondOwner,
		ExpressionAttributeNames: namesRenew,
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":running": valRunning,
			":owner":   ddb.S(owner),
			":lease":   ddb.N(epochMillis(now.Add(lease))),
			":ttl":     ddb.TTLValue(now.Add(retention)),
		},
	})
	return ownerResult("renew", err)
}

// mark records that the claim's outcome is final (and renews the lease in
// the same write): from then on the record is never taken over, whatever
// happens to its holder. It returns ErrLeaseLost when the claim no longer
// owns the record.
func (s *store) mark(ctx context.Context, pk, owner string, now time.Time, lease, retention time.Duration) error {
	_, err := s.tbl.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                s.name,
		Key:                      ddb.Key(pk),
		UpdateExpression:         exprMark,
		ConditionExpression:      exprCondOwner,
		ExpressionAttributeNames: namesMark,
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":running": valRunning,
			":owner":   ddb.S(owner),
			":lease":   ddb.N(epochMillis(now.Add(lease))),
			":ttl":     ddb.TTLValue(now.Add(retention)),
			":true":    valTrue,
		},
	})
	return ownerResult("mark", err)
}

// complete turns the claim into a completed record holding the response,
// kept until st.ttl (epoch seconds). It returns ErrLeaseLost when the claim
// no longer owns the record (nothing is written then), and an error
// matching dynaguard.ErrItemTooLarge when DynamoDB refused the item's size.
func (s *store) complete(ctx context.Context, pk, owner string, st stored) error {
	values := map[string]types.AttributeValue{
		":running": valRunning,
		":owner":   ddb.S(owner),
		":done":    valDone,
		":ttl":     ddb.N(st.ttl),
		":resp":    ddb.B(st.blob),
	}
	var f int
	if st.status != 0 {
		f |= completeStatus
		values[":status"] = ddb.N(int64(st.status))
	}
	if st.enc != "" {
		f |= completeEnc
		values[":enc"] = ddb.S(st.enc)
	}
	if st.kid != "" {
		f |= completeKID
		values[":kid"] = ddb.S(st.kid)
	}
	if st.omitted > 0 {
		f |= completeOmitted
		values[":omitted"] = ddb.N(st.omitted)
	}
	_, err := s.tbl.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 s.name,
		Key:                       ddb.Key(pk),
		UpdateExpression:          completeExprs[f].update,
		ConditionExpression:       exprCondOwner,
		ExpressionAttributeNames:  completeExprs[f].names,
		ExpressionAttributeValues: values,
	})
	return ownerResult("complete", err)
}

// release deletes the claim so that the request may be executed again. It
// returns ErrLeaseLost when the claim no longer owns the record (nothing is
// deleted then).
func (s *store) release(ctx context.Context, pk, owner string) error {
	_, err := s.tbl.Client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                s.name,
		Key:                      ddb.Key(pk),
		ConditionExpression:      exprCondOwner,
		ExpressionAttributeNames: namesRelease,
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":running": valRunning,
			":owner":   ddb.S(owner),
		},
	})
	return ownerResult("release", err)
}

func ownerResult(op string, err error) error {
	if err == nil {
		return nil
	}
	err = dynaguard.Classify(err)
	if dynaguard.IsConditionFailed(err) {
		return fmt.Errorf("%s: %w", op, ErrLeaseLost)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}

// parseRecord reads an item written by this package. An item it cannot
// interpret is an error (the caller fails closed), never a free key.
func parseRecord(item map[string]types.AttributeValue) (*record, error) {
	r := &record{}
	var ok bool
	if r.state, ok = ddb.Str(item, attrState); !ok || (r.state != stateRunning && r.state != stateDone) {
		return nil, fmt.Errorf("%w: record has no valid state", ErrUnavailable)
	}
	if r.ttl, ok = ddb.Int(item, dynaguard.AttrTTL); !ok {
		return nil, fmt.Errorf("%w: record has no ttl", ErrUnavailable)
	}
	if r.fp, ok = ddb.Bytes(item, attrFP); !ok {
		return nil, fmt.Errorf("%w: record has no fingerprint", ErrUnavailable)
	}
	switch r.state {
	case stateRunning:
		r.owner, _ = ddb.Str(item, attrOwner)
		if v, ok := item[attrFinal].(*types.AttributeValueMemberBOOL); ok && v.Value {
			r.final = true
		}
		if r.leaseMS, ok = ddb.Int(item, attrLease); !ok {
			return nil, fmt.Errorf("%w: running record has no lease", ErrUnavailable)
		}
	case stateDone:
		if s, ok := ddb.Int(item, attrStatus); ok {
			r.status = int(s)
		}
		r.blob, _ = ddb.Bytes(item, attrResp)
		r.enc, _ = ddb.Str(item, attrEnc)
		r.kid, _ = ddb.Str(item, attrKID)
		r.omitted, _ = ddb.Int(item, attrOmitted)
	}
	return r, nil
}
