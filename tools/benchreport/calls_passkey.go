package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/webauthntest"
	"github.com/dynaguard/dynaguard/sessionstore"
	"github.com/dynaguard/dynaguard/users"
)

// Section 1, passkeys: a registration and a sign-in with a software
// authenticator, on the users package alone (scs and LoadUser, no form
// nonce: a passkey response carries its own single-use challenge).

const passkeyRPID, passkeyOrigin = "bench.example", "https://bench.example"

func init() {
	minimums["POST /passkey/register (password as step-up proof)"] = minimum{9, "2 GetItem + a login's 4 calls + 1 TransactWriteItems + renewal (2 writes)", 6, 12,
		"The two reads of an authenticated request (2 RCU); the password proof, checked as a login checks it (BatchGetItem of the three counters, 3 RCU; GetItem of the account in the hashing slot, 1 RCU; the attempt counted and its counter deleted, 2 WCU); then one transaction of three items (6 WCU) — the challenge's single-use marker, the credential's item claimed with attribute_not_exists (the uniqueness marker: no credential belongs to two accounts), and the account's list and user handle conditioned on its credential version, epoch and the passkey limit — so a registration is used once and complete or absent; the step-up renews the session token (old tombstoned, new written: 2 WCU each, as each leaves or enters the index of a user's sessions). The challenge was issued with no call."}
	minimums["POST /passkey/login (a passkey sign-in)"] = minimum{4, "BatchGetItem + GetItem + 1 TransactWriteItems + session write", 4, 6,
		"The credential must be read to know its account (its key is a keyed hash of the credential ID; the user handle is random and names no item) — the client address's and its /24's failure counters ride in the same BatchGetItem (3 RCU); the account must be read (1 RCU) for the session's binding to its credential version and epoch, and to see it is not disabled; accepting is one transaction of two items (4 WCU): the challenge's single-use marker and the counter's advance, atomic together so that neither a replay nor a cloned key racing the original can pass. Then the new session is written once with its owner binding (2 WCU). The challenge cost nothing to issue."}
	minimums["POST /passkey/login (the same response again)"] = minimum{3, "BatchGetItem + GetItem + 1 failed TransactWriteItems", 4, 4,
		"The same reads; the transaction fails on the challenge's marker (a replay, refused and reported without marking the credential cloned). AWS bills the failed transaction's items."}
}

// passkeyApp is the smallest application around users' passkey calls.
type passkeyApp struct {
	h  http.Handler
	u  *users.Users
	sm *scs.SessionManager
}

