package dynaguard_test

// Online guessing and enumeration against the example app, as an attacker
// with many addresses would try them: guessing one account from many
// addresses, locking its owner out, one IPv6 allocation posing as many
// clients, starving a reset, look-alike identifiers, a planted expensive
// hash, and sign-up / email change probing.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/middleware"
	"github.com/dynaguard/dynaguard/users"
)

// behindProxy makes every test browser's address its own: the app trusts
// the loopback proxy, and each browser sends its address in
// X-Forwarded-For.
var behindProxy = middleware.ClientIPConfig{TrustedProxies: []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
}}

type forwardedFor struct {
	base http.RoundTripper
	addr string
}

func (f forwardedFor) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", f.addr)
	return f.base.RoundTrip(r)
}

// browserAt is a new browser whose requests come from addr.
func (c *cluster) browserAt(addr string) *browser {
	b := c.browser()
	b.hc.Transport = forwardedFor{base: b.hc.Transport, addr: addr}
	return b
}

// at moves b to addr (same cookies).
func (b *browser) at(addr string) *browser {
	b.hc.Transport = forwardedFor{base: b.hc.Transport.(forwardedFor).base, addr: addr}
	return b
}

func deviceCookieName(c *cluster) string {
	if c.tls {
		return "__Host-dg-device"
	}
	return "dg-device"
}

// 15 wrong passwords for one account, each from another address: the
// 11th is already refused (429, Retry-After) before any hashing — the
// account's unknown-client limit, whatever the address.
func TestIntegrationGuessingFromManyAddressesSlowed(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{clientIP: behindProxy})
	acct := newAccount()
	c.browserAt("192.0.2.1").register(c.a, acct)
	before := c.hasher.verifies.Load()
	for i := range 15 {
		srv := []*httptest.Server{c.a, c.b}[i%2]
		r := c.browserAt(fmt.Sprintf("198.51.100.%d", i+1)).login(srv, srv, acct.username, fmt.Sprintf("guess number %d", i))
		switch {
		case i < 10:
			expect(t, r, http.StatusUnauthorized, fmt.Sprintf("guess %d", i+1))
		default:
			expect(t, r, http.StatusTooManyRequests, fmt.Sprintf("guess %d", i+1))
			if r.Header.Get("Retry-After") == "" {
				t.Fatalf("guess %d: no Retry-After", i+1)
			}
		}
	}
	if n := c.hasher.verifies.Load() - before; n != 10 {
		t.Fatalf("%d passwords verified, want 10: throttled guesses must not hash", n)
	}
}

// 120 guesses from 30 other addresses: the owner's browser, which logged
// in before (and logged out since — the device cookie stays), logs in at
// once with the right password; an unknown browser, even with the right
// password, is slowed down.
func TestIntegrationKnownBrowserNotLockedOut(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{clientIP: behindProxy})
	acct := newAccount()
	owner := c.browserAt("192.0.2.10")
	owner.register(c.a, acct)
	owner.logout(c.a)
	if owner.cookie(deviceCookieName(c)) == "" {
		t.Fatal("the device cookie did not survive logout")
	}
	for i := range 120 {
		srv := []*httptest.Server{c.a, c.b}[i%2]
		r := c.browserAt(fmt.Sprintf("203.0.113.%d", i%30+1)).login(srv, srv, acct.email, fmt.Sprintf("guess %d", i))
		if r.StatusCode != http.StatusUnauthorized && r.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("guess %d: %d", i, r.StatusCode)
		}
	}
	expectRedirect(t, owner.login(c.b, c.b, acct.username, acct.password), "/account", "the owner's known browser")
	r := c.browserAt("192.0.2.11").login(c.a, c.a, acct.email, acct.password)
	expect(t, r, http.StatusTooManyRequests, "an unknown browser with the right password")
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	// From a new address the owner's browser is still known.
	owner.logout(c.b)
	expectRedirect(t, owner.at("198.51.100.99").login(c.a, c.a, acct.email, acct.password), "/account", "the known browser elsewhere")
}

