package users

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/authctx"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/sessionstore"
)

// apiServer serves GET /me behind RequireUser for bearer requests.
type apiServer struct {
	t  *testing.T
	sm *scs.SessionManager
	h  http.Handler
}

func newAPIServer(e *env, u *Users) *apiServer {
	sm := scs.New()
	sm.Store = e.store
	sm.Codec = sessionstore.Codec{}
	me := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := FromContext(r.Context())
		id, _ := authctx.User(r.Context())
		if id != u.ID || !IsBearer(r.Context()) {
			http.Error(w, "identity not recorded", 500)
			return
		}
		io.WriteString(w, u.ID)
	})
	return &apiServer{t: e.t, sm: sm, h: sm.LoadAndSave(u.RequireUser(sm)(me))}
}

// get calls GET /me with the access token; it returns the status and the
// response.
func (s *apiServer) get(access string, mods ...func(*http.Request)) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", "/me", nil)
	if access != "" {
		r.Header.Set("Authorization", "Bearer "+access)
	}
	for _, m := range mods {
		m(r)
	}
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	return w
}

func (s *apiServer) status(access string) int { return s.get(access).Code }

func (e *env) tokenLogin(u *Users, login string) *APITokens {
	e.t.Helper()
	p, err := u.IssueAPITokens(ctx, APILogin{Login: login, Password: goodPassword, Client: Client{IP: ip("192.0.2.7"), UserAgent: "test-cli/1.0"}})
	if err != nil {
		e.t.Fatalf("IssueAPITokens: %v", err)
	}
	return p
}

// refresh presents the refresh token tok to e.users and returns the new
// pair; any error fails the test.
func (e *env) refresh(tok string) *APITokens {
	e.t.Helper()
	p, err := e.users.RefreshAPITokens(ctx, tok, Client{})
	if err != nil {
		e.t.Fatalf("RefreshAPITokens: %v", err)
	}
	return p
}

// refreshRefused presents the refresh token tok to e.users and fails the
// test unless the refusal is want.
func (e *env) refreshRefused(tok string, want error, what string) {
	e.t.Helper()
	if _, err := e.users.RefreshAPITokens(ctx, tok, Client{}); !errors.Is(err, want) {
		e.t.Fatalf("%s: %v", what, err)
	}
}

func TestAPITokenRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.create("api@example.com", "api")
	api := newAPIServer(e, e.users)
	p1 := e.tokenLogin(e.users, "api@example.com")
	if p1.ExpiresIn != 10*time.Minute || !strings.HasPrefix(p1.AccessToken, "dga_") || !strings.HasPrefix(p1.RefreshToken, "dgr_") {
		t.Fatalf("pair %+v", p1)
	}
	if w := api.get(p1.AccessToken); w.Code != 200 || w.Body.String() != u.ID || w.Header().Get("Set-Cookie") != "" {
		t.Fatalf("bearer request: %d %q, Set-Cookie %q", w.Code, w.Body, w.Header().Get("Set-Cookie"))
	}
	p2 := e.refresh(p1.RefreshToken)
	if p2.ClientID != p1.ClientID || p2.RefreshToken == p1.RefreshToken {
		t.Fatalf("rotation: %+v → %+v", p1, p2)
	}
	p3 := e.refresh(p2.RefreshToken)
	for _, a := range []string{p2.AccessToken, p3.AccessToken} {
		if got := api.status(a); got != 200 {
			t.Fatalf("access token after rotation: %d", got)
		}
	}
	cs := e.users.APIClients(apiGet(t, e, u.ID))
	if len(cs) != 1 || cs[0].ID != p1.ClientID || cs[0].Name != "test-cli/1.0" {
		t.Fatalf("clients %+v", cs)
	}
}

