package users

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
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
//     attempt counter of (login name, client address), the failure
//     counters of the client address and of its wider ranges (by default
//     the IPv4 /24, or the IPv6 /56 and /48) and, when the request carries
//     a device cookie whose MAC checks out, that device's counter. Whether
//     the cookie is this account's is known from the marker: if it is, the
//     device's counter alone applies (Throttle.PerDevice); otherwise the
//     others do. A throttled attempt stops here, before any password work,
//     with a *ThrottledError that says when to retry.
//  2. a hashing slot (ErrBusy if none frees up within HashWait; nothing
//     has been counted then). The slot is held through step 6's failure
//     counts.
//  3. one GetItem: the account the marker points at — or, for a login name
//     with no account, that name's count, so both cost the same. For an
//     unknown client, the account's unknown-client count
//     (Throttle.UnknownClients, MaxFailures) is checked here: over it, a
//     *ThrottledError, still before any hashing.
//  4. one conditional UpdateItem that counts the attempt before the
//     password is checked — on the device's counter or the (login name,
//     address) one: concurrent attempts cannot slip past the limit.
//  5. exactly one password verification — against the account's hash, or
//     against a dummy hash for an unknown login name or an unusable stored
//     hash (a stored hash over the cost caps is refused unverified). A
//     disabled account is verified too, and fails whatever the result.
//  6. failure of an unknown client: UpdateItems, sent at once, on the
//     account's (or the unknown name's) unknown-client count, the client
//     address's counter and each range's — 3 for IPv4, 4 for IPv6 with the
//     default ranges. A known device's failure writes nothing more (its
//     reservation is its count). Success: one DeleteItem (the attempt
//     counter), plus one UpdateItem when the hash must be upgraded (a hash
//     of an older algorithm, parameters or pepper is replaced, on condition
//     that it is still the stored one); the device cookie is set on the
//     response when the request came through LoadUser (no storage).
//
// Because the unknown-client count is read (step 3) and a failure added to
// it (step 6) inside one hashing slot, its limits are exceeded by at most
// the verifications that run at the same moment: S - 1 more, S being the
// hashing slots of every instance together (the sum of their
// HashConcurrency). See Throttle.
//
// Unknown, wrong and disabled therefore make the same calls and the same
// hash work. The one difference left is the verification itself when the
// account still has a legacy hash (bcrypt, Django) until its first login.
func (s *Users) Authenticate(ctx context.Context, c Credentials) (*User, error) {
	kind, key, legacy := normalizeLoginLegacy(c.Login)
	u, err := s.attempt(ctx, target{kind: kind, key: key, legacy: legacy}, c.Password, c.IP)
	s.refusal(ctx, dynaguard.EventLoginFailed, "", c.IP, &err)
	return u, err
}