// 20 IPv6 /64s of one /48, each in a /56 of its own and each failing once
// on another login name: the /48 reaches its limit, and a fresh /64 of it
// is slowed down; another /48 is not.
func TestIntegrationIPv6RangeAggregated(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{clientIP: behindProxy, throttle: users.Throttle{Ranges: []users.RangeLimit{
		{IPv4Bits: 24, IPv6Bits: 56, Limit: users.Limit{Free: 10}},
		{IPv6Bits: 48, Limit: users.Limit{Free: 20}},
	}}})
	acct := newAccount()
	c.browserAt("192.0.2.20").register(c.a, acct)
	for i := range 20 {
		r := c.browserAt(fmt.Sprintf("2001:db8:48:%x00::1", i)).login(c.a, c.a, fmt.Sprintf("nobody%d", i), "guess")
		expect(t, r, http.StatusUnauthorized, fmt.Sprintf("/64 number %d", i+1))
	}
	r := c.browserAt("2001:db8:48:ff00::1").login(c.a, c.a, acct.username, acct.password)
	expect(t, r, http.StatusTooManyRequests, "a fresh /64 of the /48")
	expectRedirect(t, c.browserAt("2001:db8:49::1").login(c.a, c.a, acct.username, acct.password), "/account", "another /48")
}

// No lock outlives its window: an account at MaxFailures refuses unknown
// clients only until the window after the last failure ends (fake clock);
// no reset is needed.
func TestIntegrationNoLockOutlivesItsWindow(t *testing.T) {
	t.Parallel()
	clock := ddbtest.NewClock(time.Now())
	c := newCluster(t, clusterOpts{clientIP: behindProxy, clock: clock, throttle: users.Throttle{
		MaxFailures:    12,
		UnknownClients: users.Limit{Free: 10, Delay: time.Second, MaxDelay: time.Second, Window: time.Hour},
	}})
	acct := newAccount()
	c.browserAt("192.0.2.30").register(c.a, acct)
	fails := 0
	for i := 0; fails < 12; i++ {
		r := c.browserAt(fmt.Sprintf("198.51.100.%d", i%200+1)).login(c.a, c.a, acct.email, "guess")
		switch r.StatusCode {
		case http.StatusUnauthorized:
			fails++
		case http.StatusTooManyRequests:
			clock.Advance(time.Second)
		default:
			t.Fatalf("guess %d: %d", i, r.StatusCode)
		}
		if i > 100 {
			t.Fatal("the cap was never reached")
		}
	}
	r := c.browserAt("192.0.2.31").login(c.a, c.a, acct.email, acct.password)
	expect(t, r, http.StatusTooManyRequests, "the right password at the cap")
	if ra, _ := strconv.Atoi(r.Header.Get("Retry-After")); ra < 3590 || ra > 3600 {
		t.Fatalf("Retry-After %d, want what is left of the window", ra)
	}
	clock.Advance(time.Hour)
	expectRedirect(t, c.browserAt("192.0.2.32").login(c.a, c.a, acct.email, acct.password), "/account", "after the window")
}

// Three (or thirty) reset requests for someone's address from a stranger
// do not silence the owner's own request.
func TestIntegrationResetCannotBeStarved(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{clientIP: behindProxy})
	acct := newAccount()
	c.browserAt("192.0.2.40").register(c.a, acct)
	stranger := c.browserAt("203.0.113.40")
	for range 5 {
		r := stranger.submit(c.a, c.a, "/password/reset", "/password/reset", url.Values{"email": {acct.email}})
		expect(t, r, http.StatusOK, "stranger's reset request")
	}
	count := func() int {
		n := 0
		for _, m := range c.outbox.Messages() {
			if m.To == acct.email && m.Kind == string(users.MessagePasswordReset) {
				n++
			}
		}
		return n
	}
	if n := count(); n != 3 {
		t.Fatalf("%d links for the stranger's requests, want 3", n)
	}
	r := c.browserAt("192.0.2.41").submit(c.b, c.b, "/password/reset", "/password/reset", url.Values{"email": {acct.email}})
	expect(t, r, http.StatusOK, "the owner's reset request")
	if n := count(); n != 4 {
		t.Fatal("the owner's reset request was silenced")
	}
}

