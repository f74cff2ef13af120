package dynaguard_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/internal/totp"
)

// API clients with bearer tokens against the example app on two instances:
// the token endpoints' contract, bearer calls to the API, and the theft of
// a refresh token.

type tokenPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

// apiClient is a client without cookies: a CLI or a mobile app.
func (c *cluster) apiClient() *browser {
	b := c.browser()
	b.hc.Jar = nil
	return b
}

// tokenCall posts a JSON body to a token endpoint.
func (b *browser) tokenCall(srv *httptest.Server, path string, body any) response {
	b.t.Helper()
	js, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(string(js)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	return b.do(req)
}

func (b *browser) tokens(srv *httptest.Server, path string, body any) tokenPair {
	b.t.Helper()
	r := b.tokenCall(srv, path, body)
	expect(b.t, r, http.StatusOK, "POST "+path)
	var p tokenPair
	if err := json.Unmarshal([]byte(r.body), &p); err != nil || p.AccessToken == "" || p.RefreshToken == "" ||
		p.TokenType != "Bearer" || p.ExpiresIn != 600 {
		b.t.Fatalf("POST %s: %v\n%s", path, err, r.body)
	}
	if r.Header.Get("Set-Cookie") != "" || r.Header.Get("Cache-Control") != "no-store" {
		b.t.Fatalf("POST %s: Set-Cookie %q, Cache-Control %q", path, r.Header.Get("Set-Cookie"), r.Header.Get("Cache-Control"))
	}
	return p
}

// bearer calls the transfers API with an access token.
func (b *browser) bearer(srv *httptest.Server, method, access, key, body string) response {
	b.t.Helper()
	req, _ := http.NewRequest(method, srv.URL+"/api/transfers", strings.NewReader(body))
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+access)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", `"`+key+`"`)
	}
	return b.do(req)
}

func expectInvalidToken(t testing.TB, r response, what string) {
	t.Helper()
	expectProblem(t, r, http.StatusUnauthorized, what)
	if r.Header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
		t.Fatalf("%s: WWW-Authenticate %q", what, r.Header.Get("WWW-Authenticate"))
	}
}

// The theft: the client refreshes, then the attacker replays the refresh
// token the client had — the family is revoked and both lose access, the
// client's brand-new access token included, on both instances.
func TestIntegrationRefreshTokenTheft(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	acct := newAccount()
	c.browser().register(c.a, acct)
	client := c.apiClient()
	p1 := client.tokens(c.a, "/api/token", map[string]string{"login": acct.email, "password": acct.password})

	// Bearer calls: no cookie, no nonce; POST keeps the Idempotency-Key rules.
	r := client.bearer(c.b, http.MethodPost, p1.AccessToken, "", `{"to": "bob", "amount": 100}`)
	expectProblem(t, r, http.StatusBadRequest, "bearer POST without a key")
	r = client.bearer(c.b, http.MethodPost, p1.AccessToken, "k-1", `{"to": "bob", "amount": 100}`)
	expect(t, r, http.StatusCreated, "bearer POST with a key")
	replay := client.bearer(c.a, http.MethodPost, p1.AccessToken, "k-1", `{"to": "bob", "amount": 100}`)
	expect(t, replay, http.StatusCreated, "the same key again, on the other instance")
	if replay.Header.Get("Idempotent-Replayed") != "true" || replay.body != r.body {
		t.Fatalf("replay not answered from the stored response: %q\n%s", replay.Header.Get("Idempotent-Replayed"), replay.body)
	}
	r = client.bearer(c.a, http.MethodGet, p1.AccessToken, "", "")
	expect(t, r, http.StatusOK, "bearer GET")
	if !strings.Contains(r.body, `"bob"`) || r.Header.Get("Set-Cookie") != "" {
		t.Fatalf("bearer GET: %s (Set-Cookie %q)", r.body, r.Header.Get("Set-Cookie"))
	}
	// The same user's browser session sees the transfer: keys and data
	// belong to the user, whichever credential carried the request.

	// The client refreshes; the thief, who copied p1, replays its refresh token.
	p2 := client.tokens(c.b, "/api/token/refresh", map[string]string{"refresh_token": p1.RefreshToken})
	expect(t, client.bearer(c.a, http.MethodGet, p2.AccessToken, "", ""), http.StatusOK, "the new access token")
	thief := c.apiClient()
	r = thief.tokenCall(c.a, "/api/token/refresh", map[string]string{"refresh_token": p1.RefreshToken})
	expectProblem(t, r, http.StatusUnauthorized, "the replayed refresh token")
	if !strings.Contains(r.body, "refresh-token-reused") {
		t.Fatalf("replay answer: %s", r.body)
	}
	for _, srv := range []*httptest.Server{c.a, c.b} {
		expectInvalidToken(t, client.bearer(srv, http.MethodGet, p2.AccessToken, "", ""), "the client's access token after the theft")
		expectInvalidToken(t, thief.bearer(srv, http.MethodGet, p1.AccessToken, "", ""), "the thief's access token after the theft")
	}
	expectProblem(t, client.tokenCall(c.b, "/api/token/refresh", map[string]string{"refresh_token": p2.RefreshToken}),
		http.StatusUnauthorized, "the client's refresh token after the theft")
	if c.messages(acct.email, "api-token-reused") != 1 {
		t.Fatal("the owner was not told")
	}
	if !c.events.has("api_token.reused") {
		t.Fatal("no api_token.reused event")
	}
}

