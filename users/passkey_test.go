package users

import (
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard/internal/webauthntest"
)

const (
	testRPID   = "example.com"
	testOrigin = "https://example.com"
)

var passkeyConfig = func(c *Config) {
	c.Passkeys = PasskeyConfig{RPID: testRPID, RPName: "Example", Origins: []string{testOrigin}}
}

// pkURL is where the test browsers' cookies live: https, so that the
// __Host- challenge cookie (Secure) is kept and sent like a browser would.
var pkURL, _ = url.Parse("https://example.com/")

// pkBrowser is one browser of a passkey test: a cookie jar and a client
// address. Each run is one request through scs and LoadUser, as an
// application's handler would see it.
type pkBrowser struct {
	t   testing.TB
	jar *cookiejar.Jar
	ip  netip.Addr
}

func newPKBrowser(t testing.TB, addr string) *pkBrowser {
	jar, _ := cookiejar.New(nil)
	return &pkBrowser{t: t, jar: jar, ip: netip.MustParseAddr(addr)}
}

func (b *pkBrowser) client() Client { return Client{IP: b.ip, UserAgent: "test"} }

// run serves one request: f runs inside sm.LoadAndSave and u.LoadUser.
func (b *pkBrowser) run(u *Users, sm *scs.SessionManager, f func(ctx context.Context)) {
	b.t.Helper()
	req := httptest.NewRequest("POST", pkURL.String(), nil)
	for _, c := range b.jar.Cookies(pkURL) {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	sm.LoadAndSave(u.LoadUser(sm)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f(r.Context())
	}))).ServeHTTP(rec, req)
	b.jar.SetCookies(pkURL, rec.Result().Cookies())
}

// login logs the browser in with the password (a two-step login stays
// pending); it returns whether the login is pending.
func (b *pkBrowser) login(u *Users, sm *scs.SessionManager, login string) bool {
	b.t.Helper()
	var pending bool
	b.run(u, sm, func(ctx context.Context) {
		acct, err := u.Authenticate(ctx, Credentials{Login: login, Password: goodPassword, IP: b.ip})
		if err == nil {
			pending, err = u.BeginLogin(ctx, sm, acct, b.client())
		}
		if err != nil {
			b.t.Fatalf("login %s: %v", login, err)
		}
	})
	return pending
}

// me returns the browser's logged-in user ("" when none).
func (b *pkBrowser) me(u *Users, sm *scs.SessionManager) string {
	var id string
	b.run(u, sm, func(ctx context.Context) {
		if cur, ok := FromContext(ctx); ok {
			id = cur.ID
		}
	})
	return id
}

// pk is a passkey test's world: env, a session manager, an authenticator.
type pk struct {
	*env
	sm   *scs.SessionManager
	auth *webauthntest.Authenticator
}

func newPK(t *testing.T, mods ...func(*Config)) *pk {
	e := newEnv(t, append([]func(*Config){passkeyConfig}, mods...)...)
	return &pk{env: e, sm: newSM(e.store), auth: webauthntest.New(testRPID, testOrigin)}
}

// begin runs one of the Begin calls in b and returns its options.
func (p *pk) begin(b *pkBrowser, f func(ctx context.Context, u *User) ([]byte, error)) []byte {
	p.t.Helper()
	var opts []byte
	b.run(p.users, p.sm, func(ctx context.Context) {
		cur, _ := FromContext(ctx)
		var err error
		if opts, err = f(ctx, cur); err != nil {
			p.t.Fatalf("begin: %v", err)
		}
	})
	return opts
}

// register adds a passkey (named name) to b's logged-in user with the
// password as proof, and returns the authenticator's credential.
func (p *pk) register(b *pkBrowser, name string, o webauthntest.Options) (*webauthntest.Credential, error) {
	p.t.Helper()
	opts := p.begin(b, func(ctx context.Context, u *User) ([]byte, error) {
		return p.users.BeginPasskeyRegistration(ctx, p.sm, u)
	})
	resp, cred, err := p.auth.Create(opts, o)
	if err != nil {
		p.t.Fatal(err)
	}
	return cred, p.finishRegistration(b, resp, name)
}

func (p *pk) finishRegistration(b *pkBrowser, resp []byte, name string) error {
	var err error
	b.run(p.users, p.sm, func(ctx context.Context) {
		cur, _ := FromContext(ctx)
		_, err = p.users.FinishPasskeyRegistration(ctx, p.sm, cur, pw, resp, name, b.client())
	})
	return err
}

