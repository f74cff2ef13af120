package users

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/authctx"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/internal/totp"
	"github.com/dynaguard/dynaguard/sessionstore"
)

// pw is the proof of an account without a second factor.
var pw = Proof{Password: goodPassword}

// authed returns a request context in which u is logged in and
// authenticated at the fake clock's now (what RequireUser provides).
func (e *env) authed(u *User) context.Context {
	return authctx.With(ctx, &loaded{u: u, authAt: e.clock.Now()})
}

// enable enrols u in TOTP and returns the secret and the recovery codes.
// The clock moves on one step, so the code that confirmed the enrolment is
// not the current one.
func (e *env) enable(u *User) (secret []byte, codes []string) {
	e.t.Helper()
	return e.enableWith(u, goodPassword)
}

// enableWith is enable for an account whose password is password.
func (e *env) enableWith(u *User, password string) (secret []byte, codes []string) {
	e.t.Helper()
	pw := Proof{Password: password}
	en, err := e.users.BeginTOTP(e.authed(u), nil, u, pw, Client{})
	if err != nil {
		e.t.Fatalf("BeginTOTP: %v", err)
	}
	if secret, err = totp.DecodeSecret(en.Secret); err != nil {
		e.t.Fatal(err)
	}
	if codes, err = e.users.ConfirmTOTP(e.authed(u), nil, u, pw, e.code(secret, 0), Client{IP: ip("192.0.2.250")}); err != nil {
		e.t.Fatalf("ConfirmTOTP: %v", err)
	}
	e.clock.Advance(30 * time.Second)
	return secret, codes
}

// code returns the code of the step offset steps from now.
func (e *env) code(secret []byte, offset int64) string {
	return totp.Code(secret, totp.Step(e.clock.Now(), totpParams)+offset, totpParams)
}

// newSM returns a session manager on store.
func newSM(store *sessionstore.Store) *scs.SessionManager {
	sm := scs.New()
	sm.Store, sm.Codec = store, sessionstore.Codec{}
	return sm
}

// pending starts a two-step login for u in a fresh session and returns
// the session's context.
func (e *env) pending(users *Users, sm *scs.SessionManager, u *User) context.Context {
	e.t.Helper()
	sctx, err := sm.Load(ctx, "")
	if err != nil {
		e.t.Fatal(err)
	}
	fresh, err := users.Get(ctx, u.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	p, err := users.BeginLogin(sctx, sm, fresh, Client{IP: ip("192.0.2.1")})
	if err != nil || !p {
		e.t.Fatalf("BeginLogin: pending %v, %v", p, err)
	}
	return sctx
}

// RFC 6238 Appendix B, end to end: the RFC's SHA1 seed as an account's
// secret, the clock at each vector's time, and the six-digit form of each
// code (the last six digits of the RFC's eight) completing a login.
func TestTOTPRFC6238VectorsEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mo := e.create("mo@example.com", "mo")
	seed := []byte("12345678901234567890")
	sealed, err := e.users.sealSecret(mo.ID, stateActive, seed)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.base.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(e.base.Name),
		Key:                       ddb.Key(userPK(mo.ID)),
		UpdateExpression:          aws.String("SET #mfa = :t, #totp = :s"),
		ExpressionAttributeNames:  map[string]string{"#mfa": attrMFA, "#totp": attrTOTP},
		ExpressionAttributeValues: item{":t": ddb.Bool(true), ":s": ddb.B(sealed)},
	})
	if err != nil {
		t.Fatal(err)
	}
	sm := newSM(e.store)
	for _, v := range []struct {
		unix int64
		code string // RFC 6238: 94287082, 07081804, 14050471, 89005924, 69279037, 65353130
	}{{59, "287082"}, {1111111109, "081804"}, {1111111111, "050471"}, {1234567890, "005924"}, {2000000000, "279037"}, {20000000000, "353130"}} {
		e.clock.Set(time.Unix(v.unix, 0))
		sctx := e.pending(e.users, sm, mo)
		u, err := e.users.CompleteLogin(sctx, sm, v.code, Client{IP: ip("192.0.2.1")})
		if err != nil || u.ID != mo.ID || loginOf(sctx, sm).userID != mo.ID {
			t.Fatalf("at %d, code %s: %v", v.unix, v.code, err)
		}
	}
}

