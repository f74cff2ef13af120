package users

// Every DynamoDB call of the users package is in this file or in another
// dynamo_<feature>.go (dynamo_email.go: pending email changes).
//
// Items (see docs/ARCHITECTURE.md):
//
//	user#<id>                       the account; no ttl (never expires)
//	    email, emailn               email address as typed / normalised
//	    uname, unamen               username as typed / normalised
//	    ph, pep                     encoded password hash / ID of its pepper key (absent: none)
//	    cv                          credential version: +1 on every password change
//	    se                          session epoch: +1 to end every session
//	    ver                         item version: +1 on every change of the above (optimistic concurrency)
//	    dis                         true while disabled (absent: enabled)
//	    fails                       consecutive failed second-factor codes since the last accepted one
//	    ucn, ucla, ucv              failed unknown-client passwords: count, last (Unix s), credential version (dynamo_guessing.go)
//	    created, pwat               creation / password-set time, Unix seconds
//	    ev                          true once the email address is verified (absent: not)
//	    pem, pemn, pemx, pid        a pending email change (dynamo_email.go)
//	    mfa                         true while TOTP is enabled (absent: not)
//	    totp                        the TOTP secret, sealed (AES-256-GCM, PurposeTOTPSeal)
//	    tstep                       last accepted TOTP time step: only later steps are accepted
//	    totpn, totpnx               sealed secret of an unconfirmed enrolment / when it lapses
//	    rc                          string set: hashes of the unused recovery codes
//	    apic                        map: the account's API client families (dynamo_apitoken.go)
//	    uh, pks                     passkeys: user handle, list of credential hashes (dynamo_passkey.go)
//	uniq#email#<normalised>         uniqueness marker → uid; no ttl
//	uniq#username#<normalised>      uniqueness marker → uid; no ttl
//	uniq#uskel#<skeleton>           look-alike marker of a username → uid; no ttl (dynamo_identifiers.go)
//	thr#login#<h(login, source)>#<window>   n, la, ttl: attempts on one login name from one address
//	thr#ip#<h(source)>#<window>             n, la, ttl: failures from one address
//	thr#acct#<h(login)>                     ucn, ucla, ucv, ttl: failures on a login name with no account
//	thr#dev#<h(device)>#<window>            n, la, ttl: attempts from one device cookie (dynamo_guessing.go)
//	thr#net#<h(prefix)>#<window>            n, la, ttl: failures from one wider address range
//	thr#login#<h("mfa", uid, source)>#<window>  n, la, ttl: second-factor attempts (login codes and enrolment confirmations) on one account from one address
//	thr#tok#<purpose>#ip#<h(source)>#<window>   n, ttl: links of one purpose requested from one address
//	thr#tok#<purpose>#acct#<h(id, source)>#<window>  n, ttl: links requested for one address/account by one client address
//	thr#tok#<purpose>#acct#<h(id)>#<window>     n, ttl: links requested for one address/account in all
//	apif#<fid>                      an API client's refresh-token family (dynamo_apitoken.go)
//	pkey#<h(credential ID)>         a passkey; pkey#ch#<h(nonce)>: a used passkey challenge (dynamo_passkey.go)
//	tok#<base64url(sha256(token))>  uid, purp, cv, ver, em, iat, ttl: a one-time token, bound to the
//	                                account's credential and item versions and exact address (an
//	                                email change's also emn, nem, nemn; its cancel link pid)
//
// Recovery codes live on the account item (rc) rather than as items of
// their own: consuming one is one conditional UpdateItem (DELETE from the
// set, on condition that the set contains it), and replacing the whole set
// is one write, so there is never a moment where old and new codes are both
// valid or only part of a set exists — and no listing is needed, which a
// table whose only index is eventually consistent could not do reliably.
// Deleting the account deletes them with it.
//
// Every read is strongly consistent: a password that was just changed, an
// account that was just disabled or a session epoch that was just bumped is
// seen by the very next request. The user item stays far below 4 KB (the
// longest identifiers and hash keep it under 2.5 KB), so each read costs one
// read unit.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
)

const (
	attrEmail       = "email"
	attrEmailKey    = "emailn"
	attrUsername    = "uname"
	attrUsernameKey = "unamen"
	attrHash        = "ph"
	attrPepper      = "pep"
	attrCred        = "cv"
	attrEpoch       = "se"
	attrVersion     = "ver"
	attrDisabled    = "dis"
	attrFails       = "fails"
	attrCreated     = "created"
	attrPasswordAt  = "pwat"
	attrUID         = "uid"
	attrN           = "n"
	attrLast        = "la"

	attrVerified    = "ev"
	attrMFA         = "mfa"
	attrTOTP        = "totp"
	attrTOTPStep    = "tstep"
	attrTOTPPending = "totpn"
	attrPendingExp  = "totpnx"
	attrRecovery    = "rc"

	attrPurpose    = "purp"
	attrBoundEmail = "em"
	attrIssued     = "iat"
)

type item = map[string]types.AttributeValue

type store struct {
	tbl *dynaguard.Table
	// tableName is the table's name for request inputs, built once and
	// shared: the SDK reads its input and never modifies it.
	tableName *string
}

func newStore(tbl *dynaguard.Table) *store {
	return &store{tbl: tbl, tableName: aws.String(tbl.Name)}
}

// consistentRead is every read's ConsistentRead, shared likewise.
var consistentRead = aws.Bool(true)

func userPK(id string) string { return dynaguard.PrefixUser + id }

func markerPK(kind, normalized string) string {
	return dynaguard.PrefixUnique + kind + "#" + normalized
}

func encodeUser(u *User) item {
	it := item{
		dynaguard.AttrPK: ddb.S(userPK(u.ID)),
		attrEmail:        ddb.S(u.Email),
		attrEmailKey:     ddb.S(u.emailKey),
		attrUsername:     ddb.S(u.Username),
		attrUsernameKey:  ddb.S(u.usernameKey),
		attrHash:         ddb.S(u.hash),
		attrCred:         ddb.N(u.credVersion),
		attrEpoch:        ddb.N(u.epoch),
		attrVersion:      ddb.N(u.version),
		attrFails:        ddb.N(u.fails),
		attrCreated:      ddb.N(u.Created.Unix()),
		attrPasswordAt:   ddb.N(u.PasswordChanged.Unix()),
	}
	if u.pepperID != "" {
		it[attrPepper] = ddb.S(u.pepperID)
	}
	if u.Disabled {
		it[attrDisabled] = ddb.Bool(true)
	}
	if u.EmailVerified {
		it[attrVerified] = ddb.Bool(true)
	}
	if u.TOTPEnabled {
		it[attrMFA] = ddb.Bool(true)
		it[attrTOTP] = ddb.B(u.totpSealed)
		if u.totpStep >= 0 {
			it[attrTOTPStep] = ddb.N(u.totpStep)
		}
	}
	if len(u.recovery) > 0 {
		it[attrRecovery] = &types.AttributeValueMemberSS{Value: u.recovery}
	}
	return it
}

// errMalformed marks an item that does not decode; it is treated like a
// storage failure (fail closed), never like a valid account.
var errMalformed = errors.New("users: malformed account item")

