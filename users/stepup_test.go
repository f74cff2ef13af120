package users

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

// A proof is checked like a login: input → outcome, for an account without
// and with a second factor.
func TestStepUpProof(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	plain := e.create("plain@example.com", "plain")
	mfa := e.create("mfa@example.com", "mfa")
	secret, codes := e.enable(mfa)
	cases := []struct {
		name  string
		u     *User
		proof func() Proof
		want  []error // nil: accepted
	}{
		{"no proof", plain, func() Proof { return Proof{} }, []error{ErrProofRequired, ErrInvalidCredentials}},
		{"wrong password", plain, func() Proof { return Proof{Password: "not the password at all"} }, []error{ErrProofRequired, ErrInvalidCredentials}},
		{"password", plain, func() Proof { return pw }, nil},
		{"password, code ignored", plain, func() Proof { return Proof{Password: goodPassword, Code: "nonsense"} }, nil},
		{"TOTP account, password alone", mfa, func() Proof { return pw }, []error{ErrProofRequired, ErrInvalidCode}},
		{"TOTP account, wrong code", mfa, func() Proof { return Proof{Password: goodPassword, Code: "000000"} }, []error{ErrProofRequired, ErrInvalidCode}},
		{"TOTP account, wrong password, right code", mfa, func() Proof { return Proof{Password: "not it", Code: e.code(secret, 0)} }, []error{ErrProofRequired, ErrInvalidCredentials}},
		{"TOTP account, password and code", mfa, func() Proof { return Proof{Password: goodPassword, Code: e.code(secret, 0)} }, nil},
		{"TOTP account, the same code again", mfa, func() Proof { return Proof{Password: goodPassword, Code: e.code(secret, 0)} }, []error{ErrProofRequired, ErrInvalidCode}},
		{"TOTP account, recovery code", mfa, func() Proof { return Proof{Password: goodPassword, Code: codes[0]} }, nil},
		{"TOTP account, used recovery code", mfa, func() Proof { return Proof{Password: goodPassword, Code: codes[0]} }, []error{ErrProofRequired, ErrInvalidCode}},
	}
	for i, tc := range cases {
		c := Client{IP: ip(fmt.Sprintf("198.51.100.%d", i+1))}
		got, err := e.users.stepUp(ctx, mustGet(t, e, tc.u.ID), tc.proof(), c)
		if tc.want == nil {
			if err != nil || got == nil || got.ID != tc.u.ID {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		for _, w := range tc.want {
			if !errors.Is(err, w) {
				t.Errorf("%s: %v, want it to match %v", tc.name, err, w)
			}
		}
	}
}

// Step-ups share the login throttle: from one address, five wrong
// proofs, then even the right one waits (and it is still a refused proof);
// from another address the owner goes on.
func TestStepUpThrottled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.create("thr@example.com", "thr")
	thief := Client{IP: ip("203.0.113.9")}
	for i := range 5 {
		if err := e.users.ChangePassword(ctx, nil, mustGet(t, e, u.ID), Proof{Password: fmt.Sprintf("guess %d guess", i)}, "fresh password 123", thief); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	e.hasher.reset()
	var te *ThrottledError
	err := e.users.ChangePassword(ctx, nil, mustGet(t, e, u.ID), pw, "fresh password 123", thief)
	if !errors.As(err, &te) || !errors.Is(err, ErrProofRequired) || e.hasher.verifies.Load() != 0 {
		t.Fatalf("sixth attempt: %v (%d verifications)", err, e.hasher.verifies.Load())
	}
	if got := mustGet(t, e, u.ID).ConsecutiveFailures(); got != 5 {
		t.Fatalf("failures counted on the account: %d, want 5", got)
	}
	if err := e.users.ChangePassword(ctx, nil, mustGet(t, e, u.ID), pw, "fresh password 123", Client{IP: ip("192.0.2.77")}); err != nil {
		t.Fatalf("owner from another address: %v", err)
	}
}

// Every sensitive operation refuses a session that brings no proof — a
// fresh login in the context is not one — and writes nothing to the
// account.
func TestSensitiveOperationsNeedProof(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	plain := e.create("p@example.com", "p")
	mfa := e.create("m@example.com", "m")
	e.enable(mfa)
	c := Client{IP: ip("203.0.113.5")}
	ops := []struct {
		name string
		u    *User
		op   func(u *User, p Proof) error
	}{
		{"RequestEmailChange", mfa, func(u *User, p Proof) error {
			return e.users.RequestEmailChange(e.authed(u), nil, u, "thief@example.net", p, c)
		}},
		{"ChangePassword", mfa, func(u *User, p Proof) error {
			return e.users.ChangePassword(e.authed(u), nil, u, p, "thief's new password", c)
		}},
		{"DisableTOTP", mfa, func(u *User, p Proof) error { return e.users.DisableTOTP(e.authed(u), nil, u, p, c) }},
		{"RegenerateRecoveryCodes", mfa, func(u *User, p Proof) error {
			_, err := e.users.RegenerateRecoveryCodes(e.authed(u), nil, u, p, c)
			return err
		}},
		{"BeginTOTP", plain, func(u *User, p Proof) error { _, err := e.users.BeginTOTP(e.authed(u), nil, u, p, c); return err }},
		{"ConfirmTOTP", plain, func(u *User, p Proof) error {
			_, err := e.users.ConfirmTOTP(e.authed(u), nil, u, p, "123456", c)
			return err
		}},
	}
	for _, tc := range ops {
		for _, p := range []Proof{{}, {Password: "wrong wrong wrong"}, {Password: "wrong wrong wrong", Code: "123456"}} {
			before := mustGet(t, e, tc.u.ID)
			if err := tc.op(before, p); !errors.Is(err, ErrProofRequired) {
				t.Fatalf("%s with %+v: %v", tc.name, p, err)
			}
			if after := mustGet(t, e, tc.u.ID); after.version != before.version || after.PendingEmail != "" {
				t.Fatalf("%s with %+v changed the account", tc.name, p)
			}
		}
	}
	if n := e.mail.count(MessageConfirmEmailChange); n != 0 {
		t.Fatalf("%d confirmation links sent without a proof", n)
	}
	// The problem for a browser is a 401 that says nothing changed.
	w := httptestRecorder()
	WriteError(w, jsonRequest(), proofRefused(ErrInvalidCredentials))
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), `"proof-required"`) {
		t.Fatalf("problem: %d %s", w.Code, w.Body)
	}
}