// target is whose password an attempt checks: a login name, or (when the
// user is already known, as for ChangePassword) an account ID.
type target struct {
	kind, key string
	uid       string
	// legacy is the key the login name had before email domains were
	// processed under UTS #46, when it differs ("" otherwise): an account
	// registered before then is found under it (read in the same
	// BatchGetItem) until its address is changed.
	legacy string
	// noDevice: an API client's attempt, which no device cookie can
	// vouch for (IssueAPITokens): the unknown-client limits apply.
	noDevice bool
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

// reservation is the counter an attempt is paid for on before its
// password is checked: the device's for a known device, else the (login
// name, address) pair's.
type reservation struct {
	pk     string
	lim    Limit
	end    time.Time
	seen   counter
	exists bool
}

func (r *reservation) read(items map[string]item, now time.Time) {
	if it := items[r.pk]; it != nil && !ddb.Expired(it, now) {
		r.exists, r.seen = true, decodeCounter(it)
	}
}

func liveCounter(items map[string]item, pk string, now time.Time) counter {
	if it := items[pk]; it != nil && !ddb.Expired(it, now) {
		return decodeCounter(it)
	}
	return counter{}
}

func (s *Users) attempt(ctx context.Context, t target, password string, ip netip.Addr) (*User, error) {
	now := s.now()
	k := s.keysFor(t.account(), ip, now)
	ranges := s.rangeKeys(ip, now)
	first := make([]string, 0, 5+len(ranges))
	first = append(first, k.pair, k.ip)
	for _, r := range ranges {
		first = append(first, r.pk)
	}
	var (
		marker string
		dev    *device
		dr     *deviceRequest
		devRes reservation
	)
	var legacyMarker string
	if t.uid == "" {
		marker = markerPK(t.kind, t.key)
		first = append(first, marker)
		if t.legacy != "" {
			legacyMarker = markerPK(t.kind, t.legacy)
			first = append(first, legacyMarker)
		}
		// A device cookie is read with the rest; whether it is this
		// account's is known once the marker is.
		// An API login (noDevice) has no cookie to read.
		if !t.noDevice {
			if dev, dr = s.deviceOf(ctx); dev != nil {
				devRes.pk, devRes.end = s.deviceKey(dev, now)
				devRes.lim = s.throttle.PerDevice
				first = append(first, devRes.pk)
			}
		}
	}
	items, err := s.st.batchGet(ctx, first...)
	if err != nil {
		return nil, err
	}
	uid := t.uid
	if uid == "" {
		uid, _ = ddb.Str(items[marker], attrUID)
	}
	if uid == "" && legacyMarker != "" {
		uid, _ = ddb.Str(items[legacyMarker], attrUID)
	}
	known := dev.isFor(uid)
	res := reservation{pk: k.pair, lim: s.throttle.PerAccount, end: k.pairEnd}
	if known {
		res = devRes
	}
	res.read(items, now)
	wait := res.lim.wait(res.seen, now)
	if !known {
		wait = max(wait, s.throttle.PerIP.wait(liveCounter(items, k.ip, now), now))
		for _, r := range ranges {
			wait = max(wait, r.lim.wait(liveCounter(items, r.pk, now), now))
		}
	}
	if wait > 0 {
		s.deviceLocked(ctx, known, uid, ip)
		return nil, s.throttled(wait)
	}
	// The account (or, for a login name with no account, that name's
	// failure count) — read only once a hashing slot is held.
	pk := k.unknownAccount
	if uid != "" {
		pk = userPK(uid)
	}

	// From here to the failure count, the attempt holds a hashing slot:
	// the account's unknown-client count is read, checked, and — after a
	// wrong password — incremented, all while the slot is held. So an
	// attempt that read a count under the limit and has not yet added its
	// failure always holds a slot: when the limit is reached, at most
	// (every instance's HashConcurrency, added up) - 1 verifications are
	// still in flight to pass it. A login refused as busy was never
	// counted.
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
	if acctPK, _ := ddb.Str(acct, dynaguard.AttrPK); acct != nil && acctPK != k.unknownAccount {
		if u, err = decodeUser(acct); err != nil {
			return nil, errors.Join(ErrUnavailable, err)
		}
	} else if acctPK != k.unknownAccount {
		acct = nil // a marker without its account: counted like an unknown name
	}
	if u != nil && u.TOTPEnabled && u.fails >= int64(s.throttle.MaxFailures) {
		// Locked by failed second-factor codes (see CompleteLogin).
		return nil, &ThrottledError{Locked: true}
	}
	uc, ucLive := unknownCount(acct, u != nil, s.throttle.UnknownClients.Window, now)
	if !known {
		if uc.n >= int64(s.throttle.MaxFailures) {
			return nil, s.throttled(time.Unix(uc.last, 0).Add(s.throttle.UnknownClients.Window).Sub(now))
		}
		if w := s.throttle.UnknownClients.wait(uc, now); w > 0 {
			return nil, s.throttled(w)
		}
	}

	success, newHash, newPepper, err := s.checkPassword(ctx, res, now, password, u)
	if err != nil {
		return nil, err
	}

	if !success {
		if known {
			// The device's reservation is its count; nobody else's
			// counters move for it.
			return nil, ErrInvalidCredentials
		}
		countPK, isAccount := k.unknownAccount, false
		if u != nil {
			countPK, isAccount = userPK(u.ID), true
		}
		writes := make([]func(context.Context) error, 0, 2+len(ranges))
		writes = append(writes, func(ctx context.Context) error {
			return s.st.countUnknownClient(ctx, countPK, isAccount, ucLive, s.throttle.UnknownClients.Window, now)
		}, func(ctx context.Context) error {
			return s.st.countIPFailure(ctx, k.ip, now, k.ipEnd)
		})
		for _, r := range ranges {
			writes = append(writes, func(ctx context.Context) error { return s.st.countIPFailure(ctx, r.pk, now, r.end) })
		}
		if err := parallel(ctx, writes...); err != nil {
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
	if err := s.st.deleteItem(ctx, res.pk); err != nil {
		return nil, err
	}
	if t.uid == "" {
		s.deviceTrusted(ctx, dr, dev, u.ID, ip)
		s.issueDevice(dr, dev, u.ID)
	}
	return u, nil
}

// checkPassword is the part of an attempt that does the password work,
// with the caller holding a hashing slot: the attempt is counted (one
// conditional write), then exactly one verification runs, plus the
// upgraded hash on a success that needs one.
func (s *Users) checkPassword(ctx context.Context, res reservation, now time.Time, password string, u *User) (success bool, newHash, newPepper string, err error) {
	ok, cur, err := s.st.reserve(ctx, res.pk, res.seen, res.exists, res.lim, now, res.end)
	if err != nil {
		return false, "", "", err
	}
	if !ok {
		return false, "", "", s.throttled(res.lim.wait(cur, now))
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
