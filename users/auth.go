package users

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/dynaguard/dynaguard"
)

// Credentials is one login attempt.
type Credentials struct {
	// Login is the email address or the username (a login name with '@'
	// is an email address).
	Login    string
	Password string
	// IP is the client's address as the application resolved it (the
	// connection's address unless it trusts a proxy; see the middleware
	// package). users never reads forwarding headers itself.
	IP netip.Addr
}

// Authenticate checks a login name and password. It returns the account, or
// an error that matches ErrInvalidCredentials for every way the login can
// fail — unknown login name, wrong password, disabled account, throttled
// attempt — so that a caller cannot tell them apart by accident, plus
// ErrBusy and ErrUnavailable when it could not decide (nothing is let
// through then).
//
// What an attempt costs, in order (every read strongly consistent):
//
//  1. one BatchGetItem: the uniqueness marker of the login name, the
//     attempt counter of (login name, client address) and the failure
//     counter of the client address. A throttled attempt stops here, before
//     any password work, with a *ThrottledError that says when to retry.
//  2. a hashing slot (ErrBusy if none frees up within HashWait; nothing
//     has been counted then). The slot is held through step 6's failure
//     counts.
//  3. one GetItem: the account the marker points at — or, for a login name
//     with no account, that name's failure counter, so both cost the same.
//     An account at Throttle.MaxFailures stops here (Locked).
//  4. one conditional UpdateItem that counts the attempt before the
//     password is checked: concurrent attempts cannot slip past the limit.
//  5. exactly one password verification — against the account's hash, or
//     against a dummy hash for an unknown login name or an unusable stored
//     hash. A disabled account is verified too, and fails whatever the
//     result.
//  6. failure: two UpdateItems (the account's — or the unknown name's —
//     consecutive failure count, and the client address's counter).
//     Success: one DeleteItem (the attempt counter), plus one UpdateItem
//     when the failure count must be reset or the hash upgraded (a hash of
//     an older algorithm, parameters or pepper is replaced, on condition
//     that it is still the stored one).
//
// Because the account's failure count is read (step 3) and a failure added
// to it (step 6) inside one hashing slot, Throttle.MaxFailures is exceeded
// by at most the verifications that run at the same moment: at most
// MaxFailures + S - 1 passwords are verified against an account between
// two successes, S being the hashing slots of every instance together (the
// sum of their HashConcurrency). See Throttle.
//
// Unknown, wrong and disabled therefore make the same calls and the same
// hash work. The one difference left is the verification itself when the
// account still has a legacy hash (bcrypt, Django) until its first login.
func (s *Users) Authenticate(ctx context.Context, c Credentials) (*User, error) {
	kind, key := normalizeLogin(c.Login)
	u, err := s.attempt(ctx, target{kind: kind, key: key}, c.Password, c.IP)
	s.refusal(ctx, dynaguard.EventLoginFailed, "", c.IP, &err)
	return u, err
}

// target is whose password an attempt checks: a login name, or (when the
// user is already known, as for ChangePassword) an account ID.
type target struct {
	kind, key string
	uid       string
}

func (t target) account() string {
	if t.uid != "" {
		return "id\x00" + t.uid
	}
	return t.kind + "\x00" + t.key
}

// maxPasswordBytes bounds the password a login attempt hashes: longer input
// fails like a wrong password without being normalised or hashed, so a
// megabyte "password" costs no more than any other attempt.
const maxPasswordBytes = 4096

// reservePair counts one attempt on the (account, address) counter read as
// pair, with one conditional write. When another attempt from this address
// got there first and used up what the read allowed, it is a
// *ThrottledError.
func (s *Users) reservePair(ctx context.Context, k throttleKeys, pair counter, pairExists bool, now time.Time) error {
	ok, cur, err := s.st.reserve(ctx, k.pair, pair, pairExists, s.throttle.PerAccount, now, k.pairEnd)
	if err != nil {
		return err
	}
	if !ok {
		return s.throttled(s.throttle.PerAccount.wait(cur, now))
	}
	return nil
}

func (s *Users) throttled(d time.Duration) error {
	d = (d + time.Second - 1).Truncate(time.Second)
	if d < time.Second {
		d = time.Second
	}
	return &ThrottledError{RetryAfter: d}
}

