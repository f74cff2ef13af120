package users

import (
	"context"
	"errors"
	"net/netip"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/obs"
)

// event emits one decision about account uid ("" when none is known), from
// the client at ip (the request's resolved address when ip is not valid).
func (s *Users) event(ctx context.Context, name dynaguard.EventName, reason, uid string, ip netip.Addr) {
	ev := dynaguard.Event{Name: name, Reason: reason, UserID: uid}
	if ip.IsValid() {
		ev.ClientAddr = ip.Unmap().String()
	}
	s.ev.Emit(ctx, ev)
}

func idOf(u *User) string {
	if u == nil {
		return ""
	}
	return u.ID
}

// refusal emits the event of a refused attempt from its error: a storage
// failure, a throttled or locked account, or name with the error's reason.
// Errors that refuse nothing (a weak new password, a missing mailer) emit
// nothing. It is deferred by the operations with several refusal points.
func (s *Users) refusal(ctx context.Context, name dynaguard.EventName, uid string, ip netip.Addr, errp *error) {
	err := *errp
	if err == nil || s.ev == nil {
		return
	}
	var te *ThrottledError
	switch {
	case errors.Is(err, ErrUnavailable):
		s.event(ctx, dynaguard.EventStorageFailure, obs.StorageReason(err), uid, ip)
	case errors.As(err, &te) && te.Locked:
		s.event(ctx, dynaguard.EventLoginLocked, operation(name), uid, ip)
	case errors.As(err, &te):
		s.event(ctx, dynaguard.EventLoginThrottled, operation(name), uid, ip)
	default:
		if r := refusalReason(err); r != "" {
			s.event(ctx, name, r, uid, ip)
		}
	}
}

// operation names what a throttled or locked attempt tried, for its
// reason.
func operation(refused dynaguard.EventName) string {
	switch refused {
	case dynaguard.EventStepUpRefused:
		return "step_up"
	case dynaguard.EventSecondFactorRefused:
		return "second_factor"
	case dynaguard.EventResetRefused:
		return "reset"
	}
	return "login"
}

// refusalReason is the catalogue's word for an error that refuses an
// attempt, "" for the others.
func refusalReason(err error) string {
	switch {
	case errors.Is(err, ErrInvalidPasskey):
		return "invalid_passkey"
	case errors.Is(err, ErrInvalidCredentials):
		return "invalid_credentials"
	case errors.Is(err, ErrInvalidCode):
		return "invalid_code"
	case errors.Is(err, ErrInvalidToken):
		return "invalid_token"
	case errors.Is(err, ErrNoPendingLogin):
		return "no_pending_login"
	case errors.Is(err, ErrReauthRequired):
		return "reauth_required"
	case errors.Is(err, ErrProofRequired):
		return "proof_required"
	case errors.Is(err, ErrConflict):
		return "conflict"
	case errors.As(err, new(*RateLimitedError)):
		return "rate_limited"
	}
	return ""
}

// factorEvent emits the outcome of a second-factor code at login.
func (s *Users) factorEvent(ctx context.Context, uid string, ip netip.Addr, errp *error) {
	if *errp == nil {
		s.event(ctx, dynaguard.EventSecondFactorAccepted, "", uid, ip)
		return
	}
	s.refusal(ctx, dynaguard.EventSecondFactorRefused, uid, ip, errp)
}

// noAddr stands for "the request's resolved address" in event calls.
var noAddr netip.Addr

// deviceTrusted emits device.trusted when a login gives the browser a
// device cookie for the account (not when it renews the one it had).
func (s *Users) deviceTrusted(ctx context.Context, dr *deviceRequest, d *device, uid string, ip netip.Addr) {
	if dr != nil && dr.w != nil && !d.isFor(uid) {
		s.event(ctx, dynaguard.EventDeviceTrusted, "", uid, ip)
	}
}

// deviceLocked emits device.locked when a known device's own failure
// count holds its login back.
func (s *Users) deviceLocked(ctx context.Context, known bool, uid string, ip netip.Addr) {
	if known {
		s.event(ctx, dynaguard.EventDeviceLocked, "", uid, ip)
	}
}
