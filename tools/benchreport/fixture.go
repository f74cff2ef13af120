package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/idempotency"
	"github.com/dynaguard/dynaguard/middleware"
	"github.com/dynaguard/dynaguard/nonce"
	"github.com/dynaguard/dynaguard/sessionstore"
	"github.com/dynaguard/dynaguard/users"
)

// The measured application: every dynaguard component with its defaults,
// wrapped by the ready-made middleware.Stack around a ServeMux, and small
// handlers that do one flow each. The same handlers also run bare (no stack,
// no session, no user), which is the baseline of the CPU overhead figures.

var quiet = slog.New(slog.DiscardHandler)

// Account credentials used throughout the report.
const (
	benchEmail    = "Ann.Example@example.com"
	benchUsername = "ann"
	benchPassword = "correct horse battery staple 42"
)

// instanceConfig varies one application instance.
type instanceConfig struct {
	Hasher    users.Hasher        // default users.DefaultArgon2id
	IdemCache int                 // idempotency.Config.CacheBytes
	Users     func(*users.Config) // further changes to the users configuration
	Events    *dynaguard.Events   // every component's Events (nil: the default sink)
}

// instance is one application instance: its components, the stack around
// the routes, and the routes alone.
type instance struct {
	outbox *outbox
	sm     *scs.SessionManager
	store  *sessionstore.Store
	users  *users.Users
	nonces *nonce.Manager
	idem   *idempotency.Guard

	secure http.Handler // middleware.Stack around the routes
	bare   http.Handler // the same routes without it
}

// newKeyring returns a keyring with a fresh random secret.
func newKeyring() (*dynaguard.Keyring, error) {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	return dynaguard.NewKeyring(secret)
}

func newInstance(tbl *dynaguard.Table, keys *dynaguard.Keyring, cfg instanceConfig) (*instance, error) {
	store, err := sessionstore.New(sessionstore.Config{Table: tbl, Keys: keys, Logger: quiet, Events: cfg.Events})
	if err != nil {
		return nil, err
	}
	sm := scs.New()
	sm.Store, sm.Codec = store, sessionstore.Codec{}
	sm.IdleTimeout = 30 * time.Minute
	hasher := cfg.Hasher
	if hasher == nil {
		hasher = users.DefaultArgon2id
	}
	box := &outbox{last: map[string]users.Message{}}
	ucfg := users.Config{Table: tbl, Keys: keys, Sessions: store, Hasher: hasher, Mailer: box,
		TOTP: users.TOTPConfig{Issuer: "dynaguard benchmarks"}, Logger: quiet, Events: cfg.Events}
	if cfg.Users != nil {
		cfg.Users(&ucfg)
	}
	u, err := users.New(ucfg)
	if err != nil {
		return nil, err
	}
	nm, err := nonce.New(nonce.Config{Table: tbl, Keys: keys, Logger: quiet, Events: cfg.Events})
	if err != nil {
		return nil, err
	}
	g, err := idempotency.New(idempotency.Config{Table: tbl, Keyring: keys, Scope: idempotency.UserOrSession, CacheBytes: cfg.IdemCache, Logger: quiet, Events: cfg.Events})
	if err != nil {
		return nil, err
	}
	st, err := middleware.New(middleware.Config{Sessions: sm, Users: u, Nonces: nm, Idempotency: g, Logger: quiet})
	if err != nil {
		return nil, err
	}
	in := &instance{outbox: box, sm: sm, store: store, users: u, nonces: nm, idem: g}
	in.secure = st.Handler((&routes{in: in}).mux())
	in.bare = (&routes{}).mux()
	return in, nil
}

// routes are the application's handlers. With in == nil they run bare:
// the same work, without anything that needs the stack.
type routes struct {
	in    *instance
	items atomic.Int64
}

func (a *routes) mux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /form", a.form)
	m.HandleFunc("POST /submit", a.submit)
	m.HandleFunc("GET /page", a.page)
	m.HandleFunc("GET /visit", a.visit)
	m.HandleFunc("GET /account", a.account)
	m.HandleFunc("POST /register", a.register)
	m.HandleFunc("POST /login", a.login)
	m.HandleFunc("POST /logout", a.logout)
	m.HandleFunc("POST /login/totp", a.loginTOTP)
	m.HandleFunc("POST /password/reset", a.resetRequest)
	m.HandleFunc("POST /password/reset/confirm", a.resetConfirm)
	m.HandleFunc("POST /account/verify", a.verifyRequest)
	m.HandleFunc("POST /email/verify", a.verifyEmail)
	m.HandleFunc("POST /account/email", a.emailChange)
	m.HandleFunc("POST /email/change/confirm", a.emailConfirm)
	m.HandleFunc("POST /account/totp/setup", a.totpSetup)
	m.HandleFunc("POST /account/totp", a.totpConfirm)
	m.HandleFunc("POST /api/items", a.createItem)
	return m
}