func apiGet(t *testing.T, e *env, id string) *User {
	t.Helper()
	u, err := e.users.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// The theft: the client refreshes, the attacker then presents the token
// the client had — the family is revoked and both lose access, access
// tokens included, at once; the owner is told.
func TestAPITokenReuseRevokesFamily(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("victim@example.com", "victim")
	api := newAPIServer(e, e.users)
	stolen := e.tokenLogin(e.users, "victim@example.com")
	client := e.refresh(stolen.RefreshToken)
	other := e.tokenLogin(e.users, "victim@example.com") // another install: unaffected
	_, err := e.instance().RefreshAPITokens(ctx, stolen.RefreshToken, Client{IP: ip("203.0.113.9")})
	if !errors.Is(err, ErrRefreshReused) || !errors.Is(err, ErrInvalidAPIToken) {
		t.Fatalf("replay: %v", err)
	}
	e.refreshRefused(client.RefreshToken, ErrInvalidAPIToken, "client's own refresh after the reuse")
	for name, a := range map[string]string{"stolen": stolen.AccessToken, "client": client.AccessToken} {
		w := api.get(a)
		if w.Code != 401 || w.Header().Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
			t.Errorf("%s access token after the reuse: %d %q", name, w.Code, w.Header().Get("WWW-Authenticate"))
		}
	}
	if api.status(other.AccessToken) != 200 {
		t.Error("another client of the account lost access")
	}
	if m := e.mail.last(MessageAPITokenReused); m.To != "victim@example.com" || m.IP != ip("203.0.113.9") {
		t.Errorf("owner notice %+v", m)
	}
}

// 200 concurrent refreshes of one token, on two instances: exactly one
// valid new pair, proven by trying every pair returned; with a grace
// window the others get ErrRefreshRotated and the winner keeps working,
// without one the family is revoked (and then no pair works).
func TestAPITokenConcurrentRefresh(t *testing.T) {
	t.Parallel()
	for _, grace := range []time.Duration{30 * time.Second, 0} {
		t.Run("grace="+grace.String(), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *Config) { c.APITokens.GraceWindow = grace })
			e.create("race@example.com", "race")
			insts := []*Users{e.users, e.instance()}
			p := e.tokenLogin(e.users, "race@example.com")
			const n = 200
			var (
				wg    sync.WaitGroup
				mu    sync.Mutex
				pairs []*APITokens
				errs  = map[string]int{}
			)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got, err := insts[i%2].RefreshAPITokens(ctx, p.RefreshToken, Client{})
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						pairs = append(pairs, got)
					case errors.Is(err, ErrRefreshRotated):
						errs["rotated"]++
					case errors.Is(err, ErrRefreshReused):
						errs["reused"]++
					case errors.Is(err, ErrInvalidAPIToken):
						errs["invalid"]++
					case errors.Is(err, ErrUnavailable):
						errs["unavailable"]++ // contention beyond the retries: fails closed
					default:
						t.Errorf("unexpected: %v", err)
					}
				}()
			}
			wg.Wait()
			t.Logf("%d pairs, %v", len(pairs), errs)
			if len(pairs) != 1 {
				t.Fatalf("%d refreshes succeeded, want exactly 1", len(pairs))
			}
			api := newAPIServer(e, e.users)
			valid := 0
			for _, q := range pairs {
				if api.status(q.AccessToken) == 200 {
					valid++
				}
				if _, err := e.users.RefreshAPITokens(ctx, q.RefreshToken, Client{}); err == nil {
					valid++
				}
			}
			if grace > 0 {
				if valid != 2 || errs["reused"] != 0 {
					t.Fatalf("with a grace window: %d valid uses of the winner's pair (want 2), %v", valid, errs)
				}
			} else if valid != 0 {
				t.Fatalf("without a grace window the family must end revoked; %d uses still worked", valid)
			}
		})
	}
}