// Enrolment: a recent login is needed, the URI is what apps import, a
// wrong code does not enable, the right one does (and is used up), and the
// recovery codes come once.
func TestTOTPEnrolment(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.TOTP.Issuer = "Example Co" })
	enrol := Client{IP: ip("192.0.2.20")}
	ned := e.create("ned@example.com", "ned")
	// Without a proof — however recent the session's login — nothing
	// starts: a copied session cookie is not the account.
	for _, p := range []Proof{{}, {Password: "wrong password entirely"}} {
		if _, err := e.users.BeginTOTP(e.authed(ned), nil, ned, p, enrol); !errors.Is(err, ErrProofRequired) || !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("begin with proof %+v: %v", p, err)
		}
	}
	if got := mustGet(t, e, ned.ID); got.totpPending != nil {
		t.Fatal("an enrolment started without a proof")
	}
	en, err := e.users.BeginTOTP(e.authed(ned), nil, ned, pw, Client{})
	if err != nil {
		t.Fatal(err)
	}
	uri, err := url.Parse(en.URI)
	if err != nil || uri.Scheme != "otpauth" || uri.Query().Get("issuer") != "Example Co" || uri.Query().Get("secret") != en.Secret ||
		!strings.Contains(uri.Path, "ned@example.com") {
		t.Fatalf("URI %s", en.URI)
	}
	secret, err := totp.DecodeSecret(en.Secret)
	if err != nil || len(secret) < 20 {
		t.Fatalf("secret of %d bytes: %v", len(secret), err)
	}
	if got := mustGet(t, e, ned.ID); got.TOTPEnabled {
		t.Fatal("enabled before confirmation")
	}
	// Still a one-step login until confirmed.
	sm0 := newSM(e.store)
	sctx0, _ := sm0.Load(ctx, "")
	if p, err := e.users.BeginLogin(sctx0, sm0, mustGet(t, e, ned.ID), Client{}); err != nil || p {
		t.Fatalf("login before confirmation: pending %v %v", p, err)
	}
	// Confirming needs the proof again, even with the right code.
	for _, p := range []Proof{{}, {Password: "wrong password entirely"}} {
		if _, err := e.users.ConfirmTOTP(e.authed(ned), nil, ned, p, e.code(secret, 0), enrol); !errors.Is(err, ErrProofRequired) {
			t.Fatalf("confirm with proof %+v: %v", p, err)
		}
	}
	if _, err := e.users.ConfirmTOTP(e.authed(ned), nil, ned, pw, e.code(secret, 5), enrol); err != ErrInvalidCode {
		t.Fatalf("wrong code: %v", err)
	}
	if _, err := e.users.ConfirmTOTP(e.authed(ned), nil, ned, pw, "12345", enrol); err != ErrInvalidCode {
		t.Fatalf("malformed code: %v", err)
	}
	confirming := e.code(secret, 0)
	codes, err := e.users.ConfirmTOTP(e.authed(ned), nil, ned, pw, confirming, enrol)
	if err != nil || len(codes) != 10 {
		t.Fatalf("confirm: %d codes, %v", len(codes), err)
	}
	seen := map[string]bool{}
	for _, c := range codes {
		n, ok := normalizeRecovery(c)
		if !ok || len(c) != 19 || seen[n] {
			t.Fatalf("recovery code %q", c)
		}
		seen[n] = true
	}
	u := mustGet(t, e, ned.ID)
	if !u.TOTPEnabled || u.RecoveryCodes != 10 || e.mail.count(MessageTOTPEnabled) != 1 {
		t.Fatalf("after confirm: %+v", u)
	}
	if _, err := e.users.ConfirmTOTP(e.authed(ned), nil, mustGet(t, e, ned.ID), pw, confirming, enrol); err != ErrTOTPEnabled {
		t.Fatalf("confirm twice: %v", err)
	}
	if _, err := e.users.BeginTOTP(e.authed(u), nil, u, pw, Client{}); err != ErrTOTPEnabled {
		t.Fatalf("begin when enabled: %v", err)
	}
	// The confirming code cannot also log in.
	sm := newSM(e.store)
	sctx := e.pending(e.users, sm, u)
	if _, err := e.users.CompleteLogin(sctx, sm, confirming, Client{}); err != ErrInvalidCode {
		t.Fatalf("confirming code reused for login: %v", err)
	}
	// Login refuses the account: BeginLogin is the way in.
	if err := e.users.Login(sctx, sm, u, Client{}); err != ErrSecondFactorRequired {
		t.Fatalf("Login on a TOTP account: %v", err)
	}

	// An enrolment lapses, and a newer one replaces an older one.
	pat := e.create("pat@example.com", "pat")
	first, _ := e.users.BeginTOTP(e.authed(pat), nil, pat, pw, Client{})
	second, _ := e.users.BeginTOTP(e.authed(pat), nil, pat, pw, Client{})
	s1, _ := totp.DecodeSecret(first.Secret)
	if _, err := e.users.ConfirmTOTP(e.authed(pat), nil, pat, pw, e.code(s1, 0), enrol); err != ErrInvalidCode {
		t.Fatalf("code of a replaced enrolment: %v", err)
	}
	e.clock.Advance(10 * time.Minute)
	s2, _ := totp.DecodeSecret(second.Secret)
	if _, err := e.users.ConfirmTOTP(e.authed(pat), nil, pat, pw, e.code(s2, 0), enrol); err != ErrNoEnrollment {
		t.Fatalf("lapsed enrolment: %v", err)
	}
}

// Confirming an enrolment is throttled like a login code, on the same
// counters: 5 free attempts per account and address, then a wait — refused
// before any check, so even the right code does not get through — while
// another address is not slowed; every attempt counts towards MaxFailures
// before its check, and at the cap the right code is refused as locked.
func TestConfirmTOTPThrottled(t *testing.T) {
	t.Parallel()
	const maxFails = 8
	e := newEnv(t, func(c *Config) { c.Throttle.MaxFailures = maxFails })
	ora := e.create("ora@example.com", "ora")
	en, err := e.users.BeginTOTP(e.authed(ora), nil, ora, pw, Client{})
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := totp.DecodeSecret(en.Secret)
	wrong := wrongCode(t, secret, e)
	a, b, c := Client{IP: ip("192.0.2.1")}, Client{IP: ip("192.0.2.2")}, Client{IP: ip("192.0.2.3")}
	for i := range 5 {
		if _, err := e.users.ConfirmTOTP(e.authed(ora), nil, ora, pw, wrong, a); err != ErrInvalidCode {
			t.Fatalf("wrong code %d: %v", i, err)
		}
	}
	e.rec.Reset()
	_, err = e.users.ConfirmTOTP(e.authed(ora), nil, ora, pw, e.code(secret, 0), a)
	var te *ThrottledError
	if !errors.As(err, &te) || te.Locked || te.RetryAfter != 30*time.Second {
		t.Fatalf("sixth attempt from one address: %v", err)
	}
	// The proof (a login's calls) comes first, then the throttle stops the
	// code before any check.
	if got := ops(e.rec.Calls()); got != "BatchGetItem,GetItem,UpdateItem,UpdateItem,DeleteItem,BatchGetItem" {
		t.Fatalf("a throttled confirmation made %s", got)
	}
	if u := mustGet(t, e, ora.ID); u.TOTPEnabled {
		t.Fatal("enabled by a throttled attempt")
	}
	// Another address is not slowed down. (The account's failure cap does
	// not bound enrolment codes: each confirmation first needs the correct
	// password, which — as at login — clears the count; whoever has the
	// password can start an enrolment of their own anyway.)
	for i := range 5 {
		if _, err := e.users.ConfirmTOTP(e.authed(ora), nil, ora, pw, wrong, b); err != ErrInvalidCode {
			t.Fatalf("wrong code %d from another address: %v", i, err)
		}
	}
	e.rec.Reset()
	codes, err := e.users.ConfirmTOTP(e.authed(ora), nil, ora, pw, e.code(secret, 0), c)
	if err != nil || len(codes) == 0 {
		t.Fatalf("right code from a third address: %v", err)
	}
	if got := ops(e.rec.Calls()); got != "BatchGetItem,GetItem,UpdateItem,UpdateItem,DeleteItem,BatchGetItem,UpdateItem,UpdateItem,UpdateItem,DeleteItem,Query" {
		t.Fatalf("confirmation calls: %s", got)
	}
	t.Logf("ConfirmTOTP: %s", ops(e.rec.Calls()))
	if u := mustGet(t, e, ora.ID); !u.TOTPEnabled || u.fails != 0 {
		t.Fatalf("after confirmation: enabled %v, fails %d", u.TOTPEnabled, u.fails)
	}
}

