package users

// DynamoDB access for passkeys.
//
//	pkey#<h(credential ID)>   the credential, and its uniqueness marker (claimed with attribute_not_exists
//	                          when it is registered); no ttl
//	    uid                   the account
//	    pub                   the COSE public key
//	    aag                   the authenticator's AAGUID (16 bytes)
//	    tr                    string set: transports the browser reported (absent: none)
//	    sc                    the signature counter of the last accepted assertion (0: counter-less)
//	    be, bs                backup eligible / backed up, as of the last use
//	    name                  the owner's label
//	    created, lu           registration / last accepted assertion, Unix seconds
//	    cl, clat              cloned mark and when it was set: refused from then on
//	pkey#ch#<h(nonce)>        a used challenge (ttl: the challenge's expiry + 5 min)
//	user#<id>
//	    uh                    the account's WebAuthn user handle: 32 random bytes
//	    pks                   string set: the h(credential ID) of the account's passkeys (at most MaxPerAccount)
//
// h is HMAC-SHA256 under the keyring's "passkey-credential" purpose, in
// base64url: a table dump shows no credential ID, and no one without the
// secret can tell which credential an item is. Lookups try every key of
// the purpose (all in the one BatchGetItem a lookup makes anyway), so
// rotating the secret keeps passkeys working; registration claims the
// current key's hash and checks that no older key's hash exists. The
// first accepted assertion of a credential found under an older key's
// hash moves it to the current key's, in the write that accepts it
// (usePasskey). A credential not used since then is still under the
// older hash: a secret is dropped from the keyring only once its
// passkeys have moved, or those passkeys stop signing in (their owners
// sign in otherwise and register them again).
//
// The account's list is authoritative: a credential item whose hash the
// account no longer lists is refused. A reset that reclaims the account
// removes the list and deletes the listed items in one transaction, and
// account deletion deletes the listed items in its own.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
)

const (
	attrHandle    = "uh"
	attrPasskeys  = "pks"
	attrPub       = "pub"
	attrAAGUID    = "aag"
	attrTransport = "tr"
	attrCounter   = "sc"
	attrBE        = "be"
	attrBS        = "bs"
	attrName      = "name"
	attrLastUsed  = "lu"
	attrCloned    = "cl"
	attrClonedAt  = "clat"
)

// credential is a stored passkey credential.
type credential struct {
	pk         string
	uid        string
	pub        []byte
	aaguid     []byte
	transports []string
	counter    uint32
	be, bs     bool
	name       string
	created    int64
	lastUsed   int64
	cloned     bool
}

func credentialHash(key dynaguard.DerivedKey, credID []byte) string {
	m := hmac.New(sha256.New, key.Secret)
	m.Write([]byte("dynaguard passkey credential v1\x00"))
	m.Write(credID)
	return b64u.EncodeToString(m.Sum(nil))
}

// credentialPKs returns the keys a credential ID may be stored under,
// the current key's first.
func (s *Users) credentialPKs(credID []byte) []string {
	keys := s.keys.Keys(purposePasskeyID)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = dynaguard.PrefixPasskey + credentialHash(k, credID)
	}
	return out
}

// passkeyID is a credential item's key without its prefix: the ID
// Passkey.ID shows, and what the account's list holds.
func passkeyID(pk string) string { return pk[len(dynaguard.PrefixPasskey):] }

func passkeyPK(id string) string { return dynaguard.PrefixPasskey + id }

// validPasskeyID reports whether id has the form of a credential hash.
func validPasskeyID(id string) bool {
	if len(id) != b64u.EncodedLen(sha256.Size) {
		return false
	}
	_, err := b64u.DecodeString(id)
	return err == nil
}

