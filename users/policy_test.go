package users

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func rule(err error) Rule {
	var pe *PolicyError
	if errors.As(err, &pe) {
		return pe.Rule
	}
	return ""
}

func TestPolicyRules(t *testing.T) {
	ctx := context.Background()
	p := Policy{}
	cases := []struct {
		password, email, username string
		want                      Rule
	}{
		{"", "", "", RuleTooShort},
		{"Zq8#vL2", "", "", RuleTooShort}, // 7 characters
		{"ｱｲｳｴｵｶｷ", "", "", RuleTooShort}, // 7 characters, more bytes
		{strings.Repeat("Zq8#vL2xP", 15), "", "", RuleTooLong},
		{strings.Repeat("Zq8#vL2xP", 1<<17), "", "", RuleTooLong}, // a megabyte
		{"bad\x00password", "", "", RuleInvalid},
		{"bad\xffpassword", "", "", RuleInvalid},
		{"password", "", "", RuleCommon},
		{"Password", "", "", RuleCommon},
		{"P@ssw0rd", "", "", RuleCommon}, // substitutions undone
		{"iloveyou", "", "", RuleCommon},
		{"football1", "", "", RuleCommon},  // common word + trailing digits
		{"12345678", "", "", RuleCommon},   //
		{"qwertyuiop", "", "", RuleCommon}, //
		{"aaaaaaaaaa", "", "", RuleGuessable},
		{"abcdefgh12", "", "", RuleCommon},
		{"horsebattery", "", "", RuleGuessable},
		{"jennifer1985", "", "", RuleGuessable},
		{"letmeinplease", "", "", RuleGuessable},
		{"Summer2024", "", "", RuleCommon},
		{"alice2024!", "alice@example.com", "", RuleContext},
		{"Alice.Smith99", "alice.smith@example.com", "", RuleContext},
		{"wonderland_alice", "", "wonderland_alice", RuleContext},
		{"WONDERLAND4lice", "", "wonderlandalice", RuleContext},
		{"@lice2024wonder", "", "alice", ""}, // enough left beyond the username
		{"tr0ub4dor&3", "", "", ""},
		{"correct horse battery staple", "", "", ""},
		{"gH7#kLp2", "", "", ""},
		{strings.Repeat("Zq8#vL2xP", 14), "", "", ""}, // 126 characters: accepted
		{"фиолетовый слон танцует", "", "", ""},
		{"ｚｑ８＃ｖｌ２ｘｐ９", "", "", ""}, // fullwidth, NFKC to ASCII
	}
	for _, c := range cases {
		err := p.CheckPassword(ctx, c.password, c.email, c.username)
		if got := rule(err); got != c.want {
			t.Errorf("%q (email %q, username %q): rule %q (%v), want %q", c.password, c.email, c.username, got, err, c.want)
		}
		if c.want != "" && (!errors.Is(err, ErrPasswordPolicy) || err.Error() == "") {
			t.Errorf("%q: %v does not match ErrPasswordPolicy", c.password, err)
		}
	}
	// At least 64 characters are always accepted, whatever MaxLength says.
	long := strings.Repeat("Zq8#vL2x", 8)
	if err := (Policy{MaxLength: 20}).CheckPassword(ctx, long, "", ""); err != nil {
		t.Errorf("64 characters refused with MaxLength 20: %v", err)
	}
	var pe *PolicyError
	if err := (Policy{MinLength: 15}).CheckPassword(ctx, "gH7#kLp2xq9", "", ""); !errors.As(err, &pe) || pe.Limit != 15 || !strings.Contains(pe.Error(), "15") {
		t.Errorf("MinLength 15: %v", err)
	}
	if err := (Policy{MinScore: -1}).CheckPassword(ctx, "aaaaaaaaaa", "", ""); err != nil {
		t.Errorf("estimator off: %v", err)
	}
	// No composition rules: all-lowercase passphrases pass.
	if err := p.CheckPassword(ctx, "purple monkey dishwasher lamp", "", ""); err != nil {
		t.Errorf("passphrase refused: %v", err)
	}
}

// The estimator's cost is bounded: zxcvbn's own l33t matcher takes seconds
// on 16 substitutable characters; with it disabled and the input capped,
// the worst inputs stay in milliseconds.
func TestPolicyBoundedCost(t *testing.T) {
	hostile := []string{
		strings.Repeat("4@1!|7+$30582(9{", 8),
		"4@1!|7+$30582(9{[<%6",
		strings.Repeat("a", 128),
		strings.Repeat("19201980", 16),
	}
	for _, h := range hostile {
		start := time.Now()
		_ = Policy{}.CheckPassword(context.Background(), h, "", "")
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%q took %v", h[:16], d)
		}
	}
}