// The endpoints' contract and what they refuse.
func TestIntegrationAPITokenEndpoints(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	acct := newAccount()
	owner := c.browser()
	owner.register(c.a, acct)
	client := c.apiClient()

	expectProblem(t, client.tokenCall(c.a, "/api/token", map[string]string{"login": acct.email, "password": "wrong password 123"}),
		http.StatusUnauthorized, "wrong password")
	// Not JSON: 415, so a cross-site form cannot post here.
	req, _ := http.NewRequest(http.MethodPost, c.a.URL+"/api/token", strings.NewReader(url.Values{"login": {acct.email}, "password": {acct.password}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	expectProblem(t, client.do(req), http.StatusUnsupportedMediaType, "a form post to /api/token")
	expectProblem(t, client.tokenCall(c.a, "/api/token", map[string]string{"login": acct.email, "password": acct.password, "extra": "x"}),
		http.StatusBadRequest, "an unknown member")

	p := client.tokens(c.a, "/api/token", map[string]string{"login": acct.email, "password": acct.password})

	// A cookie and a bearer token in one request: ambiguous.
	r := owner.bearer(c.a, http.MethodGet, p.AccessToken, "", "")
	expectProblem(t, r, http.StatusBadRequest, "session cookie and bearer token")
	// A bearer token on a page: refused.
	req, _ = http.NewRequest(http.MethodGet, c.a.URL+"/account", nil)
	req.Header.Set("Authorization", "Bearer "+p.AccessToken)
	expectProblem(t, client.do(req), http.StatusBadRequest, "bearer token on a page")
	expectInvalidToken(t, client.bearer(c.a, http.MethodGet, "dga_forged", "", ""), "a forged access token")

	// The sessions page lists the client, and signs it out.
	page := owner.get(c.b, "/account/sessions")
	expect(t, page, http.StatusOK, "sessions page")
	if !strings.Contains(page.body, "API clients") || !strings.Contains(page.body, "/account/sessions/revoke-api") {
		t.Fatalf("the sessions page does not list the API client:\n%s", page.body)
	}
	id := regexpFind(t, page.body, `action="/account/sessions/revoke-api">.*?name="id" value="([^"]+)"`)
	expectRedirect(t, owner.submit(c.b, c.a, "/account/sessions", "/account/sessions/revoke-api", url.Values{"id": {id}}), "/account/sessions", "sign the client out")
	expectInvalidToken(t, client.bearer(c.b, http.MethodGet, p.AccessToken, "", ""), "access token of a signed-out client")

	// Revoke: 204 for a live token, an unknown one, garbage.
	q := client.tokens(c.b, "/api/token", map[string]string{"login": acct.email, "password": acct.password})
	for _, tok := range []string{q.RefreshToken, q.RefreshToken, "dgr_unknown", ""} {
		expect(t, client.tokenCall(c.a, "/api/token/revoke", map[string]string{"refresh_token": tok}), http.StatusNoContent, "revoke")
	}
	expectInvalidToken(t, client.bearer(c.a, http.MethodGet, q.AccessToken, "", ""), "access token after the client's logout")

	// A password change ends every client.
	z := client.tokens(c.a, "/api/token", map[string]string{"login": acct.email, "password": acct.password})
	expectRedirect(t, owner.submit(c.a, c.a, "/account/password", "/account/password",
		url.Values{"current": {acct.password}, "new": {"a brand new passphrase 42"}}), "/account", "password change")
	expectInvalidToken(t, client.bearer(c.b, http.MethodGet, z.AccessToken, "", ""), "access token after a password change")
	expectProblem(t, client.tokenCall(c.b, "/api/token/refresh", map[string]string{"refresh_token": z.RefreshToken}),
		http.StatusUnauthorized, "refresh after a password change")
}

// A bearer request costs one strongly consistent GetItem (the account);
// a refresh one TransactWriteItems.
func TestIntegrationBearerCalls(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{record: true})
	acct := newAccount()
	c.browser().register(c.a, acct)
	client := c.apiClient()
	p := client.tokens(c.a, "/api/token", map[string]string{"login": acct.email, "password": acct.password})
	c.rec.Reset()
	expect(t, client.bearer(c.b, http.MethodGet, p.AccessToken, "", ""), http.StatusOK, "bearer GET")
	// The account's GetItem and the app's own (the transfers): no session
	// read, no session write — one call fewer than with a cookie.
	calls := c.rec.Calls()
	if len(calls) != 2 || c.rec.Count("GetItem") != 2 || !calls[0].ConsistentRead {
		t.Fatalf("bearer GET /api/transfers: %+v, want the account's strongly consistent GetItem and the app's", calls)
	}
	c.rec.Reset()
	client.tokens(c.b, "/api/token/refresh", map[string]string{"refresh_token": p.RefreshToken})
	if calls := c.rec.Calls(); len(calls) != 1 || calls[0].Op != "TransactWriteItems" {
		t.Fatalf("refresh: %+v, want 1 TransactWriteItems", calls)
	}
}

// regexpFind returns the first group of pattern in body.
func regexpFind(t testing.TB, body, pattern string) string {
	t.Helper()
	m := regexp.MustCompile("(?s)" + pattern).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("%s not found in:\n%s", pattern, body)
	}
	return m[1]
}

// has reports whether an event of that name was emitted.
func (l *eventLog) has(name string) bool {
	for _, e := range l.events() {
		if e.Name.String() == name {
			return true
		}
	}
	return false
}

// A token login for an account with TOTP takes the code in the same JSON;
// a code already used is refused on the other instance too; repeated wrong
// passwords are throttled with 429 and Retry-After before any hashing.
func TestIntegrationAPITokenLoginTOTPAndThrottle(t *testing.T) {
	t.Parallel()
	clock := ddbtest.NewClock(time.Now())
	c := newCluster(t, clusterOpts{clock: clock})
	acct := newAccount()
	u := c.browser()
	u.register(c.a, acct)
	secret, p, _ := u.enrolTOTP(c.a, clock.Now())
	clock.Advance(p.Defaults().Period) // the enrolment used this step's code
	client := c.apiClient()
	login := map[string]string{"login": acct.email, "password": acct.password}
	r := client.tokenCall(c.a, "/api/token", login)
	expectProblem(t, r, http.StatusUnauthorized, "TOTP account without a code")
	if !strings.Contains(r.body, "second-factor-required") {
		t.Fatalf("no code: %s", r.body)
	}
	login["code"] = totp.Code(secret, totp.Step(clock.Now(), p), p)
	tp := client.tokens(c.a, "/api/token", login)
	expect(t, client.bearer(c.b, http.MethodGet, tp.AccessToken, "", ""), http.StatusOK, "bearer GET of a TOTP account")
	expectProblem(t, client.tokenCall(c.b, "/api/token", login), http.StatusUnauthorized, "the same code again")

	hasher := c.hasher.verifies.Load()
	var last response
	for range 8 {
		last = client.tokenCall(c.b, "/api/token", map[string]string{"login": acct.username, "password": "not the password 1"})
		if last.StatusCode == http.StatusTooManyRequests {
			break
		}
		expectProblem(t, last, http.StatusUnauthorized, "wrong password")
	}
	expectProblem(t, last, http.StatusTooManyRequests, "repeated wrong passwords")
	if last.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	before := c.hasher.verifies.Load()
	expectProblem(t, client.tokenCall(c.a, "/api/token", map[string]string{"login": acct.username, "password": "not the password 2"}),
		http.StatusTooManyRequests, "throttled on the other instance")
	if c.hasher.verifies.Load() != before || before == hasher {
		t.Fatal("a throttled token login hashed a password")
	}
}

// Idempotency keys of bearer requests belong to the token's user: the same
// key from the same user's browser session is a replay, from another
// user's token a request of its own.
func TestIntegrationBearerIdempotencyScope(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	alice, bob := newAccount(), newAccount()
	browser := c.browser()
	browser.register(c.a, alice)
	c.browser().register(c.a, bob)
	cli := c.apiClient()
	ta := cli.tokens(c.a, "/api/token", map[string]string{"login": alice.email, "password": alice.password})
	tb := cli.tokens(c.b, "/api/token", map[string]string{"login": bob.email, "password": bob.password})
	first := cli.bearer(c.a, http.MethodPost, ta.AccessToken, "shared-key", `{"to": "carol", "amount": 5}`)
	expect(t, first, http.StatusCreated, "alice's bearer POST")
	again := browser.api(c.b, http.MethodPost, "shared-key", `{"to": "carol", "amount": 5}`)
	expect(t, again, http.StatusCreated, "the same key from alice's browser session")
	if again.Header.Get("Idempotent-Replayed") != "true" || again.body != first.body {
		t.Fatalf("not a replay for the same user: %q %s", again.Header.Get("Idempotent-Replayed"), again.body)
	}
	other := cli.bearer(c.b, http.MethodPost, tb.AccessToken, "shared-key", `{"to": "dave", "amount": 7}`)
	expect(t, other, http.StatusCreated, "bob's bearer POST with the same key")
	if other.Header.Get("Idempotent-Replayed") != "" || !strings.Contains(other.body, "dave") {
		t.Fatalf("bob's request was not his own: %s", other.body)
	}
}

// End-to-end cost of a bearer request to the example's API over HTTP
// against DynamoDB Local (TLS): the account's read and the app's own.
// Compare BenchmarkIntegrationAuthenticatedPage (a cookie: one read more).
func BenchmarkIntegrationBearerGet(b *testing.B) {
	if ddbtest.Endpoint() == "" {
		b.Skip("DYNAMODB_ENDPOINT is not set")
	}
	c := newCluster(b, clusterOpts{})
	acct := newAccount()
	c.browser().register(c.a, acct)
	client := c.apiClient()
	p := client.tokens(c.a, "/api/token", map[string]string{"login": acct.email, "password": acct.password})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if r := client.bearer(c.a, http.MethodGet, p.AccessToken, "", ""); r.StatusCode != http.StatusOK {
			b.Fatalf("status %d", r.StatusCode)
		}
	}
}