func decodeUser(it item) (*User, error) {
	pk, _ := ddb.Str(it, dynaguard.AttrPK)
	id, ok := strings.CutPrefix(pk, dynaguard.PrefixUser)
	if !ok || id == "" {
		return nil, errMalformed
	}
	u := &User{ID: id}
	var okH, okC, okE, okV bool
	u.Email, _ = ddb.Str(it, attrEmail)
	u.emailKey, _ = ddb.Str(it, attrEmailKey)
	u.Username, _ = ddb.Str(it, attrUsername)
	u.usernameKey, _ = ddb.Str(it, attrUsernameKey)
	u.hash, okH = ddb.Str(it, attrHash)
	u.pepperID, _ = ddb.Str(it, attrPepper)
	u.credVersion, okC = ddb.Int(it, attrCred)
	u.epoch, okE = ddb.Int(it, attrEpoch)
	u.version, okV = ddb.Int(it, attrVersion)
	u.fails, _ = ddb.Int(it, attrFails)
	if ucv, _ := ddb.Int(it, attrUnknownCV); ucv == u.credVersion {
		u.unknownFails, _ = ddb.Int(it, attrUnknownN)
	}
	u.Disabled, _ = ddb.BoolAttr(it, attrDisabled)
	if !okH || !okC || !okE || !okV || u.emailKey == "" || u.usernameKey == "" {
		return nil, errMalformed
	}
	if c, ok := ddb.Int(it, attrCreated); ok {
		u.Created = time.Unix(c, 0)
	}
	if p, ok := ddb.Int(it, attrPasswordAt); ok {
		u.PasswordChanged = time.Unix(p, 0)
	}
	u.EmailVerified, _ = ddb.BoolAttr(it, attrVerified)
	u.TOTPEnabled, _ = ddb.BoolAttr(it, attrMFA)
	u.totpSealed, _ = ddb.Bytes(it, attrTOTP)
	if u.TOTPEnabled && len(u.totpSealed) == 0 {
		return nil, errMalformed // a second factor that cannot be checked is never skipped
	}
	u.totpStep = -1
	if st, ok := ddb.Int(it, attrTOTPStep); ok {
		u.totpStep = st
	}
	u.totpPending, _ = ddb.Bytes(it, attrTOTPPending)
	u.pendingExp, _ = ddb.Int(it, attrPendingExp)
	if ss, ok := it[attrRecovery].(*types.AttributeValueMemberSS); ok {
		u.recovery = ss.Value
	}
	u.RecoveryCodes = len(u.recovery)
	decodePending(it, u)
	if m, ok := it[attrAPIClients].(*types.AttributeValueMemberM); ok {
		u.apic = m.Value
	}
	decodePasskeys(it, u)
	return u, nil
}

func decodeCounter(it item) counter {
	n, _ := ddb.Int(it, attrN)
	la, _ := ddb.Int(it, attrLast)
	return counter{n: n, last: la}
}

func (st *store) name() *string { return st.tableName }

// get reads one item with a strongly consistent GetItem (nil when absent).
func (st *store) get(ctx context.Context, pk string) (item, error) {
	out, err := st.tbl.Client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      st.name(),
		Key:            ddb.Key(pk),
		ConsistentRead: consistentRead,
	})
	if err != nil {
		return nil, unavailable("GetItem", err)
	}
	return out.Item, nil
}

// getUser reads an account (nil, nil when there is none).
func (st *store) getUser(ctx context.Context, id string) (*User, error) {
	it, err := st.get(ctx, userPK(id))
	if err != nil || it == nil {
		return nil, err
	}
	u, err := decodeUser(it)
	if err != nil {
		return nil, fmt.Errorf("%w: %w (%s)", ErrUnavailable, err, id)
	}
	return u, nil
}

// markerUID reads a uniqueness marker and returns the user ID it points at
// ("" when there is none).
func (st *store) markerUID(ctx context.Context, kind, normalized string) (string, error) {
	it, err := st.get(ctx, markerPK(kind, normalized))
	if err != nil {
		return "", err
	}
	uid, _ := ddb.Str(it, attrUID)
	return uid, nil
}

// batchGet reads up to 100 distinct items in one strongly consistent
// BatchGetItem, retrying keys DynamoDB leaves unprocessed (a few times, then
// it fails closed). Absent items are absent from the result.
func (st *store) batchGet(ctx context.Context, pks ...string) (map[string]item, error) {
	keys := make([]map[string]types.AttributeValue, len(pks))
	for i, pk := range pks {
		keys[i] = ddb.Key(pk)
	}
	req := map[string]types.KeysAndAttributes{st.tbl.Name: {Keys: keys, ConsistentRead: aws.Bool(true)}}
	res := make(map[string]item, len(pks))
	for attempt := 0; ; attempt++ {
		out, err := st.tbl.Client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
		if err != nil {
			return nil, unavailable("BatchGetItem", err)
		}
		for _, it := range out.Responses[st.tbl.Name] {
			pk, _ := ddb.Str(it, dynaguard.AttrPK)
			res[pk] = it
		}
		if len(out.UnprocessedKeys) == 0 {
			return res, nil
		}
		if attempt == 4 {
			return nil, fmt.Errorf("%w: BatchGetItem: keys left unprocessed", ErrUnavailable)
		}
		req = out.UnprocessedKeys
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return nil, unavailable("BatchGetItem", err)
		}
	}
}

// reserve counts one attempt on a login counter before any password work,
// in one conditional UpdateItem: it succeeds while the counter is under
// lim.Free, or when its state is still the one read (seen) and that state
// allowed an attempt. Concurrent attempts therefore cannot exceed the
// limit: each one needs its own successful conditional write. On refusal
// it returns the counter's current state.
func (st *store) reserve(ctx context.Context, pk string, seen counter, exists bool, lim Limit, now, end time.Time) (bool, counter, error) {
	cond := "attribute_not_exists(#pk) OR #n < :free"
	vals := item{
		":one":  ddb.N(1),
		":free": ddb.N(int64(lim.Free)),
		":now":  ddb.N(ddb.EpochSeconds(now)),
		":end":  ddb.TTLValue(end),
	}
	if exists && seen.n >= int64(lim.Free) {
		cond += " OR (#n = :seen AND #la = :la)"
		vals[":seen"] = ddb.N(seen.n)
		vals[":la"] = ddb.N(seen.last)
	}
	_, err := st.tbl.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           st.name(),
		Key:                                 ddb.Key(pk),
		UpdateExpression:                    aws.String("ADD #n :one SET #la = :now, #ttl = :end"),
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            ddb.ExprNames("#n", attrN, "#la", attrLast),
		ExpressionAttributeValues:           vals,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err == nil {
		return true, counter{}, nil
	}
	var cf *dynaguard.ConditionFailedError
	if errors.As(dynaguard.Classify(err), &cf) {
		return false, decodeCounter(cf.Item), nil
	}
	return false, counter{}, unavailable("UpdateItem", err)
}

