package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/dynaguard/dynaguard/internal/totp"
	"github.com/dynaguard/dynaguard/users"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

// Section 1: the DynamoDB calls and the capacity of every flow, measured on
// DynamoDB Local through the whole stack, one request at a time.

// flowResult is one measured request.
type flowResult struct {
	Flow    string
	Request string
	Status  int
	Calls   []recorded
	Min     minimum
}

// minimum is the least a request of the flow can cost, and why.
type minimum struct {
	Calls int
	What  string  // the calls, by component
	RCU   float64 // strongly consistent reads of items up to 4 KB
	WCU   float64 // AWS write units (failed conditional writes included)
	Why   string
}

// totals sums a request's calls: capacity as DynamoDB Local reported it
// and as AWS bills it.
type totals struct {
	Calls, Reads, Writes, Consistent int
	RCU, WCU                         float64 // DynamoDB Local
	AWSRCU, AWSWCU                   float64
}

func sum(calls []recorded) totals {
	var t totals
	for _, c := range calls {
		t.Calls++
		if c.Write() {
			t.Writes++
		} else {
			t.Reads++
		}
		if c.ConsistentRead {
			t.Consistent++
		}
		t.RCU += c.RCU
		t.WCU += c.Call.WCU
		t.AWSRCU += c.AWSRCU
		t.AWSWCU += c.AWSWCU
	}
	return t
}

// meter runs requests against instances on one recorded table.
type meter struct {
	rec *ddbtest.Recorder
	tap *tap
	tbl *dynaguard.Table
}

func newMeter(ctx context.Context, ts *tables, what string) (*meter, error) {
	base, err := ts.create(ctx, what)
	if err != nil {
		return nil, err
	}
	rec := ddbtest.NewRecorder(base.Client)
	rec.Capacity = true
	tp := &tap{API: rec}
	return &meter{rec: rec, tap: tp, tbl: dynaguard.NewTable(tp, base.Name)}, nil
}

func (m *meter) reset() {
	m.rec.Reset()
	m.tap.reset()
}

func (m *meter) calls() ([]recorded, error) { return join(m.rec.Calls(), m.tap.snapshot()) }

// measure runs one request and returns its calls.
func (m *meter) measure(flow, request string, want int, do func() *httptest.ResponseRecorder) (flowResult, error) {
	m.reset()
	w := do()
	if w.Code != want {
		return flowResult{}, fmt.Errorf("%s (%s): status %d, want %d: %s", flow, request, w.Code, want, w.Body.String())
	}
	calls, err := m.calls()
	if err != nil {
		return flowResult{}, fmt.Errorf("%s: %w", flow, err)
	}
	return flowResult{Flow: flow, Request: request, Status: w.Code, Calls: calls, Min: minimums[request]}, nil
}

// callsReport is the outcome of section 1.
type callsReport struct {
	Flows    []flowResult
	Burst    idleRun // 100 read-only requests back to back
	Paced    idleRun // 100 read-only requests, one per second
	Snippets map[string]string
}

// idleRun is a series of read-only requests in one session under scs's
// IdleTimeout.
type idleRun struct {
	Requests int
	Span     time.Duration
	Reads    int
	Writes   int
	RCU      float64
	WCU      float64
	Done     bool
}

