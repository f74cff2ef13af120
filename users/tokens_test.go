package users

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

const newPassword = "seven orange kites drifting"

// resetToken requests a reset for email and returns the token mailed for it.
func (e *env) resetToken(email string) string {
	e.t.Helper()
	before := e.mail.count(MessagePasswordReset)
	if err := e.users.RequestReset(ctx, email, ip("192.0.2.50")); err != nil {
		e.t.Fatalf("RequestReset: %v", err)
	}
	if e.mail.count(MessagePasswordReset) != before+1 {
		e.t.Fatal("no reset message sent")
	}
	return e.mail.last(MessagePasswordReset).Token
}

func (e *env) verifyToken(u *User) string {
	e.t.Helper()
	if err := e.users.RequestEmailVerification(ctx, u, ip("192.0.2.51")); err != nil {
		e.t.Fatalf("RequestEmailVerification: %v", err)
	}
	return e.mail.last(MessageVerifyEmail).Token
}

// The whole reset: the link goes to the stored address, the new password
// works and the old one does not, every session ends, nobody is logged in,
// the owner is told, and the link works once.
func TestResetPassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := newApp(e)
	amy := e.create("Amy@Example.com", "amy")
	laptop, phone := a.browser("192.0.2.1"), a.browser("192.0.2.2")
	for _, b := range []*browser{laptop, phone} {
		if code := b.login("amy", goodPassword); code != http.StatusNoContent {
			t.Fatalf("login: %d", code)
		}
	}
	token := e.resetToken("AMY@example.COM")
	msg := e.mail.last(MessagePasswordReset)
	if msg.To != "Amy@Example.com" || msg.UserID != amy.ID || len(token) != 43 {
		t.Fatalf("reset message: %v (token length %d)", msg, len(token))
	}
	if want := e.clock.Now().Add(15 * time.Minute); !msg.Expires.Equal(want) {
		t.Fatalf("expires %v, want %v", msg.Expires, want)
	}
	u, err := e.users.ResetPassword(ctx, token, newPassword)
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != amy.ID || !u.EmailVerified || u.credVersion != amy.credVersion+1 {
		t.Fatalf("after reset: %+v", u)
	}
	for _, b := range []*browser{laptop, phone} {
		if code, body := b.get("/public"); code != 200 || body != "anonymous" {
			t.Fatalf("a session survived the reset: %d %s", code, body)
		}
	}
	if sessions, err := e.store.List(ctx, amy.ID); err != nil || len(sessions) != 0 {
		t.Fatalf("sessions left in the store: %v %v", sessions, err)
	}
	if e.mail.count(MessagePasswordChanged) != 1 || e.mail.last(MessagePasswordChanged).To != "Amy@Example.com" {
		t.Fatal("no password-changed notice")
	}
	if _, err := e.auth("amy", goodPassword, "192.0.2.3"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("old password: %v", err)
	}
	if _, err := e.auth("amy", newPassword, "192.0.2.3"); err != nil {
		t.Fatalf("new password: %v", err)
	}
	if _, err := e.users.ResetPassword(ctx, token, newPassword+" again"); err != ErrInvalidToken {
		t.Fatalf("second use: %v", err)
	}
}

// clockHasher moves the fake clock forward while it hashes, as a wait for
// a hashing slot and a slow hash do in production.
type clockHasher struct {
	Hasher
	clock   *ddbtest.Clock
	advance atomic.Int64 // nanoseconds per Hash; 0: none
}

func (h *clockHasher) Hash(p []byte) (string, error) {
	h.clock.Advance(time.Duration(h.advance.Load()))
	return h.Hasher.Hash(p)
}

