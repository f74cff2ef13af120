package users

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Mailer delivers what this package needs to tell a user: password reset
// and email verification links, and security notices. The application
// renders and sends them (or queues them; see Send).
type Mailer interface {
	// Send delivers m. It should hand m to a queue and return at once:
	// RequestReset calls it only when the account exists, so a Send that
	// takes as long as an SMTP conversation tells an observer, by the
	// answer's timing, that the address has an account.
	//
	// An error is logged (without the token) and not returned to the
	// caller of RequestReset, which answers the same either way.
	Send(ctx context.Context, m Message) error
}

// MailerFunc adapts a function to Mailer.
type MailerFunc func(ctx context.Context, m Message) error

// Send calls f.
func (f MailerFunc) Send(ctx context.Context, m Message) error { return f(ctx, m) }

// MessageKind says what a Message is about.
type MessageKind string

// Message kinds. The first two (and MessageConfirmEmailChange and
// MessageEmailChangeRequested) carry a Token; the others are notices that
// a careful application sends to the user (they are how the owner learns
// of a takeover in progress).
const (
	// MessagePasswordReset carries a password reset token (Token, valid
	// until Expires). Put it in a link to the page that calls
	// ResetPassword.
	MessagePasswordReset MessageKind = "password-reset"
	// MessageVerifyEmail carries an email verification token. Put it in a
	// link to the page that calls VerifyEmail.
	MessageVerifyEmail MessageKind = "verify-email"
	// MessagePasswordChanged: the password was reset or changed. Reclaimed
	// says more, for a reset; Passkeys names the passkeys the account
	// kept — a new password does not remove them.
	MessagePasswordChanged MessageKind = "password-changed"
	// MessageEmailChanged: a change of the account's email address was
	// confirmed. To is the previous address, so its owner hears of it;
	// NewEmail is the new one.
	MessageEmailChanged MessageKind = "email-changed"
	// MessageConfirmEmailChange carries the token that confirms a pending
	// email change (RequestEmailChange). To is the NEW address: only its
	// holder can complete the change. Put it in a link to the page that
	// calls ConfirmEmailChange.
	MessageConfirmEmailChange MessageKind = "confirm-email-change"
	// MessageEmailChangeRequested tells the CURRENT address (To) that a
	// change to NewEmail was requested, with a Token that cancels it and
	// ends every session of the account. Put it in a link to the page that
	// calls CancelEmailChange, and word it "if this was not you".
	MessageEmailChangeRequested MessageKind = "email-change-requested"
	// MessageTOTPEnabled and MessageTOTPDisabled: the TOTP second factor
	// was turned on or off.
	MessageTOTPEnabled  MessageKind = "totp-enabled"
	MessageTOTPDisabled MessageKind = "totp-disabled"
	// MessageRecoveryCodesRegenerated: a new set of recovery codes replaced
	// the old one.
	MessageRecoveryCodesRegenerated MessageKind = "recovery-codes-regenerated"
	// MessageRecoveryCodeUsed: a recovery code completed a login
	// (Remaining codes are left).
	MessageRecoveryCodeUsed MessageKind = "recovery-code-used"
	// MessageCodeReplayed: a TOTP code that had already been accepted was
	// presented again, after the correct password (IP says from where).
	// Someone who knows the password is relaying or replaying the user's
	// codes — typically a phishing proxy; the owner should change the
	// password. A code form submitted twice (a double click) triggers it
	// too, so word the notice "if this was not you".
	MessageCodeReplayed MessageKind = "totp-code-replayed"
	// MessagePasskeyAdded and MessagePasskeyRemoved: a passkey was
	// registered on, or removed from, the account (PasskeyName names it).
	MessagePasskeyAdded   MessageKind = "passkey-added"
	MessagePasskeyRemoved MessageKind = "passkey-removed"
	// MessagePasskeyCloned: a passkey sent a signature counter that did
	// not advance — its key was probably copied. It is refused from now on
	// and every session of the account was ended (a copy may have signed
	// in); the owner should remove it and check the account.
	MessagePasskeyCloned MessageKind = "passkey-cloned"
	// MessageSignupExisting: someone tried to sign up with the account's
	// email address (Register in quiet mode, SignupConfig.Quiet). The sign-up
	// was answered as if it had worked; this tells the owner, who can log
	// in or reset the password — or ignore it.
	MessageSignupExisting MessageKind = "signup-existing"
	// MessageAPITokenReused: a refresh token of one of the account's API
	// clients was presented after it had been rotated — two parties held
	// the client's tokens. That client is signed out (IP says from where
	// the old token came); if the owner did not copy it, the password
	// should be changed.
	MessageAPITokenReused MessageKind = "api-token-reused"
)

