package app

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dynaguard/dynaguard/nonce"
	"github.com/dynaguard/dynaguard/users"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pages parses every page template together with the layout, once.
func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"when":      func(t time.Time) string { return t.UTC().Format("2 Jan 2006, 15:04 UTC") },
		"amount":    formatAmount,
		"device":    device,
		"eventTime": eventTime,
	}
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := make(map[string]*template.Template, len(names))
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", n, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// formatAmount renders cents as a decimal amount: 12345 → "123.45".
func formatAmount(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return sign + strconv.FormatInt(cents/100, 10) + "." + fmt.Sprintf("%02d", cents%100)
}

// flash is a one-time message shown on the next page (after a redirect).
type flash struct {
	Kind string // "ok", "info", "error"
	Text string
}

// alert is an error banner on the page itself.
type alert struct {
	Title  string
	Detail string
}

// view is what every page template receives.
type view struct {
	r      *http.Request
	Title  string
	User   *users.User
	Flash  *flash
	Alert  *alert
	Form   url.Values        // the user's input, to fill the form in again
	Errors map[string]string // per-field messages
	Dev    bool
	Narrow bool // a single small form: the page is a narrow column
	Nav    nav  // which navigation link is the current page
	Data   any  // page-specific
	// PendingEmail is the address a requested email change waits to move
	// to ("" for none, or once it lapsed).
	PendingEmail string
	// Passkeys: the site offers passkeys (their buttons are shown, and
	// static/passkeys.js loaded).
	Passkeys bool

	status int
	cache  string // Cache-Control; default no-store
}

// Field issues a fresh single-use nonce for a form that posts to purpose
// (the stack checks unsafe requests with the request path as purpose). It
// makes no DynamoDB call.
func (v *view) Field(purpose string) (template.HTML, error) { return nonce.Field(v.r, purpose) }

// Value is what the user typed into a field, for re-rendering a form.
func (v *view) Value(name string) string { return v.Form.Get(name) }

// Err is the message for a field, if any.
func (v *view) Err(name string) string { return v.Errors[name] }

// nav marks the navigation link of the current page. It is worked out once
// in Go rather than by comparing paths in the layout, which html/template
// would do through reflection on every page.
type nav struct{ Account, Transfers, Sessions, Outbox, Security, Login bool }

func navFor(path string) nav {
	return nav{
		Account:   path == "/account",
		Transfers: path == "/transfers",
		Sessions:  path == "/account/sessions",
		Outbox:    path == "/dev/mail",
		Security:  path == "/dev/security",
		Login:     path == "/login",
	}
}

// Next is a safe "next" target carried through the login form.
func (v *view) Next() string {
	n := v.Form.Get("next")
	if n == "" {
		n = v.r.URL.Query().Get("next")
	}
	if n == "" {
		return ""
	}
	return users.SafeNext(n)
}

// newView starts a page for r: the logged-in user, a pending flash message.
func (a *App) newView(r *http.Request, title string) *view {
	v := &view{r: r, Title: title, Form: url.Values{}, Errors: map[string]string{}, Dev: a.dev, Nav: navFor(r.URL.Path), status: http.StatusOK}
	v.Passkeys = a.passkeysOn
	if u, ok := users.FromContext(r.Context()); ok {
		v.User = u
		if u.PendingEmail != "" && a.clock.Now().Before(u.PendingEmailExpires) {
			v.PendingEmail = u.PendingEmail
		}
	}
	ctx := r.Context()
	if text := a.sm.PopString(ctx, sessFlashText); text != "" {
		v.Flash = &flash{Kind: a.sm.PopString(ctx, sessFlashKind), Text: text}
	}
	return v
}

// setFlash keeps a message for the next page the browser loads.
func (a *App) setFlash(r *http.Request, kind, text string) {
	a.sm.Put(r.Context(), sessFlashKind, kind)
	a.sm.Put(r.Context(), sessFlashText, text)
}

// redirect answers a form post with 303 See Other, so that reloading the
// next page does not post the form again.
func redirect(w http.ResponseWriter, r *http.Request, to string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// render executes page into a buffer (a template error never sends half a
// page) and writes it with v's status.
func (a *App) render(w http.ResponseWriter, page string, v *view) {
	t, ok := a.pages[page]
	if !ok {
		a.log.Error("app: no such page template", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "layout.html", v); err != nil {
		a.log.Error("app: rendering a page failed", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	cache := v.cache
	if cache == "" {
		// Pages show personal data: do not keep them in the browser's cache,
		// so Back after logging out does not show them again.
		cache = "no-store"
	}
	h.Set("Cache-Control", cache)
	w.WriteHeader(v.status)
	_, _ = w.Write(b.Bytes())
}

// formCache is the Cache-Control of pages that hold only a form. The browser
// may keep them, so that Back shows the very form that was submitted — with
// its spent nonce — and submitting it again is refused as a duplicate rather
// than silently sent with a fresh token.
const formCache = "private, no-cache"

// device names a browser and system from a User-Agent for the sessions page
// ("Chrome on Linux"); the full string is shown on hover. It is a display
// aid only: a User-Agent proves nothing.
func device(ua string) string {
	if ua == "" {
		return "Unknown device"
	}
	browser := "Browser"
	for _, b := range []struct{ token, name string }{
		{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"}, {"HeadlessChrome/", "Headless Chrome"},
		{"Chrome/", "Chrome"}, {"Safari/", "Safari"}, {"curl/", "curl"}, {"Go-http-client", "Go client"},
	} {
		if strings.Contains(ua, b.token) {
			browser = b.name
			break
		}
	}
	system := ""
	for _, s := range []struct{ token, name string }{
		{"Android", "Android"}, {"iPhone", "iPhone"}, {"iPad", "iPad"}, {"Windows", "Windows"},
		{"Mac OS X", "macOS"}, {"CrOS", "ChromeOS"}, {"Linux", "Linux"},
	} {
		if strings.Contains(ua, s.token) {
			system = s.name
			break
		}
	}
	if system == "" {
		return browser
	}
	return browser + " on " + system
}
