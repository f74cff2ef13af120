package users

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/dynaguard/dynaguard/internal/authctx"
	"github.com/dynaguard/dynaguard/internal/webauthntest"
)

// BenchmarkPasskeySignInDynamoDB is a passkey sign-in end to end on
// DynamoDB Local: the challenge (no call), the assertion's check and its
// three calls, and the new session (scs with the session store). Each
// iteration is a new browser, as each sign-in needs its own challenge.
func BenchmarkPasskeySignInDynamoDB(b *testing.B) {
	tbl, store, _ := benchEnv(b)
	s, err := New(Config{Table: tbl, Keys: keyring(b, secretA), Sessions: store, Hasher: cheapArgon2, Logger: quietLogger(),
		Passkeys: PasskeyConfig{RPID: testRPID, Origins: []string{testOrigin}}})
	if err != nil {
		b.Fatal(err)
	}
	sm := newSM(store)
	auth := webauthntest.New(testRPID, testOrigin)
	owner := newPKBrowser(b, "192.0.2.1")
	owner.run(s, sm, func(ctx context.Context) {
		u, err := s.Authenticate(ctx, Credentials{Login: "bench", Password: goodPassword, IP: owner.ip})
		if err == nil {
			err = s.Login(ctx, sm, u, owner.client())
		}
		if err != nil {
			b.Fatal(err)
		}
	})
	var opts, resp []byte
	owner.run(s, sm, func(ctx context.Context) {
		cur, _ := FromContext(ctx)
		if opts, err = s.BeginPasskeyRegistration(ctx, sm, cur); err != nil {
			b.Fatal(err)
		}
	})
	if resp, _, err = auth.Create(opts, webauthntest.Options{}); err != nil {
		b.Fatal(err)
	}
	owner.run(s, sm, func(ctx context.Context) {
		cur, _ := FromContext(ctx)
		if _, err := s.FinishPasskeyRegistration(ctx, sm, cur, pw, resp, "bench", owner.client()); err != nil {
			b.Fatal(err)
		}
	})
	b.ReportAllocs()
	for b.Loop() {
		br := newPKBrowser(b, "198.51.100.7")
		br.run(s, sm, func(ctx context.Context) {
			if opts, err = s.BeginPasskeyLogin(ctx, sm); err != nil {
				b.Fatal(err)
			}
		})
		if resp, err = auth.Get(opts, nil, webauthntest.Options{}); err != nil {
			b.Fatal(err)
		}
		br.run(s, sm, func(ctx context.Context) {
			if _, err := s.FinishPasskeyLogin(ctx, sm, resp, br.client()); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkPasskeyAssertionCPU is the CPU work of checking one assertion,
// without storage: parsing the response, opening its challenge (MAC,
// purpose, bindings, expiry), and verifying origin, RP ID, flags and the
// ES256 signature — what a passkey sign-in adds to its three calls.
func BenchmarkPasskeyAssertionCPU(b *testing.B) {
	s := fuzzUsers(b)
	req := httptest.NewRequest("POST", "https://example.com/", nil)
	req.AddCookie(&http.Cookie{Name: s.passkeys.CookieName, Value: "AAAAAAAAAAAAAAAAAAAAAA"})
	ctx := authctx.With(context.Background(), &loaded{req: req})
	opts, _ := s.requestOptions(s.newChallenge(ceremonyLogin, binding{browser: "AAAAAAAAAAAAAAAAAAAAAA"}, nil))
	handle := make([]byte, handleLen)
	auth := webauthntest.New(testRPID, testOrigin)
	reg, _ := json.Marshal(map[string]any{"publicKey": map[string]any{"challenge": "AAAA",
		"rp": map[string]any{"id": testRPID}, "user": map[string]any{"id": b64u.EncodeToString(handle)}}})
	created, _, err := auth.Create(reg, webauthntest.Options{})
	if err != nil {
		b.Fatal(err)
	}
	pcc, err := protocol.ParseCredentialCreationResponseBytes(created)
	if err != nil {
		b.Fatal(err)
	}
	resp, err := auth.Get(opts, nil, webauthntest.Options{})
	if err != nil {
		b.Fatal(err)
	}
	a, err := s.openAssertion(ctx, resp, ceremonyLogin, "")
	if err != nil {
		b.Fatal(err)
	}
	c := credential{pk: a.pks[0], uid: "u", pub: pcc.Response.AttestationObject.AuthData.AttData.CredentialPublicKey}
	u := &User{ID: "u", handle: handle, passkeys: []string{passkeyID(a.pks[0])}}
	b.ReportAllocs()
	for b.Loop() {
		a, err := s.openAssertion(ctx, resp, ceremonyLogin, "")
		if err != nil {
			b.Fatal(err)
		}
		if err := s.verifyAssertion(a, c, u); err != nil {
			b.Fatal(err)
		}
	}
}