// ReauthAge, when set, is an extra check before the proof.
func TestReauthAgeIsAnExtra(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.ReauthAge = 10 * time.Minute })
	u := e.create("r@example.com", "r")
	stale := e.authed(u)
	e.clock.Advance(11 * time.Minute)
	if _, err := e.users.BeginTOTP(stale, nil, u, pw, Client{}); !errors.Is(err, ErrReauthRequired) {
		t.Fatalf("old login with the password: %v", err)
	}
	if _, err := e.users.BeginTOTP(e.authed(u), nil, u, Proof{}, Client{}); !errors.Is(err, ErrProofRequired) {
		t.Fatalf("recent login without the password: %v", err)
	}
	if _, err := e.users.BeginTOTP(e.authed(u), nil, u, pw, Client{}); err != nil {
		t.Fatalf("recent login with the password: %v", err)
	}
}

// The absolute lifetime counts from the last credential check: renewals
// (sign out other sessions) do not move it, a step-up does.
func TestAbsoluteLifetime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.AbsoluteLifetime = 8 * time.Hour })
	a := newApp(e)
	u := e.create("life@example.com", "life")
	b := a.browser("192.0.2.10")
	if code := b.login("life", goodPassword); code != http.StatusNoContent {
		t.Fatalf("login: %d", code)
	}
	steps := []struct {
		advance time.Duration
		action  string // "", "logout-others" or "password"
		in      bool   // logged in after it
	}{
		{3 * time.Hour, "logout-others", true},
		{3 * time.Hour, "logout-others", true},
		{time.Hour + 59*time.Minute, "", true},
		{2 * time.Minute, "", false}, // 8 h 1 min after the login
	}
	for i, s := range steps {
		e.clock.Advance(s.advance)
		if s.action != "" {
			if code := b.post("/"+s.action, url.Values{}); code != http.StatusNoContent {
				t.Fatalf("step %d: %s: %d", i, s.action, code)
			}
		}
		if _, body := b.get("/public"); (body == u.ID) != s.in {
			t.Fatalf("step %d: logged in %v, want %v", i, body == u.ID, s.in)
		}
	}
	// A step-up is a credential check: it starts the lifetime again.
	if code := b.login("life", goodPassword); code != http.StatusNoContent {
		t.Fatalf("login: %d", code)
	}
	e.clock.Advance(7 * time.Hour)
	if code := b.post("/password", url.Values{"current": {goodPassword}, "new": {"another fine password 5"}}); code != http.StatusNoContent {
		t.Fatalf("password change: %d", code)
	}
	e.clock.Advance(7 * time.Hour)
	if _, body := b.get("/public"); body != u.ID {
		t.Fatal("the step-up did not start a new lifetime")
	}
	e.clock.Advance(time.Hour + time.Second)
	if _, body := b.get("/public"); body == u.ID {
		t.Fatal("the session outlived its step-up by more than the lifetime")
	}
}

