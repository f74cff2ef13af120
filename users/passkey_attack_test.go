package users

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/internal/webauthntest"
)

// eventLog collects the security events of a Users.
type eventLog struct {
	mu  sync.Mutex
	evs []dynaguard.Event
}

func (l *eventLog) config(c *Config) {
	c.Events = &dynaguard.Events{Hook: func(_ context.Context, e dynaguard.Event) {
		l.mu.Lock()
		l.evs = append(l.evs, e)
		l.mu.Unlock()
	}}
}

// count returns how many events named n (with reason r, unless r is "*").
func (l *eventLog) count(n dynaguard.EventName, r string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := 0
	for _, e := range l.evs {
		if e.Name == n && (r == "*" || e.Reason == r) {
			c++
		}
	}
	return c
}

// The same assertion twice: the second is a replay — refused, reported,
// and the credential is NOT marked cloned (its counter is the one already
// accepted, which must not brand the owner's authenticator).
func TestPasskeyReplayedAssertion(t *testing.T) {
	t.Parallel()
	var log eventLog
	p := newPK(t, log.config)
	abe, _, cred := p.setUp()
	b := newPKBrowser(t, "198.51.100.7")
	resp := p.signInResponse(b, cred, webauthntest.Options{})
	if _, err := p.finishSignIn(p.users, b, resp); err != nil {
		t.Fatal(err)
	}
	if _, err := p.finishSignIn(p.users, b, resp); !errors.Is(err, ErrInvalidPasskey) {
		t.Fatalf("replay: %v", err)
	}
	if log.count(dynaguard.EventPasskeyChallengeReplayed, "login") != 1 {
		t.Error("no passkey.challenge_replayed event")
	}
	list, _ := p.users.Passkeys(ctx, abe)
	if list[0].Cloned {
		t.Fatal("a replay marked the credential cloned")
	}
	// The authenticator keeps working.
	if err := p.signIn(b, cred, webauthntest.Options{}); err != nil {
		t.Fatalf("next sign-in: %v", err)
	}
}