// Look-alike identifiers are refused: invisible code points in usernames
// and local parts, and usernames whose confusable skeleton is taken.
func TestIntegrationLookAlikeIdentifiersRefused(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	c.browser().register(c.a, account{email: "alice@example.com", username: "alice", password: password})
	c.browser().register(c.a, account{email: "apple@example.com", username: "apple", password: password})
	for i, v := range []account{
		{email: "a1@example.com", username: "alice\u034F"},
		{email: "a2@example.com", username: "alice\uFE0F"},
		{email: "a3@example.com", username: "alice\u180B"},
		{email: "a4@example.com", username: "alıce"},
		{email: "a5@example.com", username: "аррӏе"}, // all Cyrillic
		{email: "ali\u200Bce@example.com", username: "alice6"},
	} {
		srv := []*httptest.Server{c.a, c.b}[i%2]
		r := c.browser().submit(srv, srv, "/register", "/register", url.Values{
			"email": {v.email}, "username": {v.username}, "password": {password},
		})
		if r.StatusCode < 400 || r.StatusCode >= 500 {
			t.Errorf("register %+q / %+q: %d, want refused", v.email, v.username, r.StatusCode)
		}
	}
	accounts := 0
	for _, item := range ddbtest.Scan(t, c.tbl) {
		if strings.HasPrefix(item["pk"], dynaguard.PrefixUser) {
			accounts++
		}
	}
	if accounts != 2 {
		t.Fatalf("%d accounts, want 2", accounts)
	}
}

// A stored hash with huge parameters (planted in the table) is refused
// without being verified: the login fails at once, and no hasher runs.
func TestIntegrationPlantedHugeHashRefused(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	acct := newAccount()
	b := c.browser()
	b.register(c.a, acct)
	b.logout(c.a)
	var uid string
	for _, item := range ddbtest.Scan(t, c.tbl) {
		if strings.HasPrefix(item["pk"], dynaguard.PrefixUser) {
			uid = item["pk"]
		}
	}
	_, err := ddbtest.Client(t).UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
		TableName:        aws.String(c.tbl.Name),
		Key:              ddb.Key(uid),
		UpdateExpression: aws.String("SET ph = :h REMOVE pep"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":h": ddb.S("$argon2id$v=19$m=1048576,t=64,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	before := c.hasher.verifies.Load()
	expect(t, b.login(c.a, c.a, acct.email, acct.password), http.StatusUnauthorized, "login against the planted hash")
	if n := c.hasher.verifies.Load() - before; n != 0 {
		t.Fatalf("%d verifications; the planted hash must never be verified", n)
	}
}

// Sign-up is limited per client address (429 with Retry-After, counted
// before any other work), and so are email-change requests — a "taken"
// answer would be an enumeration oracle, and each request mails two
// addresses.
func TestIntegrationSignupAndEmailChangeThrottled(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{clientIP: behindProxy, signup: &users.SignupConfig{PerIP: users.Limit{Free: 3}}})
	b := c.browserAt("192.0.2.50")
	for range 3 {
		b.register(c.a, newAccount())
	}
	acct := newAccount()
	r := b.submit(c.b, c.b, "/register", "/register", url.Values{"email": {acct.email}, "username": {acct.username}, "password": {acct.password}})
	expect(t, r, http.StatusTooManyRequests, "4th sign-up from one address")
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	// Another address signs up; its account asks for email changes (with
	// its password: each is a step-up). The request counters refuse the
	// fourth from one address within the hour.
	prober := c.browserAt("198.51.100.50")
	prober.register(c.a, acct)
	for i := range 3 {
		r := prober.submit(c.a, c.a, "/account/email", "/account/email", url.Values{"email": {fmt.Sprintf("user%d@example.com", i)}, "password": {acct.password}})
		if r.StatusCode == http.StatusTooManyRequests {
			t.Fatalf("email change %d refused early", i+1)
		}
	}
	r = prober.submit(c.a, c.a, "/account/email", "/account/email", url.Values{"email": {"probe@example.com"}, "password": {acct.password}})
	expect(t, r, http.StatusTooManyRequests, "4th email change in an hour")
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After on the email change")
	}
}