var formPage = template.Must(template.New("form").Parse(`<!doctype html><title>Transfer</title>
<form method="post" action="{{.Action}}">{{.Field}}
<label>To <input name="to"></label><label>Amount <input name="amount"></label><button>Send</button></form>`))

// form renders a form for the path in ?for= (default /submit) with a
// single-use nonce: issuing it makes no DynamoDB call.
func (a *routes) form(w http.ResponseWriter, r *http.Request) {
	action := r.URL.Query().Get("for")
	if action == "" {
		action = "/submit"
	}
	var field template.HTML
	if a.in != nil {
		f, err := nonce.Field(r, action)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		field = f
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = formPage.Execute(w, struct {
		Action string
		Field  template.HTML
	}{action, field})
}

// submit is a nonce-protected form post (the stack consumed the nonce).
func (a *routes) submit(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "sent "+r.PostForm.Get("amount")+" to "+r.PostForm.Get("to"))
}

// page reads the session without changing it.
func (a *routes) page(w http.ResponseWriter, r *http.Request) {
	theme := "light"
	if a.in != nil {
		if t := a.in.sm.GetString(r.Context(), "theme"); t != "" {
			theme = t
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "theme "+theme)
}

// visit changes the session (a counter), so its commit writes.
func (a *routes) visit(w http.ResponseWriter, r *http.Request) {
	n := 1
	if a.in != nil {
		n = a.in.sm.GetInt(r.Context(), "visits") + 1
		a.in.sm.Put(r.Context(), "visits", n)
		a.in.sm.Put(r.Context(), "theme", "dark")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "visit "+strconv.Itoa(n))
}

// account is a page for logged-in users.
func (a *routes) account(w http.ResponseWriter, r *http.Request) {
	email := benchEmail
	if a.in != nil {
		u, ok := users.FromContext(r.Context())
		if !ok {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		email = u.Email
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "account "+email)
}

func (a *routes) register(w http.ResponseWriter, r *http.Request) {
	if a.in == nil {
		http.Error(w, "not available bare", http.StatusNotImplemented)
		return
	}
	_, err := a.in.users.Create(r.Context(), users.NewUser{Email: r.PostFormValue("email"),
		Username: r.PostFormValue("username"), Password: r.PostFormValue("password")})
	if err != nil {
		users.WriteError(w, r, err)
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (a *routes) login(w http.ResponseWriter, r *http.Request) {
	if a.in == nil {
		http.Error(w, "not available bare", http.StatusNotImplemented)
		return
	}
	u, err := a.in.users.Authenticate(r.Context(), users.Credentials{Login: r.PostFormValue("login"),
		Password: r.PostFormValue("password"), IP: middleware.ClientIP(r)})
	if err != nil {
		users.WriteError(w, r, err)
		return
	}
	pending, err := a.in.users.BeginLogin(r.Context(), a.in.sm, u, middleware.Client(r))
	if err != nil {
		users.WriteError(w, r, err)
		return
	}
	if pending {
		http.Redirect(w, r, "/login/totp", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
}

// loginTOTP completes a two-step login with a TOTP or recovery code.
func (a *routes) loginTOTP(w http.ResponseWriter, r *http.Request) {
	if a.in == nil {
		http.Error(w, "not available bare", http.StatusNotImplemented)
		return
	}
	if _, err := a.in.users.CompleteLogin(r.Context(), a.in.sm, r.PostFormValue("code"), middleware.Client(r)); err != nil {
		users.WriteError(w, r, err)
		return
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
}

// resetRequest answers the same whether or not the address has an account.
func (a *routes) resetRequest(w http.ResponseWriter, r *http.Request) {
	if a.in == nil {
		http.Error(w, "not available bare", http.StatusNotImplemented)
		return
	}
	if err := a.in.users.RequestReset(r.Context(), r.PostFormValue("email"), middleware.ClientIP(r)); err != nil {
		users.WriteError(w, r, err)
		return
	}
	io.WriteString(w, "If an account has this address, a link is on its way.")
}

func (a *routes) resetConfirm(w http.ResponseWriter, r *http.Request) {
	if a.in == nil {
		http.Error(w, "not available bare", http.StatusNotImplemented)
		return
	}
	if _, err := a.in.users.ResetPassword(r.Context(), r.PostFormValue("token"), r.PostFormValue("password")); err != nil {
		users.WriteError(w, r, err)
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (a *routes) verifyRequest(w http.ResponseWriter, r *http.Request) {
	u, ok := a.user(w, r)
	if !ok {
		return
	}
	if err := a.in.users.RequestEmailVerification(r.Context(), u, middleware.ClientIP(r)); err != nil {
		users.WriteError(w, r, err)
		return
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
}

func (a *routes) verifyEmail(w http.ResponseWriter, r *http.Request) {
	if a.in == nil {
		http.Error(w, "not available bare", http.StatusNotImplemented)
		return
	}
	if _, err := a.in.users.VerifyEmail(r.Context(), r.PostFormValue("token")); err != nil {
		users.WriteError(w, r, err)
		return
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
}

// emailChange asks for a new email address with the password as step-up
// proof; the change waits for the confirmation link.
func (a *routes) emailChange(w http.ResponseWriter, r *http.Request) {
	u, ok := a.user(w, r)
	if !ok {
		return
	}
	proof := users.Proof{Password: r.PostFormValue("password"), Code: r.PostFormValue("code")}
	if err := a.in.users.RequestEmailChange(r.Context(), a.in.sm, u, r.PostFormValue("email"), proof, middleware.Client(r)); err != nil {
		users.WriteError(w, r, err)
		return
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
}

// emailConfirm moves the account to the pending address with the link's
// token.
func (a *routes) emailConfirm(w http.ResponseWriter, r *http.Request) {
	if a.in == nil {
		http.Error(w, "not available bare", http.StatusNotImplemented)
		return
	}
	if _, err := a.in.users.ConfirmEmailChange(r.Context(), a.in.sm, r.PostFormValue("token"), middleware.Client(r)); err != nil {
		users.WriteError(w, r, err)
		return
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
}

// totpSetup starts an enrolment (with the password as proof) and answers
// its secret (base32).
func (a *routes) totpSetup(w http.ResponseWriter, r *http.Request) {
	u, ok := a.user(w, r)
	if !ok {
		return
	}
	proof := users.Proof{Password: r.PostFormValue("password")}
	e, err := a.in.users.BeginTOTP(r.Context(), a.in.sm, u, proof, middleware.Client(r))
	if err != nil {
		users.WriteError(w, r, err)
		return
	}
	io.WriteString(w, e.Secret)
}

// totpConfirm enables TOTP with a code and answers the recovery codes.
func (a *routes) totpConfirm(w http.ResponseWriter, r *http.Request) {
	u, ok := a.user(w, r)
	if !ok {
		return
	}
	proof := users.Proof{Password: r.PostFormValue("password")}
	codes, err := a.in.users.ConfirmTOTP(r.Context(), a.in.sm, u, proof, r.PostFormValue("code"), middleware.Client(r))
	if err != nil {
		users.WriteError(w, r, err)
		return
	}
	io.WriteString(w, strings.Join(codes, "\n"))
}

// user returns the logged-in user, or answers 401.
func (a *routes) user(w http.ResponseWriter, r *http.Request) (*users.User, bool) {
	if a.in == nil {
		http.Error(w, "not available bare", http.StatusNotImplemented)
		return nil, false
	}
	u, ok := users.FromContext(r.Context())
	if !ok {
		http.Error(w, "log in first", http.StatusUnauthorized)
	}
	return u, ok
}

// outbox is the instance's Mailer: it keeps the last message of each kind
// per address, so the report can follow reset and verification links.
type outbox struct {
	mu   sync.Mutex
	last map[string]users.Message
}

func (o *outbox) Send(_ context.Context, m users.Message) error {
	o.mu.Lock()
	o.last[m.To+" "+string(m.Kind)] = m
	o.mu.Unlock()
	return nil
}

// token returns the token of the last message of kind sent to to.
func (o *outbox) token(to string, kind users.MessageKind) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	m, ok := o.last[to+" "+string(kind)]
	return m.Token, ok && m.Token != ""
}

func (a *routes) logout(w http.ResponseWriter, r *http.Request) {
	if a.in == nil {
		http.Error(w, "not available bare", http.StatusNotImplemented)
		return
	}
	if err := a.in.users.Logout(r.Context(), a.in.sm); err != nil {
		users.WriteError(w, r, err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// createItem is a JSON API post (the stack requires an Idempotency-Key).
func (a *routes) createItem(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil || len(body) == 0 {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	n := a.items.Add(1)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/api/items/"+strconv.FormatInt(n, 10))
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"id":%d,"status":"accepted"}`, n)
}

// browser is an in-process client: it calls a handler directly (no
// network) and keeps cookies like a browser.
type browser struct {
	h       http.Handler
	addr    string // RemoteAddr of its requests
	cookies map[string]string
}

func newBrowser(h http.Handler, ip string) *browser {
	return &browser{h: h, addr: ip + ":40000", cookies: map[string]string{}}
}

// cookieHeader renders the browser's cookies as a Cookie header.
func (b *browser) cookieHeader() string {
	var parts []string
	for k, v := range b.cookies {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, "; ")
}

// request builds a request with the browser's cookies.
func (b *browser) request(method, target, body string, hdr map[string]string) *http.Request {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	r.RemoteAddr = b.addr
	if c := b.cookieHeader(); c != "" {
		r.Header.Set("Cookie", c)
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	return r
}

// do sends a request and keeps the cookies of the response.
func (b *browser) do(method, target, body string, hdr map[string]string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	b.h.ServeHTTP(w, b.request(method, target, body, hdr))
	for _, c := range w.Result().Cookies() {
		if c.MaxAge < 0 || c.Value == "" || (!c.Expires.IsZero() && c.Expires.Before(time.Now())) {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c.Value
		}
	}
	return w
}

var nonceValue = regexp.MustCompile(`name="nonce" value="([^"]+)"`)

// token loads the form for action and returns its nonce.
func (b *browser) token(action string) (string, error) {
	w := b.do("GET", "/form?for="+action, "", nil)
	m := nonceValue.FindStringSubmatch(w.Body.String())
	if w.Code != 200 || m == nil {
		return "", fmt.Errorf("GET /form?for=%s: %d %q", action, w.Code, w.Body.String())
	}
	return m[1], nil
}

// post submits a url-encoded form.
func (b *browser) post(path string, form map[string]string) *httptest.ResponseRecorder {
	var parts []string
	for k, v := range form {
		parts = append(parts, k+"="+queryEscape(v))
	}
	return b.do("POST", path, strings.Join(parts, "&"), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
}

func queryEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// formPost loads the form for path and submits it with fields and its
// nonce.
func (b *browser) formPost(path string, fields map[string]string) *httptest.ResponseRecorder {
	tok, err := b.token(path)
	if err != nil {
		w := httptest.NewRecorder()
		w.Code = 599
		w.Body.WriteString(err.Error())
		return w
	}
	form := map[string]string{"nonce": tok}
	for k, v := range fields {
		form[k] = v
	}
	return b.post(path, form)
}

// loginAs registers (when register is set) and logs in through the stack,
// returning the logged-in browser.
func loginAs(h http.Handler, ip, email, username string, register bool) (*browser, error) {
	b := newBrowser(h, ip)
	if register {
		tok, err := b.token("/register")
		if err != nil {
			return nil, err
		}
		if w := b.post("/register", map[string]string{"nonce": tok, "email": email, "username": username, "password": benchPassword}); w.Code != http.StatusSeeOther {
			return nil, fmt.Errorf("register: %d %s", w.Code, w.Body.String())
		}
	}
	tok, err := b.token("/login")
	if err != nil {
		return nil, err
	}
	if w := b.post("/login", map[string]string{"nonce": tok, "login": username, "password": benchPassword}); w.Code != http.StatusSeeOther {
		return nil, fmt.Errorf("login: %d %s", w.Code, w.Body.String())
	}
	if w := b.do("GET", "/account", "", nil); w.Code != 200 {
		return nil, fmt.Errorf("GET /account after login: %d", w.Code)
	}
	return b, nil
}

type statusError struct {
	what string
	code int
	body string
}

func (e *statusError) Error() string {
	return e.what + ": status " + strconv.Itoa(e.code) + ": " + e.body
}

func errStatus(what string, w *httptest.ResponseRecorder) error {
	return &statusError{what, w.Code, w.Body.String()}
}