// A counter that goes back: the credential is marked cloned, its owner is
// told once, and it is refused from then on — even with a counter that
// would have advanced.
func TestPasskeyCounterRegressionMarksCloned(t *testing.T) {
	t.Parallel()
	var log eventLog
	p := newPK(t, log.config)
	abe, _, cred := p.setUp()
	b := newPKBrowser(t, "198.51.100.7")
	for range 3 {
		if err := p.signIn(b, cred, webauthntest.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	// A copy of the key, taken when the counter was 1.
	if err := p.signIn(b, cred, webauthntest.Options{Counter: webauthntest.Counter(2)}); !errors.Is(err, ErrPasskeyCloned) {
		t.Fatalf("regressed counter: %v", err)
	}
	for _, n := range []uint32{1000, 1001} {
		if err := p.signIn(b, cred, webauthntest.Options{Counter: webauthntest.Counter(n)}); !errors.Is(err, ErrPasskeyCloned) {
			t.Fatalf("cloned credential later: %v", err)
		}
	}
	if n := p.mail.count(MessagePasskeyCloned); n != 1 {
		t.Errorf("%d passkey-cloned notices, want 1", n)
	}
	if m := p.mail.last(MessagePasskeyCloned); m.To != abe.Email || m.PasskeyName != "laptop" {
		t.Errorf("notice %+v", m)
	}
	if log.count(dynaguard.EventPasskeyCloned, "*") != 1 {
		t.Error("no single passkey.cloned event")
	}
	list, _ := p.users.Passkeys(ctx, abe)
	if !list[0].Cloned {
		t.Error("Passkeys does not show the mark")
	}
	// As a proof, too.
	b2 := newPKBrowser(t, "192.0.2.1")
	b2.login(p.users, p.sm, "abe")
	opts := p.begin(b2, func(ctx context.Context, u *User) ([]byte, error) { return p.users.BeginPasskeyProof(ctx, p.sm, u) })
	proof, _ := p.auth.Get(opts, cred, webauthntest.Options{Counter: webauthntest.Counter(5000)})
	b2.run(p.users, p.sm, func(ctx context.Context) {
		cur, _ := FromContext(ctx)
		if err := p.users.RemovePasskey(ctx, p.sm, cur, Proof{Passkey: proof}, cur.passkeys[0], b2.client()); !errors.Is(err, ErrProofRequired) {
			t.Errorf("cloned passkey as proof: %v", err)
		}
	})
}

// An authenticator without a counter (always 0) is accepted every time;
// once a credential has counted, 0 is a regression.
func TestPasskeyCounterLess(t *testing.T) {
	t.Parallel()
	p := newPK(t)
	p.create("abe@example.com", "abe")
	b := newPKBrowser(t, "192.0.2.1")
	b.login(p.users, p.sm, "abe")
	cred, err := p.register(b, "synced", webauthntest.Options{CounterLess: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := p.signIn(b, cred, webauthntest.Options{}); err != nil {
			t.Fatalf("counter-less sign-in %d: %v", i, err)
		}
	}
	if err := p.signIn(b, cred, webauthntest.Options{Counter: webauthntest.Counter(7)}); err != nil {
		t.Fatalf("a counter starting: %v", err)
	}
	if err := p.signIn(b, cred, webauthntest.Options{Counter: webauthntest.Counter(0)}); !errors.Is(err, ErrPasskeyCloned) {
		t.Fatalf("back to 0 after 7: %v", err)
	}
}

// Removing needs a proof; the passkey itself is one. A removed passkey
// signs in no more.
func TestPasskeyRemove(t *testing.T) {
	t.Parallel()
	var log eventLog
	p := newPK(t, log.config)
	abe, b, cred := p.setUp()
	id := abe.passkeys[0]
	b.run(p.users, p.sm, func(ctx context.Context) {
		cur, _ := FromContext(ctx)
		if err := p.users.RemovePasskey(ctx, p.sm, cur, Proof{Password: "wrong password"}, id, b.client()); !errors.Is(err, ErrProofRequired) {
			t.Errorf("remove with a wrong password: %v", err)
		}
		if err := p.users.RemovePasskey(ctx, p.sm, cur, Proof{}, id, b.client()); !errors.Is(err, ErrProofRequired) {
			t.Errorf("remove without proof: %v", err)
		}
	})
	opts := p.begin(b, func(ctx context.Context, u *User) ([]byte, error) { return p.users.BeginPasskeyProof(ctx, p.sm, u) })
	proof, _ := p.auth.Get(opts, cred, webauthntest.Options{})
	b.run(p.users, p.sm, func(ctx context.Context) {
		cur, _ := FromContext(ctx)
		if err := p.users.RemovePasskey(ctx, p.sm, cur, Proof{Passkey: proof}, id, b.client()); err != nil {
			t.Fatalf("remove with the passkey as proof: %v", err)
		}
	})
	if b.me(p.users, p.sm) != abe.ID {
		t.Fatal("the step-up ended the session")
	}
	if got := mustGet(t, p.env, abe.ID); got.Passkeys != 0 {
		t.Fatalf("%d passkeys after removal", got.Passkeys)
	}
	if p.mail.count(MessagePasskeyRemoved) != 1 || log.count(dynaguard.EventPasskeyRemoved, "") != 1 {
		t.Error("no notice or event")
	}
	if err := p.signIn(b, cred, webauthntest.Options{}); !errors.Is(err, ErrInvalidPasskey) {
		t.Fatalf("removed passkey signs in: %v", err)
	}
	if log.count(dynaguard.EventPasskeyRefused, "unknown_credential") != 1 {
		t.Error("no passkey.refused unknown_credential event")
	}
}

// Registration: a proof is required, a credential belongs to one account
// only, the account's list is bounded, and a response is used once.
func TestPasskeyRegistrationRules(t *testing.T) {
	t.Parallel()
	p := newPK(t, func(c *Config) { c.Passkeys.MaxPerAccount = 2 })
	abe, b, cred := p.setUp()

	// Without a valid proof nothing is stored.
	opts := p.begin(b, func(ctx context.Context, u *User) ([]byte, error) {
		return p.users.BeginPasskeyRegistration(ctx, p.sm, u)
	})
	resp, _, _ := p.auth.Create(opts, webauthntest.Options{})
	b.run(p.users, p.sm, func(ctx context.Context) {
		cur, _ := FromContext(ctx)
		if _, err := p.users.FinishPasskeyRegistration(ctx, p.sm, cur, Proof{Password: "not it"}, resp, "", b.client()); !errors.Is(err, ErrProofRequired) {
			t.Errorf("registration with a wrong password: %v", err)
		}
	})
	if mustGet(t, p.env, abe.ID).Passkeys != 1 {
		t.Fatal("a refused proof stored a passkey")
	}
	// A ceremony started in another session while there is room for one
	// more...
	b2 := newPKBrowser(t, "192.0.2.1")
	b2.login(p.users, p.sm, "abe")
	early := p.begin(b2, func(ctx context.Context, u *User) ([]byte, error) {
		return p.users.BeginPasskeyRegistration(ctx, p.sm, u)
	})
	// The same response, with the proof, once; then again: replayed.
	if err := p.finishRegistration(b, resp, "second"); err != nil {
		t.Fatal(err)
	}
	if err := p.finishRegistration(b, resp, "second"); !errors.Is(err, ErrInvalidPasskey) {
		t.Errorf("registration response replayed: %v", err)
	}
	// ...is refused at its end by the limit, which a new one meets at once.
	opts = early
	b.run(p.users, p.sm, func(ctx context.Context) {
		cur, _ := FromContext(ctx)
		if _, err := p.users.BeginPasskeyRegistration(ctx, p.sm, cur); !errors.Is(err, ErrTooManyPasskeys) {
			t.Errorf("begin over the limit: %v", err)
		}
	})
	resp, _, _ = p.auth.Create(opts, webauthntest.Options{})
	if err := p.finishRegistration(b2, resp, "third"); !errors.Is(err, ErrTooManyPasskeys) {
		t.Errorf("finish over the limit: %v", err)
	}

	// Bea tries to claim abe's credential (same ID and key).
	p.create("bea@example.com", "bea")
	bb := newPKBrowser(t, "192.0.2.2")
	bb.login(p.users, p.sm, "bea")
	if _, err := p.register(bb, "stolen", webauthntest.Options{Credential: cred}); !errors.Is(err, ErrPasskeyTaken) || !errors.Is(err, ErrInvalidPasskey) {
		t.Fatalf("claiming another account's credential: %v", err)
	}
	// Registration refusals.
	for name, o := range map[string]webauthntest.Options{
		"wrong origin":         {Origin: "https://evil.example"},
		"wrong RP ID":          {RPID: "evil.example"},
		"no user verification": {NoUV: true},
		"wrong challenge":      {Challenge: []byte("0123456789abcdef0123456789abcdef")},
		"not discoverable":     {NotDiscoverable: true},
	} {
		if _, err := p.register(bb, "x", o); !errors.Is(err, ErrInvalidPasskey) {
			t.Errorf("registration, %s: %v", name, err)
		}
	}
	if got := mustGet(t, p.env, mustGetLogin(t, p, "bea")).Passkeys; got != 0 {
		t.Fatalf("bea has %d passkeys", got)
	}
}

func mustGetLogin(t *testing.T, p *pk, login string) string {
	t.Helper()
	u, err := p.users.Lookup(ctx, login)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// A passkey instead of the code at the second step; a passkey of another
// account does not complete it.
func TestPasskeySecondFactor(t *testing.T) {
	t.Parallel()
	var log eventLog
	p := newPK(t, log.config)
	abe, _, cred := p.setUp()
	p.enable(abe)
	// Bea's passkey on the same authenticator.
	p.create("bea@example.com", "bea")
	bb := newPKBrowser(t, "192.0.2.2")
	bb.login(p.users, p.sm, "bea")
	beaCred, err := p.register(bb, "bea", webauthntest.Options{})
	if err != nil {
		t.Fatal(err)
	}

	nb := newPKBrowser(t, "198.51.100.7")
	if !nb.login(p.users, p.sm, "abe") {
		t.Fatal("login not pending")
	}
	second := func(c *webauthntest.Credential) error {
		opts := p.begin(nb, func(ctx context.Context, _ *User) ([]byte, error) { return p.users.BeginPasskeySecondFactor(ctx, p.sm) })
		resp, _ := p.auth.Get(opts, c, webauthntest.Options{})
		var err error
		nb.run(p.users, p.sm, func(ctx context.Context) { _, err = p.users.CompleteLoginWithPasskey(ctx, p.sm, resp, nb.client()) })
		return err
	}
	if err := second(beaCred); !errors.Is(err, ErrInvalidPasskey) {
		t.Fatalf("another account's passkey: %v", err)
	}
	if nb.me(p.users, p.sm) != "" {
		t.Fatal("logged in")
	}
	if err := second(cred); err != nil {
		t.Fatalf("second step with the passkey: %v", err)
	}
	if nb.me(p.users, p.sm) != abe.ID {
		t.Fatal("not logged in after the second step")
	}
	if log.count(dynaguard.EventSecondFactorAccepted, "*") != 1 || log.count(dynaguard.EventLoginSucceeded, "passkey") < 1 {
		t.Error("events missing")
	}
	// Without a pending login.
	nb.run(p.users, p.sm, func(ctx context.Context) {
		if _, err := p.users.BeginPasskeySecondFactor(ctx, p.sm); !errors.Is(err, ErrNoPendingLogin) {
			t.Errorf("begin without a pending login: %v", err)
		}
	})
	// A TOTP account signs in with its passkey alone: it is two factors.
	if u, err := p.finishSignIn(p.users, nb, p.signInResponse(nb, cred, webauthntest.Options{})); err != nil || u.ID != abe.ID {
		t.Fatalf("passkey sign-in of a TOTP account: %v", err)
	}
}

// 200 submissions of one assertion, at once, on two instances sharing the
// table: exactly one signs in.
func TestPasskeyAssertionAcceptedOnceAcrossInstances(t *testing.T) {
	t.Parallel()
	p := newPK(t)
	_, _, cred := p.setUp()
	second := p.instance()
	b := newPKBrowser(t, "198.51.100.7")
	resp := p.signInResponse(b, cred, webauthntest.Options{})
	cookies := b.jar.Cookies(pkURL)
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			users := p.users
			if i%2 == 1 {
				users = second
			}
			nb := newPKBrowser(t, "198.51.100.7")
			nb.jar.SetCookies(pkURL, cookies)
			switch _, err := p.finishSignIn(users, nb, resp); {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrInvalidPasskey), errors.Is(err, ErrUnavailable):
				refused.Add(1)
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("%d of 200 submissions signed in (%d refused), want exactly 1", ok.Load(), refused.Load())
	}
}

// Two assertions with the same counter (a cloned key used at once from
// two places): exactly one wins.
func TestPasskeyCounterRace(t *testing.T) {
	t.Parallel()
	p := newPK(t)
	_, _, cred := p.setUp()
	second := p.instance()
	b1, b2 := newPKBrowser(t, "198.51.100.7"), newPKBrowser(t, "203.0.113.9")
	r1 := p.signInResponse(b1, cred, webauthntest.Options{Counter: webauthntest.Counter(10)})
	r2 := p.signInResponse(b2, cred, webauthntest.Options{Counter: webauthntest.Counter(10)})
	var errs [2]error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _, errs[0] = p.finishSignIn(p.users, b1, r1) }()
	go func() { defer wg.Done(); _, errs[1] = p.finishSignIn(second, b2, r2) }()
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("outcomes %v / %v: want exactly one winner", errs[0], errs[1])
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, ErrPasskeyCloned) {
			t.Errorf("loser: %v", err)
		}
	}
}