// A token that expires while the new password is being hashed is not
// used: expiry is checked at the consume, with the time of the consume.
func TestResetTokenExpiresDuringHashing(t *testing.T) {
	t.Parallel()
	var h *clockHasher
	e := newEnv(t, func(c *Config) {
		h = &clockHasher{Hasher: c.Hasher, clock: c.Clock.(*ddbtest.Clock)}
		c.Hasher = h
	})
	bo := e.create("bo@example.com", "bo")
	token := e.resetToken("bo@example.com")
	e.clock.Advance(15*time.Minute - time.Second) // one second left when the reset starts
	h.advance.Store(int64(3 * time.Second))       // the hashing takes three
	if _, err := e.users.ResetPassword(ctx, token, newPassword); err != ErrInvalidToken {
		t.Fatalf("token expired during hashing: %v", err)
	}
	h.advance.Store(0)
	if _, err := e.auth("bo", goodPassword, "192.0.2.1"); err != nil {
		t.Fatalf("the password changed: %v", err)
	}
	if u := mustGet(t, e, bo.ID); u.credVersion != bo.credVersion {
		t.Fatal("the account changed")
	}
}

// A reset lifts the unknown-client cap of an account at once (the count
// belongs to the credential version it was counted under).
func TestResetUnlocks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.Throttle.MaxFailures = 3 })
	e.create("lou@example.com", "lou")
	for i := range 3 {
		_, _ = e.auth("lou", "wrong", fmt.Sprintf("192.0.2.%d", 10+i))
	}
	var te *ThrottledError
	if _, err := e.auth("lou", goodPassword, "192.0.2.20"); !errors.As(err, &te) || te.RetryAfter != 24*time.Hour {
		t.Fatalf("not locked: %v", err)
	}
	if _, err := e.users.ResetPassword(ctx, e.resetToken("lou@example.com"), newPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := e.auth("lou", newPassword, "192.0.2.21"); err != nil {
		t.Fatalf("still locked: %v", err)
	}
}

