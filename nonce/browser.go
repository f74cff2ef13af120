package nonce

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"time"
)

// The browser cookie holds a random per-browser secret, signed and encrypted
// with securecookie (AES-256-CTR, then HMAC-SHA256). Its payload:
//
//	version   1 byte  (cookieVersion)
//	secret   32 bytes random
//	issued    8 bytes big-endian Unix seconds (for refresh and server-side expiry)
//
// The secret never leaves the cookie: tokens carry only a keyed hash of it.
// Because the cookie is HttpOnly, script on the page — and any cross-site
// attacker — can read tokens from a page at most, never the secret they are
// bound to.
const (
	cookieVersion = 1
	secretLen     = 32
	cookiePayload = 1 + secretLen + 8
)

// state is what Handler or Require records in the request context: the
// manager and the browser secret tokens issued for this request bind to.
type state struct {
	m          *Manager
	secret     [secretLen]byte
	fromCookie bool // false: the request had no valid cookie; a new one is being set
}

type stateKey struct{}

func stateFrom(ctx context.Context) *state {
	st, _ := ctx.Value(stateKey{}).(*state)
	return st
}

// readCookie returns the browser secret from the request's nonce cookie,
// when one decodes with a configured key and has not expired, with when it
// was issued and which key decoded it.
func (m *Manager) readCookie(r *http.Request, now time.Time) (secret [secretLen]byte, issued time.Time, key int, ok bool) {
	// Every cookie of that name is tried, in order: with InsecureCookie
	// there is no __Host- prefix, and a sibling subdomain may have planted
	// its own.
	sc := newCookieScanner(r.Header, m.cookieName)
	for {
		v, more := sc.next()
		if !more {
			return secret, time.Time{}, 0, false
		}
		e, ok := m.verified.get(v)
		if !ok {
			if e, ok = m.decodeCookie(v); !ok {
				continue
			}
			m.verified.put(v, e)
		}
		issued = time.Unix(e.issued, 0)
		if !now.Before(issued.Add(m.cookieMaxAge)) {
			continue // past its lifetime: the browser should not have sent it
		}
		return e.secret, issued, e.key, true
	}
}

// decodeCookie verifies, decrypts and parses a cookie value with the first
// configured key that decodes it. It reads no clock: its answer depends on
// the value and the Manager's keys alone.
func (m *Manager) decodeCookie(v string) (cookieEntry, bool) {
	if len(v) > maxCookieLen {
		return cookieEntry{}, false
	}
	for i := range m.keys {
		var b []byte
		if m.keys[i].cookie.Decode(m.cookieName, v, &b) != nil {
			continue
		}
		if len(b) != cookiePayload || b[0] != cookieVersion {
			return cookieEntry{}, false
		}
		e := cookieEntry{issued: int64(binary.BigEndian.Uint64(b[1+secretLen:])), key: i}
		copy(e.secret[:], b[1:])
		return e, true
	}
	return cookieEntry{}, false
}

// cookieCacheSize bounds the cache of verified browser cookies. A browser
// keeps one cookie value for half of CookieMaxAge, so the cache holds the
// recently active browsers; each entry costs about 250 bytes (the value as
// key, the secret, the time, the key index, the map's overhead), about
// 2.5 MB when full. A browser that is not in it costs one securecookie
// decode (an HMAC, AES-CTR and about a dozen allocations), nothing more.
const cookieCacheSize = 10_000

// cookieCache remembers what decodeCookie answered for the cookie values it
// verified, so that a browser's cookie is verified and decrypted once
// rather than on every request.
//
// Why a hit is as good as decoding: decodeCookie is a pure function of the
// value and the Manager's keys, which are fixed for the Manager's lifetime
// (securecookie's own clock-based age check is off; MaxAge(0)). The key is
// the exact cookie value, byte for byte; an entry is stored only after
// securecookie verified its MAC and decrypted it, and a failed decode is
// never stored, so a value that was not issued under one of the Manager's
// keys can never hit. Expiry (issued + CookieMaxAge against the clock) is
// still checked on every read, and the key index still makes prepare re-set
// a cookie read with a previous key. Filling the cache needs genuine cookie
// values, which anyone can get by visiting a page; an attacker doing so at
// volume only evicts other browsers' entries, which then cost a decode
// again: performance, never correctness. The secrets held here are no more
// exposed than the keys that decrypt every cookie, which the process holds
// anyway.
type cookieCache struct {
	mu sync.Mutex
	m  map[string]cookieEntry
}

type cookieEntry struct {
	secret [secretLen]byte
	issued int64 // Unix seconds
	key    int   // index of the key that decoded the value
}

func (c *cookieCache) get(v string) (cookieEntry, bool) {
	c.mu.Lock()
	e, ok := c.m[v]
	c.mu.Unlock()
	return e, ok
}

