package app

import (
	"context"
	"io/fs"
	"net/http"
	"net/url"
	"slices"

	"github.com/dynaguard/dynaguard/users"
)

// usersMailer turns the users package's messages into the app's emails:
// the one-time tokens become links on the configured BaseURL — never on
// the Host of the request, which an attacker could set to their own site
// and so receive the victim's reset link (password-reset poisoning).
func (a *App) usersMailer() users.Mailer {
	return users.MailerFunc(func(ctx context.Context, m users.Message) error {
		msg := Message{To: m.To, Kind: string(m.Kind), Token: m.Token}
		switch m.Kind {
		case users.MessagePasswordReset:
			msg.Link = a.cfg.BaseURL + "/password/reset/confirm?token=" + url.QueryEscape(m.Token)
			msg.Subject = "Reset your password"
			msg.Body = "Someone asked to reset the password of your account. If it was you, open the link within " +
				"15 minutes. If not, ignore this message: your password stays as it is."
		case users.MessageVerifyEmail:
			msg.Link = a.cfg.BaseURL + "/email/verify?token=" + url.QueryEscape(m.Token)
			msg.Subject = "Confirm your email address"
			msg.Body = "Open the link to confirm that this address belongs to you."
		case users.MessagePasswordChanged:
			msg.Subject = "Your password was changed"
			msg.Body = "The password of your account was changed. If you did not do this, reset it at once."
			if m.Reclaimed {
				msg.Body = "Your password was reset, and this was the first time this address was confirmed. " +
					"Anything set up on the account before — two-step verification, recovery codes, a pending " +
					"address change — was removed and every session signed out, in case someone registered " +
					"your address before you. Set up two-step verification again if you use it."
			}
		case users.MessageEmailChanged:
			msg.Subject = "Your email address was changed"
			msg.Body = "Your account now uses " + m.NewEmail + " and no longer this address. Every session was signed out. " +
				"If you did not do this, contact us at once."
		case users.MessageConfirmEmailChange:
			msg.Link = a.cfg.BaseURL + "/email/change/confirm?token=" + url.QueryEscape(m.Token)
			msg.Subject = "Confirm your new email address"
			msg.Body = "Open the link within 24 hours to make this the address of your account. Until then, your " +
				"current address stays in use. If you did not ask for this, ignore this message."
		case users.MessageEmailChangeRequested:
			msg.Link = a.cfg.BaseURL + "/email/change/cancel?token=" + url.QueryEscape(m.Token)
			msg.Subject = "Your email address is about to change"
			msg.Body = "Someone with your password asked to move your account to " + m.NewEmail + ". If it was not " +
				"you, open the link: it cancels the change and signs out every session. Then change your password."
		case users.MessageTOTPEnabled:
			msg.Subject = "Two-step verification is on"
		case users.MessageTOTPDisabled:
			msg.Subject = "Two-step verification is off"
			msg.Body = "If you did not do this, reset your password at once."
		case users.MessageRecoveryCodesRegenerated:
			msg.Subject = "New recovery codes"
		case users.MessageRecoveryCodeUsed:
			msg.Subject = "A recovery code was used"
		case users.MessageCodeReplayed:
			msg.Subject = "Security alert: a used login code was sent again"
			msg.Body = "Someone sent a two-step verification code that had already been used. If it was not you, " +
				"your password may be known to someone else: change it."
		case users.MessageSignupExisting:
			msg.Link = a.cfg.BaseURL + "/login"
			msg.Subject = "Someone tried to sign up with your address"
			msg.Body = "Someone tried to create an account with this email address, which already has one. " +
				"If it was you, log in instead — or reset your password if you forgot it. If not, ignore this message."
		case users.MessageAPITokenReused:
			msg.Link = a.cfg.BaseURL + "/account/sessions"
			msg.Subject = "Security alert: an app's sign-in token was used twice"
			msg.Body = "A refresh token of one of your API clients (an app or script signed in with your password) " +
				"was presented again after it had been used: someone else may hold a copy of it. That client is " +
				"signed out. If you did not copy the token yourself, change your password."
		case users.MessagePasskeyAdded:
			msg.Subject = "A passkey was added to your account"
			msg.Body = "A passkey" + named(m.PasskeyName) + " can now sign in to your account. If you did not add it, " +
				"remove it on your account page and change your password."
		case users.MessagePasskeyRemoved:
			msg.Subject = "A passkey was removed from your account"
			msg.Body = "If you did not remove it, change your password."
		case users.MessagePasskeyCloned:
			msg.Subject = "Security alert: a copy of your passkey was used"
			msg.Body = "Your passkey" + named(m.PasskeyName) + " was used with a signature counter that went back, which " +
				"happens when its key was copied. It no longer signs in: remove it on your account page and add a new one."
		default:
			msg.Subject = string(m.Kind)
		}
		return a.mailer.Send(ctx, msg)
	})
}

// devOutbox answers the dev outbox as JSON, oldest first.
func (a *App) devOutbox(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.outbox.Messages())
}

// devMail shows the outbox as a page, newest first, with working links.
func (a *App) devMail(w http.ResponseWriter, r *http.Request) {
	v := a.newView(r, "Dev outbox")
	msgs := a.outbox.Messages()
	slices.Reverse(msgs)
	v.Data = msgs
	a.render(w, "mail", v)
}

// staticHandler serves the embedded CSS and JS. Their names do not change
// between versions of this example, so browsers revalidate them.
func staticHandler() http.Handler {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err)
	}
	files := http.StripPrefix("/static/", http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
