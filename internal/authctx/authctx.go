// Package authctx carries who is making a request between dynaguard's
// packages without making them import each other: users.LoadUser records the
// authenticated user and how to name the session, and nonce and idempotency
// read both to bind or scope their tokens.
//
// Values are identifiers, never secrets: a user ID, and a session ID that is
// a keyed hash of the session token (sessionstore's ID), not the token.
package authctx

import "context"

// Identity answers who is making the request. users.LoadUser records one
// value that is both its own per-request record and the Identity, so a
// request pays for one context layer, not one per fact.
type Identity interface {
	// UserID is the authenticated user's ID, "" when nobody is logged in.
	UserID() string
	// SessionID names the request's current session, "" when there is
	// none yet. It is asked each time rather than fixed when recorded,
	// because the session can change during the request (a login renews the
	// token) and a new session has no name until it is saved.
	SessionID() string
}

type key struct{}

// With records id as the request's identity.
func With(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, key{}, id)
}

// From returns the identity recorded in ctx, or nil.
func From(ctx context.Context) Identity {
	id, _ := ctx.Value(key{}).(Identity)
	return id
}

// User returns the authenticated user's ID, if any.
func User(ctx context.Context) (string, bool) {
	id := From(ctx)
	if id == nil {
		return "", false
	}
	u := id.UserID()
	return u, u != ""
}

// Session returns the current session's ID, if there is one.
func Session(ctx context.Context) (string, bool) {
	id := From(ctx)
	if id == nil {
		return "", false
	}
	s := id.SessionID()
	return s, s != ""
}

// WithUser records userID as the authenticated user, keeping the session of
// any identity already recorded.
func WithUser(ctx context.Context, userID string) context.Context {
	return With(ctx, layer{parent: From(ctx), user: &userID})
}

// WithSession records a function that names the request's current session,
// keeping the user of any identity already recorded.
func WithSession(ctx context.Context, id func() string) context.Context {
	return With(ctx, layer{parent: From(ctx), session: id})
}

// layer overrides one fact of its parent identity.
type layer struct {
	parent  Identity
	user    *string
	session func() string
}

func (l layer) UserID() string {
	switch {
	case l.user != nil:
		return *l.user
	case l.parent != nil:
		return l.parent.UserID()
	}
	return ""
}

func (l layer) SessionID() string {
	switch {
	case l.session != nil:
		return l.session()
	case l.parent != nil:
		return l.parent.SessionID()
	}
	return ""
}

type skipBearerKey struct{}

// SkipBearer marks a request whose "Authorization: Bearer" header is not
// for users.LoadUser: a route exempt from the middleware stack (the token
// endpoints, a webhook) gets the header untouched and checks what it needs
// itself. Without the mark a stale or garbled access token sent to the
// refresh endpoint would be refused before the refresh could replace it.
func SkipBearer(ctx context.Context) context.Context {
	return context.WithValue(ctx, skipBearerKey{}, true)
}

// BearerSkipped reports whether SkipBearer marked ctx.
func BearerSkipped(ctx context.Context) bool {
	v, _ := ctx.Value(skipBearerKey{}).(bool)
	return v
}
