package users

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/internal/webauthntest"
)

// A thief who signed in with the owner's passkey loses the session when
// the owner removes the passkey; the owner's own session continues.
func TestPasskeyRemovalEndsItsSessions(t *testing.T) {
	t.Parallel()
	p := newPK(t)
	abe, owner, cred := p.setUp()
	thief := newPKBrowser(t, "203.0.113.66")
	if err := p.signIn(thief, cred, webauthntest.Options{}); err != nil {
		t.Fatal(err)
	}
	if thief.me(p.users, p.sm) != abe.ID {
		t.Fatal("the thief is not signed in")
	}
	// The session store's revocation is best effort (it may fail, as here):
	// the raised session epoch is what ends the thief's session.
	p.faults.Fail("Query", ddbtest.InternalError)
	owner.run(p.users, p.sm, func(ctx context.Context) {
		cur, _ := FromContext(ctx)
		if err := p.users.RemovePasskey(ctx, p.sm, cur, pw, abe.passkeys[0], owner.client()); err != nil {
			t.Fatalf("remove: %v", err)
		}
	})
	p.faults.Clear()
	if id := thief.me(p.users, p.sm); id != "" {
		t.Fatal("the session the removed passkey signed in survived its removal")
	}
	if owner.me(p.users, p.sm) != abe.ID {
		t.Fatal("the owner's session ended")
	}
	if got := mustGet(t, p.env, abe.ID); got.epoch != abe.epoch+1 || got.Passkeys != 0 {
		t.Fatalf("after removal: epoch %d (was %d), %d passkeys", got.epoch, abe.epoch, got.Passkeys)
	}
}

// The session a clone signed in with ends when the credential is marked
// cloned.
func TestPasskeyCloneMarkEndsSessions(t *testing.T) {
	t.Parallel()
	p := newPK(t)
	abe, owner, cred := p.setUp()
	clone := newPKBrowser(t, "203.0.113.66")
	if err := p.signIn(clone, cred, webauthntest.Options{Counter: webauthntest.Counter(50)}); err != nil {
		t.Fatal(err)
	}
	if clone.me(p.users, p.sm) != abe.ID {
		t.Fatal("the clone is not signed in")
	}
	genuine := newPKBrowser(t, "192.0.2.1")
	resp := p.signInResponse(genuine, cred, webauthntest.Options{Counter: webauthntest.Counter(3)})
	p.faults.Fail("Query", ddbtest.InternalError) // the session store's revocation fails: the epoch decides
	_, err := p.finishSignIn(p.users, genuine, resp)
	p.faults.Clear()
	if !errors.Is(err, ErrPasskeyCloned) {
		t.Fatalf("regressed counter: %v", err)
	}
	if clone.me(p.users, p.sm) != "" {
		t.Fatal("the clone's session survived the cloned mark")
	}
	if owner.me(p.users, p.sm) != "" {
		t.Fatal("a session survived the cloned mark")
	}
}