// A storage fault at any call of a confirmation leaves TOTP off
// (ErrUnavailable), except after the enabling write itself: then TOTP is on
// and the codes are returned — only the attempt counter was not cleared.
func TestConfirmTOTPStorageFaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i, s := range []struct {
		op string
		n  int
	}{
		// The step-up: the password checked like a login.
		{"BatchGetItem", 1}, {"GetItem", 1}, {"UpdateItem", 1}, {"DeleteItem", 1},
		// The enrolment code.
		{"BatchGetItem", 2}, {"UpdateItem", 2}, {"UpdateItem", 3}, {"UpdateItem", 4}, {"DeleteItem", 2},
	} {
		u := e.create(fmt.Sprintf("f%d@example.com", i), fmt.Sprintf("f%d", i))
		en, err := e.users.BeginTOTP(e.authed(u), nil, u, pw, Client{})
		if err != nil {
			t.Fatal(err)
		}
		secret, _ := totp.DecodeSecret(en.Secret)
		e.faults.FailNth(s.op, s.n, ddbtest.InternalError)
		codes, err := e.users.ConfirmTOTP(e.authed(u), nil, u, pw, e.code(secret, 0), Client{IP: ip("192.0.2.1")})
		e.faults.Clear()
		enabled := mustGet(t, e, u.ID).TOTPEnabled
		if s.op == "DeleteItem" && s.n == 2 {
			if err != nil || len(codes) == 0 || !enabled {
				t.Fatalf("fault at the counter's deletion: %v, enabled %v", err, enabled)
			}
			continue
		}
		if !errors.Is(err, ErrUnavailable) || enabled {
			t.Fatalf("%s #%d: %v, enabled %v", s.op, s.n, err, enabled)
		}
	}
}

