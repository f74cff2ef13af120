package webauthntest

import (
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/go-webauthn/webauthn/protocol"
)

func options(t *testing.T, challenge []byte) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"publicKey": map[string]any{
		"challenge": base64.RawURLEncoding.EncodeToString(challenge),
		"rp":        map[string]any{"id": "example.com", "name": "Example"},
		"user":      map[string]any{"id": base64.RawURLEncoding.EncodeToString([]byte("handle-0123456789")), "name": "u", "displayName": "u"},
		"rpId":      "example.com",
	}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The responses verify with go-webauthn's protocol functions, and each
// misbehaviour is refused by them.
func TestRoundTrip(t *testing.T) {
	a := New("example.com", "https://example.com")
	ch := []byte("0123456789abcdef0123456789abcdef")
	stored := base64.RawURLEncoding.EncodeToString(ch)
	origins := []string{"https://example.com"}
	for _, packed := range []bool{false, true} {
		resp, cred, err := a.Create(options(t, ch), Options{Packed: packed})
		if err != nil {
			t.Fatal(err)
		}
		pcc, err := protocol.ParseCredentialCreationResponseBytes(resp)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pcc.Verify(stored, "example.com", origins, nil, nil, protocol.TopOriginExplicitVerificationMode, false, true, true, nil,
			[]protocol.CredentialParameter{{Type: protocol.PublicKeyCredentialType, Algorithm: -7}}, protocol.AttestationPolicy{}, protocol.SignaturePolicy{}); err != nil {
			t.Fatalf("packed=%v: %v", packed, err)
		}
		pub := pcc.Response.AttestationObject.AuthData.AttData.CredentialPublicKey
		cases := []struct {
			name string
			o    Options
			ok   bool
		}{
			{"good", Options{}, true},
			{"wrong origin", Options{Origin: "https://evil.example"}, false},
			{"wrong rp id", Options{RPID: "evil.example"}, false},
			{"no uv", Options{NoUV: true}, false},
			{"other challenge", Options{Challenge: []byte("another challenge, 32 bytes long")}, false},
		}
		for _, c := range cases {
			resp, err := a.Get(options(t, ch), cred, c.o)
			if err != nil {
				t.Fatal(err)
			}
			par, err := protocol.ParseCredentialRequestResponseBytes(resp)
			if err != nil {
				t.Fatal(err)
			}
			err = par.Verify(stored, "example.com", "", origins, nil, nil, protocol.TopOriginExplicitVerificationMode, false, true, true, pub, protocol.SignaturePolicy{})
			if (err == nil) != c.ok {
				t.Errorf("%s: err = %v", c.name, err)
			}
			if string(par.Response.UserHandle) != "handle-0123456789" {
				t.Errorf("%s: user handle %q", c.name, par.Response.UserHandle)
			}
		}
		if cred.Counter != uint32(len(cases)) {
			t.Errorf("counter %d after %d assertions", cred.Counter, len(cases))
		}
	}
}