// signInResponse begins a passkey sign-in in b and returns the assertion.
func (p *pk) signInResponse(b *pkBrowser, c *webauthntest.Credential, o webauthntest.Options) []byte {
	p.t.Helper()
	opts := p.begin(b, func(ctx context.Context, _ *User) ([]byte, error) { return p.users.BeginPasskeyLogin(ctx, p.sm) })
	resp, err := p.auth.Get(opts, c, o)
	if err != nil {
		p.t.Fatal(err)
	}
	return resp
}

func (p *pk) finishSignIn(users *Users, b *pkBrowser, resp []byte) (*User, error) {
	var (
		u   *User
		err error
	)
	b.run(users, p.sm, func(ctx context.Context) { u, err = users.FinishPasskeyLogin(ctx, p.sm, resp, b.client()) })
	return u, err
}

// signIn signs in with c (options o) in b on p.users: a sign-in begun and
// finished.
func (p *pk) signIn(b *pkBrowser, c *webauthntest.Credential, o webauthntest.Options) error {
	p.t.Helper()
	_, err := p.finishSignIn(p.users, b, p.signInResponse(b, c, o))
	return err
}

// setUp creates abe, logs a browser in and registers one passkey.
func (p *pk) setUp() (*User, *pkBrowser, *webauthntest.Credential) {
	p.t.Helper()
	abe := p.create("abe@example.com", "abe")
	b := newPKBrowser(p.t, "192.0.2.1")
	b.login(p.users, p.sm, "abe")
	cred, err := p.register(b, "laptop", webauthntest.Options{})
	if err != nil {
		p.t.Fatalf("register: %v", err)
	}
	return mustGet(p.t, p.env, abe.ID), b, cred
}

func TestPasskeyRegisterListRenameSignIn(t *testing.T) {
	t.Parallel()
	p := newPK(t)
	abe, b, cred := p.setUp()
	if abe.Passkeys != 1 || len(abe.handle) != handleLen {
		t.Fatalf("account after registration: %d passkeys, handle %d bytes", abe.Passkeys, len(abe.handle))
	}
	if p.mail.count(MessagePasskeyAdded) != 1 {
		t.Error("no passkey-added notice")
	}
	list, err := p.users.Passkeys(ctx, abe)
	if err != nil || len(list) != 1 || list[0].Name != "laptop" || list[0].Cloned || list[0].Created.IsZero() {
		t.Fatalf("Passkeys = %+v, %v", list, err)
	}
	if err := p.users.RenamePasskey(ctx, abe, list[0].ID, "work laptop"); err != nil {
		t.Fatal(err)
	}
	if err := p.users.RenamePasskey(ctx, abe, list[0].ID, "bad\nname"); !errors.Is(err, ErrInvalidIdentifier) {
		t.Errorf("rename with a control character: %v", err)
	}
	bea := p.create("bea@example.com", "bea")
	if err := p.users.RenamePasskey(ctx, bea, list[0].ID, "mine now"); !errors.Is(err, ErrPasskeyNotFound) {
		t.Errorf("rename of another account's passkey: %v", err)
	}
	// A second passkey on the same account keeps the user handle.
	if _, err := p.register(b, "phone", webauthntest.Options{Packed: true}); err != nil {
		t.Fatalf("second (packed) registration: %v", err)
	}
	abe2 := mustGet(t, p.env, abe.ID)
	if abe2.Passkeys != 2 || string(abe2.handle) != string(abe.handle) {
		t.Fatalf("second registration: %d passkeys, handle kept %v", abe2.Passkeys, string(abe2.handle) == string(abe.handle))
	}

	// A new browser signs in with no login name.
	other := newPKBrowser(t, "198.51.100.7")
	u, err := p.finishSignIn(p.users, other, p.signInResponse(other, cred, webauthntest.Options{}))
	if err != nil || u.ID != abe.ID {
		t.Fatalf("passkey sign-in: %v, %v", u, err)
	}
	if got := other.me(p.users, p.sm); got != abe.ID {
		t.Fatalf("after passkey sign-in the session is %q", got)
	}
	list, _ = p.users.Passkeys(ctx, abe2)
	var used Passkey
	for _, k := range list {
		if k.Name == "work laptop" {
			used = k
		}
	}
	if used.LastUsed.IsZero() || used.BackupEligible || used.BackedUp {
		t.Errorf("after use: %+v", used)
	}
	// A label can be cleared.
	if err := p.users.RenamePasskey(ctx, abe2, used.ID, ""); err != nil {
		t.Fatal(err)
	}
	list, _ = p.users.Passkeys(ctx, abe2)
	for _, k := range list {
		if k.ID == used.ID && k.Name != "" {
			t.Errorf("cleared label reads %q", k.Name)
		}
	}
}