// Requests of an email change: input → outcome. The answer does not depend
// on whether the new address is taken.
func TestRequestEmailChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("taken@example.com", "taken")
	u := e.create("mover@example.com", "mover")
	c := Client{IP: ip("192.0.2.31")}
	cases := []struct {
		email string
		want  error
	}{
		{"not an address", ErrInvalidIdentifier},
		{"mover@example.com", ErrInvalidIdentifier},
		{"TAKEN@example.com", nil},
		{"free@example.com", nil},
		{"free2@example.com", nil},
		{"free3@example.com", ErrRateLimited}, // TokenConfig.PerAccount = 3 per hour
	}
	for _, tc := range cases {
		err := e.users.RequestEmailChange(ctx, nil, mustGet(t, e, u.ID), tc.email, pw, c)
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Fatalf("%s: %v, want %v", tc.email, err, tc.want)
		}
		if err == nil {
			if got := mustGet(t, e, u.ID); got.PendingEmail != tc.email || got.Email != "mover@example.com" {
				t.Fatalf("%s: pending %q, address %q", tc.email, got.PendingEmail, got.Email)
			}
			if m := e.mail.last(MessageConfirmEmailChange); m.To != tc.email || m.Token == "" {
				t.Fatalf("%s: confirmation %v", tc.email, m)
			}
			if m := e.mail.last(MessageEmailChangeRequested); m.To != "mover@example.com" || m.NewEmail != tc.email || m.Token == "" {
				t.Fatalf("%s: notice %v", tc.email, m)
			}
		}
	}
	// The taken address's link answers "taken" to its holder only, and
	// stays usable (nothing was consumed).
	taken := e.mail.all(MessageConfirmEmailChange)[0].Token
	if _, err := e.users.ConfirmEmailChange(ctx, nil, taken, Client{}); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("confirmation of a replaced request: %v", err) // replaced by the later requests
	}
	last := e.mail.last(MessageConfirmEmailChange)
	got, err := e.users.ConfirmEmailChange(ctx, nil, last.Token, Client{})
	if err != nil || got.Email != "free2@example.com" || !got.EmailVerified || got.PendingEmail != "" {
		t.Fatalf("confirm: %+v %v", got, err)
	}
	if stored := mustGet(t, e, u.ID); stored.Email != "free2@example.com" || stored.epoch != got.epoch || stored.version != got.version {
		t.Fatalf("returned account differs from the stored one: %+v vs %+v", got, stored)
	}
	if _, err := e.users.ConfirmEmailChange(ctx, nil, last.Token, Client{}); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("second use: %v", err)
	}
}