// BE is fixed for a credential's life and BS needs BE (WebAuthn L3
// §6.1.3): an assertion that says otherwise is refused, counted as a
// failure, and does not brand the credential cloned.
func TestPasskeyBackupFlags(t *testing.T) {
	t.Parallel()
	var log eventLog
	p := newPK(t, log.config)
	p.create("abe@example.com", "abe")
	b := newPKBrowser(t, "192.0.2.1")
	b.login(p.users, p.sm, "abe")
	single, err := p.register(b, "key", webauthntest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	synced, err := p.register(b, "synced", webauthntest.Options{Packed: true, BackupEligible: true, BackedUp: true})
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		cred *webauthntest.Credential
		o    webauthntest.Options
	}{
		"BE appears":     {single, webauthntest.Options{BackupEligible: true}},
		"BS without BE":  {single, webauthntest.Options{BackedUp: true}},
		"BE disappears":  {synced, webauthntest.Options{}},
		"BS without BE'": {synced, webauthntest.Options{BackedUp: true}},
	} {
		if err := p.signIn(b, c.cred, c.o); !errors.Is(err, ErrInvalidPasskey) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if n := log.count(dynaguard.EventPasskeyRefused, "backup_flags"); n != 4 {
		t.Errorf("%d passkey.refused backup_flags events, want 4", n)
	}
	// Unchanged flags still sign in, BS may come and go: nothing is cloned.
	for _, c := range []struct {
		cred *webauthntest.Credential
		o    webauthntest.Options
	}{{single, webauthntest.Options{}}, {synced, webauthntest.Options{BackupEligible: true}}, {synced, webauthntest.Options{BackupEligible: true, BackedUp: true}}} {
		if err := p.signIn(b, c.cred, c.o); err != nil {
			t.Fatalf("%+v: %v", c.o, err)
		}
	}
	// The write's own condition: a BE that differs from the stored one is
	// not taken for a regressed counter.
	u := mustGet(t, p.env, mustGetLogin(t, p, "abe"))
	pk := passkeyPK(u.passkeys[0])
	outcomes := map[passkeyOutcome]int{}
	for i, be := range []bool{true, false} {
		out, err := p.users.st.usePasskey(ctx, dynaguard.PrefixPasskey+"ch#test"+strconv.Itoa(i),
			p.clock.Now().Add(5*time.Minute), pk, u.ID, 1<<30, be, false, p.clock.Now(), nil, p.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		outcomes[out]++
	}
	if outcomes[passkeyUsed] != 1 || outcomes[passkeyBackupFlags] != 1 {
		t.Fatalf("usePasskey outcomes %v", outcomes)
	}
	for _, pk := range []string{passkeyPK(u.passkeys[0]), passkeyPK(u.passkeys[1])} {
		if it := getItem(t, p, pk); it[attrCloned] != nil {
			t.Fatalf("%s marked cloned by a backup-flag mismatch", pk)
		}
	}
}

// A reclaiming reset deletes the credential items of the passkeys it
// drops; nothing of them is left after the account is deleted either.
func TestPasskeyReclaimDeletesCredentialItems(t *testing.T) {
	t.Parallel()
	p := newPK(t)
	abe, _, _ := p.setUp()
	if abe.EmailVerified {
		t.Fatal("accounts start verified: no reclaiming reset to test")
	}
	if _, err := p.users.ResetPassword(ctx, p.resetToken("abe@example.com"), newPassword); err != nil {
		t.Fatal(err)
	}
	if n := credentialItems(t, p); n != 0 {
		t.Fatalf("%d credential items after the reclaiming reset", n)
	}
	if err := p.users.Delete(ctx, mustGet(t, p.env, abe.ID)); err != nil {
		t.Fatal(err)
	}
	if n := credentialItems(t, p); n != 0 {
		t.Fatalf("%d credential items after deletion", n)
	}
}

// A passkey registered between a reclaiming reset's read of the account and
// its write must not lose its place on the account's list (an unlisted
// credential item would be refused, never deleted with the account, and
// would hold its credential ID forever): the reset's write is conditioned
// on the passkeys it read — here none — and fails closed.
func TestPasskeyReclaimRacesRegistration(t *testing.T) {
	t.Parallel()
	p := newPK(t)
	abe := p.create("abe@example.com", "abe")
	if abe.EmailVerified {
		t.Skip("accounts start verified: no reclaiming reset to race")
	}
	b := newPKBrowser(t, "192.0.2.1")
	b.login(p.users, p.sm, "abe")
	token := p.resetToken("abe@example.com")
	inner := p.faults.API
	p.faults.API = &beforeReset{API: inner, hook: func() {
		p.faults.API = inner // the registration's own calls go straight through
		if _, err := p.register(b, "late", webauthntest.Options{}); err != nil {
			t.Errorf("register during the reset: %v", err)
		}
	}}
	defer func() { p.faults.API = inner }()
	if _, err := p.users.ResetPassword(ctx, token, newPassword); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("the reset of an account that gained a passkey since it was read: %v", err)
	}
	u := mustGet(t, p.env, abe.ID)
	if len(u.passkeys) != 1 || credentialItems(t, p) != 1 {
		t.Fatalf("listed %d passkeys, %d credential items: want the new one listed", len(u.passkeys), credentialItems(t, p))
	}
}

// beforeReset runs hook once, just before a password reset's write of the
// account.
type beforeReset struct {
	dynaguard.API
	hook func()
}

func (r *beforeReset) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if strings.Contains(aws.ToString(in.UpdateExpression), "#ph = :ph") && r.hook != nil {
		h := r.hook
		r.hook = nil
		h()
	}
	return r.API.UpdateItem(ctx, in, opts...)
}

