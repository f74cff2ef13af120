package users

// DynamoDB access of API tokens (apitoken.go). Items:
//
//	apif#<fid>       one refresh-token family (one API client install)
//	    uid            the account
//	    fs             HMAC(api-refresh key, fid, family secret): only a holder of some token of the family can name it;
//	                   hashed again under the current key at every refresh (a secret rotation then ends only idle families)
//	    rh             HMAC(api-refresh key, fid, gen, token secret) of the current refresh token
//	    prh            the same of the token rotated last (absent at generation 1): only that exact token gets the grace answer
//	    g              the current generation (1 at login, +1 per refresh)
//	    cv, se         the account's credential version and session epoch at login
//	    cr             the login's time; abs its absolute end (Unix s)
//	    rat            when it was last rotated (Unix s): the grace window counts from it
//	    ttl            min(last refresh + IdleLifetime, abs): checked in every write's condition, and DynamoDB's TTL sweeps it
//	user#<id>
//	    apic           map fid → "<created> <abs> <cv> <se> <name>": the account's live families (≤ MaxClients)
//
// No token is stored: fs and rh are keyed hashes, useless without the
// keyring, and neither can be turned back into a token.

import (
	"context"
	"crypto/subtle"
	"errors"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
)

const (
	attrAPIClients = "apic"
	attrFamSecret  = "fs"
	attrRefresh    = "rh"
	attrGen        = "g"
	attrFamAt      = "cr"
	attrFamAbs     = "abs"
	attrRotatedAt  = "rat"
	attrPrevious   = "prh"
)

func familyPK(fid string) string { return dynaguard.PrefixAPIFamily + fid }

// errNoFamily: a revocation found no family it may revoke.
var errNoFamily = errors.New("users: no such API client")