func (s *Users) attempt(ctx context.Context, t target, password string, ip netip.Addr) (*User, error) {
	now := s.now()
	k := s.keysFor(t.account(), ip, now)
	first := []string{k.pair, k.ip}
	var marker string
	if t.uid == "" {
		marker = markerPK(t.kind, t.key)
		first = append(first, marker)
	}
	items, err := s.st.batchGet(ctx, first...)
	if err != nil {
		return nil, err
	}
	pairItem := items[k.pair]
	pairExists := pairItem != nil && !dynaguard.Expired(pairItem, now)
	var pair, ipc counter
	if pairExists {
		pair = decodeCounter(pairItem)
	}
	if it := items[k.ip]; it != nil && !dynaguard.Expired(it, now) {
		ipc = decodeCounter(it)
	}
	if wait := max(s.throttle.PerAccount.wait(pair, now), s.throttle.PerIP.wait(ipc, now)); wait > 0 {
		return nil, s.throttled(wait)
	}
	// The account (or, for a login name with no account, that name's
	// failure count) — read only once a hashing slot is held.
	pk, uid := k.unknownAccount, t.uid
	if uid == "" {
		uid, _ = dynaguard.Str(items[marker], attrUID)
	}
	if uid != "" {
		pk = userPK(uid)
	}

	// From here to the failure count, the attempt holds a hashing slot:
	// the account's failure count is read, checked against MaxFailures,
	// and — after a wrong password — incremented, all while the slot is
	// held. So an attempt that read a count under the cap and has not yet
	// added its failure always holds a slot: when the MaxFailures-th
	// failure is counted, at most (every instance's HashConcurrency, added
	// up) - 1 verifications are still in flight to pass it. A login
	// refused as busy was never counted.
	release, err := s.limiter.acquire(ctx)
	if err != nil {
		return nil, err
	}
	held := true
	defer func() {
		if held {
			release()
		}
	}()
	// The time of the attempt is taken again: waiting for the slot can
	// take up to HashWait, and the counters record when attempts happen.
	now = s.now()
	acct, err := s.st.get(ctx, pk)
	if err != nil {
		return nil, err
	}
	if uid != "" && acct == nil && t.uid == "" {
		s.log.ErrorContext(ctx, "users: uniqueness marker points at a missing account", "user", uid)
	}
	var u *User
	var fails int64
	if acctPK, _ := dynaguard.Str(acct, dynaguard.AttrPK); acct != nil && acctPK == k.unknownAccount {
		if !dynaguard.Expired(acct, now) {
			fails, _ = dynaguard.Int(acct, attrFails)
		}
	} else if acct != nil {
		if u, err = decodeUser(acct); err != nil {
			return nil, errors.Join(ErrUnavailable, err)
		}
		fails = u.fails
	}
	if fails >= int64(s.throttle.MaxFailures) {
		return nil, &ThrottledError{Locked: true}
	}

	success, newHash, newPepper, err := s.checkPassword(ctx, k, pair, pairExists, now, password, u)
	if err != nil {
		return nil, err
	}

	if !success {
		if u != nil {
			err = s.st.countAccountFailure(ctx, u.ID)
		} else {
			err = s.st.countUnknownFailure(ctx, k.unknownAccount, k.unknownAccountTTL)
		}
		if err == nil {
			err = s.st.countIPFailure(ctx, k.ip, now, k.ipEnd)
		}
		if err != nil {
			return nil, err
		}
		return nil, ErrInvalidCredentials
	}
	held = false
	release()
	// An account with a second factor keeps its failure count until the
	// code is accepted too (CompleteLogin).
	resetFails := u.fails > 0 && !u.TOTPEnabled
	if resetFails || newHash != "" {
		switch err := s.st.loginSucceeded(ctx, u, resetFails, newHash, newPepper); {
		case errors.Is(err, ErrConflict):
			// The password changed between the read and now: the one
			// just verified is no longer valid.
			return nil, ErrInvalidCredentials
		case err != nil:
			return nil, err
		}
		if resetFails {
			u.fails = 0
		}
		if newHash != "" {
			u.hash, u.pepperID = newHash, newPepper
			s.log.InfoContext(ctx, "users: password hash upgraded", "user", u.ID)
		}
	}
	if err := s.st.deleteItem(ctx, k.pair); err != nil {
		return nil, err
	}
	return u, nil
}

// checkPassword is the part of an attempt that does the password work,
// with the caller holding a hashing slot: the attempt is counted (one
// conditional write), then exactly one verification runs, plus the
// upgraded hash on a success that needs one.
func (s *Users) checkPassword(ctx context.Context, k throttleKeys, pair counter, pairExists bool, now time.Time, password string, u *User) (success bool, newHash, newPepper string, err error) {
	if err := s.reservePair(ctx, k, pair, pairExists, now); err != nil {
		return false, "", "", err
	}
	against := u
	if len(password) > maxPasswordBytes {
		// Never a valid password (new ones are at most Policy.MaxLength
		// characters); verified against the dummy hash so it costs the same.
		against, password = nil, ""
	}
	match, rehash := s.verifyLocked(password, against)
	success = match && against != nil && !u.Disabled
	if success && rehash {
		if newHash, newPepper, err = s.hashLocked(password); err != nil {
			s.log.WarnContext(ctx, "users: password hash not upgraded", "user", u.ID, "err", err)
			newHash, newPepper = "", ""
		}
	}
	return success, newHash, newPepper, nil
}