func credentialItems(t *testing.T, p *pk) int {
	n := 0
	for _, it := range ddbtest.Scan(t, p.base) {
		if pk := it[dynaguard.AttrPK]; strings.HasPrefix(pk, dynaguard.PrefixPasskey) && !strings.HasPrefix(pk, dynaguard.PrefixPasskey+"ch#") {
			n++
		}
	}
	return n
}

func getItem(t *testing.T, p *pk, key string) item {
	t.Helper()
	out, err := p.base.Client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(p.base.Name), Key: map[string]types.AttributeValue{dynaguard.AttrPK: &types.AttributeValueMemberS{Value: key}}, ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

// shortReasons answers every TransactWriteItems with a cancellation that
// names fewer reasons than the transaction has items.
type shortReasons struct{ dynaguard.API }

func (s shortReasons) TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	return nil, &types.TransactionCanceledException{Message: aws.String("injected"),
		CancellationReasons: []types.CancellationReason{{Code: aws.String("ConditionalCheckFailed")}}}
}

// A cancellation with fewer reasons than items fails closed as a storage
// failure: no panic, no sign-in, no registration.
func TestPasskeyShortCancellationReasons(t *testing.T) {
	p := newPK(t)
	_, b, cred := p.setUp()
	resp := p.signInResponse(b, cred, webauthntest.Options{})
	inner := p.faults.API
	p.faults.API = shortReasons{inner}
	defer func() { p.faults.API = inner }()
	if u, err := p.finishSignIn(p.users, b, resp); u != nil || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("sign-in: %v, %v", u, err)
	}
	p.faults.API = inner
	opts := p.begin(b, func(ctx context.Context, u *User) ([]byte, error) {
		return p.users.BeginPasskeyRegistration(ctx, p.sm, u)
	})
	reg, _, err := p.auth.Create(opts, webauthntest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p.faults.API = shortReasons{inner}
	if err := p.finishRegistration(b, reg, "second"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("registration: %v", err)
	}
}

// Format characters (U+202E and the like) are refused in passkey names.
func TestPasskeyNameFormatCharacters(t *testing.T) {
	for _, name := range []string{"laptop\u202egnp.exe", "a\u200db", "\ufeffkey"} {
		if err := checkPasskeyName(name); !errors.Is(err, ErrInvalidIdentifier) {
			t.Errorf("%q: %v", name, err)
		}
	}
	if err := checkPasskeyName("Clé de Zoë 🔑"); err != nil {
		t.Errorf("a plain name refused: %v", err)
	}
}