// Every way an assertion can be wrong is refused, and none signs in.
func TestPasskeySignInRefusals(t *testing.T) {
	t.Parallel()
	p := newPK(t)
	abe, b, cred := p.setUp()
	cases := []struct {
		name string
		o    webauthntest.Options
	}{
		{"wrong origin", webauthntest.Options{Origin: "https://evil.example"}},
		{"sibling origin not configured", webauthntest.Options{Origin: "https://login.example.com"}},
		{"wrong RP ID", webauthntest.Options{RPID: "evil.example"}},
		{"no user verification", webauthntest.Options{NoUV: true}},
		{"no user presence", webauthntest.Options{NoUP: true}},
		{"wrong challenge", webauthntest.Options{Challenge: []byte("a challenge this server never issued......")}},
		{"another account's user handle", webauthntest.Options{UserHandle: make([]byte, handleLen)}},
	}
	for _, c := range cases {
		nb := newPKBrowser(t, "198.51.100.9")
		if u, err := p.finishSignIn(p.users, nb, p.signInResponse(nb, cred, c.o)); !errors.Is(err, ErrInvalidPasskey) || !errors.Is(err, ErrInvalidCredentials) || u != nil {
			t.Errorf("%s: %v, %v", c.name, u, err)
		}
		if nb.me(p.users, p.sm) != "" {
			t.Errorf("%s: logged in", c.name)
		}
	}
	// A malformed response, and one that is far too large.
	for _, resp := range [][]byte{[]byte(`{"id":"x"}`), []byte(strings.Repeat("a", maxPasskeyResponse+1))} {
		if _, err := p.finishSignIn(p.users, b, resp); !errors.Is(err, ErrInvalidPasskey) {
			t.Errorf("malformed: %v", err)
		}
	}
	// The failures with a known credential count against the account, as
	// failed passwords from an unknown client do.
	if got := mustGet(t, p.env, abe.ID).unknownFails; got == 0 {
		t.Error("failed assertions were not counted against the account")
	}
}

// A challenge is good for its own purpose, browser and session only, and
// only until it expires.
func TestPasskeyChallengeBindings(t *testing.T) {
	t.Parallel()
	p := newPK(t)
	abe, b, cred := p.setUp()

	// Another browser presents b's sign-in response.
	resp := p.signInResponse(b, cred, webauthntest.Options{})
	if _, err := p.finishSignIn(p.users, newPKBrowser(t, "192.0.2.1"), resp); !errors.Is(err, ErrInvalidPasskey) {
		t.Errorf("another browser: %v", err)
	}
	// A step-up challenge used to sign in (same browser).
	opts := p.begin(b, func(ctx context.Context, u *User) ([]byte, error) { return p.users.BeginPasskeyProof(ctx, p.sm, u) })
	stepResp, _ := p.auth.Get(opts, cred, webauthntest.Options{})
	if _, err := p.finishSignIn(p.users, b, stepResp); !errors.Is(err, ErrInvalidPasskey) {
		t.Errorf("step-up challenge at sign-in: %v", err)
	}
	// A sign-in challenge used as a step-up proof.
	signResp := p.signInResponse(b, cred, webauthntest.Options{})
	b.run(p.users, p.sm, func(ctx context.Context) {
		cur, _ := FromContext(ctx)
		if err := p.users.RemovePasskey(ctx, p.sm, cur, Proof{Passkey: signResp}, cur.passkeys[0], b.client()); !errors.Is(err, ErrProofRequired) || !errors.Is(err, ErrInvalidPasskey) {
			t.Errorf("sign-in challenge as a proof: %v", err)
		}
	})
	// The step-up response in another session of the same account and
	// browser (a second login renews the session).
	b.login(p.users, p.sm, "abe")
	b.run(p.users, p.sm, func(ctx context.Context) {
		cur, _ := FromContext(ctx)
		if err := p.users.RemovePasskey(ctx, p.sm, cur, Proof{Passkey: stepResp}, cur.passkeys[0], b.client()); !errors.Is(err, ErrInvalidPasskey) {
			t.Errorf("step-up challenge of another session: %v", err)
		}
	})
	// Expired: the clock moves past ChallengeTTL between begin and finish.
	resp = p.signInResponse(b, cred, webauthntest.Options{})
	p.clock.Advance(defaultChallengeTTL + time.Second)
	if _, err := p.finishSignIn(p.users, b, resp); !errors.Is(err, ErrInvalidPasskey) {
		t.Errorf("expired challenge: %v", err)
	}
	if n := len(mustGet(t, p.env, abe.ID).passkeys); n != 1 {
		t.Fatalf("the refused proofs removed a passkey: %d left", n)
	}
}