// Everything that ends sessions ends API access and refreshes too, at
// once: "log out everywhere", a password change, a reset, disabling the
// account, and signing the client out from the sessions page.
func TestAPITokenEndedByAccountChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	api := newAPIServer(e, e.users)
	cases := []struct {
		name string
		end  func(u *User, p *APITokens) error
	}{
		{"logout everywhere", func(u *User, _ *APITokens) error { return e.users.LogoutEverywhere(ctx, nil, u) }},
		{"password change", func(u *User, _ *APITokens) error {
			return e.users.ChangePassword(ctx, nil, u, Proof{Password: goodPassword}, "an entirely new passphrase", Client{})
		}},
		{"password reset", func(u *User, _ *APITokens) error {
			if err := e.users.RequestReset(ctx, u.Email, ip("192.0.2.9")); err != nil {
				return err
			}
			_, err := e.users.ResetPassword(ctx, e.mail.last(MessagePasswordReset).Token, "an entirely new passphrase")
			return err
		}},
		{"disabled", func(u *User, _ *APITokens) error { return e.users.Disable(ctx, u.ID) }},
		{"signed out from the sessions page", func(u *User, p *APITokens) error {
			return e.users.RevokeAPIClient(ctx, apiGet(t, e, u.ID), p.ClientID, Client{})
		}},
		{"client logout", func(_ *User, p *APITokens) error { return e.users.RevokeAPIToken(ctx, p.RefreshToken, Client{}) }},
	}
	for i, tc := range cases {
		email := "end" + string(rune('a'+i)) + "@example.com"
		u := e.create(email, "end"+string(rune('a'+i)))
		p := e.tokenLogin(e.users, email)
		if api.status(p.AccessToken) != 200 {
			t.Fatalf("%s: access before", tc.name)
		}
		if err := tc.end(u, p); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := api.status(p.AccessToken); got != 401 {
			t.Errorf("%s: access token answered %d, want 401", tc.name, got)
		}
		if _, err := e.users.RefreshAPITokens(ctx, p.RefreshToken, Client{}); !errors.Is(err, ErrInvalidAPIToken) || errors.Is(err, ErrRefreshReused) {
			t.Errorf("%s: refresh: %v", tc.name, err)
		}
		if cs := e.users.APIClients(apiGet(t, e, u.ID)); len(cs) != 0 {
			t.Errorf("%s: still listed: %+v", tc.name, cs)
		}
	}
}

// Lifetimes on a fake clock: the access token's, the family's idle one,
// and its absolute one that refreshing does not extend.
func TestAPITokenExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) {
		c.APITokens = APITokenConfig{IdleLifetime: 48 * time.Hour, AbsoluteLifetime: 5 * 24 * time.Hour}
	})
	e.create("exp@example.com", "exp")
	api := newAPIServer(e, e.users)
	p := e.tokenLogin(e.users, "exp@example.com")
	e.clock.Advance(10*time.Minute + time.Second)
	if got := api.status(p.AccessToken); got != 401 {
		t.Fatalf("access token past its lifetime: %d", got)
	}
	// Idle: refreshed every 47 h it lives; 49 h of silence ends it.
	for range 2 {
		e.clock.Advance(47 * time.Hour)
		var err error
		if p, err = e.users.RefreshAPITokens(ctx, p.RefreshToken, Client{}); err != nil {
			t.Fatalf("refresh within the idle lifetime: %v", err)
		}
	}
	// Absolute: 94 h in; the next refresh at 141 h is past 120 h.
	e.clock.Advance(47 * time.Hour)
	if _, err := e.users.RefreshAPITokens(ctx, p.RefreshToken, Client{}); !errors.Is(err, ErrInvalidAPIToken) || errors.Is(err, ErrRefreshReused) {
		t.Fatalf("refresh past the absolute lifetime: %v", err)
	}
	q := e.tokenLogin(e.users, "exp@example.com")
	e.clock.Advance(49 * time.Hour)
	if _, err := e.users.RefreshAPITokens(ctx, q.RefreshToken, Client{}); !errors.Is(err, ErrInvalidAPIToken) || errors.Is(err, ErrRefreshReused) {
		t.Fatalf("refresh past the idle lifetime: %v", err)
	}
}