// The two-step login through HTTP: after the password the session is
// pending, not logged in; only a valid code logs it in, with a new token
// at each step; the pending state expires.
func TestTwoStepLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := newApp(e)
	olive := e.create("olive@example.com", "olive")
	secret, codes := e.enable(olive)
	b := a.browser("192.0.2.1")
	if code := b.login("olive", goodPassword); code != http.StatusAccepted {
		t.Fatalf("password step: %d", code)
	}
	pendingToken := b.sessionToken()
	if pendingToken == "" {
		t.Fatal("no session after the password step")
	}
	if code, body := b.get("/public"); code != 200 || body != "anonymous" {
		t.Fatalf("pending session is logged in: %d %s", code, body)
	}
	if code, _ := b.get("/me"); code != http.StatusUnauthorized {
		t.Fatalf("RequireUser let a pending session through: %d", code)
	}
	resp, body := b.do("POST", "/code", url.Values{"code": {"not a code"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "second-factor-failed") {
		t.Fatalf("wrong code: %d %s", resp.StatusCode, body)
	}
	if code := b.post("/code", url.Values{"code": {e.code(secret, 0)}}); code != http.StatusNoContent {
		t.Fatalf("code step: %d", code)
	}
	if b.sessionToken() == pendingToken {
		t.Fatal("token not renewed at the second step")
	}
	if code, body := b.get("/me"); code != 200 || body != olive.ID {
		t.Fatalf("after the code: %d %s", code, body)
	}
	// Re-authentication: the session stays logged in (and bound to the
	// user in the store, under its new token) while the code is pending.
	if code := b.login("olive", goodPassword); code != http.StatusAccepted {
		t.Fatalf("re-authentication, password step: %d", code)
	}
	if code, body := b.get("/me"); code != 200 || body != olive.ID {
		t.Fatalf("logged-in session during re-authentication: %d %s", code, body)
	}
	if sessions, err := e.store.List(ctx, olive.ID); err != nil || len(sessions) != 1 || sessions[0].ID != e.store.ID(b.sessionToken()) {
		t.Fatalf("binding during re-authentication: %+v %v", sessions, err)
	}
	e.clock.Advance(30 * time.Second)
	if code := b.post("/code", url.Values{"code": {e.code(secret, 0)}}); code != http.StatusNoContent {
		t.Fatalf("re-authentication, code step: %d", code)
	}
	// A pending login as another account ends the session's login.
	e.create("pete@example.com", "pete")
	shared := a.browser("192.0.2.5")
	if code := shared.login("pete", goodPassword); code != http.StatusNoContent {
		t.Fatal(code)
	}
	if code := shared.login("olive", goodPassword); code != http.StatusAccepted {
		t.Fatal(code)
	}
	if code, body := shared.get("/public"); body != "anonymous" {
		t.Fatalf("the previous account's login survived: %d %s", code, body)
	}
	// The pending state lasts 5 minutes.
	c := a.browser("192.0.2.2")
	if code := c.login("olive", goodPassword); code != http.StatusAccepted {
		t.Fatal(code)
	}
	e.clock.Advance(5*time.Minute + time.Second)
	resp, body = c.do("POST", "/code", url.Values{"code": {e.code(secret, 0)}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "second-factor-expired") {
		t.Fatalf("expired pending login: %d %s", resp.StatusCode, body)
	}
	// A code without a password step.
	d := a.browser("192.0.2.3")
	if code := d.post("/code", url.Values{"code": {e.code(secret, 1)}}); code != http.StatusUnauthorized {
		t.Fatalf("code without a password: %d", code)
	}
	// A recovery code completes the login too.
	if code := d.login("olive", goodPassword); code != http.StatusAccepted {
		t.Fatal(code)
	}
	if code := d.post("/code", url.Values{"code": {strings.ToUpper(codes[0])}}); code != http.StatusNoContent {
		t.Fatalf("recovery code: %d", code)
	}
	if code, body := d.get("/me"); code != 200 || body != olive.ID {
		t.Fatalf("after a recovery code: %d %s", code, body)
	}
}

// Pending states belong to their session and are invalidated by account
// changes made between the two steps.
func TestPendingLoginInvalidatedByAccountChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sm := newSM(e.store)
	pia := e.create("pia@example.com", "pia")
	if _, err := e.users.VerifyEmail(ctx, e.verifyToken(pia)); err != nil { // a reset keeps the second factor of a verified address
		t.Fatal(err)
	}
	secret, _ := e.enable(mustGet(t, e, pia.ID))
	changes := map[string]func(){
		"logout everywhere": func() { _ = e.users.LogoutEverywhere(ctx, nil, mustGet(t, e, pia.ID)) },
		"password reset": func() {
			if _, err := e.users.ResetPassword(ctx, e.resetToken("pia@example.com"), newPassword+" "+fmt.Sprint(e.clock.Now().UnixNano())); err != nil {
				t.Fatal(err)
			}
		},
		"disabled": func() { _ = e.users.Disable(ctx, pia.ID); _ = e.users.Enable(ctx, pia.ID) },
	}
	for name, change := range changes {
		sctx := e.pending(e.users, sm, pia)
		change()
		if _, err := e.users.CompleteLogin(sctx, sm, e.code(secret, 0), Client{}); err != ErrNoPendingLogin {
			t.Fatalf("%s: %v", name, err)
		}
		if _, ok := e.users.Pending(sctx, sm); ok {
			t.Fatalf("%s: pending state kept", name)
		}
	}
	sctx := e.pending(e.users, sm, pia)
	if p, ok := e.users.Pending(sctx, sm); !ok || p.UserID != pia.ID || !p.Expires.Equal(e.clock.Now().Add(5*time.Minute)) {
		t.Fatalf("Pending: %+v %v", p, ok)
	}
	e.users.CancelLogin(sctx, sm)
	if _, err := e.users.CompleteLogin(sctx, sm, e.code(secret, 0), Client{}); err != ErrNoPendingLogin {
		t.Fatalf("after CancelLogin: %v", err)
	}
	// TOTP removed between the steps.
	sctx = e.pending(e.users, sm, pia)
	if err := e.users.RemoveTOTP(ctx, pia.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.users.CompleteLogin(sctx, sm, e.code(secret, 0), Client{}); err != ErrNoPendingLogin {
		t.Fatalf("TOTP removed: %v", err)
	}
}

// ±1 step of skew, not ±2; each step once; an older step after a newer one
// is refused; a replay is reported.
func TestTOTPSkewAndReplay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sm := newSM(e.store)
	quinn := e.create("quinn@example.com", "quinn")
	secret, _ := e.enable(quinn)
	e.clock.Advance(30 * time.Second) // the confirming step is no longer in the window
	try := func(code string) error {
		_, err := e.users.CompleteLogin(e.pending(e.users, sm, quinn), sm, code, Client{IP: ip("198.51.100.4")})
		return err
	}
	for _, off := range []int64{-2, 2} {
		if err := try(e.code(secret, off)); err != ErrInvalidCode {
			t.Fatalf("step %+d: %v", off, err)
		}
	}
	if n := e.mail.count(MessageCodeReplayed); n != 0 {
		t.Fatalf("out-of-window codes reported as replays: %d", n)
	}
	if err := try(e.code(secret, -1)); err != nil {
		t.Fatalf("step -1: %v", err)
	}
	prev := e.code(secret, -1)
	if err := try(prev); err != ErrInvalidCode {
		t.Fatalf("same code twice: %v", err)
	}
	if m := e.mail.last(MessageCodeReplayed); m.UserID != quinn.ID || m.IP != ip("198.51.100.4") || m.To != "quinn@example.com" {
		t.Fatalf("replay not reported: %v", m)
	}
	if err := try(e.code(secret, 1)); err != nil {
		t.Fatalf("step +1: %v", err)
	}
	if err := try(e.code(secret, 0)); err != ErrInvalidCode {
		t.Fatalf("an earlier step after a later one: %v", err)
	}
	if n := e.mail.count(MessageCodeReplayed); n != 2 {
		t.Fatalf("%d replay reports, want 2", n)
	}
	e.clock.Advance(60 * time.Second)
	if err := try(e.code(secret, 0)); err != nil {
		t.Fatalf("the next step: %v", err)
	}
}

// 50 concurrent uses of one code, from 50 addresses (so that throttling
// does not hide the race), on two instances: one login; 49 replays.
func TestTOTPConcurrentSameCode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rita := e.create("rita@example.com", "rita")
	secret, _ := e.enable(rita)
	second := e.instance()
	sm := newSM(e.store)
	instances := []*Users{e.users, second}
	ctxs := make([]context.Context, 50)
	for i := range ctxs {
		ctxs[i] = e.pending(instances[i%2], sm, rita)
	}
	code := e.code(secret, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, refused := 0, 0
	for i := range ctxs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := instances[i%2].CompleteLogin(ctxs[i], sm, code, Client{IP: ip(fmt.Sprintf("198.51.100.%d", 100+i))})
			mu.Lock()
			defer mu.Unlock()
			switch err {
			case nil:
				wins++
			case ErrInvalidCode:
				refused++
			default:
				t.Errorf("unexpected: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || refused != 49 {
		t.Fatalf("%d logins, %d refused; want 1 and 49", wins, refused)
	}
	if n := e.mail.count(MessageCodeReplayed); n != 49 {
		t.Fatalf("%d replays reported, want 49", n)
	}
}

// Recovery codes: each works once, also under concurrency; typing
// variations are accepted; regenerating replaces the whole set.
func TestRecoveryCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sid := e.create("sid@example.com", "sid")
	_, codes := e.enable(sid)
	sm := newSM(e.store)
	try := func(users *Users, code, addr string) error {
		_, err := users.CompleteLogin(e.pending(users, sm, sid), sm, code, Client{IP: ip(addr)})
		return err
	}
	typed := strings.ToUpper(strings.ReplaceAll(codes[0], "-", " "))
	typed = strings.NewReplacer("0", "O", "1", "l").Replace(typed)
	if err := try(e.users, typed, "192.0.2.1"); err != nil {
		t.Fatalf("recovery code as typed %q: %v", typed, err)
	}
	if m := e.mail.last(MessageRecoveryCodeUsed); m.Remaining != 9 {
		t.Fatalf("recovery-code-used: %v remaining %d", m, m.Remaining)
	}
	if err := try(e.users, codes[0], "192.0.2.1"); err != ErrInvalidCode {
		t.Fatalf("used twice: %v", err)
	}
	// Concurrent: 20 uses of one code, two instances, 20 addresses.
	second := e.instance()
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	ctxs := make([]context.Context, 20)
	for i := range ctxs {
		ctxs[i] = e.pending(e.users, sm, sid)
	}
	for i := range ctxs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			users := []*Users{e.users, second}[i%2]
			_, err := users.CompleteLogin(ctxs[i], sm, codes[1], Client{IP: ip(fmt.Sprintf("198.51.100.%d", i))})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				wins++
			} else if err != ErrInvalidCode {
				t.Errorf("unexpected: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d logins with one recovery code", wins)
	}
	if got := mustGet(t, e, sid.ID).RecoveryCodes; got != 8 {
		t.Fatalf("%d codes left, want 8", got)
	}
	// Regenerate: needs the password and a code; the old set dies at once.
	for _, p := range []Proof{{}, pw, {Password: goodPassword, Code: "000000"}} {
		if _, err := e.users.RegenerateRecoveryCodes(e.authed(sid), nil, mustGet(t, e, sid.ID), p, Client{}); !errors.Is(err, ErrProofRequired) {
			t.Fatalf("regenerate with proof %+v: %v", p, err)
		}
	}
	fresh, err := e.users.RegenerateRecoveryCodes(e.authed(sid), nil, mustGet(t, e, sid.ID), Proof{Password: goodPassword, Code: codes[9]}, Client{})
	if err != nil || len(fresh) != 10 || e.mail.count(MessageRecoveryCodesRegenerated) != 1 {
		t.Fatalf("regenerate: %v", err)
	}
	if err := try(e.users, codes[2], "192.0.2.7"); err != ErrInvalidCode {
		t.Fatalf("old code after regeneration: %v", err)
	}
	if err := try(second, fresh[9], "192.0.2.7"); err != nil {
		t.Fatalf("new code: %v", err)
	}
	// Not an account's code: another account's.
	tom := e.create("tom@example.com", "tom")
	_, tomCodes := e.enable(tom)
	if err := try(e.users, tomCodes[0], "192.0.2.8"); err != ErrInvalidCode {
		t.Fatalf("another account's recovery code: %v", err)
	}
}