func newPasskeyApp(tbl *dynaguard.Table, keys *dynaguard.Keyring) (*passkeyApp, error) {
	store, err := sessionstore.New(sessionstore.Config{Table: tbl, Keys: keys, Logger: quiet})
	if err != nil {
		return nil, err
	}
	sm := scs.New()
	sm.Store, sm.Codec = store, sessionstore.Codec{}
	u, err := users.New(users.Config{Table: tbl, Keys: keys, Sessions: store, Logger: quiet,
		Passkeys: users.PasskeyConfig{RPID: passkeyRPID, Origins: []string{passkeyOrigin}}})
	if err != nil {
		return nil, err
	}
	client := func(r *http.Request) users.Client {
		ap, _ := netip.ParseAddrPort(r.RemoteAddr)
		return users.Client{IP: ap.Addr(), UserAgent: r.UserAgent()}
	}
	answer := func(w http.ResponseWriter, r *http.Request, body []byte, err error) {
		if err != nil {
			users.WriteError(w, r, err)
			return
		}
		if body == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		acct, err := u.Authenticate(r.Context(), users.Credentials{Login: r.FormValue("login"), Password: r.FormValue("password"), IP: client(r).IP})
		if err == nil {
			err = u.Login(r.Context(), sm, acct, client(r))
		}
		answer(w, r, nil, err)
	})
	mux.HandleFunc("POST /passkey/register/begin", func(w http.ResponseWriter, r *http.Request) {
		cur, _ := users.FromContext(r.Context())
		opts, err := u.BeginPasskeyRegistration(r.Context(), sm, cur)
		answer(w, r, opts, err)
	})
	mux.HandleFunc("POST /passkey/register", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Password string          `json:"password"`
			Response json.RawMessage `json:"response"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		cur, _ := users.FromContext(r.Context())
		_, err := u.FinishPasskeyRegistration(r.Context(), sm, cur, users.Proof{Password: in.Password}, in.Response, "bench", client(r))
		answer(w, r, nil, err)
	})
	mux.HandleFunc("POST /passkey/login/begin", func(w http.ResponseWriter, r *http.Request) {
		opts, err := u.BeginPasskeyLogin(r.Context(), sm)
		answer(w, r, opts, err)
	})
	mux.HandleFunc("POST /passkey/login", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		_, err := u.FinishPasskeyLogin(r.Context(), sm, body, client(r))
		answer(w, r, nil, err)
	})
	return &passkeyApp{h: sm.LoadAndSave(u.LoadUser(sm)(mux)), u: u, sm: sm}, nil
}

func measurePasskeyFlows(m *meter, add func(flowResult, error) error) error {
	keys, err := newKeyring()
	if err != nil {
		return err
	}
	app, err := newPasskeyApp(m.tbl, keys)
	if err != nil {
		return err
	}
	if _, err := app.u.Create(context.Background(), users.NewUser{Email: "passkey." + benchEmail, Username: "passkey" + benchUsername, Password: benchPassword}); err != nil {
		return err
	}
	auth := webauthntest.New(passkeyRPID, passkeyOrigin)
	owner := newBrowser(app.h, "198.51.100.20")
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	if w := owner.do("POST", "/login", "login=passkey"+benchUsername+"&password="+url.QueryEscape(benchPassword), form); w.Code != http.StatusNoContent {
		return errStatus("POST /login", w)
	}
	w := owner.do("POST", "/passkey/register/begin", "", nil)
	if w.Code != http.StatusOK {
		return errStatus("POST /passkey/register/begin", w)
	}
	resp, cred, err := auth.Create(w.Body.Bytes(), webauthntest.Options{})
	if err != nil {
		return err
	}
	reg, _ := json.Marshal(map[string]any{"password": benchPassword, "response": json.RawMessage(resp)})
	if err := add(m.measure("passkey registration", "POST /passkey/register (password as step-up proof)", http.StatusNoContent, func() *httptest.ResponseRecorder {
		return owner.do("POST", "/passkey/register", string(reg), map[string]string{"Content-Type": "application/json"})
	})); err != nil {
		return err
	}
	// Sign-in from a new browser with no login name.
	visitor := newBrowser(app.h, "198.51.100.21")
	if w = visitor.do("POST", "/passkey/login/begin", "", nil); w.Code != http.StatusOK {
		return errStatus("POST /passkey/login/begin", w)
	}
	assertion, err := auth.Get(w.Body.Bytes(), cred, webauthntest.Options{})
	if err != nil {
		return err
	}
	if err := add(m.measure("passkey sign-in", "POST /passkey/login (a passkey sign-in)", http.StatusNoContent, func() *httptest.ResponseRecorder {
		return visitor.do("POST", "/passkey/login", string(assertion), nil)
	})); err != nil {
		return err
	}
	replay := newBrowser(app.h, "198.51.100.21")
	for k, v := range visitor.cookies {
		if strings.HasSuffix(k, "dg-webauthn") {
			replay.cookies[k] = v // the challenge's browser, without the new session
		}
	}
	if err := add(m.measure("passkey replay (refused)", "POST /passkey/login (the same response again)", http.StatusUnauthorized, func() *httptest.ResponseRecorder {
		return replay.do("POST", "/passkey/login", string(assertion), nil)
	})); err != nil {
		return fmt.Errorf("passkey replay: %w", err)
	}
	return nil
}
