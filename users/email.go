package users

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard"
)

// RequestEmailChange asks to move u, the session's user, to a new email
// address. Whoever holds the address can reset the password, so the move
// needs a Proof (the password, and a current code when the account has
// TOTP) checked like a login in this request, and it is not made yet: the
// new address is stored on the account as pending (User.PendingEmail) and
// the Mailer gets
//
//   - a MessageConfirmEmailChange to the NEW address, with a one-time token
//     (256 bits, stored only as its SHA-256, valid TokenConfig.EmailChangeTTL,
//     bound to the account's item version and current exact address) for
//     ConfirmEmailChange;
//   - a MessageEmailChangeRequested to the CURRENT address, with a one-time
//     token for CancelEmailChange, which drops the change and ends every
//     session.
//
// Until the change is confirmed nothing else moves: logins, resets and
// notices use the current address, and the pending one neither logs in
// nor receives a reset link. A new request replaces the pending one (its
// links stop working). The answer is the same whether or not the new
// address belongs to another account — that is found out, and refused, at
// confirmation, in front of the new address's holder only. Requests are
// limited per account and client address (TokenConfig.PerAccount), per
// account in all (PerAccountTotal), per client address (PerIP) and per
// client address and its wider ranges (SignupConfig.PerIP and Ranges), all
// counted in the request's one transaction: *RateLimitedError. The
// password work before it is limited by the step-up's own (login)
// throttle. A session that is u's login moves to a new token with a fresh
// credential check.
//
// Cost: the step-up (see Proof), then one TransactWriteItems: the request
// counters (three, plus one per address counter — two for IPv4 by default,
// three for IPv6 — each conditioned on its limit), the two token Puts and
// the account's UpdateItem (conditioned on its item version and exact
// address).
//
// Errors: *IdentifierError, ErrProofRequired (and its cause), ErrBusy,
// *RateLimitedError, ErrConflict (the account changed meanwhile),
// ErrNoMailer, ErrUnavailable.
func (s *Users) RequestEmailChange(ctx context.Context, sm *scs.SessionManager, u *User, email string, p Proof, c Client) error {
	if s.mailer == nil {
		return ErrNoMailer
	}
	if u == nil {
		return ErrNotFound
	}
	key, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	display := strings.TrimSpace(email)
	if display == u.Email {
		return &IdentifierError{Field: "email", Reason: "This is already your email address."}
	}
	fresh, err := s.stepUp(ctx, u, p, c)
	if err != nil {
		return err
	}
	if display == fresh.Email {
		return &IdentifierError{Field: "email", Reason: "This is already your email address."}
	}
	now := s.now()
	ipc, acct, total, end := s.issueLimits(purposeEmailChange, "id\x00"+fresh.ID, c.IP, now)
	expires := now.Add(s.tokens.EmailChangeTTL).Truncate(1e9)
	confirm, confirmPK := newToken()
	cancel, cancelPK := newToken()
	ch := emailChange{
		display: display, key: key, id: newChangeID(), expires: expires,
		confirm: tokenRecord{uid: fresh.ID, purpose: purposeEmailChange, email: fresh.Email, emailKey: fresh.emailKey,
			cv: fresh.credVersion, ver: fresh.version + 1, newEmail: display, newKey: key},
		cancelRec: tokenRecord{uid: fresh.ID, purpose: purposeEmailCancel, email: fresh.Email,
			cv: fresh.credVersion, ver: fresh.version + 1},
		confirmPK: confirmPK, cancelPK: cancelPK,
	}
	ch.cancelRec.pid = ch.id
	out, err := s.st.requestEmailChange(ctx, fresh, ipc, acct, total, end, ch, now,
		s.addressCounters(actionEmailChange, c.IP, s.signup.PerIP, s.signup.Ranges, now)...)
	if err != nil {
		return err
	}
	if out != issued {
		return rateLimited(end, now)
	}
	s.log.InfoContext(ctx, "users: email change requested", "user", fresh.ID)
	s.event(ctx, dynaguard.EventEmailChangeRequested, "", fresh.ID, c.IP)
	s.notify(ctx, Message{Kind: MessageConfirmEmailChange, To: display, UserID: fresh.ID, Token: confirm, Expires: expires, IP: c.IP})
	s.notify(ctx, Message{Kind: MessageEmailChangeRequested, To: fresh.Email, UserID: fresh.ID, Token: cancel, Expires: expires, IP: c.IP, NewEmail: display})
	return s.steppedUp(ctx, sm, fresh, c)
}

// emailChange is one requested email change, as RequestEmailChange writes
// it.
type emailChange struct {
	display, key, id    string
	expires             time.Time
	confirm, cancelRec  tokenRecord
	confirmPK, cancelPK string
}