// measureFlows runs every flow once, in the order a user meets them.
func measureFlows(ctx context.Context, ts *tables) (*callsReport, error) {
	m, err := newMeter(ctx, ts, "calls")
	if err != nil {
		return nil, err
	}
	keys, err := newKeyring()
	if err != nil {
		return nil, err
	}
	// Two instances of the application share the table; both cache
	// completed idempotent responses in process.
	a, err := newInstance(m.tbl, keys, instanceConfig{IdemCache: 1 << 20})
	if err != nil {
		return nil, err
	}
	b, err := newInstance(m.tbl, keys, instanceConfig{IdemCache: 1 << 20})
	if err != nil {
		return nil, err
	}
	rep := &callsReport{}
	add := func(f flowResult, err error) error {
		if err != nil {
			return err
		}
		rep.Flows = append(rep.Flows, f)
		return nil
	}

	// Anonymous visitor: a form, its submission, a replay of it.
	anon := newBrowser(a.secure, "198.51.100.7")
	var page *httptest.ResponseRecorder
	if err := add(m.measure("nonce issue", "GET /form (renders a nonce)", 200, func() *httptest.ResponseRecorder {
		page = anon.do("GET", "/form?for=/submit", "", nil)
		return page
	})); err != nil {
		return nil, err
	}
	tok := nonceValue.FindStringSubmatch(page.Body.String())
	if tok == nil {
		return nil, fmt.Errorf("no nonce in the form")
	}
	form := map[string]string{"nonce": tok[1], "to": "alice", "amount": "100"}
	if err := add(m.measure("nonce consume", "POST /submit (form with its nonce)", 200, func() *httptest.ResponseRecorder {
		return anon.post("/submit", form)
	})); err != nil {
		return nil, err
	}
	if err := add(m.measure("nonce replay (refused)", "POST /submit again (same nonce)", http.StatusConflict, func() *httptest.ResponseRecorder {
		return anon.post("/submit", form)
	})); err != nil {
		return nil, err
	}

	// An anonymous session: one that changes, then read-only requests.
	if err := add(m.measure("modified commit", "GET /visit (changes the session; first visit creates it)", 200, func() *httptest.ResponseRecorder {
		return anon.do("GET", "/visit", "", nil)
	})); err != nil {
		return nil, err
	}
	if err := add(m.measure("modified commit", "GET /visit (changes an existing session)", 200, func() *httptest.ResponseRecorder {
		return anon.do("GET", "/visit", "", nil)
	})); err != nil {
		return nil, err
	}
	if err := add(m.measure("session load + unchanged commit", "GET /page (reads the session, idle timeout 30 min)", 200, func() *httptest.ResponseRecorder {
		return anon.do("GET", "/page", "", nil)
	})); err != nil {
		return nil, err
	}

	// Sign-up and login.
	newcomer := newBrowser(a.secure, "198.51.100.8")
	rt, err := newcomer.token("/register")
	if err != nil {
		return nil, err
	}
	if err := add(m.measure("register", "POST /register (form with nonce)", http.StatusSeeOther, func() *httptest.ResponseRecorder {
		return newcomer.post("/register", map[string]string{"nonce": rt, "email": benchEmail, "username": benchUsername, "password": benchPassword})
	})); err != nil {
		return nil, err
	}
	lt, err := newcomer.token("/login")
	if err != nil {
		return nil, err
	}
	if err := add(m.measure("login failure", "POST /login (wrong password)", http.StatusUnauthorized, func() *httptest.ResponseRecorder {
		return newcomer.post("/login", map[string]string{"nonce": lt, "login": benchUsername, "password": "wrong password, sorry"})
	})); err != nil {
		return nil, err
	}
	lt, err = newcomer.token("/login")
	if err != nil {
		return nil, err
	}
	if err := add(m.measure("login success", "POST /login (after a failure)", http.StatusSeeOther, func() *httptest.ResponseRecorder {
		return newcomer.post("/login", map[string]string{"nonce": lt, "login": benchUsername, "password": benchPassword})
	})); err != nil {
		return nil, err
	}
	second := newBrowser(a.secure, "198.51.100.9")
	lt, err = second.token("/login")
	if err != nil {
		return nil, err
	}
	if err := add(m.measure("login success", "POST /login (no earlier failure)", http.StatusSeeOther, func() *httptest.ResponseRecorder {
		return second.post("/login", map[string]string{"nonce": lt, "login": benchEmail, "password": benchPassword})
	})); err != nil {
		return nil, err
	}
	// A known browser: a new session, with the device cookie the login
	// above set. Its attempt is reserved on the device's counter instead of
	// the (login, address) one: the same calls.
	known := newBrowser(a.secure, "198.51.100.10")
	for k, v := range second.cookies {
		if strings.HasSuffix(k, "dg-device") {
			known.cookies[k] = v
		}
	}
	if len(known.cookies) == 0 {
		return nil, fmt.Errorf("no device cookie after a login")
	}
	lt, err = known.token("/login")
	if err != nil {
		return nil, err
	}
	if err := add(m.measure("login success", "POST /login (a known browser: device cookie, new session)", http.StatusSeeOther, func() *httptest.ResponseRecorder {
		return known.post("/login", map[string]string{"nonce": lt, "login": benchEmail, "password": benchPassword})
	})); err != nil {
		return nil, err
	}
	// Its session ends again, so the account's session count below is
	// unchanged.
	if lt, err = known.token("/logout"); err != nil {
		return nil, err
	}
	if w := known.post("/logout", map[string]string{"nonce": lt}); w.Code != http.StatusSeeOther {
		return nil, errStatus("POST /logout", w)
	}
	user := newcomer
	if err := add(m.measure("authenticated GET", "GET /account", 200, func() *httptest.ResponseRecorder {
		return user.do("GET", "/account", "", nil)
	})); err != nil {
		return nil, err
	}

	// The API: first request, a replay on the other instance, a replay
	// that instance has cached.
	api := map[string]string{"Content-Type": "application/json", "Idempotency-Key": `"9b2f6a1e-transfer-1"`}
	body := `{"to":"DE89370400440532013000","amount":1250}`
	if err := add(m.measure("idempotent first request", "POST /api/items (new Idempotency-Key)", http.StatusCreated, func() *httptest.ResponseRecorder {
		return user.do("POST", "/api/items", body, api)
	})); err != nil {
		return nil, err
	}
	other := &browser{h: b.secure, addr: user.addr, cookies: user.cookies}
	if err := add(m.measure("replay", "the same POST on the other instance", http.StatusCreated, func() *httptest.ResponseRecorder {
		return other.do("POST", "/api/items", body, api)
	})); err != nil {
		return nil, err
	}
	if err := add(m.measure("cached replay", "the same POST again on that instance", http.StatusCreated, func() *httptest.ResponseRecorder {
		return other.do("POST", "/api/items", body, api)
	})); err != nil {
		return nil, err
	}

	// 100 read-only requests back to back.
	m.reset()
	start := time.Now()
	for range 100 {
		if w := user.do("GET", "/account", "", nil); w.Code != 200 {
			return nil, fmt.Errorf("read-only request: %d", w.Code)
		}
	}
	rep.Burst = idleSummary(m, 100, time.Since(start))

	// Email verification: the link is requested, then used.
	if err := add(m.measureForm(user, "email verification request", "POST /account/verify (form with nonce)", "/account/verify",
		nil, http.StatusSeeOther)); err != nil {
		return nil, err
	}
	vt, ok := a.outbox.token(benchEmail, users.MessageVerifyEmail)
	if !ok {
		return nil, fmt.Errorf("no verification message")
	}
	if err := add(m.measureForm(user, "email verification", "POST /email/verify (token, nonce)", "/email/verify",
		map[string]string{"token": vt}, http.StatusSeeOther)); err != nil {
		return nil, err
	}

	// Email change: the request (a step-up with the password), then the
	// link to the new address; then back again, unmeasured, so the later
	// flows find the account at its address.
	moved := "moved." + benchEmail
	if err := add(m.measureForm(user, "email change request", "POST /account/email (password as step-up proof)", "/account/email",
		map[string]string{"email": moved, "password": benchPassword}, http.StatusSeeOther)); err != nil {
		return nil, err
	}
	ct, ok := a.outbox.token(moved, users.MessageConfirmEmailChange)
	if !ok {
		return nil, fmt.Errorf("no email change confirmation")
	}
	if err := add(m.measureForm(user, "email change confirm", "POST /email/change/confirm (claims the address, ends other sessions)", "/email/change/confirm",
		map[string]string{"token": ct}, http.StatusSeeOther)); err != nil {
		return nil, err
	}
	if w := user.formPost("/account/email", map[string]string{"email": benchEmail, "password": benchPassword}); w.Code != http.StatusSeeOther {
		return nil, errStatus("POST /account/email", w)
	}
	back, ok := a.outbox.token(benchEmail, users.MessageConfirmEmailChange)
	if !ok {
		return nil, fmt.Errorf("no email change confirmation")
	}
	if w := user.formPost("/email/change/confirm", map[string]string{"token": back}); w.Code != http.StatusSeeOther {
		return nil, errStatus("POST /email/change/confirm", w)
	}

	// TOTP: enrol (the password as step-up proof), log out, log in again
	// with the code.
	setup := user.formPost("/account/totp/setup", map[string]string{"password": benchPassword})
	if setup.Code != 200 {
		return nil, errStatus("POST /account/totp/setup", setup)
	}
	secret, err := totp.DecodeSecret(setup.Body.String())
	if err != nil {
		return nil, err
	}
	p := totp.Params{}.Defaults()
	step := totp.Step(time.Now(), p)
	confirm := user.formPost("/account/totp", map[string]string{"code": totp.Code(secret, step, p), "password": benchPassword})
	if confirm.Code != 200 {
		return nil, errStatus("POST /account/totp", confirm)
	}
	recovery := strings.Fields(confirm.Body.String())
	if err := add(m.measureForm(user, "logout", "POST /logout (form with nonce)", "/logout", nil, http.StatusSeeOther)); err != nil {
		return nil, err
	}
	if err := add(m.measureForm(user, "login success", "POST /login (password step of a TOTP account: pending)", "/login",
		map[string]string{"login": benchUsername, "password": benchPassword}, http.StatusSeeOther)); err != nil {
		return nil, err
	}
	code := map[string]string{"code": totp.Code(secret, step+1, p)}
	if err := add(m.measureForm(user, "TOTP verify", "POST /login/totp (next step's code)", "/login/totp", code, http.StatusSeeOther)); err != nil {
		return nil, err
	}
	third := newBrowser(a.secure, "198.51.100.10")
	if w := third.formPost("/login", map[string]string{"login": benchUsername, "password": benchPassword}); w.Code != http.StatusSeeOther {
		return nil, errStatus("POST /login", w)
	}
	if err := add(m.measureForm(third, "TOTP replay (refused)", "POST /login/totp (the same code again)", "/login/totp", code, http.StatusUnauthorized)); err != nil {
		return nil, err
	}
	if len(recovery) == 0 {
		return nil, fmt.Errorf("no recovery codes")
	}
	if err := add(m.measureForm(third, "TOTP verify", "POST /login/totp (a recovery code)", "/login/totp",
		map[string]string{"code": recovery[0]}, http.StatusSeeOther)); err != nil {
		return nil, err
	}

	// Password reset: for an account, for an address without one, then the
	// link is used (which ends the account's sessions).
	visitor := newBrowser(a.secure, "198.51.100.11")
	if err := add(m.measureForm(visitor, "reset request", "POST /password/reset (an account's address)", "/password/reset",
		map[string]string{"email": benchEmail}, http.StatusOK)); err != nil {
		return nil, err
	}
	if err := add(m.measureForm(visitor, "reset request", "POST /password/reset (an address without account)", "/password/reset",
		map[string]string{"email": "nobody@example.com"}, http.StatusOK)); err != nil {
		return nil, err
	}
	rtok, ok := a.outbox.token(benchEmail, users.MessagePasswordReset)
	if !ok {
		return nil, fmt.Errorf("no reset message")
	}
	if err := add(m.measureForm(visitor, "reset confirm", "POST /password/reset/confirm (ends the account's 2 sessions)", "/password/reset/confirm",
		map[string]string{"token": rtok, "password": "a brand new passphrase 7"}, http.StatusSeeOther)); err != nil {
		return nil, err
	}
	if err := measureEventFlows(m, add); err != nil {
		return nil, err
	}
	if err := measurePasskeyFlows(m, add); err != nil {
		return nil, err
	}
	return rep, nil
}