func decodeCredential(it item) (credential, bool) {
	var c credential
	var ok1, ok2 bool
	c.pk, _ = ddb.Str(it, dynaguard.AttrPK)
	c.uid, ok1 = ddb.Str(it, attrUID)
	c.pub, ok2 = ddb.Bytes(it, attrPub)
	if !ok1 || !ok2 || c.uid == "" || len(c.pub) == 0 {
		return credential{}, false
	}
	c.aaguid, _ = ddb.Bytes(it, attrAAGUID)
	if ss, ok := it[attrTransport].(*types.AttributeValueMemberSS); ok {
		c.transports = ss.Value
	}
	n, _ := ddb.Int(it, attrCounter)
	if n < 0 || n > int64(^uint32(0)) {
		return credential{}, false
	}
	c.counter = uint32(n)
	c.be, _ = ddb.BoolAttr(it, attrBE)
	c.bs, _ = ddb.BoolAttr(it, attrBS)
	c.name, _ = ddb.Str(it, attrName)
	c.created, _ = ddb.Int(it, attrCreated)
	c.lastUsed, _ = ddb.Int(it, attrLastUsed)
	c.cloned, _ = ddb.BoolAttr(it, attrCloned)
	return c, true
}

// decodePasskeys reads the account's passkey attributes into u.
func decodePasskeys(it item, u *User) {
	u.handle, _ = ddb.Bytes(it, attrHandle)
	if ss, ok := it[attrPasskeys].(*types.AttributeValueMemberSS); ok {
		u.passkeys = ss.Value
	}
	u.Passkeys = len(u.passkeys)
}

// listsPasskey reports whether u's list holds the credential stored at pk.
func (u *User) listsPasskey(pk string) bool {
	return slices.Contains(u.passkeys, passkeyID(pk))
}

// passkeyOutcome is how the one write of an accepted assertion ended.
type passkeyOutcome int

const (
	passkeyUsed        passkeyOutcome = iota + 1
	passkeyReplayed                   // the challenge was used already
	passkeyGone                       // the credential was removed (or is another account's)
	passkeyCloned                     // already marked cloned
	passkeyRegressed                  // its counter did not advance: a clone
	passkeyBackupFlags                // its stored backup eligibility is not the presented one
	passkeyOverlapped                 // its counter is below one accepted after this challenge was issued
)

