package nonce

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard"
)

var formPage = template.Must(template.New("form").Parse(
	`<form method="post" action="/transfer">{{.Nonce}}<input name="amount" value="{{.Amount}}"></form>`))

var tokenInPage = regexp.MustCompile(`<input type="hidden" name="nonce" value="([^"]+)">`)

// app is a small application: GET /transfer renders the form, POST
// /transfer requires a nonce; Handler wraps the whole mux.
func app(e *env, transfers *int) http.Handler {
	mux := http.NewServeMux()
	render := func(w http.ResponseWriter, r *http.Request, amount string) {
		field, err := Field(r, "transfer")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		_ = formPage.Execute(w, map[string]any{"Nonce": field, "Amount": amount})
	}
	mux.HandleFunc("GET /transfer", func(w http.ResponseWriter, r *http.Request) { render(w, r, "") })
	mux.Handle("POST /transfer", e.m.Require("transfer")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*transfers++
		fmt.Fprintf(w, "sent %s", r.PostFormValue("amount"))
	})))
	return e.m.Handler(mux)
}

type client struct {
	t    *testing.T
	c    *http.Client
	base string
}

func (c client) get(path string) (string, string) {
	c.t.Helper()
	resp, err := c.c.Get(c.base + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := tokenInPage.FindSubmatch(body)
	if m == nil {
		c.t.Fatalf("no token in page: %s", body)
	}
	return string(m[1]), string(body)
}

func (c client) post(path string, form url.Values, accept string) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest("POST", c.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func newClient(t *testing.T, srv *httptest.Server) client {
	jar, _ := cookiejar.New(nil)
	c := srv.Client()
	c.Jar = jar
	return client{t: t, c: c, base: srv.URL}
}

func TestMultiTabAndBackButton(t *testing.T) {
	e := newEnv(t)
	transfers := 0
	srv := httptest.NewTLSServer(app(e, &transfers))
	defer srv.Close()
	c := newClient(t, srv)

	// Three tabs render the form; none of it touches DynamoDB.
	tab1, _ := c.get("/transfer")
	tab2, _ := c.get("/transfer")
	tab3, _ := c.get("/transfer")
	if e.rec.Count("") != 0 {
		t.Fatalf("rendering forms made %d DynamoDB calls", e.rec.Count(""))
	}
	// Submitting one never invalidates another, in any order.
	for i, tok := range []string{tab2, tab1, tab3} {
		code, body := c.post("/transfer", url.Values{"nonce": {tok}, "amount": {fmt.Sprint(i)}}, "")
		if code != 200 || body != fmt.Sprintf("sent %d", i) {
			t.Fatalf("tab submission %d: %d %s", i, code, body)
		}
	}
	if e.rec.Count("PutItem") != 3 || e.rec.Count("") != 3 {
		t.Fatalf("three submissions made %+v", e.rec.Calls())
	}
	// Back to tab 2 and submit again, as a browser does: refused as already
	// used, with a page that says so.
	code, body := c.post("/transfer", url.Values{"nonce": {tab2}, "amount": {"1"}},
		"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	if code != http.StatusConflict || !strings.Contains(body, "This form was already submitted") || !strings.Contains(body, "<html") {
		t.Fatalf("Back-button resubmission: %d %s", code, body)
	}
	if transfers != 3 {
		t.Fatalf("%d transfers ran, want 3", transfers)
	}
}

func TestWithCrossOriginProtection(t *testing.T) {
	e := newEnv(t)
	transfers := 0
	cop := http.NewCrossOriginProtection()
	srv := httptest.NewTLSServer(cop.Handler(app(e, &transfers)))
	defer srv.Close()
	c := newClient(t, srv)
	tok, _ := c.get("/transfer")

	// A cross-site form post carrying even a genuine token and the cookie is
	// stopped by CrossOriginProtection before it reaches the nonce check, so
	// the token is not spent.
	req, _ := http.NewRequest("POST", srv.URL+"/transfer", strings.NewReader(url.Values{"nonce": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := c.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || e.rec.Count("") != 0 {
		t.Fatalf("cross-site post: %d, %d DynamoDB calls", resp.StatusCode, e.rec.Count(""))
	}

	// The same-origin submission goes through both, once.
	req, _ = http.NewRequest("POST", srv.URL+"/transfer", strings.NewReader(url.Values{"nonce": {tok}, "amount": {"5"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err = c.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || transfers != 1 {
		t.Fatalf("same-origin post: %d, %d transfers", resp.StatusCode, transfers)
	}
	if code, _ := c.post("/transfer", url.Values{"nonce": {tok}}, ""); code != http.StatusConflict {
		t.Fatalf("replay: %d", code)
	}
}

// plainHTTPClient reaches srv under a host name that is not loopback, as a
// phone on the LAN or a dev domain would: browsers, like Go's cookiejar,
// treat only localhost and loopback addresses as secure origins over HTTP.
func plainHTTPClient(t *testing.T, srv *httptest.Server) client {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return client{t: t, c: &http.Client{Transport: tr, Jar: jar}, base: "http://dev.app.test"}
}

func TestInsecureCookieForLocalDevelopment(t *testing.T) {
	// Over plain HTTP the default Secure __Host- cookie is never sent back,
	// so every submission looks like it comes from another browser.
	e := newEnv(t)
	transfers := 0
	srv := httptest.NewServer(app(e, &transfers))
	c := plainHTTPClient(t, srv)
	tok, _ := c.get("/transfer")
	if code, body := c.post("/transfer", url.Values{"nonce": {tok}}, ""); code != 403 || !strings.Contains(body, "nonce-wrong-browser") {
		t.Fatalf("secure cookie over plain HTTP: %d %s", code, body)
	}
	srv.Close()

	// InsecureCookie makes the same flow work.
	e = newEnv(t, func(c *Config) { c.InsecureCookie = true })
	srv = httptest.NewServer(app(e, &transfers))
	defer srv.Close()
	c = plainHTTPClient(t, srv)
	tok, _ = c.get("/transfer")
	if code, body := c.post("/transfer", url.Values{"nonce": {tok}, "amount": {"7"}}, ""); code != 200 || body != "sent 7" {
		t.Fatalf("insecure cookie: %d %s", code, body)
	}
	u, _ := url.Parse(c.base)
	cookies := c.c.Jar.Cookies(u)
	if len(cookies) != 1 || cookies[0].Name != InsecureCookieName {
		t.Fatalf("cookies %v", cookies)
	}
}

func TestBrowserCookieAttributes(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CookieMaxAge = 10 * time.Hour })
	w := httptest.NewRecorder()
	e.m.Handler(http.NotFoundHandler()).ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	c := setCookie(w, DefaultCookieName)
	if c == nil || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" ||
		c.MaxAge != 36000 {
		t.Fatalf("cookie %+v", c)
	}
	if !strings.Contains(w.Header().Get("Vary"), "Cookie") {
		t.Fatal("no Vary: Cookie")
	}

	// A valid cookie is not re-set on every request...
	b := &browser{cookie: c}
	e.clock.Advance(4 * time.Hour)
	tok := e.token(b, "p")
	if b.cookie != c {
		t.Fatal("a cookie younger than half its lifetime was re-set")
	}
	// ...but is refreshed after half its lifetime, with the same secret: a
	// form issued before the refresh still verifies after it.
	e.clock.Advance(time.Hour + time.Second)
	_ = e.token(b, "q")
	if b.cookie == c {
		t.Fatal("the cookie was not refreshed after half its lifetime")
	}
	if res := e.submit(b, tok, "p"); !res.called {
		t.Fatalf("token issued before the refresh: %v", res.err)
	}
	// A cookie past its lifetime is not honoured even if a browser sends it;
	// the refreshed one is.
	e.clock.Advance(4 * time.Hour)
	tok = e.token(b, "p")
	e.clock.Advance(time.Hour)
	if res := e.submit(&browser{cookie: c}, tok, "p"); !errors.Is(res.err, ErrWrongBrowser) {
		t.Fatalf("cookie past its lifetime: %v", res.err)
	}
	if res := e.submit(b, tok, "p"); !res.called {
		t.Fatalf("refreshed cookie: %v", res.err)
	}
}

func TestAlteredCookieIsReplaced(t *testing.T) {
	e := newEnv(t)
	b := e.newBrowser()
	b.cookie.Value = "x" + b.cookie.Value[1:]
	w := httptest.NewRecorder()
	e.m.Handler(http.NotFoundHandler()).ServeHTTP(w, newGet(b))
	if setCookie(w, DefaultCookieName) == nil {
		t.Fatal("an altered cookie was not replaced")
	}
}

func TestSafeMethodsPassThrough(t *testing.T) {
	e := newEnv(t)
	for _, method := range []string{"GET", "HEAD", "OPTIONS"} {
		res := e.serve("p", httptest.NewRequest(method, "/transfer", nil))
		if !res.called || res.err != nil {
			t.Fatalf("%s: called %v err %v", method, res.called, res.err)
		}
	}
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE", "TRACE", "CONNECT", "PROPFIND"} {
		res := e.serve("p", httptest.NewRequest(method, "/transfer", nil))
		if res.called || !errors.Is(res.err, ErrMissing) {
			t.Fatalf("%s: called %v err %v", method, res.called, res.err)
		}
	}
	if e.rec.Count("") != 0 {
		t.Fatal("storage calls")
	}
}

func TestHeaderTokenLeavesBodyAlone(t *testing.T) {
	e := newEnv(t)
	b := e.newBrowser()
	tok := e.token(b, "save")
	r := httptest.NewRequest("POST", "/api/save", strings.NewReader(`{"title":"x"}`))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(DefaultHeaderName, tok)
	r.AddCookie(b.cookie)
	var got map[string]string
	w := httptest.NewRecorder()
	e.m.Require("save")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Errorf("the handler cannot read the body: %v", err)
		}
	})).ServeHTTP(w, r)
	if w.Code != 200 || got["title"] != "x" {
		t.Fatalf("status %d, body %v", w.Code, got)
	}
	// The token is never read from the URL (it would leak into logs).
	r = httptest.NewRequest("POST", "/api/save?nonce="+url.QueryEscape(e.token(b, "save")), nil)
	r.AddCookie(b.cookie)
	if res := e.serve("save", r); !errors.Is(res.err, ErrMissing) {
		t.Fatalf("token from the query string: %v", res.err)
	}
}

func TestMultipartForm(t *testing.T) {
	e := newEnv(t)
	b := e.newBrowser()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("nonce", e.token(b, "upload"))
	fw, _ := mw.CreateFormFile("file", "a.txt")
	_, _ = fw.Write([]byte("hello"))
	_ = mw.Close()
	r := httptest.NewRequest("POST", "/upload", &body)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	r.AddCookie(b.cookie)
	w := httptest.NewRecorder()
	e.m.Require("upload")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, _, err := r.FormFile("file")
		if err != nil {
			t.Errorf("file: %v", err)
			return
		}
		data, _ := io.ReadAll(f)
		w.Write(data)
	})).ServeHTTP(w, r)
	if w.Code != 200 || w.Body.String() != "hello" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxBodyBytes = 1024 })
	b := e.newBrowser()
	form := url.Values{"nonce": {e.token(b, "p")}, "essay": {strings.Repeat("x", 2048)}}
	r := httptest.NewRequest("POST", "/p", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.AddCookie(b.cookie)
	res := e.serve("p", r)
	if res.called || !errors.Is(res.err, ErrBodyTooLarge) || res.w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("got %v (%d)", res.err, res.w.Code)
	}

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("nonce", e.token(b, "p"))
	fw, _ := mw.CreateFormFile("file", "big.bin")
	_, _ = fw.Write(bytes.Repeat([]byte("y"), 4096))
	_ = mw.Close()
	r = httptest.NewRequest("POST", "/p", &body)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	r.AddCookie(b.cookie)
	res = e.serve("p", r)
	if res.called || !errors.Is(res.err, ErrBodyTooLarge) || res.w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("multipart: got %v (%d)", res.err, res.w.Code)
	}

	r = httptest.NewRequest("POST", "/p", strings.NewReader("nonce=%zz"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.AddCookie(b.cookie)
	if res := e.serve("p", r); !errors.Is(res.err, ErrBadForm) || res.w.Code != http.StatusBadRequest {
		t.Fatalf("bad encoding: got %v (%d)", res.err, res.w.Code)
	}
	if e.rec.Count("") != 0 {
		t.Fatal("storage calls")
	}
}

func TestErrorHandlerRerendersWithInput(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			if !errors.Is(err, ErrExpired) {
				DefaultErrorHandler(w, r, err)
				return
			}
			field, ferr := Field(r, "transfer")
			if ferr != nil {
				t.Errorf("Field in the error handler: %v", ferr)
			}
			w.WriteHeader(http.StatusUnprocessableEntity)
			_ = formPage.Execute(w, map[string]any{"Nonce": field, "Amount": r.PostForm.Get("amount")})
		}
	})
	transfers := 0
	h := app(e, &transfers)
	b := e.newBrowser()
	tok := e.token(b, "transfer")
	e.clock.Advance(DefaultTTL)

	w := httptest.NewRecorder()
	h.ServeHTTP(w, formRequest(b, "nonce", tok))
	if w.Code != http.StatusUnprocessableEntity || !strings.Contains(w.Body.String(), `value="100"`) {
		t.Fatalf("re-render: %d %s", w.Code, w.Body)
	}
	fresh := tokenInPage.FindStringSubmatch(w.Body.String())[1]
	w = httptest.NewRecorder()
	h.ServeHTTP(w, formRequest(b, "nonce", fresh))
	if w.Code != 200 || transfers != 1 {
		t.Fatalf("resubmitting the re-rendered form: %d %s", w.Code, w.Body)
	}
}