// createFamily writes family f (generation 1) and lists it on the account
// in one TransactWriteItems, on condition that the account still has the
// credential version and session epoch of checked (the account the
// password was verified against), is not disabled, and has the client
// list of listed (checked itself, or a fresher read of the account). Over
// max, the list's dead entries go first, then its oldest (their families
// are deleted in the same transaction). It returns the evicted families'
// IDs.
func (st *store) createFamily(ctx context.Context, checked, listed *User, f *family, key dynaguard.DerivedKey, now time.Time, cfg APITokenConfig) ([]string, error) {
	u := listed
	abs := now.Add(cfg.AbsoluteLifetime)
	entry := apiEntry{id: f.id, created: f.at, abs: abs.Unix(), cv: f.cv, se: f.se, name: f.name}
	names := map[string]string{"#pk": dynaguard.AttrPK, "#apic": attrAPIClients, "#cv": attrCred, "#se": attrEpoch, "#dis": attrDisabled, "#f": f.id}
	vals := item{":cv": ddb.N(checked.credVersion), ":se": ddb.N(checked.epoch)}
	cond := "attribute_exists(#pk) AND #cv = :cv AND #se = :se AND attribute_not_exists(#dis)"
	var update string
	var evicted []string
	entries := u.entries()
	switch {
	case u.apic == nil:
		update = "SET #apic = :m"
		delete(names, "#f")
		vals[":m"] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{f.id: ddb.S(entry.String())}}
		cond += " AND attribute_not_exists(#apic)"
	case len(u.apic) < cfg.MaxClients:
		update = "SET #apic.#f = :e"
		vals[":e"] = ddb.S(entry.String())
		vals[":max"] = ddb.N(int64(cfg.MaxClients))
		cond += " AND size(#apic) < :max"
	default:
		// Dead entries first (made under an older credential version or
		// epoch, or past their absolute end), then the oldest live ones.
		drop := len(u.apic) - cfg.MaxClients + 1
		var dead, old []string
		for _, e := range entries {
			if !e.liveAt(u, now) {
				dead = append(dead, e.id)
			} else {
				old = append(old, e.id)
			}
		}
		for id := range u.apic {
			if _, ok := parseEntry(id, u.apic[id]); !ok {
				dead = append(dead, id) // unreadable: never trusted, dropped
			}
		}
		order := append(dead, old...)
		if drop > len(order) {
			drop = len(order)
		}
		// The list must be the one read: its size, and every entry this
		// write removes still in it. Two logins that read the same full
		// list would otherwise both pass the size check — the second
		// removing an entry the first already removed, and adding its
		// own: one client over the limit.
		update = "SET #apic.#f = :e REMOVE "
		for i, id := range order[:drop] {
			n := "#x" + strconv.Itoa(i)
			names[n] = id
			if i > 0 {
				update += ", "
			}
			update += "#apic." + n
			cond += " AND attribute_exists(#apic." + n + ")"
			if i >= len(dead) {
				evicted = append(evicted, id)
			}
		}
		vals[":e"] = ddb.S(entry.String())
		vals[":seen"] = ddb.N(int64(len(u.apic)))
		cond += " AND size(#apic) = :seen"
	}
	rh := refreshHash(key, f)
	fam := item{
		dynaguard.AttrPK:  ddb.S(familyPK(f.id)),
		attrUID:           ddb.S(f.uid),
		attrFamSecret:     ddb.B(familyHash(key, f.fid[:], f.fs[:])),
		attrRefresh:       ddb.B(rh),
		attrGen:           ddb.N(int64(f.gen)),
		attrCred:          ddb.N(f.cv),
		attrEpoch:         ddb.N(f.se),
		attrFamAt:         ddb.N(f.at),
		attrFamAbs:        ddb.N(abs.Unix()),
		attrRotatedAt:     ddb.N(now.Unix()),
		dynaguard.AttrTTL: ddb.TTLValue(minTime(now.Add(cfg.IdleLifetime), abs)),
	}
	items := []types.TransactWriteItem{
		{Update: &types.Update{TableName: st.name(), Key: ddb.Key(userPK(checked.ID)),
			UpdateExpression: aws.String(update), ConditionExpression: aws.String(cond),
			ExpressionAttributeNames: names, ExpressionAttributeValues: vals}},
		{Put: &types.Put{TableName: st.name(), Item: fam, ConditionExpression: aws.String("attribute_not_exists(#pk)"),
			ExpressionAttributeNames: map[string]string{"#pk": dynaguard.AttrPK}}},
	}
	for _, id := range evicted {
		items = append(items, types.TransactWriteItem{Delete: &types.Delete{TableName: st.name(), Key: ddb.Key(familyPK(id))}})
	}
	err := st.transact(ctx, items)
	var tc *dynaguard.TransactionCanceledError
	if errors.As(err, &tc) && tc.OnlyConditionsFailed() {
		// The account changed since the login read it: its password or
		// epoch (the password just checked may no longer be its own), its
		// state, or its client list (a concurrent login at the limit).
		return nil, ErrConflict
	}
	if err != nil {
		return nil, unavailable("TransactWriteItems", err)
	}
	return evicted, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// outcome is what a refresh's write decided.
type outcome uint8

const (
	rotated outcome = iota + 1
	inGrace         // the token rotated last, within the grace window
	reused          // a token of the family that is not the current one
	revoked         // no family (revoked, evicted, swept) or not named with its secret
	expired         // idle or absolute lifetime over
	changed         // the account's credentials, epoch or state changed, or it no longer lists the family
)

func (o outcome) String() string {
	switch o {
	case revoked:
		return "revoked"
	case expired:
		return "expired"
	case changed:
		return "credentials_changed"
	}
	return "malformed"
}