// countIPFailure adds a failure to a client address's counter.
func (st *store) countIPFailure(ctx context.Context, pk string, now, end time.Time) error {
	_, err := st.tbl.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 st.name(),
		Key:                       ddb.Key(pk),
		UpdateExpression:          aws.String("ADD #n :one SET #la = :now, #ttl = :end"),
		ExpressionAttributeNames:  map[string]string{"#n": attrN, "#la": attrLast, "#ttl": dynaguard.AttrTTL},
		ExpressionAttributeValues: item{":one": ddb.N(1), ":now": ddb.N(ddb.EpochSeconds(now)), ":end": ddb.TTLValue(end)},
	})
	if err != nil {
		return unavailable("UpdateItem", err)
	}
	return nil
}

// loginSucceeded resets the account's failure count and/or, when newHash is
// set, replaces the password hash by an upgraded one — only if the
// credential is still the one that was verified (cv and the old hash
// unchanged), so a concurrent password change is never overwritten. A
// failed condition returns ErrConflict: the verified password is no longer
// the account's password.
//
// resetFails is false for an account with a second factor: its failure
// count is reset only when the second factor is also accepted, so that
// someone who knows the password cannot reset the count of their failed
// codes by logging in again.
func (st *store) loginSucceeded(ctx context.Context, u *User, resetFails bool, newHash, newPepper string) error {
	var set, remove []string
	cond := "#cv = :cv"
	names := map[string]string{"#cv": attrCred}
	vals := item{":cv": ddb.N(u.credVersion)}
	if resetFails {
		set = append(set, "#f = :zero")
		names["#f"] = attrFails
		vals[":zero"] = ddb.N(0)
	}
	if newHash != "" {
		set = append(set, "#ph = :ph")
		cond += " AND #ph = :old"
		names["#ph"] = attrHash
		vals[":ph"] = ddb.S(newHash)
		vals[":old"] = ddb.S(u.hash)
		names["#pep"] = attrPepper
		if newPepper == "" {
			remove = append(remove, "#pep")
		} else {
			set = append(set, "#pep = :pep")
			vals[":pep"] = ddb.S(newPepper)
		}
	}
	expr := "SET " + strings.Join(set, ", ")
	if len(remove) > 0 {
		expr += " REMOVE " + strings.Join(remove, ", ")
	}
	_, err := st.tbl.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 st.name(),
		Key:                       ddb.Key(userPK(u.ID)),
		UpdateExpression:          aws.String(expr),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: vals,
	})
	switch {
	case err == nil:
		return nil
	case dynaguard.IsConditionFailed(err):
		return ErrConflict
	default:
		return unavailable("UpdateItem", err)
	}
}

// deleteItem deletes one item unconditionally (a login counter after a
// successful login).
func (st *store) deleteItem(ctx context.Context, pk string) error {
	_, err := st.tbl.Client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: st.name(), Key: ddb.Key(pk)})
	if err != nil {
		return unavailable("DeleteItem", err)
	}
	return nil
}