// Storage faults at every call of a sign-in and of a proof never sign in
// nor prove anything.
func TestPasskeyStorageFaultsFailClosed(t *testing.T) {
	t.Parallel()
	p := newPK(t)
	_, _, cred := p.setUp()
	steps := []struct {
		op string
		n  int
	}{{"BatchGetItem", 1}, {"GetItem", 1}, {"TransactWriteItems", 1}}
	for _, step := range steps {
		for _, fault := range ddbtest.StorageFaults {
			b := newPKBrowser(t, "198.51.100.7")
			resp := p.signInResponse(b, cred, webauthntest.Options{})
			p.faults.FailNth(step.op, step.n, fault)
			u, err := p.finishSignIn(p.users, b, resp)
			p.faults.Clear()
			if err == nil || u != nil || !errors.Is(err, ErrUnavailable) {
				t.Errorf("%s #%d %v: %v, %v", step.op, step.n, fault, u, err)
			}
			if b.me(p.users, p.sm) != "" {
				t.Errorf("%s #%d %v: logged in", step.op, step.n, fault)
			}
		}
	}
	// The cloned mark's own write failing: refused still.
	b := newPKBrowser(t, "198.51.100.7")
	if err := p.signIn(b, cred, webauthntest.Options{Counter: webauthntest.Counter(5)}); err != nil {
		t.Fatal(err)
	}
	resp := p.signInResponse(b, cred, webauthntest.Options{Counter: webauthntest.Counter(4)})
	p.faults.FailNth("TransactWriteItems", 2, ddbtest.InternalError) // the accepting write, then the mark's
	_, err := p.finishSignIn(p.users, b, resp)
	p.faults.Clear()
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a regressed counter while the mark could not be written: %v", err)
	}
	list, _ := p.users.Passkeys(ctx, mustGet(t, p.env, mustGetLogin(t, p, "abe")))
	if list[0].Cloned {
		t.Fatal("marked although the write failed")
	}
	// The next regressed assertion marks it.
	resp = p.signInResponse(b, cred, webauthntest.Options{Counter: webauthntest.Counter(3)})
	if _, err := p.finishSignIn(p.users, b, resp); !errors.Is(err, ErrPasskeyCloned) {
		t.Fatalf("after the fault: %v", err)
	}
}

