// Package authctx carries who is making a request between dynaguard's
// packages without making them import each other: users.LoadUser records the
// authenticated user, the middleware records how to name the session, and
// nonce and idempotency read both to bind or scope their tokens.
//
// Values are identifiers, never secrets: a user ID, and a session ID that is
// a keyed hash of the session token (sessionstore's ID), not the token.
package authctx

import "context"

type userKey struct{}
type sessionKey struct{}

// WithUser records the authenticated user's ID.
func WithUser(ctx context.Context, userID string) context.Context {
	return context.WithValue(ctx, userKey{}, userID)
}

// User returns the authenticated user's ID, if any.
func User(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(userKey{}).(string)
	return id, ok && id != ""
}

// WithSession records a function that names the request's current session.
// It is a function because the session can change during the request (a
// login renews the token) and a new session has no name until it is saved.
func WithSession(ctx context.Context, id func() string) context.Context {
	return context.WithValue(ctx, sessionKey{}, id)
}

// Session returns the current session's ID, if there is one.
func Session(ctx context.Context) (string, bool) {
	f, ok := ctx.Value(sessionKey{}).(func() string)
	if !ok || f == nil {
		return "", false
	}
	id := f()
	return id, id != ""
}