// Wrong codes are throttled like passwords: 5 free per account and
// address, then rising waits; every failure counts towards the account's
// lock, and a correct password does not reset that count.
func TestSecondFactorThrottling(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.Throttle.MaxFailures = 12 })
	a := newApp(e)
	uma := e.create("uma@example.com", "uma")
	secret, _ := e.enable(uma)
	b := a.browser("192.0.2.1")
	if code := b.login("uma", goodPassword); code != http.StatusAccepted {
		t.Fatal(code)
	}
	wrong := func(br *browser) (int, string) {
		resp, body := br.do("POST", "/code", url.Values{"code": {"000000"}})
		return resp.StatusCode, body
	}
	if e.code(secret, 0) == "000000" || e.code(secret, 1) == "000000" || e.code(secret, -1) == "000000" {
		t.Skip("the secret happens to produce 000000")
	}
	for i := range 5 {
		if code, _ := wrong(b); code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, code)
		}
	}
	resp, body := b.do("POST", "/code", url.Values{"code": {e.code(secret, 0)}})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "30" || !strings.Contains(body, "login-throttled") {
		t.Fatalf("sixth attempt: %d %s %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// The owner elsewhere is not slowed down by this address.
	c := a.browser("192.0.2.99")
	if code := c.login("uma", goodPassword); code != http.StatusAccepted {
		t.Fatal(code)
	}
	e.rec.Reset()
	if code := c.post("/code", url.Values{"code": {e.code(secret, 0)}}); code != http.StatusNoContent {
		t.Fatalf("owner from another address: %d", code)
	}
	if got := mustGet(t, e, uma.ID).fails; got != 0 {
		t.Fatalf("fails %d after a complete login", got)
	}
	// From many addresses: the account's consecutive failures, which a
	// correct password alone does not reset, lock it at MaxFailures.
	for i := range 12 {
		d := a.browser(fmt.Sprintf("203.0.113.%d", i))
		if code := d.login("uma", goodPassword); code != http.StatusAccepted {
			t.Fatalf("password step %d: %d", i, code)
		}
		if code, _ := wrong(d); code != http.StatusUnauthorized {
			t.Fatalf("wrong code %d: %d", i, code)
		}
	}
	if got := mustGet(t, e, uma.ID).fails; got != 12 {
		t.Fatalf("fails %d, want 12", got)
	}
	d := a.browser("203.0.113.200")
	if code := d.login("uma", goodPassword); code != http.StatusTooManyRequests {
		t.Fatalf("locked account, password step: %d", code)
	}
}

// TOTP off: the password and a code are needed; afterwards the password alone logs
// in and the recovery codes are gone.
func TestDisableTOTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	val := e.create("val@example.com", "val")
	secret, _ := e.enable(val)
	u := mustGet(t, e, val.ID)
	// A fresh login is not enough: the password and a code are needed.
	for _, p := range []Proof{{}, pw, {Password: goodPassword, Code: "000000"}, {Password: "wrong password entirely", Code: e.code(secret, 0)}} {
		if err := e.users.DisableTOTP(e.authed(u), nil, u, p, Client{}); !errors.Is(err, ErrProofRequired) {
			t.Fatalf("disable with proof %+v: %v", p, err)
		}
	}
	if err := e.users.DisableTOTP(e.authed(u), nil, u, Proof{Password: goodPassword, Code: e.code(secret, 0)}, Client{}); err != nil {
		t.Fatal(err)
	}
	u = mustGet(t, e, val.ID)
	if u.TOTPEnabled || u.RecoveryCodes != 0 || u.totpSealed != nil || e.mail.count(MessageTOTPDisabled) != 1 {
		t.Fatalf("after disable: %+v", u)
	}
	if err := e.users.DisableTOTP(e.authed(u), nil, u, pw, Client{}); err != ErrTOTPNotEnabled {
		t.Fatalf("disable twice: %v", err)
	}
	sm := newSM(e.store)
	sctx, _ := sm.Load(ctx, "")
	if p, err := e.users.BeginLogin(sctx, sm, u, Client{}); err != nil || p || loginOf(sctx, sm).userID != val.ID {
		t.Fatalf("login after disable: %v %v", p, err)
	}
}

