package main

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/users"
)

// The raw handler's GET /account renders the example app's own account page
// the way the example app does: the same template files (layout.html and
// account.html from example/app/templates, read from the source tree), the
// same html/template engine and template functions, and a view with the
// same fields, filled from the account item the handler read. What it leaves
// out is dynaguard's work: the logout form's field carries no nonce, and
// the page's user comes from a plain decoding of the item, not from
// users.LoadUser. So the comparison of the two pages measures the stack,
// not two different ways of writing HTML. loadSection checks that both
// targets serve the same bytes, nonce value aside.

// appPages parses the example app's layout and account templates.
func appPages() (*template.Template, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, "example", "app", "templates")
	funcs := template.FuncMap{
		// The example app's own "when" (example/app/views.go).
		"when": func(t time.Time) string { return t.UTC().Format("2 Jan 2006, 15:04 UTC") },
	}
	return template.New("layout.html").Funcs(funcs).ParseFiles(filepath.Join(dir, "layout.html"), filepath.Join(dir, "account.html"))
}

// moduleRoot is the nearest directory at or above the working directory
// holding go.mod (make bench runs from the root, go test from the package).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// rawView has the fields and methods of the example app's view that the
// layout and the account page use.
type rawView struct {
	Title  string
	User   *users.User
	Flash  *struct{ Kind, Text string }
	Alert  *struct{ Title, Detail string }
	Dev    bool
	Narrow bool
	Nav    struct{ Account, Transfers, Sessions, Outbox, Security, Login bool }
	// PendingEmail: none for the benchmark's users (the page shows it
	// while an email change waits for its confirmation).
	PendingEmail string
	// Passkeys: off in the benchmark's app (no base URL), so the account
	// page has no Passkeys section.
	Passkeys bool
}

// Field is the form's hidden field, without a nonce in it.
func (rawView) Field(string) (template.HTML, error) {
	return `<input type="hidden" name="nonce" value="">`, nil
}

// rawUserOf decodes what the account page shows from an account item (the
// example app's attribute names).
func rawUserOf(it item) *users.User {
	u := &users.User{}
	u.ID, _ = ddb.Str(it, "uid")
	u.Username, _ = ddb.Str(it, "uname")
	u.Email, _ = ddb.Str(it, "email")
	u.EmailVerified, _ = ddb.BoolAttr(it, "ev")
	u.TOTPEnabled, _ = ddb.BoolAttr(it, "mfa")
	if c, ok := ddb.Int(it, "created"); ok {
		u.Created = time.Unix(c, 0)
	}
	if p, ok := ddb.Int(it, "pwat"); ok {
		u.PasswordChanged = time.Unix(p, 0)
	}
	if rc, ok := it["rc"].(*types.AttributeValueMemberSS); ok {
		u.RecoveryCodes = len(rc.Value)
	}
	return u
}

// renderAccount renders the account page of the user in acct (dev: the
// example app runs in development mode, which its layout shows).
func renderAccount(pages *template.Template, acct item, dev bool) ([]byte, error) {
	v := &rawView{Title: "Your account", User: rawUserOf(acct), Dev: dev}
	v.Nav.Account = true
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, "layout.html", v); err != nil {
		return nil, fmt.Errorf("account page: %w", err)
	}
	return b.Bytes(), nil
}
