package nonce

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// scanValues is every value the scanner yields for name.
func scanValues(lines []string, name string) []string {
	sc := newCookieScanner(http.Header{"Cookie": lines}, name)
	var out []string
	for {
		v, ok := sc.next()
		if !ok {
			return out
		}
		out = append(out, v)
	}
}

// netHTTPValues is what net/http returns for the same header.
func netHTTPValues(lines []string, name string) []string {
	r := &http.Request{Header: http.Header{"Cookie": lines}}
	var out []string
	for _, c := range r.CookiesNamed(name) {
		out = append(out, c.Value)
	}
	return out
}

// The scanner finds exactly the cookies http.Request.CookiesNamed finds, in
// the same order.
func TestCookieScannerMatchesNetHTTP(t *testing.T) {
	const n = "dg-nonce"
	many := strings.Repeat("x=1; ", maxCookies-1) + n + "=v"
	tooMany := strings.Repeat("x=1; ", maxCookies) + n + "=v"
	cases := [][]string{
		nil,
		{""},
		{n + "=a"},
		{n + "=a; " + n + "=b"},
		{"x=1", n + "=a", "y=2; " + n + "=b"},
		{"  " + n + "=a  ;  other=1  "},
		{n + `="quoted"`},
		{n + `="unbalanced`},
		{n + `=""`},
		{n + `="`},
		{n + "="},
		{n},
		{n + "=a=b"},
		{n + " = a"},
		{n + "\t=\ta"},
		{n + "-suffix=a; prefix-" + n + "=b; " + n + "x=c; x" + n + "=d"},
		{"__Host-" + n + "=a"},
		{n + "=a;;; ;" + n + "=b;"},
		{n + "=a\\b; " + n + "=ok"},
		{n + "=a b; " + n + "=a,b"},
		{n + "=\x7f; " + n + "=\x00; " + n + "=é"},
		{"DG-NONCE=a; " + n + "=b"},
		{n + "=a", "", "  ", n + "=b"},
		{"\t" + n + "=a\r\n"},
		{many},
		{tooMany},
		{strings.Repeat("x=1;", maxCookies/2), strings.Repeat("y=2;", maxCookies/2) + n + "=v"},
	}
	for i, lines := range cases {
		got, want := scanValues(lines, n), netHTTPValues(lines, n)
		if !slices.Equal(got, want) {
			t.Errorf("case %d %q: scanner %q, net/http %q", i, truncate(lines), got, want)
		}
	}
}

func truncate(lines []string) []string {
	out := slices.Clone(lines)
	for i, l := range out {
		if len(l) > 80 {
			out[i] = l[:80] + fmt.Sprintf("...(%d bytes)", len(l))
		}
	}
	return out
}

// FuzzCookieScanner compares the scanner with net/http on arbitrary Cookie
// header lines.
func FuzzCookieScanner(f *testing.F) {
	f.Add("dg-nonce=a; dg-nonce=b", `x=1;dg-nonce="q"`)
	f.Add(" dg-nonce = a ;", "dg-nonce")
	f.Add("dg-noncex=1; xdg-nonce=2", "dg-nonce=\"")
	f.Add("dg-nonce=a\\b;dg-nonce=\x80", "")
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, lines := range [][]string{{a}, {a, b}} {
			if got, want := scanValues(lines, "dg-nonce"), netHTTPValues(lines, "dg-nonce"); !slices.Equal(got, want) {
				t.Fatalf("%q: scanner %q, net/http %q", lines, got, want)
			}
		}
	})
}

// A browser's cookie is verified once; later requests find it in the cache
// and get the same secret.
func TestCookieCacheHit(t *testing.T) {
	e := newEnv(t)
	b := e.newBrowser()
	r := newGet(b)
	s1, _, _, ok := e.m.readCookie(r, t0)
	if !ok || len(e.m.verified.m) != 1 {
		t.Fatalf("first read: ok %v, cache %d", ok, len(e.m.verified.m))
	}
	want, ok := e.m.decodeCookie(b.cookie.Value)
	if !ok || e.m.verified.m[b.cookie.Value] != want || want.secret != s1 {
		t.Fatal("the cache entry differs from decoding")
	}
	s2, _, _, ok := e.m.readCookie(newGet(b), t0)
	if !ok || s2 != s1 {
		t.Fatal("a cache hit gave another secret")
	}
}