// usePasskey accepts an assertion in one TransactWriteItems: the
// challenge's marker (attribute_not_exists) and the credential's counter,
// last use and backup state, on condition that the credential is still
// uid's, not marked cloned, that its backup eligibility is the one stored
// (BE never changes for a credential: WebAuthn L3 §6.1.3), and that the
// counter advances (new > stored; 0 stays allowed only while both are 0,
// for authenticators without a counter). Of any number of submissions of
// one response, or of two responses with one counter, on any number of
// instances, one wins.
//
// move, when set, also moves the credential from the hash of an older key
// of its purpose to the current key's (move.to), in the same transaction:
// the old item is deleted on the conditions above instead of updated, the
// new one is put (attribute_not_exists) with the advanced state, and the
// account's list swaps the two IDs on condition that it still lists
// exactly what move.u lists. A credential used after a rotation thus
// leaves the old key's hash, with no extra call; ErrConflict if the
// account's list changed meanwhile.
//
// issued is when the presented assertion's challenge was issued: a counter
// below the stored one, when the stored one was accepted after that
// challenge was issued (the two ceremonies overlapped), is passkeyOverlapped
// rather than a clone — see acceptAssertion.
func (st *store) usePasskey(ctx context.Context, marker string, markerTTL time.Time, pk, uid string, counter uint32, be, bs bool, now time.Time, move *passkeyMove, issued time.Time) (passkeyOutcome, error) {
	counterCond := "#sc < :sc"
	if counter == 0 {
		counterCond = "#sc = :sc"
	}
	cond := "#uid = :uid AND attribute_not_exists(#cl) AND #be = :be AND " + counterCond
	names := map[string]string{"#sc": attrCounter, "#be": attrBE, "#uid": attrUID, "#cl": attrCloned}
	vals := item{":sc": ddb.N(int64(counter)), ":be": ddb.Bool(be), ":uid": ddb.S(uid)}
	items := []types.TransactWriteItem{
		{Put: &types.Put{
			TableName:                st.name(),
			Item:                     item{dynaguard.AttrPK: ddb.S(marker), dynaguard.AttrTTL: ddb.TTLValue(markerTTL)},
			ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
			ExpressionAttributeNames: map[string]string{"#pk": dynaguard.AttrPK},
		}},
	}
	if move == nil {
		names["#lu"], names["#bs"] = attrLastUsed, attrBS
		vals[":now"], vals[":bs"] = ddb.N(now.Unix()), ddb.Bool(bs)
		items = append(items, types.TransactWriteItem{Update: &types.Update{
			TableName:                           st.name(),
			Key:                                 ddb.Key(pk),
			UpdateExpression:                    aws.String("SET #sc = :sc, #lu = :now, #bs = :bs"),
			ConditionExpression:                 aws.String(cond),
			ExpressionAttributeNames:            names,
			ExpressionAttributeValues:           vals,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}})
	} else {
		moved := move.cred
		moved.pk, moved.counter, moved.bs, moved.lastUsed = move.to, counter, bs, now.Unix()
		lcond, lnames, lvals := passkeysUnchanged(move.u)
		lnames["#pk"] = dynaguard.AttrPK
		lvals[":new"] = &types.AttributeValueMemberSS{Value: move.list}
		items = append(items,
			types.TransactWriteItem{Delete: &types.Delete{
				TableName:                           st.name(),
				Key:                                 ddb.Key(pk),
				ConditionExpression:                 aws.String(cond),
				ExpressionAttributeNames:            names,
				ExpressionAttributeValues:           vals,
				ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
			}},
			types.TransactWriteItem{Put: &types.Put{
				TableName:                st.name(),
				Item:                     credentialItem(moved, uid),
				ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
				ExpressionAttributeNames: map[string]string{"#pk": dynaguard.AttrPK},
			}},
			types.TransactWriteItem{Update: &types.Update{
				TableName:                 st.name(),
				Key:                       ddb.Key(userPK(uid)),
				UpdateExpression:          aws.String("SET #pks = :new"),
				ConditionExpression:       aws.String("attribute_exists(#pk) AND " + lcond),
				ExpressionAttributeNames:  lnames,
				ExpressionAttributeValues: lvals,
			}})
	}
	err := st.transact(ctx, items)
	if err == nil {
		return passkeyUsed, nil
	}
	var tc *dynaguard.TransactionCanceledError
	if !errors.As(err, &tc) || !tc.OnlyConditionsFailed() || len(tc.Reasons) < len(items) {
		// A cancellation that does not name a reason per item cannot be
		// read: fail closed, as a storage failure.
		return 0, unavailable("TransactWriteItems", err)
	}
	switch old := tc.Reasons[1].Item; {
	case tc.ConditionFailed(0):
		// The marker decides first: a replayed response carries the counter
		// it was accepted with, which must not brand the credential a clone.
		return passkeyReplayed, nil
	case !tc.ConditionFailed(1):
		// Only a move's put or list swap failed: the account's passkeys
		// changed meanwhile (or another instance moved this one).
		return 0, ErrConflict
	case old == nil:
		return passkeyGone, nil
	default:
		c, ok := decodeCredential(old)
		switch {
		case !ok || c.uid != uid:
			return passkeyGone, nil
		case c.cloned:
			return passkeyCloned, nil
		case c.be != be:
			// Checked before the write too (verifyAssertion); here when the
			// stored flag changed in between, which it never does.
			return passkeyBackupFlags, nil
		case counter > 0 && counter < c.counter && issued.Unix() < c.lastUsed:
			return passkeyOverlapped, nil
		}
		return passkeyRegressed, nil
	}
}