// newChangeID names a pending email change (128 random bits): its cancel
// link is bound to it, so that it cancels that change and no later one.
func newChangeID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ConfirmEmailChange completes a pending email change with the token sent
// to the new address. In one TransactWriteItems the token is consumed (on
// condition that it is live and of this kind), the new address's
// uniqueness marker is claimed (on condition that it does not exist), the
// old one released (on condition that it is this account's) and the
// account moved to the new address — on condition that it is still at the
// item version, with the exact address and the pending change, that the
// token was issued for. Of two accounts confirming the same new address at
// once, on any number of instances, exactly one gets it; the other gets a
// *TakenError (ErrEmailTaken) and its link keeps working until it expires.
// A move between two addresses that normalise alike (ceo@fass.de and
// ceo@faß.de) keeps the marker and changes the account alone.
//
// The new address is verified (the link reached it). The session epoch
// goes up: every session ends, except the request's own when it is the
// account's login, which continues under a new token. Every other link
// bound to the old address (resets, verification) dies with the item
// version. The Mailer gets a MessageEmailChanged addressed to the OLD
// address.
//
// Call it from a POST (a page behind the link with a button), not from the
// GET of the link itself: mail security scanners open links.
//
// Cost: two strongly consistent GetItems (the token, the account), one
// TransactWriteItems of two items (same normalised address) or four, and
// the session store's RevokeAll.
//
// Errors: ErrInvalidToken (unknown, expired, used, of another kind, or the
// account changed since the request: a newer request, a cancel, a new
// password, ...), *TakenError, ErrUnavailable.
func (s *Users) ConfirmEmailChange(ctx context.Context, sm *scs.SessionManager, token string, c Client) (*User, error) {
	now := s.now()
	pk, rec, err := s.readToken(ctx, token, purposeEmailChange, now)
	if err != nil {
		return nil, err
	}
	if rec.newKey == "" || rec.emailKey == "" {
		return nil, ErrInvalidToken
	}
	u, err := s.st.getUser(ctx, rec.uid)
	if err != nil {
		return nil, err
	}
	if u == nil || u.Disabled || u.version != rec.ver || u.Email != rec.email || u.pendingKey != rec.newKey ||
		u.PendingEmail != rec.newEmail || u.emailKey != rec.emailKey {
		return nil, ErrInvalidToken
	}
	if err := s.st.confirmEmailChange(ctx, pk, rec, now); err != nil {
		return nil, err
	}
	updated := *u
	updated.Email, updated.emailKey, updated.EmailVerified = rec.newEmail, rec.newKey, true
	updated.PendingEmail, updated.pendingKey, updated.pendingID, updated.PendingEmailExpires = "", "", "", time.Time{}
	updated.epoch++
	updated.version++
	s.log.InfoContext(ctx, "users: email address changed", "user", u.ID)
	s.event(ctx, dynaguard.EventEmailChangeConfirmed, "", u.ID, c.IP)
	s.notify(ctx, Message{Kind: MessageEmailChanged, To: u.Email, UserID: u.ID, IP: c.IP, NewEmail: rec.newEmail})
	if err := s.factorsChanged(ctx, sm, &updated, c, false); err != nil {
		s.log.WarnContext(ctx, "users: the session could not move to the new address; it ends at its next request", "user", u.ID, "err", err)
	}
	return &updated, nil
}

// CancelEmailChange uses the token sent to the current address when an
// email change was requested: the pending change is dropped and every
// session of the account ends (the session epoch goes up, and the session
// store ends them) — whoever requested the change had the password, or a
// session and the password, so the owner should change the password next.
// The link works once, and only while that change is pending: after it was
// confirmed or replaced by a newer request (which sent its own cancel
// link) it is ErrInvalidToken.
//
// Call it from a POST, like ConfirmEmailChange. Cost: one DeleteItem (the
// consume), one UpdateItem (conditioned on the pending change being the
// token's) and the session store's RevokeAll.
func (s *Users) CancelEmailChange(ctx context.Context, token string) (*User, error) {
	pk, ok := tokenKey(token)
	if !ok {
		return nil, ErrInvalidToken
	}
	rec, err := s.st.consumeToken(ctx, pk, purposeEmailCancel, s.now())
	if err != nil {
		return nil, err
	}
	if rec.pid == "" {
		return nil, ErrInvalidToken
	}
	u, err := s.st.cancelEmailChange(ctx, rec)
	if err != nil {
		return nil, err
	}
	s.revokeAll(ctx, u.ID, "")
	s.log.WarnContext(ctx, "users: email change cancelled from the current address; every session ended", "user", u.ID)
	s.event(ctx, dynaguard.EventEmailChangeCancelled, "", u.ID, noAddr)
	return u, nil
}
