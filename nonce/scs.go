package nonce

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard/internal/authctx"
)

// SCSSession returns a Config.Session that binds tokens to the scs session
// of sm, for applications that use scs without dynaguard's users package
// (whose LoadUser the default relies on). Without it, tokens are bound to
// the browser only: a token taken from one session stays good after a
// logout and a login as someone else in the same browser.
//
//	nonces, err := nonce.New(nonce.Config{Table: tbl, Keys: keys, Session: nonce.SCSSession(sm)})
//	handler := sm.LoadAndSave(nonces.Handler(mux))
//
// The session is named by a hash of its token, never the token itself. A
// session that scs has not saved yet has no token: tokens issued in the
// request that creates it are bound to the browser only, as are tokens
// issued without a session; RenewToken (at login) ends the binding of
// tokens issued before it. It costs one SHA-256 per issued or consumed
// token and no DynamoDB call.
//
// The nonce middleware (or Consume, Token and Field) must run inside
// sm.LoadAndSave; otherwise the first request panics with a message that
// says so, as scs itself does.
func SCSSession(sm *scs.SessionManager) func(*http.Request) string {
	if sm == nil {
		panic("nonce: SCSSession needs a SessionManager")
	}
	return func(r *http.Request) string {
		tok := scsToken(sm, r)
		if tok == "" {
			return ""
		}
		sum := sha256.Sum256([]byte(tok))
		return base64.RawURLEncoding.EncodeToString(sum[:])
	}
}

func scsToken(sm *scs.SessionManager, r *http.Request) (tok string) {
	defer func() {
		if v := recover(); v != nil {
			panic(fmt.Sprintf("nonce: SCSSession: the request did not pass through the SessionManager's LoadAndSave "+
				"(put the nonce middleware inside it): %v", v))
		}
	}()
	return sm.Token(r.Context())
}

// loadedSession is the default Config.Session: the session users.LoadUser
// recorded. A request without any recorded identity means LoadUser is not
// in the chain and no Session was configured, which would otherwise leave
// every token bound to the browser alone without a word.
func (m *Manager) loadedSession(r *http.Request) string {
	id := authctx.From(r.Context())
	if id == nil {
		m.unbound.Do(func() {
			m.log.Warn("nonce: no session source (neither users.LoadUser nor Config.Session): tokens are bound to " +
				"the browser only; with scs alone set Config.Session to nonce.SCSSession(sm)")
		})
		return ""
	}
	return id.SessionID()
}