// markCloned marks a credential cloned, once, and ends every session of
// its account in the same TransactWriteItems (the session epoch and item
// version go up): a session a clone signed in with must not outlive the
// mark. ok is true for the write that set the mark (which notifies the
// owner), false when it was set already or the credential is gone.
func (st *store) markCloned(ctx context.Context, pk, uid string, now time.Time) (bool, error) {
	items := []types.TransactWriteItem{
		{Update: &types.Update{
			TableName:                 st.name(),
			Key:                       ddb.Key(pk),
			UpdateExpression:          aws.String("SET #cl = :t, #clat = :now"),
			ConditionExpression:       aws.String("#uid = :uid AND attribute_not_exists(#cl)"),
			ExpressionAttributeNames:  map[string]string{"#cl": attrCloned, "#clat": attrClonedAt, "#uid": attrUID},
			ExpressionAttributeValues: item{":t": ddb.Bool(true), ":now": ddb.N(now.Unix()), ":uid": ddb.S(uid)},
		}},
		{Update: &types.Update{
			TableName:                 st.name(),
			Key:                       ddb.Key(userPK(uid)),
			UpdateExpression:          aws.String("SET #se = #se + :one, #ver = #ver + :one"),
			ConditionExpression:       aws.String("attribute_exists(#pk)"),
			ExpressionAttributeNames:  map[string]string{"#pk": dynaguard.AttrPK, "#se": attrEpoch, "#ver": attrVersion},
			ExpressionAttributeValues: item{":one": ddb.N(1)},
		}},
	}
	err := st.transact(ctx, items)
	var tc *dynaguard.TransactionCanceledError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &tc) && tc.OnlyConditionsFailed():
		return false, nil
	}
	return false, unavailable("TransactWriteItems", err)
}

// credentialItem is the stored form of credential c of account uid (a
// cloned mark is never written this way).
func credentialItem(c credential, uid string) item {
	cred := item{
		dynaguard.AttrPK: ddb.S(c.pk),
		attrUID:          ddb.S(uid),
		attrPub:          ddb.B(c.pub),
		attrAAGUID:       ddb.B(c.aaguid),
		attrCounter:      ddb.N(int64(c.counter)),
		attrBE:           ddb.Bool(c.be),
		attrBS:           ddb.Bool(c.bs),
		attrCreated:      ddb.N(c.created),
	}
	if len(c.transports) > 0 {
		cred[attrTransport] = &types.AttributeValueMemberSS{Value: c.transports}
	}
	if c.name != "" {
		cred[attrName] = ddb.S(c.name)
	}
	if c.lastUsed != 0 {
		cred[attrLastUsed] = ddb.N(c.lastUsed)
	}
	return cred
}

// passkeyMove is a credential found under an older key's hash, to be
// moved to the current key's (to) by the write that accepts it.
type passkeyMove struct {
	to   string
	cred credential
	u    *User
	list []string // u's list with the credential's ID swapped for its new one
}

// newPasskeyMove moves credential c of account u to the key to.
func newPasskeyMove(c credential, u *User, to string) *passkeyMove {
	list := slices.Clone(u.passkeys)
	for i, id := range list {
		if id == passkeyID(c.pk) {
			list[i] = passkeyID(to)
		}
	}
	return &passkeyMove{to: to, cred: c, u: u, list: list}
}

