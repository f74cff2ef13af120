package users

// The DynamoDB calls of pending email changes (email.go).
//
// Attributes of the account item (user#<id>) while a change is pending:
//
//	pem, pemn     the new address as typed / normalised (its marker is NOT claimed yet)
//	pemx          when the change lapses, Unix seconds (its links expire with it)
//	pid           random ID of the pending change: its cancel link is bound to it
//
// The change's two links are token items (tok#<sha256>) like reset links:
// purp "email-change" (to the new address: em, emn, ver of the account it
// moves; nem, nemn the new address) and purp "email-change-cancel" (to the
// current address: pid).

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
)

const (
	attrPendingEmail   = "pem"
	attrPendingKey     = "pemn"
	attrPendingExpires = "pemx"
	attrPendingID      = "pid"
)

// decodePending fills u's pending email change from the account item.
func decodePending(it item, u *User) {
	u.PendingEmail, _ = ddb.Str(it, attrPendingEmail)
	u.pendingKey, _ = ddb.Str(it, attrPendingKey)
	u.pendingID, _ = ddb.Str(it, attrPendingID)
	if x, ok := ddb.Int(it, attrPendingExpires); ok && u.PendingEmail != "" {
		u.PendingEmailExpires = time.Unix(x, 0)
	}
}

// requestEmailChange writes a pending email change in one
// TransactWriteItems: the request counters (each under its limit), the
// confirmation and cancel tokens, and the pending change on the account —
// on condition that the account is still at the item version and exact
// address that u was read at (the confirmation token is bound to the next
// version, which this write makes), and is not disabled. A pending change
// already there is replaced; its links die with the version (confirm) and
// the change ID (cancel).
func (st *store) requestEmailChange(ctx context.Context, u *User, ip, acct, total issueCounter, windowEnd time.Time, ch emailChange, now time.Time, address ...requestCounter) (issueOutcome, error) {
	update := types.TransactWriteItem{Update: &types.Update{
		TableName:        st.name(),
		Key:              ddb.Key(userPK(u.ID)),
		UpdateExpression: aws.String("SET #pem = :pem, #pemn = :pemn, #pemx = :pemx, #pid = :pid, #ver = #ver + :one"),
		ConditionExpression: aws.String("attribute_exists(#pk) AND #ver = :ver AND #email = :email AND " +
			"attribute_not_exists(#dis)"),
		ExpressionAttributeNames: map[string]string{"#pk": dynaguard.AttrPK, "#pem": attrPendingEmail, "#pemn": attrPendingKey,
			"#pemx": attrPendingExpires, "#pid": attrPendingID, "#ver": attrVersion, "#email": attrEmail, "#dis": attrDisabled},
		ExpressionAttributeValues: item{":pem": ddb.S(ch.display), ":pemn": ddb.S(ch.key),
			":pemx": ddb.N(ch.expires.Unix()), ":pid": ddb.S(ch.id), ":one": ddb.N(1),
			":ver": ddb.N(u.version), ":email": ddb.S(u.Email)},
	}}
	items := []types.TransactWriteItem{
		st.issueCount(ip, windowEnd),
		st.issueCount(acct, windowEnd),
		st.issueCount(total, windowEnd),
		st.tokenPut(ch.confirmPK, ch.confirm, now, ch.expires),
		st.tokenPut(ch.cancelPK, ch.cancelRec, now, ch.expires),
		update,
	}
	for _, c := range address { // from index 6
		items = append(items, st.issueCount(issueCounter{pk: c.pk, max: c.max}, c.end))
	}
	err := st.transact(ctx, items)
	var tc *dynaguard.TransactionCanceledError
	if errors.As(err, &tc) && tc.OnlyConditionsFailed() {
		for i := 6; i < len(items); i++ { // an address counter
			if tc.ConditionFailed(i) {
				return limitedIP, nil
			}
		}
		switch {
		case tc.ConditionFailed(0):
			return limitedIP, nil
		case tc.ConditionFailed(1), tc.ConditionFailed(2):
			return limitedAccount, nil
		case tc.ConditionFailed(5):
			return 0, ErrConflict
		}
		return 0, fmt.Errorf("%w: token key collision", ErrUnavailable)
	}
	if err != nil {
		return 0, unavailable("TransactWriteItems", err)
	}
	return issued, nil
}

