package users

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/authctx"
	"github.com/dynaguard/dynaguard/internal/webauthntest"
)

// fuzzUsers is a Users with passkeys on, for checks that make no call.
func fuzzUsers(t testing.TB) *Users {
	s, err := New(Config{Table: dynaguard.NewTable(&stubAPI{}, "stub"), Keys: keyring(t, secretA), Sessions: nopSessions{}, Hasher: cheapArgon2,
		Logger: quietLogger(), Passkeys: PasskeyConfig{RPID: testRPID, Origins: []string{testOrigin}}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Presented challenges: never a panic, and only a challenge this server
// issued for exactly this purpose and binding opens — a single bit changed
// anywhere in one that opens makes it fail.
func FuzzOpenChallenge(f *testing.F) {
	s := fuzzUsers(f)
	b := binding{browser: "browser-0123456789", session: "session", user: "user"}
	f.Add(s.newChallenge(ceremonyStepUp, b, nil), byte(1), 0)
	f.Add(s.newChallenge(ceremonyStepUp, b, nil), byte(0x20), 50)
	f.Add(s.newChallenge(ceremonyRegister, b, make([]byte, handleLen)), byte(1), 5)
	f.Add("", byte(0), 0)
	f.Fuzz(func(t *testing.T, raw string, flip byte, at int) {
		if _, ok := s.openChallenge(raw, ceremonyStepUp, b); !ok || flip == 0 {
			return
		}
		mut := []byte(raw)
		i := (at%len(mut) + len(mut)) % len(mut)
		mut[i] ^= flip
		if _, ok := s.openChallenge(string(mut), ceremonyStepUp, b); ok {
			t.Fatalf("a changed challenge opened: %q", mut)
		}
		for _, other := range []binding{{browser: "other", session: b.session, user: b.user}, {browser: b.browser, session: "other", user: b.user},
			{browser: b.browser, session: b.session, user: "other"}} {
			if _, ok := s.openChallenge(raw, ceremonyStepUp, other); ok {
				t.Fatalf("opened with binding %+v", other)
			}
		}
		if _, ok := s.openChallenge(raw, ceremonySecondFactor, b); ok {
			t.Fatal("opened for another purpose")
		}
	})
}

// Presented responses: never a panic; what opens is a sign-in challenge
// this server issued, before any DynamoDB call.
func FuzzOpenAssertion(f *testing.F) {
	s := fuzzUsers(f)
	req := httptest.NewRequest("POST", "https://example.com/", nil)
	req.AddCookie(&http.Cookie{Name: s.passkeys.CookieName, Value: "AAAAAAAAAAAAAAAAAAAAAA"})
	ctx := authctx.With(context.Background(), &loaded{req: req})
	b := binding{browser: "AAAAAAAAAAAAAAAAAAAAAA"}
	opts, _ := s.requestOptions(s.newChallenge(ceremonyLogin, b, nil))
	auth := webauthntest.New(testRPID, testOrigin)
	if _, _, err := auth.Create([]byte(`{"publicKey":{"challenge":"AAAA","rp":{"id":"example.com"},"user":{"id":"AAAA"}}}`), webauthntest.Options{}); err != nil {
		f.Fatal(err)
	}
	good, err := auth.Get(opts, nil, webauthntest.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"","rawId":"","type":"public-key","response":{}}`))
	f.Fuzz(func(t *testing.T, resp []byte) {
		a, err := s.openAssertion(ctx, resp, ceremonyLogin, "")
		if err == nil && (a.ch.purpose != ceremonyLogin || len(a.pks) == 0) {
			t.Fatalf("opened %+v", a.ch)
		}
	})
}
