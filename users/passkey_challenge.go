package users

// Passkey challenges: issued with no DynamoDB write, used at most once.
//
// A challenge is the token itself: the bytes the browser signs over
// (clientDataJSON.challenge) are
//
//	version(1) purpose(1) expiry(8, Unix s) nonce(32) [user handle(32), registration only] MAC(32)
//
// with MAC = HMAC-SHA256 under a key of its own purpose over those bytes
// and the bindings: the browser (the value of a short-lived cookie of this
// package), and for every purpose but sign-in the session
// (SessionRegistry.ID of the scs token) and the account. Nothing is stored
// at issue; a finish recomputes the MAC from the request it is in, so a
// challenge carried to another browser, session, account or purpose does
// not verify. Use is one conditional write: a marker keyed by a keyed
// hash of the nonce, put with attribute_not_exists in the same transaction
// as the credential's counter (or its registration) and living until the
// challenge's expiry plus a margin — after which the expiry check alone
// refuses it.

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"time"

	"github.com/dynaguard/dynaguard"
)

// purposePasskeyChallenge keys challenge MACs and the markers of used
// challenges; purposePasskeyID keys the hashes of credential IDs.
const (
	purposePasskeyChallenge dynaguard.Purpose = "passkey-challenge"
	purposePasskeyID        dynaguard.Purpose = "passkey-credential"
)

// ceremony is what a challenge is for.
type ceremony byte

const (
	ceremonyRegister ceremony = iota + 1
	ceremonyLogin
	ceremonySecondFactor
	ceremonyStepUp
)

func (c ceremony) String() string {
	switch c {
	case ceremonyRegister:
		return "register"
	case ceremonyLogin:
		return "login"
	case ceremonySecondFactor:
		return "second_factor"
	case ceremonyStepUp:
		return "step_up"
	}
	return "unknown"
}

const (
	challengeVersion = 1
	challengeNonce   = 32
	handleLen        = 32
	challengeMACLen  = 32
	challengeHead    = 1 + 1 + 8 + challengeNonce
	// markerMargin keeps a used challenge's marker past its expiry, so
	// that a clock a little behind on another instance still finds it.
	markerMargin = 5 * time.Minute
	browserIDLen = 16
)

var b64u = base64.RawURLEncoding.Strict()

// binding is what a challenge is bound to besides its purpose.
type binding struct {
	browser string // the browser cookie's value
	session string // SessionRegistry.ID of the session, "" for sign-in
	user    string // account ID, "" for sign-in
}

// challenge is an opened (verified) challenge.
type challenge struct {
	purpose ceremony
	expires time.Time
	nonce   []byte
	handle  []byte // registration: the account's user handle
	key     dynaguard.DerivedKey
	raw     string // as the client data carries it
}

func challengeMAC(key dynaguard.DerivedKey, body []byte, b binding) []byte {
	m := hmac.New(sha256.New, key.Secret)
	m.Write([]byte("dynaguard passkey challenge v1\x00"))
	m.Write(body)
	for _, s := range []string{b.browser, b.session, b.user} {
		m.Write([]byte{0})
		m.Write([]byte(s))
	}
	return m.Sum(nil)
}

// newChallenge issues a challenge for purpose bound to b (no storage).
func (s *Users) newChallenge(purpose ceremony, b binding, handle []byte) string {
	body := make([]byte, challengeHead, challengeHead+len(handle)+challengeMACLen)
	body[0], body[1] = challengeVersion, byte(purpose)
	binary.BigEndian.PutUint64(body[2:], uint64(s.now().Add(s.passkeys.ChallengeTTL).Unix()))
	_, _ = rand.Read(body[10:challengeHead])
	body = append(body, handle...)
	body = append(body, challengeMAC(s.keys.Key(purposePasskeyChallenge), body, b)...)
	return b64u.EncodeToString(body)
}