// What a passkey sign-in, a registration, a second step and a step-up cost.
//
// The minimum for a sign-in is three calls: the credential must be read to
// learn its account (the key is a hash of the credential ID; the user
// handle is random and names no item), the account must be read for the
// session binding (credential version, epoch, disabled), and accepting is
// one write — the challenge's single-use marker and the counter, which
// must be atomic together or a replay and a clone race could both pass.
// The client's counters ride in the first read. With the account known in
// advance (second step, step-up), its read joins the first: two calls.
// Registration is the proof's calls plus one transaction; its begin, like
// every begin, costs nothing.
func TestPasskeyCalls(t *testing.T) {
	t.Parallel()
	p := newPK(t)
	abe, b, cred := p.setUp()
	// measure runs f inside one request of browser in and returns the calls
	// f made (not LoadUser's, nor the session's commit after it).
	measure := func(in *pkBrowser, f func(ctx context.Context, cur *User) error) string {
		var got string
		in.run(p.users, p.sm, func(ctx context.Context) {
			cur, _ := FromContext(ctx)
			p.rec.Reset()
			if err := f(ctx, cur); err != nil {
				t.Fatal(err)
			}
			got = ops(p.rec.Calls())
		})
		return got
	}
	var opts []byte
	if got := measure(b, func(ctx context.Context, cur *User) (err error) {
		if _, err = p.users.BeginPasskeyLogin(ctx, p.sm); err != nil {
			return err
		}
		if _, err = p.users.BeginPasskeyProof(ctx, p.sm, cur); err != nil {
			return err
		}
		opts, err = p.users.BeginPasskeyRegistration(ctx, p.sm, cur)
		return err
	}); got != "" {
		t.Errorf("begins: %s, want none", got)
	}
	// Registration: the password proof (a login's four calls), one
	// transaction, and the session store's tombstone of the renewed token.
	resp, _, _ := p.auth.Create(opts, webauthntest.Options{})
	if got, want := measure(b, func(ctx context.Context, cur *User) error {
		_, err := p.users.FinishPasskeyRegistration(ctx, p.sm, cur, pw, resp, "two", b.client())
		return err
	}), "BatchGetItem,GetItem,UpdateItem,DeleteItem,TransactWriteItems,PutItem"; got != want {
		t.Errorf("registration: %s, want %s", got, want)
	}
	// Sign-in: three calls (the new session's own commit follows).
	nb := newPKBrowser(t, "198.51.100.7")
	resp = p.signInResponse(nb, cred, webauthntest.Options{})
	if got, want := measure(nb, func(ctx context.Context, _ *User) error {
		_, err := p.users.FinishPasskeyLogin(ctx, p.sm, resp, nb.client())
		return err
	}), "BatchGetItem,GetItem,TransactWriteItems"; got != want {
		t.Errorf("sign-in: %s, want %s", got, want)
	}
	// Step-up proof (removing the second passkey with the first): two
	// calls, then the removal's transaction (which raises the session
	// epoch), the renewed token's tombstone, and the session store's
	// RevokeAll of the account's other sessions (a Query and a PutItem
	// here), as for every change of factors.
	opts = p.begin(b, func(ctx context.Context, u *User) ([]byte, error) { return p.users.BeginPasskeyProof(ctx, p.sm, u) })
	proof, _ := p.auth.Get(opts, cred, webauthntest.Options{})
	if got, want := measure(b, func(ctx context.Context, cur *User) error {
		other := cur.passkeys[0] // the set has no order: remove the one that is not the proof's
		if other == passkeyID(p.users.credentialPKs(cred.ID)[0]) {
			other = cur.passkeys[1]
		}
		return p.users.RemovePasskey(ctx, p.sm, cur, Proof{Passkey: proof}, other, b.client())
	}), "BatchGetItem,TransactWriteItems,TransactWriteItems,PutItem,Query,PutItem"; got != want {
		t.Errorf("step-up + removal: %s, want %s", got, want)
	}
	// Second step: two calls, and the renewed token's tombstone.
	p.enable(mustGet(t, p.env, abe.ID))
	nb = newPKBrowser(t, "203.0.113.5")
	nb.login(p.users, p.sm, "abe")
	opts = p.begin(nb, func(ctx context.Context, _ *User) ([]byte, error) { return p.users.BeginPasskeySecondFactor(ctx, p.sm) })
	resp, _ = p.auth.Get(opts, cred, webauthntest.Options{})
	if got, want := measure(nb, func(ctx context.Context, _ *User) error {
		_, err := p.users.CompleteLoginWithPasskey(ctx, p.sm, resp, nb.client())
		return err
	}), "BatchGetItem,TransactWriteItems,PutItem"; got != want {
		t.Errorf("second step: %s, want %s", got, want)
	}
}