// updateUser applies an UpdateExpression to an existing account under cond
// (which must hold together with attribute_exists(pk)) and returns the
// account as written. A failed condition is ErrNotFound when the account is
// gone, ErrConflict otherwise.
func (st *store) updateUser(ctx context.Context, uid, expr, cond string, names map[string]string, vals item) (*User, error) {
	full := "attribute_exists(#pk)"
	if cond != "" {
		full += " AND (" + cond + ")"
	}
	if names == nil {
		names = map[string]string{}
	}
	names["#pk"] = dynaguard.AttrPK
	in := &dynamodb.UpdateItemInput{
		TableName:                           st.name(),
		Key:                                 ddb.Key(userPK(uid)),
		UpdateExpression:                    aws.String(expr),
		ConditionExpression:                 aws.String(full),
		ExpressionAttributeNames:            names,
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
	if len(vals) > 0 {
		in.ExpressionAttributeValues = vals
	}
	out, err := st.tbl.Client.UpdateItem(ctx, in)
	if err != nil {
		var cf *dynaguard.ConditionFailedError
		if errors.As(dynaguard.Classify(err), &cf) {
			if cf.Item == nil {
				return nil, ErrNotFound
			}
			return nil, ErrConflict
		}
		return nil, unavailable("UpdateItem", err)
	}
	u, err := decodeUser(out.Attributes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w (%s)", ErrUnavailable, err, uid)
	}
	return u, nil
}

// setPassword stores a new password hash if the credential version is still
// the one the caller read: the credential version goes up (ending every
// session bound to the old one, and every one-time token issued for it),
// the failure count is reset.
func (st *store) setPassword(ctx context.Context, u *User, hash, pepper string, now time.Time) (*User, error) {
	expr := "SET #ph = :ph, #pwat = :now, #f = :zero, #cv = #cv + :one, #ver = #ver + :one"
	vals := item{":ph": ddb.S(hash), ":now": ddb.N(now.Unix()), ":zero": ddb.N(0), ":one": ddb.N(1), ":cv": ddb.N(u.credVersion)}
	if pepper == "" {
		expr += " REMOVE #pep"
	} else {
		expr += ", #pep = :pep"
		vals[":pep"] = ddb.S(pepper)
	}
	names := map[string]string{"#ph": attrHash, "#pwat": attrPasswordAt, "#f": attrFails, "#cv": attrCred, "#ver": attrVersion, "#pep": attrPepper}
	return st.updateUser(ctx, u.ID, expr, "#cv = :cv", names, vals)
}

// bumpEpoch raises the session epoch: every session bound to the old epoch
// fails its next check.
func (st *store) bumpEpoch(ctx context.Context, uid string) (*User, error) {
	return st.updateUser(ctx, uid, "SET #se = #se + :one, #ver = #ver + :one", "",
		map[string]string{"#se": attrEpoch, "#ver": attrVersion}, item{":one": ddb.N(1)})
}

// setDisabled disables an account (and raises its session epoch, so that
// no session survives even if revoking them fails) or enables it (and
// clears its failure count).
func (st *store) setDisabled(ctx context.Context, uid string, disabled bool) (*User, error) {
	if disabled {
		return st.updateUser(ctx, uid, "SET #dis = :t, #se = #se + :one, #ver = #ver + :one", "",
			map[string]string{"#dis": attrDisabled, "#se": attrEpoch, "#ver": attrVersion},
			item{":t": ddb.Bool(true), ":one": ddb.N(1)})
	}
	return st.updateUser(ctx, uid, "SET #f = :zero, #ver = #ver + :one REMOVE #dis", "",
		map[string]string{"#dis": attrDisabled, "#f": attrFails, "#ver": attrVersion},
		item{":zero": ddb.N(0), ":one": ddb.N(1)})
}

// unlock clears an account's failure counts (second-factor codes and
// unknown-client passwords).
func (st *store) unlock(ctx context.Context, uid string) (*User, error) {
	return st.updateUser(ctx, uid, "SET #f = :zero REMOVE #ucn, #ucla, #ucv", "",
		map[string]string{"#f": attrFails, "#ucn": attrUnknownN, "#ucla": attrUnknownLast, "#ucv": attrUnknownCV}, item{":zero": ddb.N(0)})
}

// create writes a new account and its two uniqueness markers in one
// transaction, each conditioned on not existing yet: either all three are
// written or none is, so two accounts can never share an email address or
// username, whichever instance creates them.
func (st *store) create(ctx context.Context, u *User) error {
	notExists := aws.String("attribute_not_exists(#pk)")
	names := map[string]string{"#pk": dynaguard.AttrPK}
	marker := func(kind, key string) types.TransactWriteItem {
		return types.TransactWriteItem{Put: &types.Put{
			TableName:                st.name(),
			Item:                     item{dynaguard.AttrPK: ddb.S(markerPK(kind, key)), attrUID: ddb.S(u.ID)},
			ConditionExpression:      notExists,
			ExpressionAttributeNames: names,
		}}
	}
	items := []types.TransactWriteItem{
		{Put: &types.Put{TableName: st.name(), Item: encodeUser(u), ConditionExpression: notExists, ExpressionAttributeNames: names}},
		marker(kindEmail, u.emailKey),
		marker(kindUsername, u.usernameKey),
	}
	items = append(items, st.claimSkeleton(u.ID, u.usernameKey)...) // 3, and 4 for accounts from before skeletons
	usernameItems := len(items)
	items = append(items, st.checkLegacyEmail(u.Email, u.emailKey)...) // last: keys from before UTS #46 domains
	err := st.transact(ctx, items)
	var tc *dynaguard.TransactionCanceledError
	if errors.As(err, &tc) && tc.OnlyConditionsFailed() {
		taken := tc.ConditionFailed(2) || tc.ConditionFailed(3) || (usernameItems == 5 && tc.ConditionFailed(4))
		email := tc.ConditionFailed(1)
		for i := usernameItems; i < len(items); i++ {
			email = email || tc.ConditionFailed(i)
		}
		if te := (&TakenError{Email: email, Username: taken}); te.Email || te.Username {
			return te
		}
		return ErrConflict // the random user ID exists: the caller draws another
	}
	if err != nil {
		return unavailable("TransactWriteItems", err)
	}
	return nil
}

// changeIdentifier moves an account to a new email address or username in
// one transaction: the new marker is claimed (it must not exist), the old
// one released (it must point at this account) and the account updated
// (its version must be the one read). A display-only change (same
// normalised form) updates the account alone.
func (st *store) changeIdentifier(ctx context.Context, u *User, kind, display, key string) (*User, error) {
	dispAttr, keyAttr, oldKey := attrEmail, attrEmailKey, u.emailKey
	if kind == kindUsername {
		dispAttr, keyAttr, oldKey = attrUsername, attrUsernameKey, u.usernameKey
	}
	names := map[string]string{"#pk": dynaguard.AttrPK, "#d": dispAttr, "#k": keyAttr, "#ver": attrVersion}
	vals := item{":d": ddb.S(display), ":k": ddb.S(key), ":ver": ddb.N(u.version), ":one": ddb.N(1)}
	expr := "SET #d = :d, #k = :k, #ver = #ver + :one"
	if kind == kindEmail {
		// A new address is unverified, even when only its display form
		// changed: the owner proves control of what is stored.
		expr += " REMOVE #ev"
		names["#ev"] = attrVerified
	}
	update := &types.Update{
		TableName:                 st.name(),
		Key:                       ddb.Key(userPK(u.ID)),
		UpdateExpression:          aws.String(expr),
		ConditionExpression:       aws.String("attribute_exists(#pk) AND #ver = :ver"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: vals,
	}
	next := *u
	next.version++
	if kind == kindEmail {
		next.Email, next.emailKey, next.EmailVerified = display, key, false
	} else {
		next.Username, next.usernameKey = display, key
	}
	if key == oldKey {
		_, err := st.tbl.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: update.TableName, Key: update.Key, UpdateExpression: update.UpdateExpression,
			ConditionExpression: update.ConditionExpression, ExpressionAttributeNames: names, ExpressionAttributeValues: vals,
		})
		switch {
		case err == nil:
			return &next, nil
		case dynaguard.IsConditionFailed(err):
			return nil, ErrConflict
		default:
			return nil, unavailable("UpdateItem", err)
		}
	}
	items := []types.TransactWriteItem{
		{Put: &types.Put{
			TableName:                st.name(),
			Item:                     item{dynaguard.AttrPK: ddb.S(markerPK(kind, key)), attrUID: ddb.S(u.ID)},
			ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
			ExpressionAttributeNames: map[string]string{"#pk": dynaguard.AttrPK},
		}},
		{Delete: &types.Delete{
			TableName:                 st.name(),
			Key:                       ddb.Key(markerPK(kind, oldKey)),
			ConditionExpression:       aws.String("#uid = :uid"),
			ExpressionAttributeNames:  map[string]string{"#uid": attrUID},
			ExpressionAttributeValues: item{":uid": ddb.S(u.ID)},
		}},
		{Update: update},
	}
	claims := 0
	if kind == kindUsername {
		items, claims = st.moveSkeleton(items, u.ID, oldKey, key) // from index 3
	}
	err := st.transact(ctx, items)
	var tc *dynaguard.TransactionCanceledError
	if errors.As(err, &tc) && tc.OnlyConditionsFailed() {
		// A stale account first (re-read it): its old markers may have
		// been released and claimed by others since.
		if tc.ConditionFailed(2) {
			return nil, ErrConflict
		}
		taken := tc.ConditionFailed(0)
		for i := 3; i < 3+claims; i++ {
			taken = taken || tc.ConditionFailed(i)
		}
		if taken {
			return nil, &TakenError{Email: kind == kindEmail, Username: kind == kindUsername}
		}
		return nil, ErrConflict
	}
	if err != nil {
		return nil, unavailable("TransactWriteItems", err)
	}
	return &next, nil
}

// deleteUser deletes an account and its markers in one transaction, if the
// account is still at the version read.
func (st *store) deleteUser(ctx context.Context, u *User) error {
	markerDel := func(kind, key string) types.TransactWriteItem {
		return types.TransactWriteItem{Delete: &types.Delete{
			TableName:                 st.name(),
			Key:                       ddb.Key(markerPK(kind, key)),
			ConditionExpression:       aws.String("#uid = :uid"),
			ExpressionAttributeNames:  map[string]string{"#uid": attrUID},
			ExpressionAttributeValues: item{":uid": ddb.S(u.ID)},
		}}
	}
	cond, names, vals := passkeysUnchanged(u)
	names["#ver"], vals[":ver"] = attrVersion, ddb.N(u.version)
	items := []types.TransactWriteItem{
		{Delete: &types.Delete{
			TableName:                 st.name(),
			Key:                       ddb.Key(userPK(u.ID)),
			ConditionExpression:       aws.String("#ver = :ver AND " + cond),
			ExpressionAttributeNames:  names,
			ExpressionAttributeValues: vals,
		}},
		markerDel(kindEmail, u.emailKey),
		markerDel(kindUsername, u.usernameKey),
		st.releaseSkeleton(u.ID, u.usernameKey),
	}
	items = append(items, st.passkeyDeletes(u)...)
	err := st.transact(ctx, items)
	var tc *dynaguard.TransactionCanceledError
	if errors.As(err, &tc) && tc.OnlyConditionsFailed() {
		return ErrConflict
	}
	if err != nil {
		return unavailable("TransactWriteItems", err)
	}
	return nil
}