// Message is one message for the Mailer.
type Message struct {
	Kind MessageKind
	// To is the account's email address as stored — never an address
	// typed into a form, so a look-alike address that normalises to the
	// same account cannot receive its reset link. The one exception is
	// MessageConfirmEmailChange, which goes to the new address the user
	// asked for: proving that it reaches its holder is its purpose.
	To     string
	UserID string
	// Token is the one-time token of a password reset or verification
	// message ("" otherwise): 43 URL-safe characters. It is a credential:
	// never log it. Message's String and LogValue leave it out.
	Token string
	// Expires is when Token stops working.
	Expires time.Time
	// IP is the client of the request that caused the message, when known.
	IP netip.Addr
	// Remaining is the number of unused recovery codes
	// (MessageRecoveryCodeUsed).
	Remaining int
	// NewEmail is the address an email change moves to
	// (MessageEmailChangeRequested, MessageEmailChanged).
	NewEmail string
	// PasskeyName is the label of the passkey a notice is about
	// (MessagePasskeyAdded, MessagePasskeyRemoved, MessagePasskeyCloned).
	PasskeyName string
	// Passkeys (MessagePasswordChanged) are the labels of the account's
	// passkeys, which still sign in after the change ("" for one without
	// a label; all "" when they could not be read). List them, so that an
	// owner who changes the password after an intrusion sees a passkey
	// the intruder added, and can remove it.
	Passkeys []string
	// Reclaimed (MessagePasswordChanged, after a reset) says that the reset
	// was the first proof that the account's holder holds its address:
	// every second factor and any pending email change set up before it
	// were removed and every session ended — someone may have registered
	// the address before its owner. Tell the user, and to set up a second
	// factor again if they had one.
	Reclaimed bool
}

// String describes m without its token.
func (m Message) String() string {
	tok := ""
	if m.Token != "" {
		tok = " token=[redacted]"
	}
	return fmt.Sprintf("users.Message{%s to=%q user=%s%s}", m.Kind, m.To, m.UserID, tok)
}

// GoString is String, so that %#v does not print the token either.
func (m Message) GoString() string { return m.String() }

// LogValue logs m without its token.
func (m Message) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kind", string(m.Kind)), slog.String("user", m.UserID))
}

// passkeyNames returns the labels of u's passkeys for a notice: one
// BatchGetItem, only when u has any. A failed read is logged and gives as
// many "" as u lists: the notice still says how many there are.
func (s *Users) passkeyNames(ctx context.Context, u *User) []string {
	if len(u.passkeys) == 0 || s.mailer == nil {
		return nil
	}
	list, err := s.Passkeys(ctx, u)
	if err != nil {
		s.log.WarnContext(ctx, "users: passkey names not read for a notice", "user", u.ID, "err", err)
		return make([]string, len(u.passkeys))
	}
	names := make([]string, len(list))
	for i, k := range list {
		names[i] = k.Name
	}
	return names
}

// notify sends a notice; a failure is logged, never returned (the change it
// reports has been made).
func (s *Users) notify(ctx context.Context, m Message) {
	if s.mailer == nil {
		return
	}
	if err := s.mailer.Send(ctx, m); err != nil {
		s.log.ErrorContext(ctx, "users: mailer failed", "message", m, "err", err)
	}
}