// rotateFamily is a refresh's one write: a TransactWriteItems of a
// ConditionCheck on the account and an Update of the family (see
// RefreshAPITokens). On success it returns the family at its new
// generation; a refusal is an outcome, decided from the items DynamoDB
// returns with the cancellation.
func (st *store) rotateFamily(ctx context.Context, t *family, keys []dynaguard.DerivedKey, cfg APITokenConfig, now time.Time) (*family, outcome, error) {
	n := t.next()
	fsIn, rhIn := "", ""
	vals := item{
		":uid": ddb.S(t.uid), ":g": ddb.N(int64(t.gen)), ":g1": ddb.N(int64(n.gen)),
		":cv": ddb.N(t.cv), ":se": ddb.N(t.se), ":at": ddb.N(t.at), ":now": ddb.NowValue(now),
		":rh": ddb.B(refreshHash(keys[0], n)),
		// The family's secret is hashed again under the current key, so
		// a family refreshed since a secret rotation outlives the
		// previous secret's removal from the keyring.
		":fsn": ddb.B(familyHash(keys[0], t.fid[:], t.fs[:])),
		":exp": ddb.TTLValue(minTime(now.Add(cfg.IdleLifetime), time.Unix(t.at, 0).Add(cfg.AbsoluteLifetime))),
	}
	for i, k := range keys {
		fk, rk := ":fs"+strconv.Itoa(i), ":rh"+strconv.Itoa(i)
		if i > 0 {
			fsIn += ", "
			rhIn += ", "
		}
		fsIn += fk
		rhIn += rk
		vals[fk] = ddb.B(familyHash(k, t.fid[:], t.fs[:]))
		vals[rk] = ddb.B(refreshHash(k, t))
	}
	famNames := ddb.ExprNames("#uid", attrUID, "#fs", attrFamSecret, "#rh", attrRefresh, "#g", attrGen,
		"#cv", attrCred, "#se", attrEpoch, "#cr", attrFamAt, "#abs", attrFamAbs, "#rat", attrRotatedAt, "#prh", attrPrevious)
	famCond := "attribute_exists(#pk) AND #uid = :uid AND #fs IN (" + fsIn + ") AND #rh IN (" + rhIn + ") AND #g = :g AND #cv = :cv AND #se = :se AND #cr = :at AND #abs > :now AND #ttl > :now"
	acctVals := item{":cv": ddb.N(t.cv), ":se": ddb.N(t.se)}
	items := []types.TransactWriteItem{
		{ConditionCheck: &types.ConditionCheck{TableName: st.name(), Key: ddb.Key(userPK(t.uid)),
			ConditionExpression:                 aws.String("attribute_exists(#apic.#f) AND #cv = :cv AND #se = :se AND attribute_not_exists(#dis)"),
			ExpressionAttributeNames:            map[string]string{"#apic": attrAPIClients, "#f": t.id, "#cv": attrCred, "#se": attrEpoch, "#dis": attrDisabled},
			ExpressionAttributeValues:           acctVals,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld}},
		{Update: &types.Update{TableName: st.name(), Key: ddb.Key(familyPK(t.id)),
			UpdateExpression:                    aws.String("SET #prh = #rh, #rh = :rh, #fs = :fsn, #g = :g1, #rat = :now, #ttl = :exp"),
			ConditionExpression:                 aws.String(famCond),
			ExpressionAttributeNames:            famNames,
			ExpressionAttributeValues:           vals,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld}},
	}
	err := st.transact(ctx, items)
	if err == nil {
		return n, rotated, nil
	}
	var tc *dynaguard.TransactionCanceledError
	if !errors.As(err, &tc) || !tc.OnlyConditionsFailed() || len(tc.Reasons) != 2 {
		return nil, 0, unavailable("TransactWriteItems", err)
	}
	if tc.ConditionFailed(1) {
		return nil, classifyFamily(tc.Reasons[1].Item, t, keys, cfg, now), nil
	}
	return nil, changed, nil
}