// Input → outcome: malformed, forged and misplaced tokens.
func TestAPITokenRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("forge@example.com", "forge")
	api := newAPIServer(e, e.users)
	p := e.tokenLogin(e.users, "forge@example.com")
	flip := func(s string) string {
		b := []byte(s)
		b[len(b)-3] ^= 1
		return string(b)
	}
	for _, tc := range []struct{ name, tok string }{
		{"empty", ""},
		{"garbage", "dga_!!!"},
		{"refresh token as access token", p.RefreshToken},
		{"flipped MAC", flip(p.AccessToken)},
		{"huge", "dga_" + strings.Repeat("A", 10000)},
	} {
		r := api.get("", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tc.tok) })
		if r.Code != 401 || r.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s: %d", tc.name, r.Code)
		}
	}
	// A cookie and a bearer token: ambiguous.
	r := api.get(p.AccessToken, func(r *http.Request) { r.AddCookie(&http.Cookie{Name: api.sm.Cookie.Name, Value: "x"}) })
	if r.Code != 400 || !strings.Contains(r.Body.String(), "ambiguous-identity") {
		t.Errorf("cookie and bearer: %d %s", r.Code, r.Body)
	}
	// A forged refresh token with the family's public ID but not its
	// secret revokes nothing and refreshes nothing.
	f, _ := e.users.parseRefresh(p.RefreshToken)
	f.fs[0] ^= 1
	f.gen = 7
	if _, err := e.users.RefreshAPITokens(ctx, e.users.refreshToken(f), Client{}); !errors.Is(err, ErrInvalidAPIToken) || errors.Is(err, ErrRefreshReused) {
		t.Fatalf("forged refresh: %v", err)
	}
	if err := e.users.RevokeAPIToken(ctx, e.users.refreshToken(f), Client{}); err != nil {
		t.Fatal(err)
	}
	if err := e.users.RevokeAPIToken(ctx, "dgr_nonsense", Client{}); err != nil {
		t.Fatal(err)
	}
	if api.status(p.AccessToken) != 200 {
		t.Fatal("a forged token revoked the family")
	}
	if _, err := e.users.RefreshAPITokens(ctx, p.RefreshToken, Client{}); err != nil {
		t.Fatalf("the family's own token after forgeries: %v", err)
	}
}

// Second factor in the same request.
func TestAPITokenLoginTOTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.create("mfa@example.com", "mfa")
	secret, _ := e.enable(u)
	l := APILogin{Login: "mfa@example.com", Password: goodPassword, Client: Client{IP: ip("192.0.2.8")}}
	if _, err := e.users.IssueAPITokens(ctx, l); !errors.Is(err, ErrSecondFactorRequired) {
		t.Fatalf("no code: %v", err)
	}
	l.Code = "000000"
	if _, err := e.users.IssueAPITokens(ctx, l); !errors.Is(err, ErrInvalidCode) {
		t.Fatalf("wrong code: %v", err)
	}
	l.Code = e.code(secret, 0)
	if _, err := e.users.IssueAPITokens(ctx, l); err != nil {
		t.Fatalf("code: %v", err)
	}
	l.Password = "wrong password here"
	if _, err := e.users.IssueAPITokens(ctx, l); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
}

// A full account evicts its oldest client for a new login.
func TestAPITokenMaxClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.APITokens.MaxClients = 2 })
	e.create("many@example.com", "many")
	api := newAPIServer(e, e.users)
	a := e.tokenLogin(e.users, "many@example.com")
	e.clock.Advance(time.Second)
	b := e.tokenLogin(e.users, "many@example.com")
	e.clock.Advance(time.Second)
	c := e.tokenLogin(e.users, "many@example.com")
	if api.status(a.AccessToken) != 401 || api.status(b.AccessToken) != 200 || api.status(c.AccessToken) != 200 {
		t.Fatal("the oldest client was not the one evicted")
	}
	e.refreshRefused(a.RefreshToken, ErrInvalidAPIToken, "evicted refresh")
}