// transact runs TransactWriteItems, retrying (with jittered backoff) when
// it was canceled only because another transaction held one of its items
// (TransactionConflict) — the outcome is then still open, unlike a failed
// condition, which is returned at once. The error is classified.
func (st *store) transact(ctx context.Context, items []types.TransactWriteItem) error {
	for attempt := 0; ; attempt++ {
		_, err := st.tbl.Client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		err = dynaguard.Classify(err)
		var tc *dynaguard.TransactionCanceledError
		if err == nil || !errors.As(err, &tc) || tc.OnlyConditionsFailed() || !conflictOnly(tc) || attempt == 7 {
			return err
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return err
		}
	}
}

// conflictOnly reports whether a cancellation has no other reason than
// transaction conflicts.
func conflictOnly(tc *dynaguard.TransactionCanceledError) bool {
	any := false
	for _, r := range tc.Reasons {
		switch r.Code {
		case "None", "":
		case "TransactionConflict":
			any = true
		default:
			return false
		}
	}
	return any
}

func backoff(attempt int) time.Duration {
	d := 10 * time.Millisecond << attempt
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ---- one-time tokens (password reset, email verification)

// tokenRecord is what a one-time token item binds the token to.
type tokenRecord struct {
	uid     string
	purpose string
	// email is the account's address exactly as stored when the token was
	// issued — not its normalised form: two addresses that normalise alike
	// (ceo@fass.de and ceo@faß.de) are two mailboxes, and a move from one
	// to the other must kill the links sent to the first.
	email string
	cv    int64 // the account's credential version when it was issued
	ver   int64 // the account item's version the token is bound to
	// An email change's confirmation link also carries the normalised
	// current address (whose marker it releases) and the new address as
	// typed and normalised; its cancel link names the pending change.
	emailKey         string
	newEmail, newKey string
	pid              string
}

func tokenPK(hash string) string { return dynaguard.PrefixToken + hash }

// decodeToken reads a token item; ok is false for a malformed one, which is
// treated like an unknown token. A token without an account version (made
// before tokens were bound to it) is malformed: it fails closed.
func decodeToken(it item) (rec tokenRecord, ok bool) {
	var okU, okP, okC, okV bool
	rec.uid, okU = ddb.Str(it, attrUID)
	rec.purpose, okP = ddb.Str(it, attrPurpose)
	rec.email, _ = ddb.Str(it, attrBoundEmail)
	rec.cv, okC = ddb.Int(it, attrCred)
	rec.ver, okV = ddb.Int(it, attrVersion)
	rec.emailKey, _ = ddb.Str(it, attrEmailKey)
	rec.newEmail, _ = ddb.Str(it, attrPendingEmail)
	rec.newKey, _ = ddb.Str(it, attrPendingKey)
	rec.pid, _ = ddb.Str(it, attrPendingID)
	return rec, okU && okP && okC && okV && rec.uid != ""
}

// tokenPut is the conditional Put of a new token item for rec.
func (st *store) tokenPut(pk string, rec tokenRecord, now, expires time.Time) types.TransactWriteItem {
	it := item{
		dynaguard.AttrPK:  ddb.S(pk),
		attrUID:           ddb.S(rec.uid),
		attrPurpose:       ddb.S(rec.purpose),
		attrBoundEmail:    ddb.S(rec.email),
		attrCred:          ddb.N(rec.cv),
		attrVersion:       ddb.N(rec.ver),
		attrIssued:        ddb.N(now.Unix()),
		dynaguard.AttrTTL: ddb.TTLValue(expires),
	}
	for attr, v := range map[string]string{attrEmailKey: rec.emailKey, attrPendingEmail: rec.newEmail, attrPendingKey: rec.newKey, attrPendingID: rec.pid} {
		if v != "" {
			it[attr] = ddb.S(v)
		}
	}
	return types.TransactWriteItem{Put: &types.Put{
		TableName:                st.name(),
		Item:                     it,
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": dynaguard.AttrPK},
	}}
}

// issueCount is the conditional count of one issue on c, under its limit.
func (st *store) issueCount(c issueCounter, windowEnd time.Time) types.TransactWriteItem {
	return types.TransactWriteItem{Update: &types.Update{
		TableName:                 st.name(),
		Key:                       ddb.Key(c.pk),
		UpdateExpression:          aws.String("ADD #n :one SET #ttl = :end"),
		ConditionExpression:       aws.String("attribute_not_exists(#pk) OR #n < :max"),
		ExpressionAttributeNames:  ddb.ExprNames("#n", attrN),
		ExpressionAttributeValues: item{":one": ddb.N(1), ":end": ddb.TTLValue(windowEnd), ":max": ddb.N(int64(c.max))},
	}}
}

// issueOutcome is how issueToken ended.
type issueOutcome int

const (
	issued         issueOutcome = iota
	limitedIP                   // the client address's counter is at its limit
	limitedAccount              // the account's (or address's) counter is at its limit
)

// issueCounter is one issuing limit: a counter item and its maximum.
type issueCounter struct {
	pk  string
	max int
}

// issueToken counts the issue on the client address's and the account's
// counters and writes the token — one TransactWriteItems, so that either
// both counts went up and the token exists, or nothing was written. Each
// counter update is conditioned on being under its limit, so concurrent
// requests cannot exceed it. For an address without an account the caller
// passes a decoy record (see RequestReset): the same three writes of the
// same sizes, for a token nobody holds.
func (st *store) issueToken(ctx context.Context, ip, acct, total issueCounter, windowEnd time.Time, pk string, rec tokenRecord, now, expires time.Time) (issueOutcome, error) {
	err := st.transact(ctx, []types.TransactWriteItem{st.issueCount(ip, windowEnd), st.issueCount(acct, windowEnd), st.issueCount(total, windowEnd), st.tokenPut(pk, rec, now, expires)})
	var tc *dynaguard.TransactionCanceledError
	if errors.As(err, &tc) && tc.OnlyConditionsFailed() {
		switch {
		case tc.ConditionFailed(0):
			return limitedIP, nil
		case tc.ConditionFailed(1), tc.ConditionFailed(2):
			return limitedAccount, nil
		}
		// A token hash that exists already: 2^-256; refuse rather than
		// overwrite.
		return 0, fmt.Errorf("%w: token key collision", ErrUnavailable)
	}
	if err != nil {
		return 0, unavailable("TransactWriteItems", err)
	}
	return issued, nil
}

// consumeToken uses a token up: one DeleteItem that returns the deleted
// item, on condition that it exists, is live and has this purpose. Of any
// number of concurrent consumes of one token, on any number of instances,
// exactly one gets the record; every other one — and every consume of an
// unknown, expired, used or other-purpose token — gets ErrInvalidToken.
// A token of another purpose is left as it is.
func (st *store) consumeToken(ctx context.Context, pk, purpose string, now time.Time) (tokenRecord, error) {
	out, err := st.tbl.Client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 st.name(),
		Key:                       ddb.Key(pk),
		ConditionExpression:       aws.String(ddb.CondLive + " AND #purp = :purp"),
		ExpressionAttributeNames:  ddb.ExprNames("#purp", attrPurpose),
		ExpressionAttributeValues: item{":now": ddb.NowValue(now), ":purp": ddb.S(purpose)},
		ReturnValues:              types.ReturnValueAllOld,
	})
	switch {
	case err == nil:
	case dynaguard.IsConditionFailed(err):
		return tokenRecord{}, ErrInvalidToken
	default:
		return tokenRecord{}, unavailable("DeleteItem", err)
	}
	rec, ok := decodeToken(out.Attributes)
	if !ok || rec.purpose != purpose {
		return tokenRecord{}, ErrInvalidToken
	}
	return rec, nil
}