// A table dump holds no credential ID, no challenge, and the user handle
// only as the account's attribute (never in a key).
func TestPasskeyTableDump(t *testing.T) {
	t.Parallel()
	p := newPK(t)
	abe, b, cred := p.setUp()
	resp := p.signInResponse(b, cred, webauthntest.Options{})
	if _, err := p.finishSignIn(p.users, b, resp); err != nil {
		t.Fatal(err)
	}
	opts := p.begin(b, func(ctx context.Context, _ *User) ([]byte, error) { return p.users.BeginPasskeyLogin(ctx, p.sm) })
	challenge, _ := webauthntest.Challenge(opts)
	used, _ := webauthntest.Challenge(opts) // the one just used is gone from memory; check a fresh one too
	dump := ddbtest.Dump(t, p.base)
	for name, secret := range map[string][]byte{"credential ID": cred.ID, "challenge": challenge, "used challenge": used} {
		for _, form := range []string{string(secret), fmt.Sprintf("%x", secret), b64u.EncodeToString(secret)} {
			if strings.Contains(dump, form) {
				t.Errorf("table dump contains the %s", name)
			}
		}
	}
	for _, it := range ddbtest.Scan(t, p.base) {
		pk := it[dynaguard.AttrPK]
		if strings.Contains(pk, b64u.EncodeToString(abe.handle)) || strings.Contains(pk, fmt.Sprintf("%x", abe.handle)) {
			t.Errorf("the user handle is in a key: %s", pk)
		}
		for k, v := range it {
			if k != attrHandle && strings.Contains(v, fmt.Sprintf("%x", abe.handle)) {
				t.Errorf("the user handle is in %s of %s", k, pk)
			}
		}
	}
	if !strings.Contains(dump, dynaguard.PrefixPasskey+"ch#") {
		t.Fatal("no used-challenge marker in the table")
	}
}