// A taken address is refused at confirmation, without using the link up.
func TestConfirmEmailChangeTaken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.create("one@example.com", "one")
	if err := e.users.RequestEmailChange(ctx, nil, u, "later@example.com", pw, Client{}); err != nil {
		t.Fatal(err)
	}
	tok := e.mail.last(MessageConfirmEmailChange).Token
	e.create("LATER@example.com", "later")
	if _, err := e.users.ConfirmEmailChange(ctx, nil, tok, Client{}); !errors.Is(err, ErrEmailTaken) {
		t.Fatalf("taken: %v", err)
	}
	if got := mustGet(t, e, u.ID); got.Email != "one@example.com" || got.PendingEmail != "later@example.com" {
		t.Fatalf("after a refused confirmation: %+v", got)
	}
	other, _ := e.users.Lookup(ctx, "later")
	if err := e.users.Delete(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, err := e.users.ConfirmEmailChange(ctx, nil, tok, Client{}); err != nil {
		t.Fatalf("the link after the address was freed: %v", err)
	}
}

// What each step costs in DynamoDB calls.
func TestEmailChangeCalls(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.create("calls@example.com", "calls")
	cases := []struct {
		name string
		run  func(u *User) error
		want string
	}{
		{"request", func(u *User) error {
			return e.users.RequestEmailChange(ctx, nil, u, "calls2@example.com", pw, Client{})
		}, "BatchGetItem,GetItem,UpdateItem,DeleteItem,TransactWriteItems"},
		{"confirm", func(*User) error {
			_, err := e.users.ConfirmEmailChange(ctx, nil, e.mail.last(MessageConfirmEmailChange).Token, Client{})
			return err
		}, "GetItem,GetItem,TransactWriteItems,Query"},
		{"request again", func(u *User) error {
			return e.users.RequestEmailChange(ctx, nil, u, "calls3@example.com", pw, Client{})
		}, "BatchGetItem,GetItem,UpdateItem,DeleteItem,TransactWriteItems"},
		{"cancel", func(*User) error {
			_, err := e.users.CancelEmailChange(ctx, e.mail.last(MessageEmailChangeRequested).Token)
			return err
		}, "DeleteItem,UpdateItem,Query"},
	}
	for _, tc := range cases {
		fresh := mustGet(t, e, u.ID)
		e.rec.Reset()
		if err := tc.run(fresh); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := ops(e.rec.Calls()); got != tc.want {
			t.Fatalf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// Cancel: once, only while its change is pending; it ends every session.
func TestCancelEmailChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.create("can@example.com", "can")
	if err := e.users.RequestEmailChange(ctx, nil, u, "elsewhere@example.com", pw, Client{}); err != nil {
		t.Fatal(err)
	}
	cancel := e.mail.last(MessageEmailChangeRequested).Token
	confirm := e.mail.last(MessageConfirmEmailChange).Token
	before := mustGet(t, e, u.ID)
	got, err := e.users.CancelEmailChange(ctx, cancel)
	if err != nil || got.PendingEmail != "" || got.epoch != before.epoch+1 {
		t.Fatalf("cancel: %+v %v", got, err)
	}
	for name, err := range map[string]error{
		"cancel twice":          func() error { _, err := e.users.CancelEmailChange(ctx, cancel); return err }(),
		"confirm after":         func() error { _, err := e.users.ConfirmEmailChange(ctx, nil, confirm, Client{}); return err }(),
		"cancel as confirm":     func() error { _, err := e.users.ConfirmEmailChange(ctx, nil, cancel, Client{}); return err }(),
		"confirm as cancel":     func() error { _, err := e.users.CancelEmailChange(ctx, confirm); return err }(),
		"malformed":             func() error { _, err := e.users.CancelEmailChange(ctx, "x"); return err }(),
		"unknown (well formed)": func() error { tok, _ := newToken(); _, err := e.users.CancelEmailChange(ctx, tok); return err }(),
	} {
		if !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A cancel link of a replaced request is dead; the newer one works.
	if err := e.users.RequestEmailChange(ctx, nil, mustGet(t, e, u.ID), "a@example.net", pw, Client{}); err != nil {
		t.Fatal(err)
	}
	old := e.mail.last(MessageEmailChangeRequested).Token
	if err := e.users.RequestEmailChange(ctx, nil, mustGet(t, e, u.ID), "b@example.net", pw, Client{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.users.CancelEmailChange(ctx, old); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("cancel of a replaced request: %v", err)
	}
	if got := mustGet(t, e, u.ID); got.PendingEmail != "b@example.net" {
		t.Fatalf("pending %q after a dead cancel", got.PendingEmail)
	}
}

// Two accounts confirm the same new address at once, many times, on two
// instances: exactly one gets it; the table holds one marker for it.
func TestConcurrentEmailConfirmations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	instances := []*Users{e.users, e.instance()}
	var tokens []string
	var ids []string
	for i := range 2 {
		u := e.create(fmt.Sprintf("c%d@example.com", i), fmt.Sprintf("c%d", i))
		if err := e.users.RequestEmailChange(ctx, nil, u, "Contested@Example.com", pw, Client{}); err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, e.mail.last(MessageConfirmEmailChange).Token)
		ids = append(ids, u.ID)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := instances[i%2].ConfirmEmailChange(ctx, nil, tokens[(i/2)%2], Client{})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, ErrEmailTaken), errors.Is(err, ErrInvalidToken):
			default:
				t.Errorf("confirmation: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d confirmations won", wins)
	}
	owners := 0
	for _, id := range ids {
		if mustGet(t, e, id).Email == "Contested@Example.com" {
			owners++
		}
	}
	markers := 0
	for _, it := range ddbtest.Scan(t, e.base) {
		if strings.HasPrefix(it[dynaguard.AttrPK], dynaguard.PrefixUnique+"email#contested") {
			markers++
		}
	}
	if owners != 1 || markers != 1 {
		t.Fatalf("%d accounts and %d markers for the address", owners, markers)
	}
}

// A reset that is the first proof of possession of the address removes
// what was set up before it; a reset of a verified address keeps it.
func TestResetReclaimsUnverifiedAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		name      string
		verified  bool
		wantTOTP  bool
		reclaimed bool
	}{
		{"never verified", false, false, true},
		{"verified", true, true, false},
	}
	for i, tc := range cases {
		addr := fmt.Sprintf("r%d@example.com", i)
		u := e.create(addr, fmt.Sprintf("r%d", i))
		if tc.verified {
			if _, err := e.users.VerifyEmail(ctx, e.verifyToken(u)); err != nil {
				t.Fatal(err)
			}
		}
		secret, _ := e.enable(mustGet(t, e, u.ID))
		if err := e.users.RequestEmailChange(ctx, nil, mustGet(t, e, u.ID), "intruder@example.net",
			Proof{Password: goodPassword, Code: e.code(secret, 0)}, Client{}); err != nil {
			t.Fatal(err)
		}
		before := mustGet(t, e, u.ID)
		got, err := e.users.ResetPassword(ctx, e.resetToken(addr), newPassword)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		after := mustGet(t, e, u.ID)
		if after.TOTPEnabled != tc.wantTOTP || (after.RecoveryCodes > 0) != tc.wantTOTP || !after.EmailVerified ||
			(after.PendingEmail == "") != tc.reclaimed || got.TOTPEnabled != tc.wantTOTP {
			t.Fatalf("%s: after the reset %+v", tc.name, after)
		}
		if (after.epoch != before.epoch) != tc.reclaimed || after.credVersion != before.credVersion+1 {
			t.Fatalf("%s: epoch %d→%d, cv %d→%d", tc.name, before.epoch, after.epoch, before.credVersion, after.credVersion)
		}
		if m := e.mail.last(MessagePasswordChanged); m.To != addr || m.Reclaimed != tc.reclaimed {
			t.Fatalf("%s: notice %+v (reclaimed %v)", tc.name, m, m.Reclaimed)
		}
	}
}