func (c *cookieCache) put(v string, e cookieEntry) {
	// Clone: v is a slice of the request's Cookie header, which the entry
	// must not keep alive.
	v = strings.Clone(v)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]cookieEntry)
	}
	if _, ok := c.m[v]; !ok && len(c.m) >= cookieCacheSize {
		for k := range c.m { // an arbitrary entry: map iteration starts at random
			delete(c.m, k)
			break
		}
	}
	c.m[v] = e
}

// cookieScanner yields the value of every cookie with one name from a
// request's Cookie header lines, in order — the values
// http.Request.CookiesNamed returns — without allocating: it parses the
// header the same way (net/http's readCookies) but builds no *http.Cookie
// for every cookie of the header.
type cookieScanner struct {
	lines []string // header lines not yet started
	line  string   // the rest of the current line
	name  string
}

// maxCookies is net/http's default limit on the number of cookies in a
// request (GODEBUG httpcookiemaxnum): above it, CookiesNamed returns none,
// and so does the scanner.
const maxCookies = 3000

func newCookieScanner(h http.Header, name string) cookieScanner {
	lines := h["Cookie"]
	n := 0
	for _, l := range lines {
		n += strings.Count(l, ";") + 1
	}
	if n > maxCookies {
		lines = nil
	}
	return cookieScanner{lines: lines, name: name}
}

// next returns the next value, or false when there is none. name must be a
// valid cookie name (as Config.CookieName is).
func (s *cookieScanner) next() (string, bool) {
	for {
		for s.line == "" {
			if len(s.lines) == 0 {
				return "", false
			}
			s.line, s.lines = textproto.TrimString(s.lines[0]), s.lines[1:]
		}
		var part string
		part, s.line, _ = strings.Cut(s.line, ";")
		part = textproto.TrimString(part)
		if part == "" {
			continue
		}
		name, val, _ := strings.Cut(part, "=")
		if textproto.TrimString(name) != s.name {
			continue
		}
		if v, ok := cookieValue(val); ok {
			return v, true
		}
	}
}

// cookieValue strips one pair of surrounding double quotes and refuses a
// value with a byte RFC 6265 does not allow, as net/http does.
func cookieValue(raw string) (string, bool) {
	if len(raw) > 1 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		raw = raw[1 : len(raw)-1]
	}
	for i := 0; i < len(raw); i++ {
		if b := raw[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return "", false
		}
	}
	return raw, true
}

// prepare makes sure the browser has a nonce cookie — reading it, refreshing
// it, or setting a new one — and records the secret in the request context
// for Token and Field. It must run before the response is written, which is
// why Handler runs it for every request rather than Field setting the cookie
// lazily in the middle of a template.
func (m *Manager) prepare(w http.ResponseWriter, r *http.Request) *http.Request {
	if st := stateFrom(r.Context()); st != nil && st.m == m {
		return r
	}
	now := m.clock.Now()
	st := &state{m: m}
	secret, issued, key, ok := m.readCookie(r, now)
	switch {
	case !ok:
		_, _ = rand.Read(st.secret[:])
		m.setCookie(w, &st.secret, now)
	default:
		st.secret, st.fromCookie = secret, true
		// Re-set the same secret when it was read with a previous key (so
		// the browser survives that key's removal) or when half its
		// lifetime has passed (so a form open now outlives the cookie).
		if key != 0 || now.Sub(issued) >= m.cookieMaxAge/2 {
			m.setCookie(w, &st.secret, now)
		}
	}
	// Responses may now embed a per-browser token: shared caches must not
	// serve them to another browser.
	if h := w.Header(); !variesOnCookie(h) {
		h.Add("Vary", "Cookie")
	}
	return r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
}

func (m *Manager) setCookie(w http.ResponseWriter, secret *[secretLen]byte, now time.Time) {
	b := make([]byte, 0, cookiePayload)
	b = append(b, cookieVersion)
	b = append(b, secret[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(now.Unix()))
	v, err := m.keys[0].cookie.Encode(m.cookieName, b)
	if err != nil {
		// Cannot happen with valid keys and a fixed-size payload; without a
		// cookie, submissions fail closed as ErrWrongBrowser.
		m.log.Error("nonce: encoding the browser cookie failed", "err", err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     m.cookieName,
		Value:    v,
		Path:     "/",
		MaxAge:   int(m.cookieMaxAge / time.Second),
		Secure:   !m.insecure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}

var errNoCookie = errors.New("the request has no valid nonce cookie")

// browserSecret returns the secret a submitted token must be bound to: the
// one recorded by prepare, or else the one in the cookie.
func (m *Manager) browserSecret(r *http.Request) ([secretLen]byte, error) {
	if st := stateFrom(r.Context()); st != nil && st.m == m {
		if !st.fromCookie {
			return [secretLen]byte{}, errNoCookie
		}
		return st.secret, nil
	}
	secret, _, _, ok := m.readCookie(r, m.clock.Now())
	if !ok {
		return [secretLen]byte{}, errNoCookie
	}
	return secret, nil
}