// resetPassword stores the new password hash of a password reset, on
// condition that the account is still at the item version, with the
// credential version and the exact email address, that the token was bound
// to: any change of the account since the token was issued — even one that
// commits between the token's consumption and this write — makes it
// ErrInvalidToken. Like setPassword it bumps the credential version (ending
// every session, and every other token issued for the old one) and clears
// the failure count (unlocking the account); the email address is marked
// verified, since the token reached it.
//
// reclaim is set when the address was never verified before: this reset is
// the first proof that whoever holds the account holds its address, so
// whatever was set up before it may be an intruder's who registered the
// address first. The second factor (secret, recovery codes, an unconfirmed
// enrolment) and a pending email change are removed and the session epoch
// goes up, in the same write — on condition that the address is still
// unverified.
//
// A reclaiming reset of an account with passkeys (held, as read, in drop)
// also deletes their credential items, in one TransactWriteItems with the
// account's write — on condition that the account still lists exactly
// those — and reads the account back with one GetItem (a transaction
// returns no item): nothing of a passkey an intruder may have added
// outlives the reset, nor the account.
func (st *store) resetPassword(ctx context.Context, rec tokenRecord, hash, pepper string, now time.Time, reclaim bool, drop *User) (*User, error) {
	expr := "SET #ph = :ph, #pwat = :now, #f = :zero, #cv = #cv + :one, #ver = #ver + :one, #ev = :t"
	cond := "#cv = :cv AND #ver = :ver AND #email = :em"
	vals := item{":ph": ddb.S(hash), ":now": ddb.N(now.Unix()), ":zero": ddb.N(0), ":one": ddb.N(1),
		":t": ddb.Bool(true), ":cv": ddb.N(rec.cv), ":ver": ddb.N(rec.ver), ":em": ddb.S(rec.email)}
	names := map[string]string{"#ph": attrHash, "#pwat": attrPasswordAt, "#f": attrFails, "#cv": attrCred,
		"#ver": attrVersion, "#pep": attrPepper, "#ev": attrVerified, "#email": attrEmail}
	var remove []string
	if pepper == "" {
		remove = append(remove, "#pep")
	} else {
		expr += ", #pep = :pep"
		vals[":pep"] = ddb.S(pepper)
	}
	if reclaim {
		expr += ", #se = #se + :one"
		cond += " AND attribute_not_exists(#ev)"
		names["#se"] = attrEpoch
		for i, attr := range []string{attrMFA, attrTOTP, attrTOTPStep, attrRecovery, attrTOTPPending, attrPendingExp,
			attrPendingEmail, attrPendingKey, attrPendingExpires, attrPendingID, attrPasskeys} {
			n := "#r" + strconv.Itoa(i)
			names[n] = attr
			remove = append(remove, n)
		}
		// The passkeys must be the ones read (none, or exactly drop's): a
		// passkey registered since would lose its place on the list and
		// outlive the account.
		pcond, pnames, pvals := passkeysUnchanged(drop)
		cond += " AND " + pcond
		maps.Copy(names, pnames)
		maps.Copy(vals, pvals)
	}
	if len(remove) > 0 {
		expr += " REMOVE " + strings.Join(remove, ", ")
	}
	if reclaim && len(drop.passkeys) > 0 {
		return st.resetDroppingPasskeys(ctx, rec.uid, expr, cond, names, vals, drop)
	}
	u, err := st.updateUser(ctx, rec.uid, expr, cond, names, vals)
	if errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) {
		return nil, ErrInvalidToken
	}
	return u, err
}

// resetDroppingPasskeys is resetPassword's write for an account with
// passkeys: the account's update and the deletes of its credential items
// in one TransactWriteItems, then one GetItem of the account.
func (st *store) resetDroppingPasskeys(ctx context.Context, uid, expr, cond string, names map[string]string, vals item, drop *User) (*User, error) {
	names["#pk"] = dynaguard.AttrPK
	items := []types.TransactWriteItem{{Update: &types.Update{
		TableName:                 st.name(),
		Key:                       ddb.Key(userPK(uid)),
		UpdateExpression:          aws.String(expr),
		ConditionExpression:       aws.String("attribute_exists(#pk) AND (" + cond + ")"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: vals,
	}}}
	items = append(items, st.passkeyDeletes(drop)...)
	err := st.transact(ctx, items)
	var tc *dynaguard.TransactionCanceledError
	switch {
	case errors.As(err, &tc) && tc.OnlyConditionsFailed():
		return nil, ErrInvalidToken
	case err != nil:
		return nil, unavailable("TransactWriteItems", err)
	}
	u, err := st.getUser(ctx, uid)
	switch {
	case err != nil:
		return nil, err
	case u == nil:
		return nil, ErrInvalidToken
	}
	return u, nil
}

// markVerified marks the account's email address verified, on condition
// that the account is still at the item version and has the exact address
// the token was bound to.
func (st *store) markVerified(ctx context.Context, rec tokenRecord) (*User, error) {
	u, err := st.updateUser(ctx, rec.uid, "SET #ev = :t", "#cv = :cv AND #ver = :ver AND #email = :em",
		map[string]string{"#ev": attrVerified, "#cv": attrCred, "#ver": attrVersion, "#email": attrEmail},
		item{":t": ddb.Bool(true), ":cv": ddb.N(rec.cv), ":ver": ddb.N(rec.ver), ":em": ddb.S(rec.email)})
	if errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) {
		return nil, ErrInvalidToken
	}
	return u, err
}

// ---- TOTP

// beginTOTP stores the sealed secret of a new, unconfirmed enrolment
// (replacing an earlier unconfirmed one), unless TOTP is already enabled.
func (st *store) beginTOTP(ctx context.Context, uid string, sealed []byte, lapses time.Time) error {
	_, err := st.updateUser(ctx, uid, "SET #tn = :tn, #tnx = :tnx", "attribute_not_exists(#mfa)",
		map[string]string{"#tn": attrTOTPPending, "#tnx": attrPendingExp, "#mfa": attrMFA},
		item{":tn": ddb.B(sealed), ":tnx": ddb.N(lapses.Unix())})
	if errors.Is(err, ErrConflict) {
		return ErrTOTPEnabled
	}
	return err
}