// registerPasskey adds c to account u in one TransactWriteItems: the
// challenge's marker, the credential's item (attribute_not_exists: no
// credential belongs to two accounts, nor twice to one), the account's
// list and user handle — on condition that the account is still at the
// credential version and session epoch the proof was checked against, not
// disabled, under max passkeys, and without another user handle — and, for
// each older key of the purpose, a check that the credential is not stored
// under that key's hash either.
func (st *store) registerPasskey(ctx context.Context, marker string, markerTTL time.Time, u *User, c credential, handle []byte, older []string, max int) error {
	cred := credentialItem(c, u.ID)
	notExists := aws.String("attribute_not_exists(#pk)")
	pkName := map[string]string{"#pk": dynaguard.AttrPK}
	items := []types.TransactWriteItem{
		{Put: &types.Put{TableName: st.name(), ConditionExpression: notExists, ExpressionAttributeNames: pkName,
			Item: item{dynaguard.AttrPK: ddb.S(marker), dynaguard.AttrTTL: ddb.TTLValue(markerTTL)}}},
		{Put: &types.Put{TableName: st.name(), Item: cred, ConditionExpression: notExists, ExpressionAttributeNames: pkName}},
		{Update: &types.Update{
			TableName:        st.name(),
			Key:              ddb.Key(userPK(u.ID)),
			UpdateExpression: aws.String("SET #uh = :uh ADD #pks :id"),
			ConditionExpression: aws.String("attribute_exists(#pk) AND #cv = :cv AND #se = :se AND attribute_not_exists(#dis)" +
				" AND (attribute_not_exists(#uh) OR #uh = :uh) AND (attribute_not_exists(#pks) OR size(#pks) < :max)"),
			ExpressionAttributeNames: map[string]string{"#pk": dynaguard.AttrPK, "#uh": attrHandle, "#pks": attrPasskeys,
				"#cv": attrCred, "#se": attrEpoch, "#dis": attrDisabled},
			ExpressionAttributeValues: item{":uh": ddb.B(handle), ":id": &types.AttributeValueMemberSS{Value: []string{passkeyID(c.pk)}},
				":cv": ddb.N(u.credVersion), ":se": ddb.N(u.epoch), ":max": ddb.N(int64(max))},
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}},
	}
	for _, pk := range older {
		items = append(items, types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
			TableName: st.name(), Key: ddb.Key(pk), ConditionExpression: notExists, ExpressionAttributeNames: pkName}})
	}
	err := st.transact(ctx, items)
	if err == nil {
		return nil
	}
	var tc *dynaguard.TransactionCanceledError
	if !errors.As(err, &tc) || !tc.OnlyConditionsFailed() || len(tc.Reasons) < len(items) {
		return unavailable("TransactWriteItems", err)
	}
	switch {
	case tc.ConditionFailed(0):
		return errChallengeUsed
	case tc.ConditionFailed(2):
		if old := tc.Reasons[2].Item; old != nil {
			if ss, ok := old[attrPasskeys].(*types.AttributeValueMemberSS); ok && len(ss.Value) >= max {
				return ErrTooManyPasskeys
			}
		}
		return ErrConflict
	}
	return &passkeyRefused{reason: "taken", cause: ErrPasskeyTaken}
}

// errChallengeUsed: the challenge's marker exists (a replayed response).
var errChallengeUsed = errors.New("users: passkey challenge already used")

