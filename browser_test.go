package dynaguard_test

// A real browser (headless Chromium, driven over the DevTools protocol with
// chromedp) uses the example app the way a person does: it signs up, logs in,
// submits a form, presses Back and submits it again — and gets the "already
// submitted" page — and works with two forms in two tabs. It takes a
// screenshot of every page into a folder it names in the log, so the pages
// can be looked at.
//
// It runs whenever Chromium is installed. Without Chromium it is skipped with
// a loud message — except in CI (CI=true), where it fails: .ci/run installs
// Chromium first, so CI always runs it.

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/dynaguard/dynaguard/internal/totp"
)

// findChromium returns the browser to drive: $DYNAGUARD_CHROMIUM, or the
// first of the usual names on PATH.
func findChromium() string {
	if p := os.Getenv("DYNAGUARD_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func requireChromium(t *testing.T) string {
	path := findChromium()
	if path != "" {
		return path
	}
	msg := "\n" + strings.Repeat("!", 78) + "\n" +
		"!!  BROWSER TEST SKIPPED: Chromium was not found (tried chromium, chromium-browser, google-chrome).\n" +
		"!!  The example app's pages, the Back-button double submission and the two-tab forms were NOT\n" +
		"!!  checked in a real browser. Install it (Debian/Ubuntu: apt-get install chromium) or point\n" +
		"!!  DYNAGUARD_CHROMIUM at a Chrome/Chromium binary.\n" +
		strings.Repeat("!", 78)
	if os.Getenv("CI") != "" && os.Getenv("CI") != "false" {
		t.Fatal(msg + "\nCI is set: the browser test must run in CI (.ci/run installs Chromium).")
	}
	fmt.Fprintln(os.Stderr, msg)
	t.Skip(msg)
	return ""
}

// tab is one browser tab with the status of its last page and a folder for
// screenshots.
type tab struct {
	t      *testing.T
	ctx    context.Context
	base   string
	shots  *shots
	status atomic.Int64 // HTTP status of the last document loaded
	mu     sync.Mutex
	errors []string // console errors, exceptions (a CSP violation is one) and failed subresources
}

type shots struct {
	dir string
	n   atomic.Int64
}

func newTab(t *testing.T, ctx context.Context, base string, sh *shots) *tab {
	tb := &tab{t: t, ctx: ctx, base: base, shots: sh}
	if err := chromedp.Listen(ctx, func(ev any) {
		e, ok := ev.(*network.EventResponseReceived)
		switch {
		case !ok:
		case e.Type == network.ResourceTypeDocument:
			tb.status.Store(e.Response.Status)
		case e.Type != network.ResourceTypeFetch && e.Response.Status >= 400:
			// A stylesheet, script, image or icon that failed to load.
			tb.mu.Lock()
			tb.errors = append(tb.errors, fmt.Sprintf("%d for %s %s", e.Response.Status, e.Type, e.Response.URL))
			tb.mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("starting the browser: %v", err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			// Error statuses of documents (401, 409, 404 ...) are expected
			// and checked where they happen; failed subresources are
			// caught from the network events above.
			if (m.Type == chromedp.ConsoleError || m.IsException()) && !strings.HasPrefix(m.Text, "Failed to load resource") {
				tb.mu.Lock()
				tb.errors = append(tb.errors, m.String())
				tb.mu.Unlock()
			}
		}
	}()
	return tb
}

func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v", what, err)
	}
}

func (tb *tab) eval(expr string) string {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// open navigates to path and waits for the page.
func (tb *tab) open(path string) {
	tb.t.Helper()
	tb.do("open "+path, chromedp.Navigate(tb.base+path), chromedp.WaitVisible(chromedp.CSS("main h1")))
}

// submit clicks a form's submit button and waits for the next page, which
// must be at path (whatever it is when path is "").
func (tb *tab) submit(button, path string) {
	tb.t.Helper()
	// Mark the current document, so the wait below sees the new one.
	tb.eval(`window.__dgOld = true, "ok"`)
	tb.click(button)
	tb.waitPage(path, true)
}

// click presses the mouse on the middle of the element. It is a real input
// event, and unlike chromedp's node queries it works on a page the browser
// restored from its back/forward cache.
func (tb *tab) click(sel string) {
	tb.t.Helper()
	var xy []float64
	expr := fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return [];
		e.scrollIntoView({block: "center"}); const r = e.getBoundingClientRect();
		return [r.left + r.width / 2, r.top + r.height / 2]; })()`, sel)
	deadline := time.Now().Add(10 * time.Second)
	for len(xy) != 2 && time.Now().Before(deadline) {
		v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[[]float64](expr))
		if err == nil {
			xy = v
		}
		if len(xy) != 2 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if len(xy) != 2 {
		tb.t.Fatalf("no %s on the page at %s", sel, tb.eval("location.pathname"))
	}
	tb.do("click "+sel, chromedp.MouseClickXY(xy[0], xy[1]))
}

// waitPage waits until a document at path (any, if "") has loaded; with
// fresh, a document other than the one marked before.
func (tb *tab) waitPage(path string, fresh bool) {
	tb.t.Helper()
	cond := `document.readyState === "complete" && !!document.querySelector("main h1, body > main h1, h1")`
	if fresh {
		cond += ` && !window.__dgOld`
	}
	if path != "" {
		cond += fmt.Sprintf(` && location.pathname === %q`, path)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ok, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool](cond))
		if err == nil && ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.t.Fatalf("waited 20s for a page at %q; the browser is at %s", path, tb.eval("location.href"))
}

func (tb *tab) fill(fields ...string) {
	tb.t.Helper()
	for i := 0; i+1 < len(fields); i += 2 {
		tb.do("fill "+fields[i], chromedp.Clear(chromedp.CSS(fields[i])), chromedp.SendKeys(chromedp.CSS(fields[i]), fields[i+1]))
	}
}

func (tb *tab) text(sel string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		tb.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func (tb *tab) expectStatus(want int64) {
	tb.t.Helper()
	if got := tb.status.Load(); got != want {
		tb.t.Fatalf("the page at %s answered %d, want %d", tb.eval("location.pathname"), got, want)
	}
}

// shot saves a full-page screenshot as NN-name.png.
func (tb *tab) shot(name string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	file := filepath.Join(tb.shots.dir, fmt.Sprintf("%02d-%s.png", tb.shots.n.Add(1), name))
	if err := os.WriteFile(file, png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

func (tb *tab) consoleErrors() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]string(nil), tb.errors...)
}

// startChromium starts headless Chromium for t, for at most limit, and
// returns the context of its first tab; the browser closes when t ends.
func startChromium(t *testing.T, chromium string, limit time.Duration) context.Context {
	t.Helper()
	root, cancelRoot := context.WithTimeout(context.Background(), limit)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(root,
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests may run as root (CI containers)
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 860),
	)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancelRoot()
	})
	return ctx
}

func TestBrowserFlows(t *testing.T) {
	chromium := requireChromium(t)
	c := newCluster(t, clusterOpts{dev: true}) // as `make run` serves it: plain HTTP on 127.0.0.1
	srv := c.a

	dir, err := os.MkdirTemp("", "dynaguard-screenshots-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots of every page: %s", dir)
	sh := &shots{dir: dir}

	ctx := startChromium(t, chromium, 3*time.Minute)
	tb := newTab(t, ctx, srv.URL, sh)

	acct := newAccount()

	// The start page and sign-up.
	tb.open("/")
	tb.shot("home")
	tb.open("/register")
	tb.shot("register")
	tb.fill("#email", acct.email, "#username", acct.username, "#password", acct.password)
	// The quiet sign-up: every sign-up lands on the login page with the
	// same message; the new account then logs in.
	tb.submit("main form button[type=submit]", "/login")
	tb.expectStatus(200)
	tb.shot("login-after-signup")
	tb.fill("#login", acct.email, "#password", acct.password)
	tb.submit("main form button[type=submit]", "/account")
	tb.expectStatus(200)
	if got := tb.text("dl.facts"); !strings.Contains(got, acct.email) {
		t.Fatalf("the account page does not show the email address: %q", got)
	}
	tb.shot("account-after-signup")

	// Log out from the navigation bar, then log in — first with a wrong
	// password.
	tb.submit("header form button[type=submit]", "/")
	if !strings.Contains(tb.text(".msg"), "logged out") {
		t.Fatalf("no logged-out message: %q", tb.text("main"))
	}
	tb.shot("logged-out")
	tb.open("/login")
	tb.fill("#login", acct.username, "#password", "not my password at all")
	tb.submit("main form button[type=submit]", "/login")
	tb.expectStatus(401)
	tb.shot("login-failed")
	tb.fill("#login", acct.email, "#password", acct.password)
	tb.submit("main form button[type=submit]", "/account")
	tb.expectStatus(200)

	// Submit a form, press Back, submit it again: "already submitted".
	tb.open("/transfers/new")
	tb.shot("transfer-form")
	tb.fill("#to", "bob", "#amount", "12.50")
	tb.submit(`form[action="/transfers"] button[type=submit]`, "/transfers")
	tb.shot("transfers-after-submit")
	tb.eval(`window.__dgOld = true, history.back(), "ok"`)
	tb.waitPage("/transfers/new", false)
	tb.shot("transfer-form-after-back")
	tb.submit(`form[action="/transfers"] button[type=submit]`, "/transfers")
	tb.expectStatus(409)
	if got := tb.text(".msg-error strong"); got != "This form was already submitted" {
		t.Fatalf("after Back and a second submission the page says %q", got)
	}
	tb.shot("already-submitted")
	tb.open("/transfers")
	if n := tb.eval(`String(document.querySelectorAll("#transfers tbody td.num").length)`); n != "1" {
		t.Fatalf("%s transfers after a double submission, want 1", n)
	}

	// Two tabs, two forms, both work (submitted in the other order).
	tab2ctx, cancelTab2 := chromedp.NewContext(ctx)
	defer cancelTab2()
	tb2 := newTab(t, tab2ctx, srv.URL, sh)
	tb.open("/transfers/new")
	tb2.open("/account")
	tb.fill("#to", "carol", "#amount", "3")
	tb2.submit(`form[action="/account/verify"] button[type=submit]`, "/account")
	tb2.expectStatus(200)
	tb.submit(`form[action="/transfers"] button[type=submit]`, "/transfers")
	tb.expectStatus(200)
	if n := tb.eval(`String(document.querySelectorAll("#transfers tbody td.num").length)`); n != "2" {
		t.Fatalf("%s transfers after the second tab's form, want 2", n)
	}

	// The email address: without the password nothing changes; with it the
	// change is pending until the link sent to the new address is opened.
	newEmail := "new-" + acct.email
	tb2.open("/account/email")
	tb2.fill("#email", newEmail)
	tb2.submit(`main form[action="/account/email"] button[type=submit]`, "/account/email")
	tb2.expectStatus(401)
	tb2.shot("email-change-without-password")
	tb2.fill("#email", newEmail, "#password", acct.password)
	tb2.shot("tab2-email-form")
	tb2.submit(`main form[action="/account/email"] button[type=submit]`, "/account")
	tb2.expectStatus(200)
	if got := tb2.text("dl.facts"); !strings.Contains(got, acct.email) || !strings.Contains(tb2.text("#pending-email"), newEmail) {
		t.Fatalf("the account page does not show the current and the pending address: %q", got)
	}
	tb2.shot("account-email-change-pending")
	confirm := c.lastMessage(newEmail, "confirm-email-change")
	tb2.do("open the confirmation link", chromedp.Navigate(srv.URL+"/email/change/confirm?token="+url.QueryEscape(confirm.Token)),
		chromedp.WaitVisible(chromedp.CSS("h1")))
	tb2.shot("email-change-confirm")
	tb2.submit(`form[action="/email/change/confirm"] button[type=submit]`, "/account")
	tb2.expectStatus(200)
	if got := tb2.text("dl.facts"); !strings.Contains(got, newEmail) || tb2.eval(`String(!!document.querySelector("#pending-email"))`) != "false" {
		t.Fatalf("the confirmed address is not the account's: %q", got)
	}
	tb2.shot("account-after-email-change")

	// The API through fetch from the page's external script: a new key,
	// then the same key again (a replay).
	tb.open("/transfers")
	tb.click("#api-send")
	tb.waitText("#api-output", "HTTP 201")
	tb.click("#api-retry")
	tb.waitText("#api-output", "Idempotent-Replayed: true")
	tb.shot("transfers-api-demo")

	// The other pages, for the screenshots.
	tb.open("/account/sessions")
	tb.shot("sessions")
	tb.open("/account/password")
	tb.shot("password-form")
	tb.open("/account/totp")
	tb.shot("totp-off")
	tb.fill("#setup-password", acct.password)
	tb.submit(`form[action="/account/totp/setup"] button[type=submit]`, "/account/totp")
	if w := tb.eval(`String(document.querySelector(".qr img") ? document.querySelector(".qr img").naturalWidth : 0)`); w == "0" {
		t.Fatal("the QR code image did not load")
	}
	tb.shot("totp-setup")

	// Turn it on with a code from the key shown, keep the recovery codes,
	// then log in again through the code step.
	secret, p := parseOTPAuth(t, tb.text("#totp-uri"))
	step := totp.Step(time.Now(), p)
	tb.fill("#code", totp.Code(secret, step, p), "#password", acct.password)
	tb.submit(`form[action="/account/totp"] button[type=submit]`, "/account/totp")
	tb.expectStatus(200)
	if n := tb.eval(`String(document.querySelectorAll(".recovery-code").length)`); n == "0" {
		t.Fatal("no recovery codes shown after turning TOTP on")
	}
	tb.shot("totp-recovery-codes")
	tb.open("/account/totp")
	tb.shot("totp-on")
	tb.submit("header form button[type=submit]", "/")
	tb.open("/login")
	tb.fill("#login", acct.username, "#password", acct.password)
	tb.submit("main form button[type=submit]", "/login/totp")
	tb.shot("login-code-step")
	tb.fill("#code", totp.Code(secret, step+1, p)) // the enrolment used this step's code; codes are single use
	tb.submit("main form button[type=submit]", "/account")
	tb.expectStatus(200)

	tb.open("/dev/mail")
	tb.shot("dev-outbox")
	// The Security page of this instance shows the attacks above: the
	// wrong password, the form submitted twice.
	tb.open("/dev/security")
	for _, want := range []string{"login.failed", "nonce.refused", "nonce-used", "login.succeeded", "second_factor.accepted"} {
		if got := tb.text("table.events"); !strings.Contains(got, want) {
			t.Errorf("the Security page does not show %s:\n%s", want, got)
		}
	}
	if n := tb.eval(`String(document.querySelectorAll("svg.chart rect").length)`); n == "0" {
		t.Error("the Security page draws no chart")
	}
	tb.shot("dev-security")
	tb.submit("header form button[type=submit]", "/")
	tb.open("/password/reset")
	tb.fill("#email", newEmail)
	tb.submit("main form button[type=submit]", "/password/reset")
	tb.expectStatus(200)
	tb.shot("reset-requested")
	tb.do("open a missing page", chromedp.Navigate(srv.URL+"/no-such-page"), chromedp.WaitVisible(chromedp.CSS("h1")))
	tb.expectStatus(404)
	tb.shot("not-found")

	for _, x := range []*tab{tb, tb2} {
		if errs := x.consoleErrors(); len(errs) > 0 {
			t.Errorf("the browser reported errors (a CSP violation is one):\n%s", strings.Join(errs, "\n"))
		}
	}
	t.Logf("%d screenshots in %s", sh.n.Load(), dir)
}

// waitText waits until the element's text contains want.
func (tb *tab) waitText(sel, want string) {
	tb.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		s, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel)))
		if err == nil && strings.Contains(s, want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.t.Fatalf("%s never showed %q; it shows %q", sel, want, tb.eval(fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel)))
}