func TestTokenNeedsMiddleware(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	if _, err := Token(r, "p"); !errors.Is(err, ErrNotPrepared) {
		t.Fatalf("Token: %v", err)
	}
	if _, err := Field(r, "p"); !errors.Is(err, ErrNotPrepared) {
		t.Fatalf("Field: %v", err)
	}
}

func TestFieldMarkup(t *testing.T) {
	m, err := New(Config{Table: stubTable(), Keys: keyring(t, secretA), FieldName: `a"b`})
	if err != nil {
		t.Fatal(err)
	}
	var f template.HTML
	m.Handler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		f, err = Field(r, "p")
		if _, perr := Token(r, ""); perr == nil {
			t.Error("empty purpose accepted")
		}
		if _, perr := Token(r, strings.Repeat("p", 256)); perr == nil {
			t.Error("256-byte purpose accepted")
		}
	})).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if err != nil || !regexp.MustCompile(`^<input type="hidden" name="a&#34;b" value="[A-Za-z0-9_=-]+">$`).MatchString(string(f)) {
		t.Fatalf("field %s, %v", f, err)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	keys := keyring(t, secretA)
	cases := map[string]Config{
		"no table":                {Keys: keys},
		"no keys":                 {Table: stubTable()},
		"cookie shorter than TTL": {Table: stubTable(), Keys: keys, TTL: time.Hour, CookieMaxAge: time.Hour},
		"insecure __Host-":        {Table: stubTable(), Keys: keys, InsecureCookie: true, CookieName: "__Host-x"},
		"bad cookie name":         {Table: stubTable(), Keys: keys, CookieName: "a b"},
		"negative body limit":     {Table: stubTable(), Keys: keys, MaxBodyBytes: -1},
	}
	for name, cfg := range cases {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Require(\"\") did not panic")
		}
	}()
	m, _ := New(Config{Table: stubTable(), Keys: keys})
	m.Require("")
}