// removePasskey deletes u's credential pk and takes it off the account's
// list in one TransactWriteItems that also raises the session epoch and
// the item version — on condition that the epoch is still u's — so that
// every session the passkey signed in ends with it; it returns the
// account as the write left it. ErrConflict: the epoch moved meanwhile.
func (st *store) removePasskey(ctx context.Context, u *User, pk string) (*User, error) {
	id := passkeyID(pk)
	items := []types.TransactWriteItem{
		{Delete: &types.Delete{
			TableName:                 st.name(),
			Key:                       ddb.Key(pk),
			ConditionExpression:       aws.String("#uid = :uid"),
			ExpressionAttributeNames:  map[string]string{"#uid": attrUID},
			ExpressionAttributeValues: item{":uid": ddb.S(u.ID)},
		}},
		{Update: &types.Update{
			TableName:                st.name(),
			Key:                      ddb.Key(userPK(u.ID)),
			UpdateExpression:         aws.String("SET #se = #se + :one, #ver = #ver + :one DELETE #pks :id"),
			ConditionExpression:      aws.String("contains(#pks, :idv) AND #se = :se"),
			ExpressionAttributeNames: map[string]string{"#pks": attrPasskeys, "#se": attrEpoch, "#ver": attrVersion},
			ExpressionAttributeValues: item{":id": &types.AttributeValueMemberSS{Value: []string{id}}, ":idv": ddb.S(id),
				":se": ddb.N(u.epoch), ":one": ddb.N(1)},
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}},
	}
	err := st.transact(ctx, items)
	var tc *dynaguard.TransactionCanceledError
	switch {
	case err == nil:
		updated := *u
		updated.epoch++
		updated.version++
		updated.passkeys = slices.DeleteFunc(slices.Clone(u.passkeys), func(s string) bool { return s == id })
		updated.Passkeys = len(updated.passkeys)
		return &updated, nil
	case errors.As(err, &tc) && tc.OnlyConditionsFailed() && len(tc.Reasons) >= len(items):
		if !tc.ConditionFailed(0) && tc.ConditionFailed(1) {
			if old := tc.Reasons[1].Item; old != nil {
				if ss, ok := old[attrPasskeys].(*types.AttributeValueMemberSS); ok && slices.Contains(ss.Value, id) {
					return nil, ErrConflict // still listed: the epoch moved
				}
			}
		}
		return nil, ErrPasskeyNotFound
	}
	return nil, unavailable("TransactWriteItems", err)
}

// renamePasskey sets the label of u's credential pk.
func (st *store) renamePasskey(ctx context.Context, uid, pk, name string) error {
	in := &dynamodb.UpdateItemInput{
		TableName:                 st.name(),
		Key:                       ddb.Key(pk),
		UpdateExpression:          aws.String("SET #name = :name"),
		ConditionExpression:       aws.String("#uid = :uid"),
		ExpressionAttributeNames:  map[string]string{"#name": attrName, "#uid": attrUID},
		ExpressionAttributeValues: item{":name": ddb.S(name), ":uid": ddb.S(uid)},
	}
	if name == "" {
		in.UpdateExpression = aws.String("REMOVE #name")
		delete(in.ExpressionAttributeValues, ":name")
	}
	_, err := st.tbl.Client.UpdateItem(ctx, in)
	switch {
	case err == nil:
		return nil
	case dynaguard.IsConditionFailed(err):
		return ErrPasskeyNotFound
	}
	return unavailable("UpdateItem", err)
}

// passkeyDeletes are the deletes of u's credential items that account
// deletion adds to its transaction: each on condition that it is u's, or
// already gone.
func (st *store) passkeyDeletes(u *User) []types.TransactWriteItem {
	out := make([]types.TransactWriteItem, 0, len(u.passkeys))
	for _, id := range u.passkeys {
		out = append(out, types.TransactWriteItem{Delete: &types.Delete{
			TableName:                 st.name(),
			Key:                       ddb.Key(passkeyPK(id)),
			ConditionExpression:       aws.String("attribute_not_exists(#pk) OR #uid = :uid"),
			ExpressionAttributeNames:  map[string]string{"#pk": dynaguard.AttrPK, "#uid": attrUID},
			ExpressionAttributeValues: item{":uid": ddb.S(u.ID)},
		}})
	}
	return out
}

// passkeysUnchanged is a condition that the account still lists exactly
// the passkeys u lists (its list changes without a new item version), so
// that account deletion deletes every credential item of the account.
func passkeysUnchanged(u *User) (string, map[string]string, item) {
	names := map[string]string{"#pks": attrPasskeys}
	vals := item{}
	if len(u.passkeys) == 0 {
		return "attribute_not_exists(#pks)", names, vals
	}
	cond := "size(#pks) = :npks"
	vals[":npks"] = ddb.N(int64(len(u.passkeys)))
	for i, id := range u.passkeys {
		v := ":pk" + strconv.Itoa(i)
		cond += " AND contains(#pks, " + v + ")"
		vals[v] = ddb.S(id)
	}
	return cond, names, vals
}