// countEnrolAttempt counts a confirmation attempt of u's pending TOTP
// enrolment on the account's failure count BEFORE the code is checked, like
// countFactorAttempt: one conditional UpdateItem (ADD fails 1) on condition
// that the enrolment is still the one read (pending secret unchanged, TOTP
// not enabled) and the count is under maxFails. Errors: ErrTOTPEnabled,
// ErrNoEnrollment (replaced or cancelled meanwhile), *ThrottledError
// (Locked), ErrNotFound, ErrUnavailable.
func (st *store) countEnrolAttempt(ctx context.Context, u *User, maxFails int64) error {
	_, err := st.tbl.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           st.name(),
		Key:                                 ddb.Key(userPK(u.ID)),
		UpdateExpression:                    aws.String("ADD #f :one"),
		ConditionExpression:                 aws.String("attribute_exists(#pk) AND attribute_not_exists(#mfa) AND #tn = :tn AND " + underCap),
		ExpressionAttributeNames:            map[string]string{"#pk": dynaguard.AttrPK, "#mfa": attrMFA, "#tn": attrTOTPPending, "#f": attrFails},
		ExpressionAttributeValues:           item{":one": ddb.N(1), ":tn": ddb.B(u.totpPending), ":max": ddb.N(maxFails)},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	return enrolResult(err, u, maxFails-1)
}

// enrolResult is the outcome of a conditional write on a pending enrolment:
// nil, the reason its condition failed (enrolRefused), or ErrUnavailable.
func enrolResult(err error, u *User, limit int64) error {
	if err == nil {
		return nil
	}
	var cf *dynaguard.ConditionFailedError
	if !errors.As(dynaguard.Classify(err), &cf) {
		return unavailable("UpdateItem", err)
	}
	return enrolRefused(cf.Item, u, limit)
}

// enrolRefused tells why a write on a pending enrolment failed its
// condition, from the account as it was (old): gone, TOTP enabled, the
// enrolment replaced or cancelled, or — the enrolment unchanged — the
// failure count over limit.
func enrolRefused(old item, u *User, limit int64) error {
	if old == nil {
		return ErrNotFound
	}
	now, err := decodeUser(old)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w (%s)", ErrUnavailable, err, u.ID)
	case now.TOTPEnabled:
		return ErrTOTPEnabled
	case !bytesEqual(now.totpPending, u.totpPending):
		return ErrNoEnrollment
	case now.fails > limit:
		return &ThrottledError{Locked: true}
	}
	return ErrNoEnrollment // lapsed
}

// confirmTOTP enables TOTP: the confirmed secret (sealed anew), the step of
// the code that confirmed it (so that code cannot be used to log in) and
// the recovery codes are written in one UpdateItem, on condition that the
// enrolment is still the one whose secret the code was checked against and
// has not lapsed. Of two concurrent confirmations one wins; the other gets
// ErrNoEnrollment. Like an accepted login code it resets the failure count
// that countEnrolAttempt raised, on condition that the count is within
// maxFails (withinCap; *ThrottledError Locked otherwise). The session
// epoch goes up with it: a new factor ends every session made without it.
func (st *store) confirmTOTP(ctx context.Context, u *User, sealed []byte, step int64, codes []string, now time.Time, maxFails int64) (*User, error) {
	out, err := st.tbl.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:        st.name(),
		Key:              ddb.Key(userPK(u.ID)),
		UpdateExpression: aws.String("SET #totp = :totp, #ts = :ts, #mfa = :t, #rc = :rc, #f = :zero, #se = #se + :one, #ver = #ver + :one REMOVE #tn, #tnx"),
		ConditionExpression: aws.String("attribute_exists(#pk) AND #tn = :tn AND #tnx > :now AND attribute_not_exists(#mfa) AND " +
			withinCap),
		ExpressionAttributeNames: map[string]string{"#pk": dynaguard.AttrPK, "#totp": attrTOTP, "#ts": attrTOTPStep, "#mfa": attrMFA,
			"#rc": attrRecovery, "#f": attrFails, "#se": attrEpoch, "#ver": attrVersion, "#tn": attrTOTPPending, "#tnx": attrPendingExp},
		ExpressionAttributeValues: item{":totp": ddb.B(sealed), ":ts": ddb.N(step), ":t": ddb.Bool(true),
			":rc": &types.AttributeValueMemberSS{Value: codes}, ":zero": ddb.N(0), ":one": ddb.N(1),
			":tn": ddb.B(u.totpPending), ":now": ddb.N(now.Unix()), ":max": ddb.N(maxFails)},
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err := enrolResult(err, u, maxFails); err != nil {
		return nil, err
	}
	updated, err := decodeUser(out.Attributes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w (%s)", ErrUnavailable, err, u.ID)
	}
	return updated, nil
}

// disableTOTP removes the secret, its last step, any unconfirmed enrolment
// and the recovery codes, if TOTP is enabled, and raises the session epoch.
func (st *store) disableTOTP(ctx context.Context, uid string) (*User, error) {
	u, err := st.updateUser(ctx, uid,
		"SET #se = #se + :one, #ver = #ver + :one REMOVE #mfa, #totp, #ts, #rc, #tn, #tnx", "attribute_exists(#mfa)",
		map[string]string{"#se": attrEpoch, "#ver": attrVersion, "#mfa": attrMFA, "#totp": attrTOTP, "#ts": attrTOTPStep,
			"#rc": attrRecovery, "#tn": attrTOTPPending, "#tnx": attrPendingExp},
		item{":one": ddb.N(1)})
	if errors.Is(err, ErrConflict) {
		return nil, ErrTOTPNotEnabled
	}
	return u, err
}

// setRecoveryCodes replaces the whole set of recovery codes in one write:
// the old codes stop working at the instant the new ones start. The session
// epoch goes up with it.
func (st *store) setRecoveryCodes(ctx context.Context, uid string, codes []string) (*User, error) {
	u, err := st.updateUser(ctx, uid, "SET #rc = :rc, #se = #se + :one, #ver = #ver + :one", "attribute_exists(#mfa)",
		map[string]string{"#rc": attrRecovery, "#mfa": attrMFA, "#se": attrEpoch, "#ver": attrVersion},
		item{":rc": &types.AttributeValueMemberSS{Value: codes}, ":one": ddb.N(1)})
	if errors.Is(err, ErrConflict) {
		return nil, ErrTOTPNotEnabled
	}
	return u, err
}

// factorOutcome is how a second-factor write ended.
type factorOutcome int

const (
	factorAccepted factorOutcome = iota
	factorReplayed               // the step was accepted already (by a concurrent request)
	factorRejected               // the recovery code is not (or no longer) in the set
	factorStale                  // the account changed: password, sessions, TOTP, disabled, or gone
	factorLocked                 // the account's failure count is at Throttle.MaxFailures
)

// secondFactorCond holds while the account is the one the pending login
// was verified against: same credential version and session epoch (no
// password change, no "log out everywhere"), not disabled, TOTP enabled.
const secondFactorCond = "attribute_exists(#pk) AND #cv = :cv AND #se = :se AND attribute_not_exists(#dis) AND #mfa = :t"