// After a rotation, the first accepted assertion moves the credential to
// the current key's hash in its one write: the old secret can then go.
func TestPasskeyMovedToCurrentKey(t *testing.T) {
	t.Parallel()
	p := newPK(t)
	abe, _, cred := p.setUp()
	oldPK := passkeyPK(abe.passkeys[0])
	withKeys := func(current []byte, previous ...[]byte) *Users {
		cfg := p.cfg
		cfg.Keys = keyring(t, current, previous...)
		cfg.Sessions = p.store
		u, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	rotated := withKeys(secretB, secretA)
	b := newPKBrowser(t, "198.51.100.7")
	signIn := func(users *Users) error {
		opts := p.begin(b, func(ctx context.Context, _ *User) ([]byte, error) { return users.BeginPasskeyLogin(ctx, p.sm) })
		resp, _ := p.auth.Get(opts, cred, webauthntest.Options{})
		_, err := p.finishSignIn(users, b, resp)
		return err
	}
	p.rec.Reset()
	if err := signIn(rotated); err != nil {
		t.Fatalf("sign-in after rotation: %v", err)
	}
	// The move costs no call: the same three as any sign-in.
	if r, g, w := p.rec.Count("BatchGetItem"), p.rec.Count("GetItem"), p.rec.Count("TransactWriteItems"); r != 1 || g != 1 || w != 1 {
		t.Errorf("sign-in with a move: %d BatchGetItem, %d GetItem, %d TransactWriteItems", r, g, w)
	}
	newPK := rotated.credentialPKs(cred.ID)[0]
	if newPK == oldPK {
		t.Fatal("the rotated keyring hashes as the old one")
	}
	if getItem(t, p, oldPK) != nil {
		t.Error("the old key's item is still there")
	}
	moved := getItem(t, p, newPK)
	if c, ok := decodeCredential(moved); !ok || c.uid != abe.ID || c.name != "laptop" || c.counter == 0 || c.lastUsed == 0 {
		t.Fatalf("moved item %+v", c)
	}
	got := mustGet(t, p.env, abe.ID)
	if len(got.passkeys) != 1 || got.passkeys[0] != passkeyID(newPK) {
		t.Fatalf("account lists %v", got.passkeys)
	}
	// The old secret retired: the passkey still signs in, lists and removes.
	current := withKeys(secretB)
	if err := signIn(current); err != nil {
		t.Fatalf("sign-in with the old secret gone: %v", err)
	}
	if list, err := current.Passkeys(ctx, got); err != nil || len(list) != 1 || list[0].Name != "laptop" {
		t.Fatalf("Passkeys = %+v, %v", list, err)
	}
	if n := credentialItems(t, p); n != 1 {
		t.Fatalf("%d credential items", n)
	}
}

// Two ceremonies of one authenticator that overlap (counters 5 and 6,
// committed as 6 then 5) refuse the late one without branding the
// credential cloned; a lower counter under a challenge issued after the
// last accepted use is a clone, as before.
func TestPasskeyOutOfOrderNotCloned(t *testing.T) {
	t.Parallel()
	var log eventLog
	p := newPK(t, log.config)
	_, b, cred := p.setUp()
	b2 := newPKBrowser(t, "198.51.100.7")
	r5 := p.signInResponse(b, cred, webauthntest.Options{Counter: webauthntest.Counter(5)})
	r6 := p.signInResponse(b2, cred, webauthntest.Options{Counter: webauthntest.Counter(6)})
	p.clock.Advance(2 * time.Second)
	if _, err := p.finishSignIn(p.users, b2, r6); err != nil {
		t.Fatal(err)
	}
	_, err := p.finishSignIn(p.users, b, r5)
	if !errors.Is(err, ErrInvalidPasskey) || errors.Is(err, ErrPasskeyCloned) {
		t.Fatalf("the late assertion: %v", err)
	}
	if log.count(dynaguard.EventPasskeyRefused, "out_of_order") != 1 || p.mail.count(MessagePasskeyCloned) != 0 {
		t.Fatal("no out_of_order refusal, or a cloned notice")
	}
	if err := p.signIn(b, cred, webauthntest.Options{Counter: webauthntest.Counter(7)}); err != nil {
		t.Fatalf("the next assertion: %v", err)
	}
	// A challenge issued after the last use, with a counter below it: a clone.
	p.clock.Advance(2 * time.Second)
	if err := p.signIn(b, cred, webauthntest.Options{Counter: webauthntest.Counter(6)}); !errors.Is(err, ErrPasskeyCloned) {
		t.Fatalf("a lower counter under a fresh challenge: %v", err)
	}
}

// withExtensions returns response with its clientExtensionResults set to
// ext.
func withExtensions(t *testing.T, response []byte, ext map[string]any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(response, &m); err != nil {
		t.Fatal(err)
	}
	m["clientExtensionResults"] = ext
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Extension outputs that were not requested are refused, in an assertion
// (none requested) and in a registration (credProps only).
func TestPasskeyUnsolicitedExtensions(t *testing.T) {
	t.Parallel()
	var log eventLog
	p := newPK(t, log.config)
	_, b, cred := p.setUp()
	resp := withExtensions(t, p.signInResponse(b, cred, webauthntest.Options{}), map[string]any{"appid": true})
	if _, err := p.finishSignIn(p.users, b, resp); !errors.Is(err, ErrInvalidPasskey) {
		t.Fatalf("assertion with an unsolicited output: %v", err)
	}
	opts := p.begin(b, func(ctx context.Context, u *User) ([]byte, error) {
		return p.users.BeginPasskeyRegistration(ctx, p.sm, u)
	})
	reg, _, err := p.auth.Create(opts, webauthntest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reg = withExtensions(t, reg, map[string]any{"credProps": map[string]any{"rk": true}, "hmacCreateSecret": true})
	if err := p.finishRegistration(b, reg, "second"); !errors.Is(err, ErrInvalidPasskey) {
		t.Fatalf("registration with an unsolicited output: %v", err)
	}
	if n := log.count(dynaguard.EventPasskeyRefused, "extensions"); n != 2 {
		t.Errorf("%d passkey.refused extensions events, want 2", n)
	}
	// The requested one, and none, still pass.
	if err := p.signIn(b, cred, webauthntest.Options{}); err != nil {
		t.Fatal(err)
	}
}

// A password change or a (non-reclaiming) reset keeps the passkeys, and
// its notice names them.
func TestPasskeyNamedInPasswordNotice(t *testing.T) {
	t.Parallel()
	p := newPK(t)
	abe, b, _ := p.setUp()
	b.run(p.users, p.sm, func(ctx context.Context) {
		cur, _ := FromContext(ctx)
		if err := p.users.ChangePassword(ctx, p.sm, cur, pw, newPassword, b.client()); err != nil {
			t.Fatalf("change: %v", err)
		}
	})
	if m := p.mail.last(MessagePasswordChanged); len(m.Passkeys) != 1 || m.Passkeys[0] != "laptop" {
		t.Fatalf("password-changed notice lists %q", m.Passkeys)
	}
	if _, err := p.users.VerifyEmail(ctx, p.verifyToken(mustGet(t, p.env, abe.ID))); err != nil {
		t.Fatal(err)
	}
	if _, err := p.users.ResetPassword(ctx, p.resetToken("abe@example.com"), goodPassword); err != nil {
		t.Fatal(err)
	}
	if m := p.mail.last(MessagePasswordChanged); m.Reclaimed || len(m.Passkeys) != 1 || m.Passkeys[0] != "laptop" {
		t.Fatalf("reset notice: reclaimed %v, lists %q", m.Reclaimed, m.Passkeys)
	}
	if mustGet(t, p.env, abe.ID).Passkeys != 1 {
		t.Fatal("a reset of a verified account removed the passkey")
	}
}

// The removal's write is conditioned on the epoch the step-up read: a
// concurrent change of the account's sessions is a conflict, not a removal
// that leaves a session alive; an unlisted passkey is not found.
func TestPasskeyRemoveConditions(t *testing.T) {
	t.Parallel()
	p := newPK(t)
	abe, _, _ := p.setUp()
	stale := mustGet(t, p.env, abe.ID)
	if _, err := p.users.st.bumpEpoch(ctx, abe.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := p.users.st.removePasskey(ctx, stale, passkeyPK(stale.passkeys[0])); !errors.Is(err, ErrConflict) {
		t.Fatalf("removal at a stale epoch: %v", err)
	}
	fresh := mustGet(t, p.env, abe.ID)
	other := strings.Repeat("A", len(fresh.passkeys[0]))
	if _, err := p.users.st.removePasskey(ctx, fresh, passkeyPK(other)); !errors.Is(err, ErrPasskeyNotFound) {
		t.Fatalf("removal of an unknown passkey: %v", err)
	}
	updated, err := p.users.st.removePasskey(ctx, fresh, passkeyPK(fresh.passkeys[0]))
	if err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, p.env, abe.ID)
	if updated.epoch != got.epoch || updated.version != got.version || updated.Passkeys != 0 || got.Passkeys != 0 {
		t.Fatalf("returned epoch %d version %d, stored %d %d", updated.epoch, updated.version, got.epoch, got.version)
	}
}

// A move whose account list changed since it was read is a conflict:
// nothing is written, the credential stays where it was.
func TestPasskeyMoveConflict(t *testing.T) {
	t.Parallel()
	p := newPK(t)
	abe, _, _ := p.setUp()
	oldPK := passkeyPK(abe.passkeys[0])
	c, ok := decodeCredential(getItem(t, p, oldPK))
	if !ok {
		t.Fatal("no credential")
	}
	stale := *abe
	stale.passkeys = append(slices.Clone(abe.passkeys), strings.Repeat("B", len(abe.passkeys[0])))
	to := passkeyPK(strings.Repeat("C", len(abe.passkeys[0])))
	now := p.clock.Now()
	_, err := p.users.st.usePasskey(ctx, dynaguard.PrefixPasskey+"ch#move", now.Add(time.Hour), oldPK, abe.ID, c.counter+1,
		c.be, c.bs, now, newPasskeyMove(c, &stale, to), now)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("move with a stale list: %v", err)
	}
	if getItem(t, p, oldPK) == nil || getItem(t, p, to) != nil {
		t.Fatal("a failed move wrote")
	}
}
