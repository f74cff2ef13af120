package nonce

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net/http"
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
	// Every cookie of that name is tried: with InsecureCookie there is no
	// __Host- prefix, and a sibling subdomain may have planted its own.
	for _, c := range r.CookiesNamed(m.cookieName) {
		for i := range m.keys {
			var b []byte
			if m.keys[i].cookie.Decode(m.cookieName, c.Value, &b) != nil {
				continue
			}
			if len(b) != cookiePayload || b[0] != cookieVersion {
				break
			}
			issued = time.Unix(int64(binary.BigEndian.Uint64(b[1+secretLen:])), 0)
			if !now.Before(issued.Add(m.cookieMaxAge)) {
				break // past its lifetime: the browser should not have sent it
			}
			copy(secret[:], b[1:])
			return secret, issued, i, true
		}
	}
	return secret, time.Time{}, 0, false
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
	w.Header().Add("Vary", "Cookie")
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
func (m *Manager) browserSecret(r *http.Request) (*[secretLen]byte, error) {
	if st := stateFrom(r.Context()); st != nil && st.m == m {
		if !st.fromCookie {
			return nil, errNoCookie
		}
		return &st.secret, nil
	}
	secret, _, _, ok := m.readCookie(r, m.clock.Now())
	if !ok {
		return nil, errNoCookie
	}
	return &secret, nil
}
