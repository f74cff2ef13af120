package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/dynaguard/dynaguard/middleware"
	"github.com/dynaguard/dynaguard/users"
)

// Section 1, API clients: a token login, a bearer request, a refresh and a
// replayed refresh token, through middleware.Stack with the token routes
// exempt (they authenticate each request themselves), as in the example.

func init() {
	minimums["POST /api/token (password; no session, no nonce)"] = minimum{5, "BatchGetItem + GetItem + UpdateItem + DeleteItem + 1 TransactWriteItems (family + account entry)", 5, 6,
		"The login's own reads, attempt count and counter delete (see POST /login: the same throttle, so the token endpoint is no softer target), without the form's nonce or a session write. Then the family and its entry on the account appear together, conditioned on the credential version and epoch the password was checked against: one transaction of two items (2 WCU each, for an account under 1 KB). The entry on the account is what lets a bearer request and a revocation do without any other read."}
	minimums["GET /api/items (Authorization: Bearer)"] = minimum{1, "1 GetItem (account)", 1, 0,
		"The access token is checked in memory (MAC, expiry); the one strongly consistent read of the account — which every authenticated request makes — says whether the account is enabled, its credential version and epoch are the token's, and the token's family is still listed. No session to read or write: one read fewer than a cookie's GET /account."}
	minimums["POST /api/token/refresh (rotation)"] = minimum{1, "1 TransactWriteItems (ConditionCheck account + Update family)", 0, 4,
		"Single use needs one atomic move of the family from the presented token's hash to the new one; making it also depend on the account (credential version, epoch, not disabled, family listed) takes a ConditionCheck in the same transaction rather than a read first (which would reopen the race). No read. A transaction bills 2 WCU per KB of each item, the ConditionCheck's account item included: 2 × ⌈account KB⌉ + 2 WCU — the 4 here for an account under 1 KB; each API client listed on the account adds about 113 bytes (its entry), so an account with ten clients and a TOTP enrolment (about 3 KB) costs 8 WCU per refresh. The access token attached to the call, if any, is not checked (the route is exempt): no account read for it."}
	minimums["POST /api/token/refresh (forged token: another keyring)"] = minimum{0, "none: the refresh token's MAC is checked in memory", 0, 0,
		"A refresh token names its key and carries an HMAC under the package's own purpose: one this keyring did not make — a victim's user ID, which every access token shows, with a random family ID — is refused before any call, so forging them costs the victim's account item nothing."}
	minimums["POST /api/token/refresh (a rotated token again: reuse)"] = minimum{3, "1 failed TransactWriteItems + 1 TransactWriteItems (revocation) + 1 GetItem (owner's address)", 1, 8,
		"The refused rotation returns the family as it was (ReturnValuesOnConditionCheckFailure), which says it is reuse; the revocation deletes the family and removes its entry from the account together (so its access tokens die at once); the owner's notice needs the address, which neither transaction returns. AWS bills the canceled transaction's writes too. A rare path: one per detected theft."}
}

func measureAPITokenFlows(m *meter, add func(flowResult, error) error) error {
	keys, err := newKeyring()
	if err != nil {
		return err
	}
	in, err := newInstance(m.tbl, keys, instanceConfig{})
	if err != nil {
		return err
	}
	st, err := middleware.New(middleware.Config{Sessions: in.sm, Users: in.users, Nonces: in.nonces, Idempotency: in.idem,
		Exempt: []string{"/api/token", "/api/token/refresh", "/api/token/revoke"}, Logger: quiet})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	pair := func(w http.ResponseWriter, p *users.APITokens, err error, r *http.Request) {
		if err != nil {
			users.WriteError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"access_token": p.AccessToken, "refresh_token": p.RefreshToken})
	}
	mux.HandleFunc("POST /api/token", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Login, Password string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		p, err := in.users.IssueAPITokens(r.Context(), users.APILogin{Login: req.Login, Password: req.Password, Client: middleware.Client(r)})
		pair(w, p, err, r)
	})
	mux.HandleFunc("POST /api/token/refresh", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			RefreshToken string `json:"refresh_token"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		p, err := in.users.RefreshAPITokens(r.Context(), req.RefreshToken, middleware.Client(r))
		pair(w, p, err, r)
	})
	mux.HandleFunc("GET /api/items", func(w http.ResponseWriter, r *http.Request) {
		u, _ := users.FromContext(r.Context())
		fmt.Fprint(w, u.ID)
	})
	h := st.Handler(mux)
	if _, err := in.users.Create(context.Background(), users.NewUser{Email: "api." + benchEmail, Username: "api" + benchUsername, Password: benchPassword}); err != nil {
		return err
	}
	client := newBrowser(h, "198.51.100.20")
	js := map[string]string{"Content-Type": "application/json"}
	var got struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	decode := func(w *httptest.ResponseRecorder) *httptest.ResponseRecorder {
		_ = json.Unmarshal(w.Body.Bytes(), &got)
		return w
	}
	if err := add(m.measure("API token login", "POST /api/token (password; no session, no nonce)", http.StatusOK, func() *httptest.ResponseRecorder {
		return decode(client.do("POST", "/api/token", `{"login":"api`+benchUsername+`","password":"`+benchPassword+`"}`, js))
	})); err != nil {
		return err
	}
	access := got.AccessToken
	if err := add(m.measure("bearer request", "GET /api/items (Authorization: Bearer)", http.StatusOK, func() *httptest.ResponseRecorder {
		return client.do("GET", "/api/items", "", map[string]string{"Authorization": "Bearer " + access})
	})); err != nil {
		return err
	}
	first := got.RefreshToken
	if err := add(m.measure("refresh", "POST /api/token/refresh (rotation)", http.StatusOK, func() *httptest.ResponseRecorder {
		return decode(client.do("POST", "/api/token/refresh", `{"refresh_token":"`+first+`"}`, js))
	})); err != nil {
		return err
	}
	if err := add(m.measure("refresh replay (refused, family revoked)", "POST /api/token/refresh (a rotated token again: reuse)", http.StatusUnauthorized, func() *httptest.ResponseRecorder {
		return client.do("POST", "/api/token/refresh", `{"refresh_token":"`+first+`"}`, js)
	})); err != nil {
		return err
	}
	forged := forgedRefreshToken(got.RefreshToken)
	return add(m.measure("forged refresh token (refused in memory)", "POST /api/token/refresh (forged token: another keyring)", http.StatusUnauthorized, func() *httptest.ResponseRecorder {
		return client.do("POST", "/api/token/refresh", `{"refresh_token":"`+forged+`"}`, js)
	}))
}

// forgedRefreshToken is tok with another family ID — the form of a token
// made without the keyring: the user ID and layout are right, the MAC is
// not. (A character inside the family ID's bytes is changed; tok is a live
// token of the benchmark's own client.)
func forgedRefreshToken(tok string) string {
	b := []byte(tok)
	i := len("dgr_") + 16 // base64 of version, key ID and the start of the family ID
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}