// A second-factor login costs: BatchGetItem (counters and account,
// consistent), UpdateItem (count the attempt on the (account, address)
// counter, conditional), UpdateItem (count it on the account, under the
// cap), UpdateItem (the step, conditional), DeleteItem (the counter), and
// the session store's tombstone of the pre-login token (RenewToken). A
// wrong code: the same two counts, then the address's failure count.
func TestCompleteLoginCalls(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	wes := e.create("wes@example.com", "wes")
	secret, codes := e.enable(wes)
	sm := newSM(e.store)
	for _, c := range []struct{ name, code, cond string }{
		{"totp", e.code(secret, 0), "#ts < :step"},
		{"recovery", codes[3], "contains(#rc, :h)"},
	} {
		sctx := e.pending(e.users, sm, wes)
		e.rec.Reset()
		if _, err := e.users.CompleteLogin(sctx, sm, c.code, Client{IP: ip("192.0.2.1")}); err != nil {
			t.Fatal(err)
		}
		calls := e.rec.Calls()
		if got := ops(calls); got != "BatchGetItem,UpdateItem,UpdateItem,UpdateItem,DeleteItem,PutItem" {
			t.Fatalf("%s: calls %s", c.name, got)
		}
		if !calls[0].ConsistentRead || calls[1].Condition == "" || !strings.Contains(calls[2].Condition, "#f < :max") ||
			!strings.Contains(calls[3].Condition, c.cond) || !strings.Contains(calls[3].Condition, "#f <= :max") {
			t.Fatalf("%s: %+v", c.name, calls[:4])
		}
		t.Logf("CompleteLogin (%s): %s", c.name, ops(calls))
	}
	sctx := e.pending(e.users, sm, wes)
	e.rec.Reset()
	if _, err := e.users.CompleteLogin(sctx, sm, wrongCode(t, secret, e), Client{IP: ip("192.0.2.1")}); err != ErrInvalidCode {
		t.Fatal(err)
	}
	if got := ops(e.rec.Calls()); got != "BatchGetItem,UpdateItem,UpdateItem,UpdateItem" {
		t.Fatalf("wrong code: calls %s", got)
	}
	t.Logf("CompleteLogin (wrong code): %s", ops(e.rec.Calls()))
}

// wrongCode returns a six-digit code that is not the secret's for any step
// CompleteLogin accepts now.
func wrongCode(t *testing.T, secret []byte, e *env) string {
	t.Helper()
	for _, c := range []string{"000000", "000001", "123456"} {
		if c != e.code(secret, -1) && c != e.code(secret, 0) && c != e.code(secret, 1) {
			return c
		}
	}
	t.Fatal("no wrong code")
	return ""
}