// 100 concurrent uses of one token, on two instances: exactly one succeeds.
func TestResetTokenConcurrentConsume(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.HashWait = time.Minute })
	e.create("cat@example.com", "cat")
	token := e.resetToken("cat@example.com")
	instances := []*Users{e.users, e.instance()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, invalid := 0, 0
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := instances[i%2].ResetPassword(ctx, token, fmt.Sprintf("%s %d", newPassword, i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case err == ErrInvalidToken:
				invalid++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || invalid != 99 {
		t.Fatalf("%d successes, %d invalid; want 1 and 99", wins, invalid)
	}
	if n := e.mail.count(MessagePasswordChanged); n != 1 {
		t.Fatalf("%d password-changed notices", n)
	}
	// The consume itself, without the reset around it: 100 concurrent
	// DeleteItems, one record.
	_, pk := newToken()
	if _, err := e.users.st.issueToken(ctx, issueCounter{"thr#test#ip", 10}, issueCounter{"thr#test#acct", 10}, issueCounter{"thr#test#total", 10}, e.clock.Now().Add(time.Hour),
		pk, tokenRecord{uid: "u", purpose: purposeReset, emailKey: "e", cv: 1}, e.clock.Now(), e.clock.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	stores := []*store{e.users.st, instances[1].st}
	got := make(chan tokenRecord, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec, err := stores[i%2].consumeToken(ctx, pk, purposeReset, e.clock.Now())
			if err == nil {
				got <- rec
			} else if err != ErrInvalidToken {
				t.Errorf("consume: %v", err)
			}
		}()
	}
	wg.Wait()
	close(got)
	if n := len(got); n != 1 {
		t.Fatalf("%d consumes got the record", n)
	}
}

// Every way a token can be wrong is the same error, and none costs a hash.
func TestInvalidTokensLookTheSame(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.Tokens.PerAccount = 100 })
	ann := e.create("ann@example.com", "ann")
	bob := e.create("bob@example.com", "bob")
	dan := e.create("dan@example.com", "dan")

	expired := e.resetToken("ann@example.com")
	e.clock.Advance(15 * time.Minute)
	stale := e.resetToken("ann@example.com")
	winner := e.resetToken("ann@example.com")
	if _, err := e.users.ResetPassword(ctx, winner, newPassword); err != nil {
		t.Fatal(err)
	}
	verify := e.verifyToken(bob)
	e.create("cy@example.com", "cy")
	resetOfCy := e.resetToken("cy@example.com")
	emailChanged := e.resetToken("dan@example.com")
	e.changeEmail(dan, "daniel@example.com")
	disabled := e.resetToken("bob@example.com")
	unknown, _ := newToken()

	e.hasher.reset()
	cases := map[string]func() error{
		"expired":          func() error { _, err := e.users.ResetPassword(ctx, expired, newPassword); return err },
		"password changed": func() error { _, err := e.users.ResetPassword(ctx, stale, newPassword); return err },
		"used":             func() error { _, err := e.users.ResetPassword(ctx, winner, newPassword); return err },
		"verify for reset": func() error { _, err := e.users.ResetPassword(ctx, verify, newPassword); return err },
		"reset for verify": func() error { _, err := e.users.VerifyEmail(ctx, resetOfCy); return err },
		"email changed":    func() error { _, err := e.users.ResetPassword(ctx, emailChanged, newPassword); return err },
		"unknown":          func() error { _, err := e.users.ResetPassword(ctx, unknown, newPassword); return err },
		"unknown verify":   func() error { _, err := e.users.VerifyEmail(ctx, unknown); return err },
		"empty":            func() error { _, err := e.users.ResetPassword(ctx, "", newPassword); return err },
		"malformed":        func() error { _, err := e.users.ResetPassword(ctx, strings.Repeat("!", 43), newPassword); return err },
		"too long":         func() error { _, err := e.users.VerifyEmail(ctx, unknown+"A"); return err },
		"non-canonical":    func() error { _, err := e.users.VerifyEmail(ctx, unknown[:42]+"_"); return err },
		"deleted account": func() error {
			fresh, _ := e.users.Get(ctx, ann.ID)
			tok := e.resetToken("ann@example.com")
			if err := e.users.Delete(ctx, fresh); err != nil {
				t.Fatal(err)
			}
			_, err := e.users.ResetPassword(ctx, tok, newPassword)
			return err
		},
	}
	for name, f := range cases {
		if err := f(); err != ErrInvalidToken {
			t.Errorf("%s: %v, want ErrInvalidToken", name, err)
		}
	}
	if err := e.users.Disable(ctx, bob.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.users.ResetPassword(ctx, disabled, newPassword); err != ErrInvalidToken {
		t.Errorf("disabled account: %v", err)
	}
	if n := e.hasher.hashes.Load() + e.hasher.verifies.Load(); n != 0 {
		t.Errorf("%d hash operations for invalid tokens", n)
	}
	// Presenting a token for the wrong purpose does not use it up.
	if _, err := e.users.ResetPassword(ctx, resetOfCy, newPassword); err != nil {
		t.Fatalf("a reset token presented to VerifyEmail was used up: %v", err)
	}
	// ErrInvalidToken is a 400 with one reason, whatever the cause.
	w := httptestRecorder()
	WriteError(w, jsonRequest(), ErrInvalidToken)
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `"token-invalid"`) {
		t.Fatalf("problem: %d %s", w.Code, w.Body)
	}
}

// A password the policy refuses does not use the link up.
func TestResetPolicyFailureKeepsToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("eve@example.com", "eve")
	token := e.resetToken("eve@example.com")
	var pe *PolicyError
	for _, weak := range []string{"short", "password123", "eve@example.com1"} {
		if _, err := e.users.ResetPassword(ctx, token, weak); !errors.As(err, &pe) {
			t.Fatalf("%q: %v", weak, err)
		}
	}
	if _, err := e.users.ResetPassword(ctx, token, newPassword); err != nil {
		t.Fatal(err)
	}
}