// fakeRange is a k-anonymity range API for tests: it knows some passwords
// and records every request it gets.
type fakeRange struct {
	mu     sync.Mutex
	paths  []string
	pad    []string
	known  map[string]int // SHA-1 hex (upper) → count
	status int
	body   string
}

func (f *fakeRange) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.paths = append(f.paths, r.URL.Path)
	f.pad = append(f.pad, r.Header.Get("Add-Padding"))
	f.mu.Unlock()
	if f.status != 0 {
		w.WriteHeader(f.status)
		return
	}
	if f.body != "" {
		fmt.Fprint(w, f.body)
		return
	}
	prefix := strings.TrimPrefix(r.URL.Path, "/range/")
	for h, n := range f.known {
		if strings.HasPrefix(h, prefix) {
			fmt.Fprintf(w, "%s:%d\r\n", strings.ToLower(h[5:]), n) // case-insensitive match
		}
	}
	fmt.Fprintf(w, "0123456789ABCDEF0123456789ABCDEF012:0\r\n") // padding entry
}

func sha1Hex(s string) string {
	h := sha1.Sum([]byte(s))
	return strings.ToUpper(hex.EncodeToString(h[:]))
}

func TestRangeClient(t *testing.T) {
	f := &fakeRange{known: map[string]int{sha1Hex("hunter2-is-breached"): 42}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := &RangeClient{BaseURL: srv.URL + "/"}
	ctx := context.Background()
	if n, err := c.Breached(ctx, "hunter2-is-breached"); n != 42 || err != nil {
		t.Fatalf("breached: %d %v", n, err)
	}
	if n, err := c.Breached(ctx, "not-in-any-breach-xyz"); n != 0 || err != nil {
		t.Fatalf("clean: %d %v", n, err)
	}
	// Only a 5-character prefix of the SHA-1 ever leaves the process.
	for i, p := range f.paths {
		if !regexp.MustCompile(`^/range/[0-9A-F]{5}$`).MatchString(p) {
			t.Errorf("request path %q is not /range/<5 hex>", p)
		}
		if f.pad[i] != "true" {
			t.Errorf("Add-Padding not requested")
		}
	}
	if f.paths[0] != "/range/"+sha1Hex("hunter2-is-breached")[:5] {
		t.Errorf("prefix %s", f.paths[0])
	}

	for name, bad := range map[string]*fakeRange{
		"status":    {status: http.StatusServiceUnavailable},
		"malformed": {body: "<html>rate limited</html>\n"},
		"count":     {body: "0123456789ABCDEF0123456789ABCDEF012:many\n"},
	} {
		s := httptest.NewServer(bad)
		if _, err := (&RangeClient{BaseURL: s.URL}).Breached(ctx, "x"); err == nil {
			t.Errorf("%s: no error", name)
		}
		s.Close()
	}
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := (&RangeClient{BaseURL: slow.URL}).Breached(tctx, "x"); err == nil {
		t.Error("timeout: no error")
	}
}

func TestPolicyBreachCheck(t *testing.T) {
	f := &fakeRange{known: map[string]int{sha1Hex("Zq8#vL2xP-breached"): 7}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	ctx := context.Background()
	p := Policy{Breach: &RangeClient{BaseURL: srv.URL}}
	err := p.CheckPassword(ctx, "Zq8#vL2xP-breached", "", "")
	var pe *PolicyError
	if !errors.As(err, &pe) || pe.Rule != RuleBreached || pe.Count != 7 {
		t.Fatalf("breached password: %v", err)
	}
	if err := p.CheckPassword(ctx, "Zq8#vL2xP-fresh", "", ""); err != nil {
		t.Fatalf("fresh password: %v", err)
	}
	// The local rules run first: a short password never reaches the service.
	n := len(f.paths)
	_ = p.CheckPassword(ctx, "short", "", "")
	if len(f.paths) != n {
		t.Fatal("a password refused locally was sent to the breach service")
	}

	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
	defer down.Close()
	closed := Policy{Breach: &RangeClient{BaseURL: down.URL}}
	err = closed.CheckPassword(ctx, "Zq8#vL2xP-fresh", "", "")
	if rule(err) != RuleUnverified || !errors.Is(err, ErrBreachCheckUnavailable) || !errors.Is(err, ErrPasswordPolicy) {
		t.Fatalf("fail-closed: %v", err)
	}
	open := Policy{Breach: &RangeClient{BaseURL: down.URL}, BreachFailOpen: true}
	if err := open.CheckPassword(ctx, "Zq8#vL2xP-fresh", "", ""); err != nil {
		t.Fatalf("fail-open: %v", err)
	}
}