// classifyFamily says why the family's condition failed, from the item as
// it was.
func classifyFamily(it item, t *family, keys []dynaguard.DerivedKey, cfg APITokenConfig, now time.Time) outcome {
	if it == nil {
		return revoked
	}
	uid, _ := ddb.Str(it, attrUID)
	fs, _ := ddb.Bytes(it, attrFamSecret)
	holder := false
	for _, k := range keys {
		if hmacEqual(fs, familyHash(k, t.fid[:], t.fs[:])) {
			holder = true
		}
	}
	if uid != t.uid || !holder {
		// Not a token of this family: whoever made it knows at most the
		// family's public ID, and revokes nothing.
		return revoked
	}
	abs, _ := ddb.Int(it, attrFamAbs)
	if ddb.Expired(it, now) || now.Unix() >= abs {
		return expired
	}
	g, _ := ddb.Int(it, attrGen)
	rh, _ := ddb.Bytes(it, attrRefresh)
	current := false
	for _, k := range keys {
		if hmacEqual(rh, refreshHash(k, t)) {
			current = true
		}
	}
	switch {
	case current && uint64(g) == t.gen:
		// The current token, refused for its claims (credential version,
		// epoch, login time) — tampered with, or the account moved on.
		return changed
	case cfg.GraceWindow > 0 && uint64(g) == t.gen+1:
		// Only the very token rotated last, not any token a holder of
		// the family's secret could make up with its generation.
		prh, _ := ddb.Bytes(it, attrPrevious)
		rat, _ := ddb.Int(it, attrRotatedAt)
		for _, k := range keys {
			if hmacEqual(prh, refreshHash(k, t)) && now.Sub(time.Unix(rat, 0)) < cfg.GraceWindow {
				return inGrace
			}
		}
	}
	return reused
}

func hmacEqual(a, b []byte) bool {
	return len(a) == len(b) && len(a) > 0 && subtle.ConstantTimeCompare(a, b) == 1
}

// revokeFamily deletes family fid of account uid and removes it from the
// account's list, in one TransactWriteItems, so its access tokens stop at
// the next request. The family must be uid's; with secrets (a client's
// logout) it must also be named with its own secret; with mustExist it
// must still exist (of concurrent revocations after a reuse, one does it
// and tells the owner). errNoFamily otherwise, and nothing changes.
// Without mustExist (the owner's sessions page), an entry whose family
// item is already gone is removed too.
func (st *store) revokeFamily(ctx context.Context, uid, fid string, secrets [][]byte, mustExist bool) error {
	names := map[string]string{"#pk": dynaguard.AttrPK, "#uid": attrUID}
	vals := item{":uid": ddb.S(uid)}
	cond := "attribute_not_exists(#pk) OR #uid = :uid"
	if mustExist {
		cond = "attribute_exists(#pk) AND #uid = :uid"
	}
	if secrets != nil {
		in := ""
		for i, h := range secrets {
			k := ":fs" + strconv.Itoa(i)
			if i > 0 {
				in += ", "
			}
			in += k
			vals[k] = ddb.B(h)
		}
		names["#fs"] = attrFamSecret
		cond = "attribute_exists(#pk) AND #uid = :uid AND #fs IN (" + in + ")"
	}
	items := []types.TransactWriteItem{
		{Delete: &types.Delete{TableName: st.name(), Key: ddb.Key(familyPK(fid)),
			ConditionExpression: aws.String(cond), ExpressionAttributeNames: names, ExpressionAttributeValues: vals}},
		{Update: &types.Update{TableName: st.name(), Key: ddb.Key(userPK(uid)),
			UpdateExpression:         aws.String("REMOVE #apic.#f"),
			ConditionExpression:      aws.String("attribute_exists(#pk) AND attribute_exists(#apic)"),
			ExpressionAttributeNames: map[string]string{"#pk": dynaguard.AttrPK, "#apic": attrAPIClients, "#f": fid}}},
	}
	err := st.transact(ctx, items)
	var tc *dynaguard.TransactionCanceledError
	if errors.As(err, &tc) && tc.OnlyConditionsFailed() {
		// Another account's family, not named with its secret, or an
		// account with no list (whose families can no longer refresh:
		// the account check of every refresh needs the entry; TTL sweeps
		// them).
		return errNoFamily
	}
	if err != nil {
		return unavailable("TransactWriteItems", err)
	}
	return nil
}