// The account's cap is exact under a burst: 200 concurrent wrong codes
// from 40 addresses (5 each, within the per-address limits) on two
// instances check at most MaxFailures codes — each check needs its own
// conditional write under the cap — and the count ends at the cap, not
// past it. Then even the right code is refused as locked.
func TestSecondFactorCapUnderConcurrency(t *testing.T) {
	t.Parallel()
	const maxFails = 10
	// 200 writes contending for one item can queue past the default budget
	// (3 s) under -race on a busy machine; this test is about the cap.
	e := newEnv(t, func(c *Config) { c.Throttle.MaxFailures = maxFails; c.Budget = time.Minute })
	yul := e.create("yul@example.com", "yul")
	secret, _ := e.enable(yul)
	other := e.instance()
	sm := newSM(e.store)
	const n = 200
	sessions := make([]context.Context, n)
	for i := range sessions {
		sessions[i] = e.pending(e.users, sm, yul)
	}
	wrong := wrongCode(t, secret, e)
	e.rec.Reset()
	var (
		wg                       sync.WaitGroup
		mu                       sync.Mutex
		checked, locked, unknown int
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := e.users
			if i%2 == 1 {
				u = other
			}
			_, err := u.CompleteLogin(sessions[i], sm, wrong, Client{IP: ip(fmt.Sprintf("198.51.100.%d", i%40))})
			var te *ThrottledError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == ErrInvalidCode:
				checked++
			case errors.As(err, &te) && te.Locked:
				locked++
			default:
				unknown++
				t.Errorf("attempt %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	counted := 0
	for _, c := range e.rec.Calls() {
		if c.Op == "UpdateItem" && strings.Contains(c.Condition, "#f < :max") && c.Err == nil {
			counted++
		}
	}
	fails := mustGet(t, e, yul.ID).fails
	t.Logf("%d concurrent wrong codes: %d checked, %d refused as locked; %d counted on the account; fails = %d", n, checked, locked, counted, fails)
	if checked > maxFails || counted > maxFails || fails > maxFails {
		t.Fatalf("%d codes checked, %d attempts counted, fails = %d; the cap is %d", checked, counted, fails, maxFails)
	}
	if checked+locked != n {
		t.Fatalf("checked %d + locked %d != %d", checked, locked, n)
	}
	// The cap holds for the right code too, from a fresh address.
	sctx := e.pending(e.users, sm, yul)
	var te *ThrottledError
	if _, err := e.users.CompleteLogin(sctx, sm, e.code(secret, 0), Client{IP: ip("203.0.113.77")}); !errors.As(err, &te) || !te.Locked {
		t.Fatalf("right code after the cap: %v", err)
	}
	if uid := loginOf(sctx, sm).userID; uid != "" {
		t.Fatal("logged in past the cap")
	}
}

// The bounds around the cap: an attempt that finds MaxFailures-1 failures
// is the last one allowed, and with the right code it logs in (its own
// count brings the account to exactly MaxFailures, which the single-use
// write accepts and resets); at MaxFailures nothing is checked. The
// single-use writes themselves refuse a count above the cap — failures
// counted meanwhile by the password path — as locked, using nothing up.
func TestSecondFactorCapBounds(t *testing.T) {
	t.Parallel()
	const maxFails = 5
	e := newEnv(t, func(c *Config) { c.Throttle.MaxFailures = maxFails })
	zed := e.create("zed@example.com", "zed")
	secret, codes := e.enable(zed)
	setFails := func(n int64) {
		t.Helper()
		_, err := e.base.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 aws.String(e.base.Name),
			Key:                       ddb.Key(userPK(zed.ID)),
			UpdateExpression:          aws.String("SET #f = :n"),
			ExpressionAttributeNames:  map[string]string{"#f": attrFails},
			ExpressionAttributeValues: item{":n": ddb.N(n)},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sm := newSM(e.store)
	c := Client{IP: ip("192.0.2.1")}
	setFails(maxFails - 1)
	sctx := e.pending(e.users, sm, zed)
	if _, err := e.users.CompleteLogin(sctx, sm, e.code(secret, 0), c); err != nil {
		t.Fatalf("right code as the last attempt allowed: %v", err)
	}
	if got := mustGet(t, e, zed.ID).fails; got != 0 {
		t.Fatalf("fails %d after the login", got)
	}
	setFails(maxFails)
	e.clock.Advance(30 * time.Second)
	sctx = e.pending(e.users, sm, zed)
	e.rec.Reset()
	var te *ThrottledError
	if _, err := e.users.CompleteLogin(sctx, sm, e.code(secret, 0), c); !errors.As(err, &te) || !te.Locked {
		t.Fatalf("at the cap: %v", err)
	}
	if e.rec.Writes() != 0 {
		t.Fatalf("a locked attempt wrote: %s", ops(e.rec.Calls()))
	}

	u := mustGet(t, e, zed.ID)
	step := totp.Step(e.clock.Now(), totpParams)
	rc, _ := normalizeRecovery(codes[0])
	setFails(maxFails + 1)
	if out, err := e.users.st.acceptStep(ctx, u, step, nil, maxFails); err != nil || out != factorLocked {
		t.Fatalf("acceptStep over the cap: %v %v", out, err)
	}
	if out, _, err := e.users.st.useRecoveryCode(ctx, u, recoveryHash(u.ID, rc), maxFails); err != nil || out != factorLocked {
		t.Fatalf("useRecoveryCode over the cap: %v %v", out, err)
	}
	if got := mustGet(t, e, zed.ID); got.totpStep >= step || got.RecoveryCodes != len(codes) || got.fails != maxFails+1 {
		t.Fatalf("a refused write changed the account: step %d, %d codes, fails %d", got.totpStep, got.RecoveryCodes, got.fails)
	}
	setFails(maxFails)
	if out, err := e.users.st.acceptStep(ctx, u, step, nil, maxFails); err != nil || out != factorAccepted {
		t.Fatalf("acceptStep at the cap: %v %v", out, err)
	}
	setFails(maxFails)
	if out, left, err := e.users.st.useRecoveryCode(ctx, u, recoveryHash(u.ID, rc), maxFails); err != nil || out != factorAccepted || left != len(codes)-1 {
		t.Fatalf("useRecoveryCode at the cap: %v %d %v", out, left, err)
	}
	if got := mustGet(t, e, zed.ID).fails; got != 0 {
		t.Fatalf("fails %d after an accepted code", got)
	}
}

// Storage faults at any call never complete a second-factor login.
func TestSecondFactorStorageFaultsNeverLogIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	xia := e.create("xia@example.com", "xia")
	secret, codes := e.enable(xia)
	sm := newSM(e.store)
	steps := []struct {
		op string
		n  int
	}{{"BatchGetItem", 1}, {"UpdateItem", 1}, {"UpdateItem", 2}, {"UpdateItem", 3}, {"DeleteItem", 1}, {"PutItem", 1}}
	i := 0
	for _, s := range steps {
		for _, f := range ddbtest.StorageFaults {
			for _, recovery := range []bool{false, true} {
				i++
				e.clock.Advance(30 * time.Second)
				sctx := e.pending(e.users, sm, xia)
				code := e.code(secret, 0)
				if recovery {
					code = codes[0]
				}
				e.faults.FailNth(s.op, s.n, f)
				_, err := e.users.CompleteLogin(sctx, sm, code, Client{IP: ip(fmt.Sprintf("198.51.100.%d", i%250))})
				e.faults.Clear()
				if !errors.Is(err, ErrUnavailable) {
					t.Errorf("%s #%d %v (recovery %v): %v", s.op, s.n, f, recovery, err)
				}
				if uid := loginOf(sctx, sm).userID; uid != "" {
					t.Fatalf("%s #%d %v: logged in", s.op, s.n, f)
				}
				if recovery && (s.op == "DeleteItem" || s.op == "PutItem") {
					// The code was used up by the write before the fault;
					// the login still did not complete.
					codes = codes[1:]
				}
			}
		}
	}
}

// The secret is sealed to its account: copied onto another account it
// does not open, and the login fails closed. After a secret rotation it
// still opens, and is resealed under the new key at its next use.
func TestTOTPSecretSealing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	yan := e.create("yan@example.com", "yan")
	zed := e.create("zed@example.com", "zed")
	secret, _ := e.enable(yan)
	e.enable(zed)
	sealed := mustGet(t, e, yan.ID).totpSealed
	if strings.Contains(string(sealed), string(secret)) {
		t.Fatal("secret stored in the clear")
	}
	if _, err := e.base.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(e.base.Name), Key: ddb.Key(userPK(zed.ID)),
		UpdateExpression:          aws.String("SET #totp = :s"),
		ExpressionAttributeNames:  map[string]string{"#totp": attrTOTP},
		ExpressionAttributeValues: item{":s": ddb.B(sealed)},
	}); err != nil {
		t.Fatal(err)
	}
	sm := newSM(e.store)
	if _, err := e.users.CompleteLogin(e.pending(e.users, sm, zed), sm, e.code(secret, 0), Client{}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a secret copied from another account: %v", err)
	}
	// Rotation: B current, A previous.
	rotated := e.cfg
	rotated.Keys = keyring(t, secretB, secretA)
	store, err := sessionstore.New(sessionstore.Config{Table: e.tbl, Keys: rotated.Keys, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	rotated.Sessions = store
	after, err := New(rotated)
	if err != nil {
		t.Fatal(err)
	}
	sm2 := newSM(store)
	if _, err := after.CompleteLogin(e.pending(after, sm2, yan), sm2, e.code(secret, 0), Client{}); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	resealed := mustGet(t, e, yan.ID).totpSealed
	kid := rotated.Keys.Key(dynaguard.PurposeTOTPSeal).ID
	if string(resealed[1:1+resealed[0]]) != kid {
		t.Fatal("secret not resealed under the current key")
	}
	e.clock.Advance(30 * time.Second)
	if _, err := after.CompleteLogin(e.pending(after, sm2, yan), sm2, e.code(secret, 0), Client{}); err != nil {
		t.Fatalf("resealed secret: %v", err)
	}
}

// A dump of the table after every flow of this package holds no reset or
// verification token, no TOTP secret, no recovery code and no password, in
// any encoding.
func TestTableDumpHoldsNoAccountSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := newApp(e)
	abe := e.create("abe@example.com", "abe")
	unusedReset := e.resetToken("abe@example.com")
	usedReset := e.resetToken("abe@example.com")
	if _, err := e.users.ResetPassword(ctx, usedReset, newPassword); err != nil {
		t.Fatal(err)
	}
	abe = mustGet(t, e, abe.ID)
	abe.EmailVerified = false
	unusedVerify := e.verifyToken(abe)
	secret, codes := e.enableWith(mustGet(t, e, abe.ID), newPassword)
	// A pending enrolment's secret too.
	bea := e.create("bea@example.com", "bea")
	pending, err := e.users.BeginTOTP(e.authed(bea), nil, bea, pw, Client{})
	if err != nil {
		t.Fatal(err)
	}
	pendingSecret, _ := totp.DecodeSecret(pending.Secret)
	// A two-step login, with a recovery code, through the session store.
	b := a.browser("192.0.2.1")
	if code := b.login("abe", newPassword); code != http.StatusAccepted {
		t.Fatal(code)
	}
	if code := b.post("/code", url.Values{"code": {codes[0]}}); code != http.StatusNoContent {
		t.Fatal(code)
	}
	dump := ddbtest.Dump(t, e.base)
	secrets := map[string]string{
		"unused reset token":      unusedReset,
		"used reset token":        usedReset,
		"verification token":      unusedVerify,
		"TOTP secret (base32)":    totp.EncodeSecret(secret),
		"TOTP secret (raw)":       string(secret),
		"pending secret (base32)": pending.Secret,
		"pending secret (raw)":    string(pendingSecret),
		"old password":            goodPassword,
		"new password":            newPassword,
	}
	for _, tok := range []string{unusedReset, usedReset, unusedVerify} {
		raw, _ := tokenEncoding.DecodeString(tok)
		secrets["token bytes of "+tok[:6]] = string(raw)
		secrets["token hex of "+tok[:6]] = fmt.Sprintf("%x", raw)
	}
	for i, c := range codes {
		n, _ := normalizeRecovery(c)
		secrets[fmt.Sprintf("recovery code %d", i)] = c
		secrets[fmt.Sprintf("recovery code %d (normalised)", i)] = n
	}
	for name, s := range secrets {
		for _, form := range []string{s, fmt.Sprintf("%x", s), strings.ToLower(s)} {
			if strings.Contains(dump, form) {
				t.Errorf("table dump contains the %s", name)
			}
		}
	}
	if !strings.Contains(dump, dynaguard.PrefixToken) || !strings.Contains(dump, attrRecovery+"=") || !strings.Contains(dump, attrTOTP+"=") {
		t.Fatal("the flows did not store what this test looks through")
	}
}

// With the longest identifiers, TOTP on and a full set of recovery codes,
// the account item is still one read unit.
func TestUserItemWithTOTPIsOneReadUnit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.TOTP.RecoveryCodes = 16 })
	email := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com"
	u, err := e.users.Create(ctx, NewUser{Email: email, Username: strings.Repeat("ü", MaxUsernameRunes), Password: goodPassword})
	if err != nil {
		t.Fatal(err)
	}
	e.enable(u)
	out, err := ddbtest.Client(t).GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(e.base.Name),
		Key: ddb.Key(userPK(u.ID)), ConsistentRead: aws.Bool(true), ReturnConsumedCapacity: "TOTAL"})
	if err != nil {
		t.Fatal(err)
	}
	if cu := aws.ToFloat64(out.ConsumedCapacity.CapacityUnits); cu != 1 {
		t.Errorf("consistent read of the account costs %v units, want 1", cu)
	}
}
