package app

import (
	"slices"
	"testing"

	"github.com/dynaguard/dynaguard/users"
)

// The passkey configuration the app derives from its base URL when none is
// given: the RP ID browsers accept for the address the app is served at.
func TestPasskeyConfig(t *testing.T) {
	for _, tc := range []struct {
		name         string
		cfg          Config
		rpID, origin string // "" rpID: passkeys off
		insecure     bool
	}{
		{"production", Config{BaseURL: "https://app.example.com/"}, "app.example.com", "https://app.example.com", false},
		{"production with a port", Config{BaseURL: "https://App.Example.com:8443"}, "app.example.com", "https://app.example.com:8443", false},
		{"dev on 127.0.0.1 becomes localhost", Config{Dev: true, BaseURL: "http://127.0.0.1:8080"}, "localhost", "http://localhost:8080", true},
		{"dev on [::1] becomes localhost", Config{Dev: true, BaseURL: "http://[::1]:8080"}, "localhost", "http://localhost:8080", true},
		{"dev on localhost", Config{Dev: true, BaseURL: "http://localhost:8080"}, "localhost", "http://localhost:8080", true},
		{"an address outside dev: off", Config{BaseURL: "https://192.0.2.1"}, "", "", false},
		{"a public address in dev: off", Config{Dev: true, BaseURL: "http://192.0.2.1:8080"}, "", "", true},
		{"no base URL: off", Config{}, "", "", false},
		{"no host: off", Config{Dev: true, BaseURL: "http://:8080"}, "", "", true},
		{"not a URL: off", Config{BaseURL: "app.example.com"}, "", "", false},
		{"explicit wins", Config{BaseURL: "https://app.example.com", Passkeys: users.PasskeyConfig{RPID: "example.com", Origins: []string{"https://example.com"}}},
			"example.com", "https://example.com", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := passkeyConfig(tc.cfg)
			if p.RPID != tc.rpID || (tc.rpID != "" && !slices.Equal(p.Origins, []string{tc.origin})) || p.Insecure != tc.insecure {
				t.Fatalf("got RPID %q, origins %q, insecure %v; want %q, [%s], %v", p.RPID, p.Origins, p.Insecure, tc.rpID, tc.origin, tc.insecure)
			}
		})
	}
}