// Deleting the account deletes its passkeys; a rotated secret keeps them
// working and still refuses registering one twice.
func TestPasskeyAccountDeletionAndRotation(t *testing.T) {
	t.Parallel()
	p := newPK(t)
	abe, b, cred := p.setUp()
	// Rotation: the new secret is current, the old one previous.
	cfg := p.cfg
	cfg.Keys = keyring(t, secretB, secretA)
	cfg.Sessions = p.store
	rotated, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nb := newPKBrowser(t, "198.51.100.7")
	opts := p.begin(nb, func(ctx context.Context, _ *User) ([]byte, error) { return rotated.BeginPasskeyLogin(ctx, p.sm) })
	resp, _ := p.auth.Get(opts, cred, webauthntest.Options{})
	if _, err := p.finishSignIn(rotated, nb, resp); err != nil {
		t.Fatalf("sign-in after rotation: %v", err)
	}
	// The same credential again, under the new secret: refused.
	rb := newPKBrowser(t, "192.0.2.1")
	rb.login(rotated, p.sm, "abe")
	var regErr error
	opts = nil
	rb.run(rotated, p.sm, func(ctx context.Context) {
		cur, _ := FromContext(ctx)
		opts, regErr = rotated.BeginPasskeyRegistration(ctx, p.sm, cur)
	})
	if regErr != nil {
		t.Fatal(regErr)
	}
	r, _, _ := p.auth.Create(opts, webauthntest.Options{Credential: cred})
	rb.run(rotated, p.sm, func(ctx context.Context) {
		cur, _ := FromContext(ctx)
		_, regErr = rotated.FinishPasskeyRegistration(ctx, p.sm, cur, pw, r, "", rb.client())
	})
	if !errors.Is(regErr, ErrPasskeyTaken) {
		t.Fatalf("re-registration under the new secret: %v", regErr)
	}
	_ = b
	// Deletion.
	if err := p.users.Delete(ctx, mustGet(t, p.env, abe.ID)); err != nil {
		t.Fatal(err)
	}
	if n := credentialItems(t, p); n != 0 {
		t.Errorf("%d credential items outlived their account", n)
	}
}