// RequestReset for an address without an account: the same result, the
// same DynamoDB calls (operation, consistency, condition), no hash work in
// either case, and no message.
func TestRequestResetSameWork(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("fay@example.com", "fay")
	gus := e.create("gus@example.com", "gus")
	if err := e.users.Disable(ctx, gus.ID); err != nil {
		t.Fatal(err)
	}
	type result struct {
		err    error
		calls  string
		hashes int64
	}
	shape := func(calls []ddbtest.Call) string {
		var b strings.Builder
		for _, c := range calls {
			fmt.Fprintf(&b, "%s(consistent=%v cond=%q ret=%v); ", c.Op, c.ConsistentRead, c.Condition, c.ReturnOnFail)
		}
		return b.String()
	}
	try := func(email string) result {
		e.rec.Reset()
		e.hasher.reset()
		err := e.users.RequestReset(ctx, email, ip("198.51.100.7"))
		return result{err, shape(e.rec.Calls()), e.hasher.hashes.Load() + e.hasher.verifies.Load()}
	}
	known := try("fay@example.com")
	if known.err != nil || e.mail.count(MessagePasswordReset) != 1 {
		t.Fatalf("known: %v", known.err)
	}
	if got := ops(e.rec.Calls()); got != "BatchGetItem,GetItem,TransactWriteItems" {
		t.Fatalf("calls per reset request: %s", got)
	}
	t.Logf("RequestReset: %s", known.calls)
	for _, email := range []string{"nobody@example.com", "gus@example.com"} {
		r := try(email)
		if r.err != nil || r.calls != known.calls || r.hashes != 0 || known.hashes != 0 {
			t.Errorf("%s: %+v\nwant %+v", email, r, known)
		}
	}
	if e.mail.count(MessagePasswordReset) != 1 {
		t.Fatal("a message was sent for an address without a (usable) account")
	}
}

// Per account: PerAccount links per window and client address, and
// PerAccountTotal from every address together, then silence — the same for
// an address without an account. Per client address: *RateLimitedError.
func TestRequestResetLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.Tokens.PerIP = 8; c.Tokens.PerAccountTotal = 4 })
	e.create("hal@example.com", "hal")
	e.clock.Set(time.Unix(1_800_000_000/3600*3600, 0)) // the start of a window
	for i := range 5 {
		for _, email := range []string{"hal@example.com", "nobody@example.com"} {
			if err := e.users.RequestReset(ctx, email, ip(fmt.Sprintf("192.0.2.%d", 100+i))); err != nil {
				t.Fatalf("request %d for %s: %v", i, email, err)
			}
		}
	}
	if n := e.mail.count(MessagePasswordReset); n != 4 {
		t.Fatalf("%d links sent for one account in one window, want 4", n)
	}
	// One client address, many addresses: 8 requests, then refused.
	var rl *RateLimitedError
	for i := range 9 {
		err := e.users.RequestReset(ctx, fmt.Sprintf("user%d@example.com", i), ip("203.0.113.5"))
		if i < 8 && err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if i == 8 && (!errors.As(err, &rl) || rl.RetryAfter <= 0 || rl.RetryAfter > time.Hour) {
			t.Fatalf("request 9 from one address: %v", err)
		}
	}
	// The next window starts afresh.
	e.clock.Advance(time.Hour)
	if err := e.users.RequestReset(ctx, "hal@example.com", ip("203.0.113.5")); err != nil {
		t.Fatal(err)
	}
	if n := e.mail.count(MessagePasswordReset); n != 5 {
		t.Fatalf("%d links after the window", n)
	}
	w := httptestRecorder()
	WriteError(w, jsonRequest(), rl)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "token-rate-limited") {
		t.Fatalf("problem: %d %s", w.Code, w.Body)
	}
	if err := e.users.RequestReset(ctx, "not an address", ip("192.0.2.1")); !errors.Is(err, ErrInvalidIdentifier) {
		t.Fatalf("malformed address: %v", err)
	}
	noMail := newEnv(t, func(c *Config) { c.Mailer = nil })
	if err := noMail.users.RequestReset(ctx, "hal@example.com", ip("192.0.2.1")); err != ErrNoMailer {
		t.Fatalf("without a mailer: %v", err)
	}
}