func idleSummary(m *meter, n int, span time.Duration) idleRun {
	r := idleRun{Requests: n, Span: span, Done: true}
	for _, c := range m.rec.Calls() {
		if c.Write() {
			r.Writes++
		} else {
			r.Reads++
		}
		r.RCU += c.RCU
		r.WCU += c.WCU
	}
	return r
}

// pacedReadOnly makes n read-only authenticated requests one interval
// apart, on its own table, and counts the writes: under an IdleTimeout scs
// commits every request, and the session store writes only when the
// stored expiry falls more than TouchInterval behind.
func pacedReadOnly(ctx context.Context, ts *tables, n int, interval time.Duration) (idleRun, error) {
	m, err := newMeter(ctx, ts, "paced")
	if err != nil {
		return idleRun{}, err
	}
	keys, err := newKeyring()
	if err != nil {
		return idleRun{}, err
	}
	in, err := newInstance(m.tbl, keys, instanceConfig{Hasher: cheapHasher})
	if err != nil {
		return idleRun{}, err
	}
	b, err := loginAs(in.secure, "203.0.113.5", "paced@example.com", "paced", true)
	if err != nil {
		return idleRun{}, err
	}
	m.reset()
	start := time.Now()
	t := time.NewTicker(interval)
	defer t.Stop()
	for i := range n {
		if i > 0 {
			select {
			case <-ctx.Done():
				return idleRun{}, ctx.Err()
			case <-t.C:
			}
		}
		if w := b.do("GET", "/account", "", nil); w.Code != 200 {
			return idleRun{}, fmt.Errorf("paced request %d: %d", i, w.Code)
		}
	}
	return idleSummary(m, n, time.Since(start)), nil
}

// measureForm loads the form for path (not measured), then measures its
// submission with fields and the form's nonce.
func (m *meter) measureForm(b *browser, flow, request, path string, fields map[string]string, want int) (flowResult, error) {
	tok, err := b.token(path)
	if err != nil {
		return flowResult{}, err
	}
	form := map[string]string{"nonce": tok}
	for k, v := range fields {
		form[k] = v
	}
	return m.measure(flow, request, want, func() *httptest.ResponseRecorder { return b.post(path, form) })
}