// tokenCallBearer posts to a token endpoint with an access token in the
// Authorization header too, as a client that attaches it to every call of
// the API does.
func (b *browser) tokenCallBearer(srv *httptest.Server, path, access string, body any) response {
	b.t.Helper()
	js, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(string(js)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+access)
	return b.do(req)
}

// The token endpoints are exempt: an expired, garbled or revoked access
// token in the Authorization header is neither checked nor refused there,
// and a valid one costs no account read — a refresh is its one write.
func TestIntegrationTokenEndpointsIgnoreBearer(t *testing.T) {
	t.Parallel()
	clock := ddbtest.NewClock(time.Time{})
	c := newCluster(t, clusterOpts{clock: clock, record: true})
	acct := newAccount()
	c.browser().register(c.a, acct)
	client := c.apiClient()
	login := map[string]string{"login": acct.email, "password": acct.password}
	p := client.tokens(c.a, "/api/token", login)

	// A valid access token in the header: the refresh is its one write.
	c.rec.Reset()
	r := client.tokenCallBearer(c.b, "/api/token/refresh", p.AccessToken, map[string]string{"refresh_token": p.RefreshToken})
	expect(t, r, http.StatusOK, "refresh with a valid access token in the header")
	if calls := c.rec.Calls(); len(calls) != 1 || c.rec.Count("GetItem") != 0 {
		t.Fatalf("refresh with a bearer header: %d calls (%d GetItem), want 1 write", len(calls), c.rec.Count("GetItem"))
	}
	if err := json.Unmarshal([]byte(r.body), &p); err != nil {
		t.Fatal(err)
	}

	// The access token expires; the client refreshes with it still attached.
	old := p.AccessToken
	clock.Advance(11 * time.Minute)
	expectInvalidToken(t, client.bearer(c.a, http.MethodGet, old, "", ""), "the expired access token on the API")
	for name, access := range map[string]string{"expired": old, "garbled": "dga_" + strings.Repeat("A", 40), "foreign": "not-ours"} {
		r = client.tokenCallBearer(c.a, "/api/token/refresh", access, map[string]string{"refresh_token": p.RefreshToken})
		expect(t, r, http.StatusOK, "refresh with an "+name+" access token in the header")
		if err := json.Unmarshal([]byte(r.body), &p); err != nil {
			t.Fatal(err)
		}
		expect(t, client.tokenCallBearer(c.b, "/api/token", access, login), http.StatusOK, "login with an "+name+" access token in the header")
	}

	// Logout with the (valid) access token attached, then refresh and log
	// out again with the now revoked one attached.
	revoked := p.AccessToken
	r = client.tokenCallBearer(c.a, "/api/token/revoke", revoked, map[string]string{"refresh_token": p.RefreshToken})
	expect(t, r, http.StatusNoContent, "revoke with the access token in the header")
	expectInvalidToken(t, client.bearer(c.b, http.MethodGet, revoked, "", ""), "the revoked family's access token")
	p2 := client.tokens(c.b, "/api/token", login)
	r = client.tokenCallBearer(c.b, "/api/token/refresh", revoked, map[string]string{"refresh_token": p2.RefreshToken})
	expect(t, r, http.StatusOK, "refresh with a revoked access token in the header")
	if err := json.Unmarshal([]byte(r.body), &p2); err != nil {
		t.Fatal(err)
	}
	r = client.tokenCallBearer(c.a, "/api/token/revoke", "dga_garbled", map[string]string{"refresh_token": p2.RefreshToken})
	expect(t, r, http.StatusNoContent, "revoke with a garbled access token in the header")
	expectInvalidToken(t, client.tokenCall(c.a, "/api/token/refresh", map[string]string{"refresh_token": p2.RefreshToken}),
		"the revoked family's refresh token")
}

// Only the three token endpoints are exempt, not the subtree under them: a
// path below /api/token/ gets the API's checks (here: a logged-in user).
func TestIntegrationTokenExemptionIsExact(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	client := c.apiClient()
	for _, path := range []string{"/api/token/other", "/api/token/refresh/x", "/api/token/"} {
		r := client.tokenCall(c.a, path, map[string]string{"refresh_token": "x"})
		expectProblem(t, r, http.StatusUnauthorized, "POST "+path)
	}
}