func TestProblemPages(t *testing.T) {
	for _, kind := range []error{ErrMissing, ErrMalformed, ErrBadSignature, ErrExpired, ErrWrongPurpose,
		ErrWrongBrowser, ErrWrongSession, ErrAlreadyUsed, ErrStorage, ErrBodyTooLarge, ErrBadForm} {
		err := reject(kind, "p", nil)
		r := httptest.NewRequest("POST", "/", nil)
		r.Header.Set("Sec-Fetch-Mode", "navigate")
		w := httptest.NewRecorder()
		DefaultErrorHandler(w, r, err)
		if w.Code != Status(err) || Reason(err) == "" || !strings.Contains(w.Body.String(), Reason(err)) ||
			!strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
			t.Errorf("%v: %d %q %s", kind, w.Code, w.Header().Get("Content-Type"), w.Body)
		}
	}
	if Status(errors.New("other")) != 500 || Reason(errors.New("other")) != "" {
		t.Error("foreign errors")
	}
}

// stubTable is a table that must never be called.
func stubTable() *dynaguard.Table { return dynaguard.NewTable(stubAPI{}, "unused") }

func TestMultipartTempFilesRemoved(t *testing.T) {
	e := newEnv(t)
	b := e.newBrowser()
	upload := func() *http.Request {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		_ = mw.WriteField("nonce", e.token(b, "upload"))
		fw, _ := mw.CreateFormFile("file", "big.bin")
		_, _ = fw.Write(bytes.Repeat([]byte("z"), 64<<10))
		_ = mw.Close()
		r := httptest.NewRequest("POST", "/upload", &body)
		r.Header.Set("Content-Type", mw.FormDataContentType())
		r.AddCookie(b.cookie)
		return r
	}
	// The handler parses with little memory, so the file goes to disk.
	var path string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseMultipartForm(1024); err != nil && !errors.Is(err, http.ErrNotMultipart) {
			t.Errorf("parse: %v", err)
		}
		f, _, err := r.FormFile("file")
		if err != nil {
			t.Fatalf("file: %v", err)
		}
		defer f.Close()
		if osf, ok := f.(*os.File); ok {
			path = osf.Name()
		}
	})
	for name, wrapped := range map[string]http.Handler{
		"Handler":         e.m.Handler(h),
		"Require":         e.m.Require("upload")(h),
		"Handler+Require": e.m.Handler(e.m.Require("upload")(h)),
	} {
		path = ""
		wrapped.ServeHTTP(httptest.NewRecorder(), upload())
		if name == "Handler" && path == "" {
			t.Fatalf("%s: the upload did not go to a temporary file", name)
		}
		if path != "" {
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: temporary file %s left behind (%v)", name, path, err)
			}
		}
	}
}