// The failure-count bounds of the second factor. underCap lets an attempt
// be counted: the count is below the cap before this attempt adds itself,
// so an attempt counted under it is at most the MaxFailures-th.
// withinCap guards the single-use write that accepts a code: after the
// attempt counted itself the count is at most the cap — exactly the cap
// when this attempt was the last one allowed, which must still succeed
// with the right code. More than the cap means other failures (a burst of
// passwords, which are counted after their check) locked the account
// meanwhile, and the code is not accepted.
const (
	underCap  = "(attribute_not_exists(#f) OR #f < :max)"
	withinCap = "(attribute_not_exists(#f) OR #f <= :max)"
)

func secondFactorNames(extra ...string) map[string]string {
	m := map[string]string{"#pk": dynaguard.AttrPK, "#cv": attrCred, "#se": attrEpoch, "#dis": attrDisabled, "#mfa": attrMFA, "#f": attrFails}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

func secondFactorValues(u *User, maxFails int64) item {
	return item{":cv": ddb.N(u.credVersion), ":se": ddb.N(u.epoch), ":t": ddb.Bool(true), ":max": ddb.N(maxFails)}
}

// factorRefused tells why a second-factor write's condition failed, from
// the account as it was (old, nil when it is gone): stale when it is no
// longer the account the pending login was verified against (or, with
// secret set, its TOTP secret changed), locked when its failure count is
// over limit, and otherwise other — the reason the caller's own condition
// names (a replayed step, a recovery code not in the set).
func factorRefused(old item, u *User, secret []byte, limit int64, other factorOutcome) factorOutcome {
	now, err := decodeUser(old)
	if err != nil || now.credVersion != u.credVersion || now.epoch != u.epoch || now.Disabled || !now.TOTPEnabled ||
		(secret != nil && !bytesEqual(now.totpSealed, secret)) {
		return factorStale
	}
	if now.fails > limit {
		return factorLocked
	}
	return other
}

// countFactorAttempt counts a second-factor attempt on the account BEFORE
// the code is checked: one conditional UpdateItem (ADD fails 1) that
// succeeds only while the account is the pending login's (secondFactorCond)
// and its failure count is under maxFails. Each code check therefore needs
// its own successful write, and of any number of concurrent attempts, on
// any number of instances, at most maxFails minus the count already there
// are checked: the cap is exact, not a read that a burst races past. A
// failed code needs no further write on the account (its failure is this
// count); an accepted one resets the count in its single-use write.
// Outcomes: factorAccepted (counted), factorLocked, factorStale.
func (st *store) countFactorAttempt(ctx context.Context, u *User, maxFails int64) (factorOutcome, error) {
	vals := secondFactorValues(u, maxFails)
	vals[":one"] = ddb.N(1)
	_, err := st.tbl.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           st.name(),
		Key:                                 ddb.Key(userPK(u.ID)),
		UpdateExpression:                    aws.String("ADD #f :one"),
		ConditionExpression:                 aws.String(secondFactorCond + " AND " + underCap),
		ExpressionAttributeNames:            secondFactorNames(),
		ExpressionAttributeValues:           vals,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err == nil {
		return factorAccepted, nil
	}
	var cf *dynaguard.ConditionFailedError
	if !errors.As(dynaguard.Classify(err), &cf) {
		return 0, unavailable("UpdateItem", err)
	}
	// Not stale, so the count was at the cap: locked (a failure above it
	// comes out as locked too; limit maxFails-1 makes "at" count).
	return factorRefused(cf.Item, u, nil, maxFails-1, factorStale), nil
}

// acceptStep records step as the account's last accepted TOTP step, in one
// conditional UpdateItem: only if it is later than the stored one
// (tstep < :step), and the secret is still the one the code was checked
// against. This write — not the check before it — is what makes a code
// single-use: of any number of concurrent requests with the same code, on
// any number of instances, exactly one writes; the others find tstep ≥ step
// and are replays. The failure count is reset with it, on condition that
// it is within the cap (withinCap); resealed, when set, replaces the
// stored secret (sealed under the current key after a rotation).
func (st *store) acceptStep(ctx context.Context, u *User, step int64, resealed []byte, maxFails int64) (factorOutcome, error) {
	expr := "SET #ts = :step, #f = :zero"
	vals := secondFactorValues(u, maxFails)
	vals[":zero"] = ddb.N(0)
	vals[":step"] = ddb.N(step)
	vals[":secret"] = ddb.B(u.totpSealed)
	if resealed != nil {
		expr += ", #totp = :new"
		vals[":new"] = ddb.B(resealed)
	}
	_, err := st.tbl.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           st.name(),
		Key:                                 ddb.Key(userPK(u.ID)),
		UpdateExpression:                    aws.String(expr),
		ConditionExpression:                 aws.String(secondFactorCond + " AND #totp = :secret AND (attribute_not_exists(#ts) OR #ts < :step) AND " + withinCap),
		ExpressionAttributeNames:            secondFactorNames("#ts", attrTOTPStep, "#totp", attrTOTP),
		ExpressionAttributeValues:           vals,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err == nil {
		return factorAccepted, nil
	}
	var cf *dynaguard.ConditionFailedError
	if !errors.As(dynaguard.Classify(err), &cf) {
		return 0, unavailable("UpdateItem", err)
	}
	return factorRefused(cf.Item, u, u.totpSealed, maxFails, factorReplayed), nil
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// useRecoveryCode consumes a recovery code in one conditional UpdateItem:
// DELETE its hash from the set, on condition that the set contains it (and
// that the failure count is within the cap, which the write resets). Of
// concurrent uses of one code exactly one succeeds. remaining is the number
// of codes left after a success.
func (st *store) useRecoveryCode(ctx context.Context, u *User, hash string, maxFails int64) (outcome factorOutcome, remaining int, err error) {
	vals := secondFactorValues(u, maxFails)
	vals[":zero"] = ddb.N(0)
	vals[":h"] = ddb.S(hash)
	vals[":set"] = &types.AttributeValueMemberSS{Value: []string{hash}}
	out, err := st.tbl.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           st.name(),
		Key:                                 ddb.Key(userPK(u.ID)),
		UpdateExpression:                    aws.String("SET #f = :zero DELETE #rc :set"),
		ConditionExpression:                 aws.String(secondFactorCond + " AND contains(#rc, :h) AND " + withinCap),
		ExpressionAttributeNames:            secondFactorNames("#rc", attrRecovery),
		ExpressionAttributeValues:           vals,
		ReturnValues:                        types.ReturnValueUpdatedNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err == nil {
		if ss, ok := out.Attributes[attrRecovery].(*types.AttributeValueMemberSS); ok {
			remaining = len(ss.Value)
		}
		return factorAccepted, remaining, nil
	}
	var cf *dynaguard.ConditionFailedError
	if !errors.As(dynaguard.Classify(err), &cf) {
		return 0, 0, unavailable("UpdateItem", err)
	}
	return factorRefused(cf.Item, u, nil, maxFails, factorRejected), 0, nil
}