// What a reset confirmation costs, and that its reads are consistent and
// its writes conditional.
func TestResetPasswordCalls(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("ida@example.com", "ida")
	token := e.resetToken("ida@example.com")
	e.rec.Reset()
	if _, err := e.users.ResetPassword(ctx, token, newPassword); err != nil {
		t.Fatal(err)
	}
	calls := e.rec.Calls()
	// GetItem token, GetItem account, DeleteItem token (the consume),
	// UpdateItem account; then the session store's RevokeAll (one Query of
	// the owner index; no session to end here).
	if got := ops(calls); got != "GetItem,GetItem,DeleteItem,UpdateItem,Query" {
		t.Fatalf("calls per reset: %s", got)
	}
	if !calls[0].ConsistentRead || !calls[1].ConsistentRead {
		t.Fatal("a read is not strongly consistent")
	}
	if !strings.Contains(calls[2].Condition, "#ttl > :now") || !strings.Contains(calls[3].Condition, "#cv = :cv") {
		t.Fatalf("conditions: %q / %q", calls[2].Condition, calls[3].Condition)
	}
	t.Logf("ResetPassword: %s", ops(calls))
	u, _ := e.users.Lookup(ctx, "ida")
	u.EmailVerified = false // the reset verified it; ask again anyway
	e.rec.Reset()
	verify := e.verifyToken(u)
	t.Logf("RequestEmailVerification: %s", ops(e.rec.Calls()))
	e.rec.Reset()
	if _, err := e.users.VerifyEmail(ctx, verify); err != nil {
		t.Fatal(err)
	}
	if got := ops(e.rec.Calls()); got != "DeleteItem,UpdateItem" {
		t.Fatalf("calls per verification: %s", got)
	}
}

// Email verification: the link marks the address verified once; changing
// the address (or the password) kills it and clears the mark.
func TestEmailVerification(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	jo := e.create("jo@example.com", "jo")
	if jo.EmailVerified {
		t.Fatal("a new address is verified")
	}
	token := e.verifyToken(jo)
	if m := e.mail.last(MessageVerifyEmail); m.To != "jo@example.com" || !m.Expires.Equal(e.clock.Now().Add(24*time.Hour)) {
		t.Fatalf("message: %v", m)
	}
	u, err := e.users.VerifyEmail(ctx, token)
	if err != nil || !u.EmailVerified {
		t.Fatalf("verify: %v %+v", err, u)
	}
	if _, err := e.users.VerifyEmail(ctx, token); err != ErrInvalidToken {
		t.Fatalf("second use: %v", err)
	}
	// Verified: nothing more to send.
	n := e.mail.count(MessageVerifyEmail)
	if err := e.users.RequestEmailVerification(ctx, u, ip("192.0.2.1")); err != nil || e.mail.count(MessageVerifyEmail) != n {
		t.Fatalf("verification sent for a verified address: %v", err)
	}
	// A link sent before an address change dies with it.
	kim := e.create("kim@example.com", "kim")
	old := e.verifyToken(kim)
	changed := e.changeEmail(kim, "kimberly@example.com")
	if !changed.EmailVerified {
		t.Fatal("a confirmed email change proves the new address")
	}
	if m := e.mail.last(MessageEmailChanged); m.To != "kim@example.com" || m.NewEmail != "kimberly@example.com" {
		t.Fatalf("email-changed notice %v, want it sent to the old address", m)
	}
	if _, err := e.users.VerifyEmail(ctx, old); err != ErrInvalidToken {
		t.Fatalf("link for the old address: %v", err)
	}
	// A link for the current address dies with a password change.
	lee := e.create("lee@example.com", "lee")
	current := e.verifyToken(lee)
	if _, err := e.users.ResetPassword(ctx, e.resetToken("lee@example.com"), newPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := e.users.VerifyEmail(ctx, current); err != ErrInvalidToken {
		t.Fatalf("link after a password change: %v", err)
	}
	// (The reset itself proved the address.)
	if got, _ := e.users.Get(ctx, lee.ID); !got.EmailVerified {
		t.Fatal("a completed reset should mark the address verified")
	}
	// Per-account limit on verification links (per client address): a
	// *RateLimitedError.
	e.clock.Advance(time.Hour)
	fresh := e.create("jo3@example.com", "jo3")
	var rl *RateLimitedError
	for i := range 4 {
		err := e.users.RequestEmailVerification(ctx, fresh, ip("192.0.2.60"))
		if i < 3 && err != nil || i == 3 && !errors.As(err, &rl) {
			t.Fatalf("verification request %d: %v", i, err)
		}
	}
}

func mustGet(t *testing.T, e *env, id string) *User {
	t.Helper()
	u, err := e.users.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// A storage fault at any call of a reset never completes it: the password
// is unchanged, the error is ErrUnavailable.
func TestResetStorageFaultsNeverComplete(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.Tokens.PerAccount = 100; c.Tokens.PerIP = 100 })
	kay := e.create("kay@example.com", "kay")
	steps := []struct {
		op string
		n  int
	}{{"GetItem", 1}, {"GetItem", 2}, {"DeleteItem", 1}, {"UpdateItem", 1}}
	for _, s := range steps {
		for _, f := range ddbtest.StorageFaults {
			token := e.resetToken("kay@example.com")
			e.faults.FailNth(s.op, s.n, f)
			_, err := e.users.ResetPassword(ctx, token, newPassword)
			e.faults.Clear()
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("%s #%d %v: %v", s.op, s.n, f, err)
			}
			if h, _ := storedHash(t, e, kay.ID); h != kay.hash {
				t.Fatalf("%s #%d %v: the password changed", s.op, s.n, f)
			}
		}
	}
	if e.mail.count(MessagePasswordChanged) != 0 {
		t.Fatal("a password-changed notice for a reset that did not happen")
	}
	// Requests: a fault sends nothing.
	for _, op := range []string{"BatchGetItem", "GetItem", "TransactWriteItems"} {
		for _, f := range ddbtest.StorageFaults {
			n := e.mail.count(MessagePasswordReset)
			e.faults.Fail(op, f)
			err := e.users.RequestReset(ctx, "kay@example.com", ip("192.0.2.9"))
			e.faults.Clear()
			if !errors.Is(err, ErrUnavailable) || e.mail.count(MessagePasswordReset) != n {
				t.Errorf("RequestReset with %s %v: %v", op, f, err)
			}
		}
	}
}