// Links are bound to the exact stored address and to the item's version.
func TestTokensBoundToExactAddressAndVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	changes := []struct {
		name   string
		change func(u *User)
	}{
		{"same normalised address, other mailbox", func(u *User) { e.changeEmail(u, "ceo@faß.de") }},
		{"sign out everywhere", func(u *User) { _ = e.users.LogoutEverywhere(ctx, nil, u) }},
		{"email change requested", func(u *User) {
			_ = e.users.RequestEmailChange(ctx, nil, u, "elsewhere@example.org", pw, Client{})
		}},
	}
	for i, tc := range changes {
		addr := "ceo@fass.de"
		if i > 0 {
			addr = fmt.Sprintf("ceo%d@fass.de", i)
		}
		u := e.create(addr, fmt.Sprintf("ceo%d", i))
		verify := e.verifyToken(u)
		reset := e.resetToken(addr)
		tc.change(mustGet(t, e, u.ID))
		if _, err := e.users.VerifyEmail(ctx, verify); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: verification link: %v", tc.name, err)
		}
		if _, err := e.users.ResetPassword(ctx, reset, newPassword); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: reset link: %v", tc.name, err)
		}
	}
}

// A storage fault at any call of an email change never half-applies it:
// the request leaves no pending change and sends nothing, the confirmation
// leaves the address where it was (and its link usable), the cancel ends
// nothing it did not record.
func TestEmailChangeStorageFaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i, f := range []struct {
		op string
		n  int
	}{{"BatchGetItem", 1}, {"GetItem", 1}, {"UpdateItem", 1}, {"DeleteItem", 1}, {"TransactWriteItems", 1}} {
		u := e.create(fmt.Sprintf("rf%d@example.com", i), fmt.Sprintf("rf%d", i))
		sent := e.mail.count(MessageConfirmEmailChange)
		e.faults.FailNth(f.op, f.n, ddbtest.InternalError)
		err := e.users.RequestEmailChange(ctx, nil, u, fmt.Sprintf("rf%d@example.net", i), pw, Client{})
		e.faults.Clear()
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("request, fault at %s #%d: %v", f.op, f.n, err)
		}
		if got := mustGet(t, e, u.ID); got.PendingEmail != "" || e.mail.count(MessageConfirmEmailChange) != sent {
			t.Fatalf("request, fault at %s #%d: pending %q", f.op, f.n, got.PendingEmail)
		}
	}
	u := e.create("cf@example.com", "cf")
	if err := e.users.RequestEmailChange(ctx, nil, u, "cf@example.net", pw, Client{}); err != nil {
		t.Fatal(err)
	}
	tok := e.mail.last(MessageConfirmEmailChange).Token
	for _, f := range []struct {
		op string
		n  int
	}{{"GetItem", 1}, {"GetItem", 2}, {"TransactWriteItems", 1}} {
		e.faults.FailNth(f.op, f.n, ddbtest.InternalError)
		_, err := e.users.ConfirmEmailChange(ctx, nil, tok, Client{})
		e.faults.Clear()
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("confirm, fault at %s #%d: %v", f.op, f.n, err)
		}
		if got := mustGet(t, e, u.ID); got.Email != "cf@example.com" {
			t.Fatalf("confirm, fault at %s #%d: moved to %q", f.op, f.n, got.Email)
		}
	}
	if got, err := e.users.ConfirmEmailChange(ctx, nil, tok, Client{}); err != nil || got.Email != "cf@example.net" {
		t.Fatalf("the link after the faults: %v", err)
	}
}