// A cookie that does not verify is never cached, whatever is wrong with it.
func TestCookieCacheSkipsFailures(t *testing.T) {
	e := newEnv(t)
	other := newEnvOn(t, e.base, e.clock, func(c *Config) { c.Keys = keyring(t, secretB) })
	genuine := e.newBrowser().cookie.Value
	for _, v := range []string{
		"",
		"garbage",
		genuine[:len(genuine)-4] + "AAA=",
		"x" + genuine[1:],
		other.newBrowser().cookie.Value, // another application's key
		strings.Repeat("A", maxCookieLen+1),
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(&http.Cookie{Name: e.m.cookieName, Value: v})
		if _, _, _, ok := e.m.readCookie(r, t0); ok {
			t.Fatalf("cookie %.20q accepted", v)
		}
	}
	if n := len(e.m.verified.m); n != 0 {
		t.Fatalf("%d failed cookies cached", n)
	}
}

// A cached cookie still expires on time, and an expired one is replaced:
// the cache never extends a cookie's life.
func TestCachedCookieExpires(t *testing.T) {
	e := newEnv(t)
	b := e.newBrowser()
	tok := e.token(b, "transfer") // caches the cookie
	if len(e.m.verified.m) != 1 {
		t.Fatal("the cookie was not cached")
	}
	e.clock.Advance(DefaultCookieMaxAge)
	if _, _, _, ok := e.m.readCookie(newGet(b), e.clock.Now()); ok {
		t.Fatal("a cached cookie was accepted past its lifetime")
	}
	if res := e.submit(b, tok, "transfer"); !errors.Is(res.err, ErrWrongBrowser) {
		t.Fatalf("submission with an expired cached cookie: %v", res.err)
	}
	old := b.cookie.Value
	e.token(b, "transfer")
	if b.cookie.Value == old {
		t.Fatal("an expired cached cookie was not replaced")
	}
}

// The key index is part of the entry: a cookie read with a previous key is
// re-set on every visit until the browser takes the new one, hit or miss.
func TestCachedCookieKeepsKeyIndex(t *testing.T) {
	base := newEnv(t)
	old := base.newBrowser()
	rotating := newEnvOn(t, base.base, base.clock, func(c *Config) { c.Keys = keyring(t, secretB, secretA) })
	for i := range 3 {
		w := httptest.NewRecorder()
		rotating.m.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(w, newGet(old))
		if setCookie(w, rotating.m.cookieName) == nil {
			t.Fatalf("visit %d: a cookie read with a previous key was not re-set", i)
		}
	}
	if e := rotating.m.verified.m[old.cookie.Value]; e.key != 1 {
		t.Fatalf("cached key index %d, want 1", e.key)
	}
}

// The cache never holds more than cookieCacheSize entries, and the entry
// just added survives the eviction.
func TestCookieCacheBounded(t *testing.T) {
	var c cookieCache
	for i := range cookieCacheSize + 100 {
		c.put(fmt.Sprint("v", i), cookieEntry{issued: int64(i)})
		if len(c.m) > cookieCacheSize {
			t.Fatalf("%d entries", len(c.m))
		}
	}
	if e, ok := c.get(fmt.Sprint("v", cookieCacheSize+99)); !ok || e.issued != cookieCacheSize+99 {
		t.Fatal("the newest entry was evicted")
	}
	// Re-putting a present value when full evicts nothing.
	c.put("v"+fmt.Sprint(cookieCacheSize+99), cookieEntry{issued: 1})
	if len(c.m) != cookieCacheSize {
		t.Fatalf("%d entries", len(c.m))
	}
}

// Many browsers on two instances, concurrently: each request gets its own
// browser's secret, whether from the cache or from decoding.
func TestCookieCacheConcurrent(t *testing.T) {
	e := newEnv(t)
	e2 := newEnvOn(t, e.base, e.clock)
	var browsers []*browser
	for range 8 {
		browsers = append(browsers, e.newBrowser())
	}
	want := make([][secretLen]byte, len(browsers))
	for i, b := range browsers {
		e, _ := e.m.decodeCookie(b.cookie.Value)
		want[i] = e.secret
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := []*Manager{e.m, e2.m}[g%2]
			for j := range 50 {
				i := (g + j) % len(browsers)
				s, _, _, ok := m.readCookie(newGet(browsers[i]), t0)
				if !ok || s != want[i] {
					t.Errorf("browser %d: ok %v, wrong secret %v", i, ok, s != want[i])
					return
				}
			}
		}()
	}
	wg.Wait()
}