// Messages never print their token.
func TestMessageRedactsToken(t *testing.T) {
	t.Parallel()
	token, _ := newToken()
	m := Message{Kind: MessagePasswordReset, To: "a@example.com", UserID: "u1", Token: token}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "message", m)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "message", m)
	for _, s := range []string{fmt.Sprint(m), fmt.Sprintf("%v %+v %#v %s", m, m, m, m), logged.String()} {
		if strings.Contains(s, token) {
			t.Fatalf("token printed: %s", s)
		}
	}
}

// tokenCounterKeys is a guard that issuing counters never store an email
// address or client address in the clear.
func TestIssueCountersAreKeyed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("lea@example.com", "lea")
	_ = e.users.RequestReset(ctx, "lea@example.com", ip("198.51.100.77"))
	_ = e.users.RequestReset(ctx, "ghost@example.com", ip("198.51.100.77"))
	dump := ddbtest.Dump(t, e.base)
	for _, s := range []string{"198.51.100.77", "ghost@example.com", "ghost"} {
		if strings.Contains(dump, s) {
			t.Errorf("dump contains %q", s)
		}
	}
	if !strings.Contains(dump, dynaguard.PrefixToken) {
		t.Error("no token item")
	}
}

func httptestRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

// jsonRequest is a request from an API client (problem+json answers).
func jsonRequest() *http.Request {
	r := httptest.NewRequest("POST", "/", nil)
	r.Header.Set("Accept", "application/json")
	return r
}

// A stranger's reset requests for someone's address do not use up the
// owner's: the per-account limit is kept per requesting client, under a
// higher total.
func TestResetRequestsCannotBeStarved(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("ivy@example.com", "ivy")
	e.clock.Set(time.Unix(1_800_000_000/3600*3600, 0))
	for range 5 {
		if err := e.users.RequestReset(ctx, "ivy@example.com", ip("203.0.113.66")); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.mail.count(MessagePasswordReset); n != 3 {
		t.Fatalf("the stranger got %d links sent, want 3", n)
	}
	if err := e.users.RequestReset(ctx, "ivy@example.com", ip("192.0.2.7")); err != nil {
		t.Fatal(err)
	}
	if n := e.mail.count(MessagePasswordReset); n != 4 {
		t.Fatal("the owner's own request was silenced by a stranger's")
	}
	// Many addresses together stop at the total.
	for i := range 20 {
		_ = e.users.RequestReset(ctx, "ivy@example.com", ip(fmt.Sprintf("198.51.100.%d", i+1)))
	}
	if n := e.mail.count(MessagePasswordReset); n != 10 {
		t.Fatalf("%d links in one window, want the total of 10", n)
	}
}