// openChallenge checks a challenge as the client data carries it: its MAC
// under any key of the purpose (a rotated secret keeps open ceremonies
// working), for this purpose and binding, not expired. It says nothing
// about use: that is the marker's write.
func (s *Users) openChallenge(raw string, purpose ceremony, b binding) (challenge, bool) {
	want := challengeHead + challengeMACLen
	if purpose == ceremonyRegister {
		want += handleLen
	}
	if len(raw) != b64u.EncodedLen(want) || b.browser == "" || (purpose != ceremonyLogin && (b.session == "" || b.user == "")) {
		return challenge{}, false
	}
	body, err := b64u.DecodeString(raw)
	if err != nil || len(body) != want || body[0] != challengeVersion || ceremony(body[1]) != purpose {
		return challenge{}, false
	}
	mac := body[want-challengeMACLen:]
	body = body[:want-challengeMACLen]
	for _, k := range s.keys.Keys(purposePasskeyChallenge) {
		if !hmac.Equal(challengeMAC(k, body, b), mac) {
			continue
		}
		exp := time.Unix(int64(binary.BigEndian.Uint64(body[2:10])), 0)
		if !s.now().Before(exp) {
			return challenge{}, false
		}
		c := challenge{purpose: purpose, expires: exp, nonce: body[10:challengeHead], key: k, raw: raw}
		if purpose == ceremonyRegister {
			c.handle = body[challengeHead:]
		}
		return c, true
	}
	return challenge{}, false
}

// markerPK is the key of the item that marks c used: a keyed hash of its
// nonce under the key that verified it.
func (c challenge) markerPK() string {
	m := hmac.New(sha256.New, c.key.Secret)
	m.Write([]byte("dynaguard passkey challenge used v1\x00"))
	m.Write(c.nonce)
	return dynaguard.PrefixPasskey + "ch#" + b64u.EncodeToString(m.Sum(nil))
}

// browserBinding returns the request's browser-binding cookie value,
// setting a new cookie when issue is true and the request has none (and
// renewing it when it has). ok is false outside LoadUser.
func (s *Users) browserBinding(ctx context.Context, issue bool) (string, bool) {
	l, ok := loadedFrom(ctx)
	if !ok || l.req == nil {
		return "", false
	}
	v := ""
	for _, c := range l.req.CookiesNamed(s.passkeys.CookieName) {
		if len(c.Value) == b64u.EncodedLen(browserIDLen) {
			if _, err := b64u.DecodeString(c.Value); err == nil {
				v = c.Value
			}
		}
	}
	if !issue {
		return v, true
	}
	if l.w == nil {
		return "", false
	}
	if v == "" {
		var id [browserIDLen]byte
		_, _ = rand.Read(id[:])
		v = b64u.EncodeToString(id[:])
	}
	http.SetCookie(l.w, &http.Cookie{
		Name:     s.passkeys.CookieName,
		Value:    v,
		Path:     "/",
		MaxAge:   int(s.passkeys.ChallengeTTL / time.Second),
		Secure:   !s.passkeys.Insecure,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
	return v, true
}

// sessionID is the non-secret ID of the request's session ("" for none).
func (s *Users) sessionID(ctx context.Context) string {
	if l, ok := loadedFrom(ctx); ok {
		return l.SessionID()
	}
	return ""
}

// issue starts a ceremony: the browser cookie, then the challenge.
func (s *Users) issue(ctx context.Context, purpose ceremony, uid string, handle []byte) (string, error) {
	if !s.passkeys.enabled() {
		return "", ErrPasskeysDisabled
	}
	browser, ok := s.browserBinding(ctx, true)
	if !ok {
		return "", ErrNoBrowserBinding
	}
	b := binding{browser: browser}
	if purpose != ceremonyLogin {
		b.session, b.user = s.sessionID(ctx), uid
		if b.session == "" || uid == "" {
			return "", ErrNoBrowserBinding // a session purpose outside a loaded session
		}
	}
	return s.newChallenge(purpose, b, handle), nil
}