// A reset that reclaims an account (first proof of the address) drops the
// passkeys someone may have added before; they sign in no more.
func TestPasskeyReclaimDropsPasskeys(t *testing.T) {
	t.Parallel()
	p := newPK(t)
	abe, b, cred := p.setUp()
	if abe.EmailVerified {
		t.Skip("accounts start verified")
	}
	if _, err := p.users.ResetPassword(ctx, p.resetToken("abe@example.com"), newPassword); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, p.env, abe.ID).Passkeys; got != 0 {
		t.Fatalf("%d passkeys after the reclaiming reset", got)
	}
	if err := p.signIn(b, cred, webauthntest.Options{}); !errors.Is(err, ErrInvalidPasskey) {
		t.Fatalf("a dropped passkey signs in: %v", err)
	}
}

// Failed assertions are throttled like failed passwords: from one address,
// the address's limit; a known device is not slowed by it.
func TestPasskeyFailuresThrottled(t *testing.T) {
	t.Parallel()
	p := newPK(t, func(c *Config) {
		c.Throttle.PerIP = Limit{Free: 3, Delay: time.Minute, MaxDelay: time.Hour, Window: time.Hour}
	})
	_, _, cred := p.setUp()
	attacker := newPKBrowser(t, "203.0.113.66")
	var throttled bool
	for range 6 {
		err := p.signIn(attacker, cred, webauthntest.Options{Origin: "https://evil.example"})
		var te *ThrottledError
		if errors.As(err, &te) {
			throttled = true
			break
		}
		if !errors.Is(err, ErrInvalidPasskey) {
			t.Fatal(err)
		}
	}
	if !throttled {
		t.Fatal("repeated failures from one address were never throttled")
	}
	// Even a good assertion from that address waits — refused on the
	// first read, before the account is read.
	resp := p.signInResponse(attacker, cred, webauthntest.Options{})
	p.rec.Reset()
	if _, err := p.finishSignIn(p.users, attacker, resp); !errors.Is(err, ErrThrottled) {
		t.Fatalf("good assertion from a throttled address: %v", err)
	}
	if n := p.rec.Count("GetItem"); n != 0 {
		t.Errorf("a throttled sign-in read the account (%d GetItem)", n)
	}
}