// Calls per operation, from the recorder.
func TestAPITokenCalls(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("calls@example.com", "calls")
	api := newAPIServer(e, e.users)

	e.rec.Reset()
	if _, err := e.users.Authenticate(ctx, Credentials{Login: "calls@example.com", Password: goodPassword, IP: ip("192.0.2.7")}); err != nil {
		t.Fatal(err)
	}
	login := len(e.rec.Calls())
	e.rec.Reset()
	p := e.tokenLogin(e.users, "calls@example.com")
	if got := e.rec.Calls(); len(got) != login+1 || got[len(got)-1].Op != "TransactWriteItems" {
		t.Fatalf("token login: %d calls (login %d + 1 wanted): %+v", len(got), login, got)
	}

	e.rec.Reset()
	if api.status(p.AccessToken) != 200 {
		t.Fatal("bearer request refused")
	}
	if got := e.rec.Calls(); len(got) != 1 || got[0].Op != "GetItem" || !got[0].ConsistentRead {
		t.Fatalf("bearer request: %+v, want 1 strongly consistent GetItem", got)
	}

	e.rec.Reset()
	e.refresh(p.RefreshToken)
	if got := e.rec.Calls(); len(got) != 1 || got[0].Op != "TransactWriteItems" {
		t.Fatalf("refresh: %+v, want 1 TransactWriteItems", got)
	}
}

// Storage faults fail closed: no tokens issued, no token rotated, no
// bearer request let through; the family survives a failed refresh.
func TestAPITokenFaults(t *testing.T) {
	t.Parallel()
	for _, f := range []ddbtest.Fault{ddbtest.Throttling, ddbtest.Timeout, ddbtest.ConnReset} {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.create("fault@example.com", "fault")
			api := newAPIServer(e, e.users)
			p := e.tokenLogin(e.users, "fault@example.com")

			e.faults.Fail("TransactWriteItems", f)
			if _, err := e.users.IssueAPITokens(ctx, APILogin{Login: "fault@example.com", Password: goodPassword}); !errors.Is(err, ErrUnavailable) {
				t.Errorf("login: %v", err)
			}
			if _, err := e.users.RefreshAPITokens(ctx, p.RefreshToken, Client{}); !errors.Is(err, ErrUnavailable) {
				t.Errorf("refresh: %v", err)
			}
			if err := e.users.RevokeAPIToken(ctx, p.RefreshToken, Client{}); !errors.Is(err, ErrUnavailable) {
				t.Errorf("revoke: %v", err)
			}
			e.faults.Clear()
			e.faults.Fail("GetItem", f)
			if got := api.status(p.AccessToken); got != 503 {
				t.Errorf("bearer request with the account unreadable: %d, want 503", got)
			}
			e.faults.Clear()
			next, err := e.users.RefreshAPITokens(ctx, p.RefreshToken, Client{})
			if err != nil {
				t.Fatalf("the family after the faults: %v", err)
			}

			// A reuse whose revocation fails: nothing issued, an error
			// (503), and the next presentation revokes.
			e.faults.FailNth("TransactWriteItems", 2, f)
			if _, err := e.users.RefreshAPITokens(ctx, p.RefreshToken, Client{}); !errors.Is(err, ErrUnavailable) {
				t.Errorf("reuse with the revocation failing: %v", err)
			}
			e.faults.Clear()
			if _, err := e.users.RefreshAPITokens(ctx, p.RefreshToken, Client{}); !errors.Is(err, ErrRefreshReused) {
				t.Errorf("reuse presented again: %v", err)
			}
			if _, err := e.users.RefreshAPITokens(ctx, next.RefreshToken, Client{}); !errors.Is(err, ErrInvalidAPIToken) {
				t.Errorf("the family must be revoked now: %v", err)
			}
		})
	}
}