func TestRequirePath(t *testing.T) {
	e := newEnv(t)
	b := e.newBrowser()
	serve := func(path, token string) result {
		var res result
		r := formRequest(b, e.m.fieldName, token)
		r.URL.Path = path
		r = r.WithContext(context.WithValue(r.Context(), errSink{}, &res.err))
		res.w = httptest.NewRecorder()
		e.m.RequirePath(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			res.called = true
			w.WriteHeader(http.StatusNoContent)
		})).ServeHTTP(res.w, r)
		return res
	}
	tok := e.token(b, "/login")
	if res := serve("/account/email", tok); res.called || !errors.Is(res.err, ErrWrongPurpose) {
		t.Fatalf("token for /login accepted at another path: called=%v err=%v", res.called, res.err)
	}
	// A path no purpose can equal is refused, never a panic.
	if res := serve("/"+strings.Repeat("a", 300), tok); res.called || !errors.Is(res.err, ErrWrongPurpose) {
		t.Fatalf("over-long path: called=%v err=%v", res.called, res.err)
	}
	if res := serve("/login", tok); !res.called {
		t.Fatalf("token refused at its own path: %v", res.err)
	}
	if res := serve("/login", tok); res.called || !errors.Is(res.err, ErrAlreadyUsed) {
		t.Fatalf("replay: called=%v err=%v", res.called, res.err)
	}
	if n := e.rec.Count("PutItem"); n != 2 {
		t.Fatalf("PutItems = %d, want 2 (refusals before the write cost nothing)", n)
	}
}