func TestPasskeyConfig(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		c    PasskeyConfig
		ok   bool
	}{
		{"off", PasskeyConfig{}, true},
		{"on", PasskeyConfig{RPID: "example.com", Origins: []string{"https://example.com", "https://app.example.com"}}, true},
		{"localhost over http", PasskeyConfig{RPID: "localhost", Origins: []string{"http://localhost:8080"}, Insecure: true}, true},
		{"RP ID without origins", PasskeyConfig{RPID: "example.com"}, false},
		{"origins without RP ID", PasskeyConfig{Origins: []string{"https://example.com"}}, false},
		{"origin of another site", PasskeyConfig{RPID: "example.com", Origins: []string{"https://example.org"}}, false},
		{"look-alike suffix", PasskeyConfig{RPID: "example.com", Origins: []string{"https://badexample.com"}}, false},
		{"plain http", PasskeyConfig{RPID: "example.com", Origins: []string{"http://example.com"}}, false},
		{"origin with a path", PasskeyConfig{RPID: "example.com", Origins: []string{"https://example.com/login"}}, false},
		{"RP ID with scheme", PasskeyConfig{RPID: "https://example.com", Origins: []string{"https://example.com"}}, false},
		{"too many per account", PasskeyConfig{RPID: "example.com", Origins: []string{"https://example.com"}, MaxPerAccount: 51}, false},
		{"__Host- without Secure", PasskeyConfig{RPID: "localhost", Origins: []string{"http://localhost"}, Insecure: true, CookieName: "__Host-x"}, false},
	}
	for _, c := range cases {
		if err := c.c.validate(); (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// The challenge cookie: __Host-, Secure, HttpOnly, SameSite=Strict, living
// as long as a challenge. Outside LoadUser nothing can be bound.
func TestPasskeyChallengeCookie(t *testing.T) {
	t.Parallel()
	p := newPK(t)
	b := newPKBrowser(t, "192.0.2.1")
	p.begin(b, func(ctx context.Context, _ *User) ([]byte, error) {
		l, _ := loadedFrom(ctx)
		opts, err := p.users.BeginPasskeyLogin(ctx, p.sm)
		set := l.w.Header().Values("Set-Cookie")
		if len(set) != 1 || !strings.HasPrefix(set[0], "__Host-dg-webauthn=") || !strings.Contains(set[0], "Secure") ||
			!strings.Contains(set[0], "HttpOnly") || !strings.Contains(set[0], "SameSite=Strict") || !strings.Contains(set[0], "Max-Age=300") {
			t.Errorf("Set-Cookie %q", set)
		}
		return opts, err
	})
	if _, err := p.users.BeginPasskeyLogin(ctx, p.sm); !errors.Is(err, ErrNoBrowserBinding) {
		t.Errorf("outside LoadUser: %v", err)
	}
	off := newEnv(t)
	if _, err := off.users.BeginPasskeyLogin(ctx, nil); !errors.Is(err, ErrPasskeysDisabled) {
		t.Errorf("passkeys off: %v", err)
	}
}

// One credential presented for registration to two accounts at once, on
// two instances: exactly one account gets it.
func TestPasskeyRegistrationRace(t *testing.T) {
	t.Parallel()
	p := newPK(t)
	second := p.instance()
	p.create("abe@example.com", "abe")
	p.create("bea@example.com", "bea")
	ba, bb := newPKBrowser(t, "192.0.2.1"), newPKBrowser(t, "192.0.2.2")
	ba.login(p.users, p.sm, "abe")
	bb.login(second, p.sm, "bea")
	optsA := p.begin(ba, func(ctx context.Context, u *User) ([]byte, error) {
		return p.users.BeginPasskeyRegistration(ctx, p.sm, u)
	})
	var optsB []byte
	bb.run(second, p.sm, func(ctx context.Context) {
		cur, _ := FromContext(ctx)
		var err error
		if optsB, err = second.BeginPasskeyRegistration(ctx, p.sm, cur); err != nil {
			t.Fatal(err)
		}
	})
	respA, cred, _ := p.auth.Create(optsA, webauthntest.Options{})
	respB, _, _ := p.auth.Create(optsB, webauthntest.Options{Credential: cred})
	var errs [2]error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); errs[0] = p.finishRegistration(ba, respA, "a") }()
	go func() {
		defer wg.Done()
		bb.run(second, p.sm, func(ctx context.Context) {
			cur, _ := FromContext(ctx)
			_, errs[1] = second.FinishPasskeyRegistration(ctx, p.sm, cur, pw, respB, "b", bb.client())
		})
	}()
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("outcomes %v / %v: want exactly one registration", errs[0], errs[1])
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, ErrPasskeyTaken) && !errors.Is(err, ErrUnavailable) {
			t.Errorf("loser: %v", err)
		}
	}
	total := mustGet(t, p.env, mustGetLogin(t, p, "abe")).Passkeys + mustGet(t, p.env, mustGetLogin(t, p, "bea")).Passkeys
	if total != 1 {
		t.Fatalf("%d registrations of one credential", total)
	}
}

// Another account's passkey is no proof for this one, even answering this
// session's step-up challenge.
func TestPasskeyProofOfAnotherAccount(t *testing.T) {
	t.Parallel()
	p := newPK(t)
	abe, b, _ := p.setUp()
	p.create("bea@example.com", "bea")
	bb := newPKBrowser(t, "192.0.2.2")
	bb.login(p.users, p.sm, "bea")
	beaCred, err := p.register(bb, "bea", webauthntest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opts := p.begin(b, func(ctx context.Context, u *User) ([]byte, error) { return p.users.BeginPasskeyProof(ctx, p.sm, u) })
	proof, _ := p.auth.Get(opts, beaCred, webauthntest.Options{})
	b.run(p.users, p.sm, func(ctx context.Context) {
		cur, _ := FromContext(ctx)
		if err := p.users.RemovePasskey(ctx, p.sm, cur, Proof{Passkey: proof}, cur.passkeys[0], b.client()); !errors.Is(err, ErrProofRequired) || !errors.Is(err, ErrInvalidPasskey) {
			t.Errorf("another account's passkey as proof: %v", err)
		}
	})
	if mustGet(t, p.env, abe.ID).Passkeys != 1 {
		t.Fatal("removed")
	}
}
