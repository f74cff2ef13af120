package users_test

import (
	"encoding/json"
	"net/http"

	"github.com/dynaguard/dynaguard/users"
)

// Token endpoints for API clients (a CLI, a mobile app): a login with the
// password (and the TOTP code in the same request), a refresh that works
// once per token, and a logout. Mount them where no session, nonce or
// Idempotency-Key is required (middleware.Config.Exempt) — they
// authenticate each request themselves — and accept JSON only, so that a
// cross-site form cannot post to them. API routes then take
// "Authorization: Bearer <access_token>" through LoadUser / RequireUser.
func ExampleUsers_IssueAPITokens() {
	var accounts *users.Users // users.New(users.Config{..., APITokens: users.APITokenConfig{}})
	reply := func(w http.ResponseWriter, r *http.Request, p *users.APITokens, err error) {
		if err != nil {
			// 401 invalid-token or refresh-token-reused (the family is
			// revoked), 429 throttled, 409 rotated a moment ago, 503.
			users.WriteError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": p.AccessToken, "refresh_token": p.RefreshToken,
			"token_type": "Bearer", "expires_in": int(p.ExpiresIn.Seconds())})
	}
	http.HandleFunc("POST /api/token", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Login, Password, Code string }
		if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&in) != nil {
			http.Error(w, "JSON only", http.StatusUnsupportedMediaType)
			return
		}
		p, err := accounts.IssueAPITokens(r.Context(), users.APILogin{Login: in.Login, Password: in.Password, Code: in.Code,
			Client: users.Client{IP: clientIP(r), UserAgent: r.UserAgent()}})
		reply(w, r, p, err)
	})
	http.HandleFunc("POST /api/token/refresh", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			RefreshToken string `json:"refresh_token"`
		}
		if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&in) != nil {
			http.Error(w, "JSON only", http.StatusUnsupportedMediaType)
			return
		}
		p, err := accounts.RefreshAPITokens(r.Context(), in.RefreshToken, users.Client{IP: clientIP(r)})
		// ErrRefreshReused: two parties held this client's tokens; all of
		// them are revoked now, and the owner was told.
		reply(w, r, p, err)
	})
}