// A dump of the table holds no token, no part of one, nothing derivable
// without the keyring.
func TestAPITokenTableDump(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("dump@example.com", "dump")
	p := e.tokenLogin(e.users, "dump@example.com")
	q := e.refresh(p.RefreshToken)
	dump := ddbtest.Dump(t, e.base)
	var needles []string
	for _, tok := range []string{p.RefreshToken, q.RefreshToken, p.AccessToken, q.AccessToken} {
		needles = append(needles, tok, tok[4:])
	}
	for _, r := range []string{p.RefreshToken, q.RefreshToken} {
		f, _ := e.users.parseRefresh(r)
		for _, b := range [][]byte{f.fs[:], f.secret[:]} {
			needles = append(needles, base64.StdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b), hex.EncodeToString(b), string(b))
			for _, k := range []dynaguard.DerivedKey{{Secret: []byte{}}, {Secret: make([]byte, 32)}} {
				// An unkeyed or zero-keyed hash would be derivable.
				needles = append(needles, base64.StdEncoding.EncodeToString(familyHash(k, f.fid[:], b)))
			}
		}
		needles = append(needles, base64.StdEncoding.EncodeToString(refreshHash(dynaguard.DerivedKey{Secret: []byte{}}, f)))
	}
	for _, n := range needles {
		if strings.Contains(dump, n) {
			t.Fatalf("the table dump contains a token or a derivable form (%.12s…)", n)
		}
	}
	if !strings.Contains(dump, dynaguard.PrefixAPIFamily+p.ClientID) {
		t.Fatal("no family item in the dump: the test looks at the wrong table")
	}
}

// Bearer verification, in memory and with the account as read.
func BenchmarkBearerVerify(b *testing.B) {
	k := keyring(b, secretA)
	s := &Users{keys: k, accessKeys: k.Keys(purposeAPIAccess), apiTokens: APITokenConfig{}.withDefaults()}
	u := &User{ID: "abcdefghijklmnopqrstuvwxyz", credVersion: 3, epoch: 2}
	f := newFamily(u, "bench", time.Now())
	u.apic = map[string]types.AttributeValue{f.id: ddb.S(apiEntry{id: f.id, created: f.at, abs: f.at + 3600, cv: 3, se: 2}.String())}
	tok := s.accessToken(f, time.Now())
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		c, why := s.verifyAccess(tok, now)
		if why != "" || !u.lists(c.fid, now) || c.cv != u.credVersion {
			b.Fatal(why)
		}
	}
}

// withKeys returns another instance on e's table with e's configuration
// but keys as its keyring.
func (e *env) withKeys(keys *dynaguard.Keyring) *Users {
	e.t.Helper()
	cfg := e.cfg
	cfg.Keys = keys
	u, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// Within the grace window only the exact token rotated last gets the grace
// answer; an older one, or one made up with the family's secret and the
// right generation, is reuse.
func TestAPITokenGraceOnlyForTheRotatedToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.APITokens.GraceWindow = 30 * time.Second })
	e.create("grace@example.com", "grace")
	p1 := e.tokenLogin(e.users, "grace@example.com")
	p2 := e.refresh(p1.RefreshToken)
	e.refreshRefused(p1.RefreshToken, ErrRefreshRotated, "the token just rotated, within the window")
	made, _ := e.users.parseRefresh(p1.RefreshToken)
	made.secret[0] ^= 1
	e.refreshRefused(e.users.refreshToken(made), ErrRefreshReused, "a made-up token of the rotated generation")
	e.refreshRefused(p2.RefreshToken, ErrInvalidAPIToken, "the family must be revoked")
	// After the window, the rotated token itself is reuse.
	q1 := e.tokenLogin(e.users, "grace@example.com")
	e.refresh(q1.RefreshToken)
	e.clock.Advance(31 * time.Second)
	e.refreshRefused(q1.RefreshToken, ErrRefreshReused, "after the window")
}