// confirmEmailChange moves the account to the pending address in one
// TransactWriteItems: the token consumed (live, of its kind), the new
// address's marker claimed (must not exist) and the old one released (must
// be this account's) — unless both normalise alike — and the account
// updated on condition that it is still at the token's item version, exact
// address and pending address, and not disabled. The address becomes
// verified, the pending change goes, and the session epoch and item
// version go up. Of any number of concurrent confirmations of one address,
// by any accounts on any instances, exactly one commits.
func (st *store) confirmEmailChange(ctx context.Context, tokenPK string, rec tokenRecord, now time.Time) error {
	items := []types.TransactWriteItem{{Delete: &types.Delete{
		TableName:                 st.name(),
		Key:                       ddb.Key(tokenPK),
		ConditionExpression:       aws.String(ddb.CondLive + " AND #purp = :purp"),
		ExpressionAttributeNames:  ddb.ExprNames("#purp", attrPurpose),
		ExpressionAttributeValues: item{":now": ddb.NowValue(now), ":purp": ddb.S(purposeEmailChange)},
	}}}
	moved := rec.newKey != rec.emailKey
	if moved {
		items = append(items,
			types.TransactWriteItem{Put: &types.Put{
				TableName:                st.name(),
				Item:                     item{dynaguard.AttrPK: ddb.S(markerPK(kindEmail, rec.newKey)), attrUID: ddb.S(rec.uid)},
				ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
				ExpressionAttributeNames: map[string]string{"#pk": dynaguard.AttrPK},
			}},
			types.TransactWriteItem{Delete: &types.Delete{
				TableName:                 st.name(),
				Key:                       ddb.Key(markerPK(kindEmail, rec.emailKey)),
				ConditionExpression:       aws.String("#uid = :uid"),
				ExpressionAttributeNames:  map[string]string{"#uid": attrUID},
				ExpressionAttributeValues: item{":uid": ddb.S(rec.uid)},
			}})
	}
	items = append(items, types.TransactWriteItem{Update: &types.Update{
		TableName: st.name(),
		Key:       ddb.Key(userPK(rec.uid)),
		UpdateExpression: aws.String("SET #email = :ne, #emailn = :nk, #ev = :t, #se = #se + :one, #ver = #ver + :one " +
			"REMOVE #pem, #pemn, #pemx, #pid"),
		ConditionExpression: aws.String("attribute_exists(#pk) AND #ver = :ver AND #email = :old AND #emailn = :ok AND " +
			"#pemn = :nk AND #pem = :ne AND attribute_not_exists(#dis)"),
		ExpressionAttributeNames: map[string]string{"#pk": dynaguard.AttrPK, "#email": attrEmail, "#emailn": attrEmailKey,
			"#ev": attrVerified, "#se": attrEpoch, "#ver": attrVersion, "#pem": attrPendingEmail, "#pemn": attrPendingKey,
			"#pemx": attrPendingExpires, "#pid": attrPendingID, "#dis": attrDisabled},
		ExpressionAttributeValues: item{":ne": ddb.S(rec.newEmail), ":nk": ddb.S(rec.newKey), ":t": ddb.Bool(true),
			":one": ddb.N(1), ":ver": ddb.N(rec.ver), ":old": ddb.S(rec.email), ":ok": ddb.S(rec.emailKey)},
	}})
	err := st.transact(ctx, items)
	var tc *dynaguard.TransactionCanceledError
	if errors.As(err, &tc) && tc.OnlyConditionsFailed() {
		if moved && tc.ConditionFailed(1) && !tc.ConditionFailed(0) && !tc.ConditionFailed(3) {
			return &TakenError{Email: true}
		}
		return ErrInvalidToken
	}
	if err != nil {
		return unavailable("TransactWriteItems", err)
	}
	return nil
}

// cancelEmailChange drops the pending change named by the cancel token and
// raises the session epoch, in one UpdateItem conditioned on that change
// still being pending.
func (st *store) cancelEmailChange(ctx context.Context, rec tokenRecord) (*User, error) {
	u, err := st.updateUser(ctx, rec.uid, "SET #se = #se + :one, #ver = #ver + :one REMOVE #pem, #pemn, #pemx, #pid",
		"#pid = :pid",
		map[string]string{"#se": attrEpoch, "#ver": attrVersion, "#pem": attrPendingEmail, "#pemn": attrPendingKey,
			"#pemx": attrPendingExpires, "#pid": attrPendingID},
		item{":one": ddb.N(1), ":pid": ddb.S(rec.pid)})
	if errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) {
		return nil, ErrInvalidToken
	}
	return u, err
}