// Of many concurrent presentations of one old token, one revokes the family
// and tells the owner; every one is refused as reuse.
func TestAPITokenConcurrentReuseTellsOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("once@example.com", "once")
	p := e.tokenLogin(e.users, "once@example.com")
	e.refresh(p.RefreshToken)
	insts := []*Users{e.users, e.instance()}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := insts[i%2].RefreshAPITokens(ctx, p.RefreshToken, Client{}); !errors.Is(err, ErrInvalidAPIToken) {
				t.Errorf("old token: %v", err)
			}
		}()
	}
	wg.Wait()
	if n := e.mail.count(MessageAPITokenReused); n != 1 {
		t.Fatalf("%d notices for one reuse, want 1", n)
	}
}

// Concurrent first logins of one account (each from its own address) all
// get a family: the one that loses the race to create the account's list
// retries with the list as it is.
func TestAPITokenConcurrentLogins(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.create("burst@example.com", "burst")
	insts := []*Users{e.users, e.instance()}
	const n = 6
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := insts[i%2].IssueAPITokens(ctx, APILogin{Login: "burst@example.com", Password: goodPassword,
				Client: Client{IP: ip("192.0.2." + string(rune('1'+i)))}})
			if err != nil {
				t.Errorf("login %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if cs := e.users.APIClients(apiGet(t, e, u.ID)); len(cs) != n {
		t.Fatalf("%d clients listed, want %d", len(cs), n)
	}
}

// A secret rotation keeps API clients working while the previous secret is
// in the keyring (access tokens name their key; stored hashes are matched
// against every key), and ends them once it is dropped.
func TestAPITokenKeyRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("rotate@example.com", "rotate")
	p := e.tokenLogin(e.users, "rotate@example.com")
	rotated := e.withKeys(keyring(t, secretB, secretA))
	if got := newAPIServer(e, rotated).status(p.AccessToken); got != 200 {
		t.Fatalf("access token after the rotation: %d", got)
	}
	q, err := rotated.RefreshAPITokens(ctx, p.RefreshToken, Client{})
	if err != nil {
		t.Fatalf("refresh after the rotation: %v", err)
	}
	// The new pair is made with the new secret alone.
	dropped := e.withKeys(keyring(t, secretB))
	if got := newAPIServer(e, dropped).status(q.AccessToken); got != 200 {
		t.Fatalf("new access token with the previous secret dropped: %d", got)
	}
	if _, err := dropped.RefreshAPITokens(ctx, q.RefreshToken, Client{}); err != nil {
		t.Fatalf("new refresh token with the previous secret dropped: %v", err)
	}
	if got := newAPIServer(e, dropped).status(p.AccessToken); got != 401 {
		t.Fatalf("an access token of a dropped secret: %d", got)
	}
}

// Rolling a new secret across instances: the instances that already know
// it as a previous secret accept what the first to promote it makes.
func TestAPITokenKeyRollout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("rollout@example.com", "rollout")
	staged, promoted := e.withKeys(keyring(t, secretA, secretB)), e.withKeys(keyring(t, secretB, secretA))
	p := e.tokenLogin(promoted, "rollout@example.com")
	if got := newAPIServer(e, staged).status(p.AccessToken); got != 200 {
		t.Fatalf("access token of the promoted secret on a staged instance: %d", got)
	}
	q, err := staged.RefreshAPITokens(ctx, p.RefreshToken, Client{})
	if err != nil {
		t.Fatalf("refresh token of the promoted secret on a staged instance: %v", err)
	}
	if _, err := promoted.RefreshAPITokens(ctx, q.RefreshToken, Client{}); err != nil {
		t.Fatalf("and back: %v", err)
	}
}
