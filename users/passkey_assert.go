package users

// What every passkey assertion goes through — sign-in, the second step of
// a login, a step-up proof — in this order, cheapest and storage-free
// first:
//
//  1. the response is bounded (64 KB) and parsed;
//  2. its challenge is opened: our MAC, this purpose, this browser's
//     cookie, this session and account (but for sign-in), not expired —
//     no storage;
//  3. one BatchGetItem reads the credential (under every key of its
//     hash's purpose), the failure counters of the client address, its
//     ranges and the device cookie's, and — when the account is known
//     already (second step, step-up) — the account; sign-in reads the
//     account next, with one GetItem, since only the credential names it;
//  4. a throttled client is refused before any check;
//  5. the credential must be live (listed by its account, not cloned),
//     the user handle the account's, the origin one of Origins, the RP ID
//     hash RPID's, UP and UV set, the signature good — a failure is
//     counted like a failed password (see countPasskeyFailure);
//  6. one TransactWriteItems uses the challenge and advances the counter
//     (store.usePasskey). A counter that did not advance marks the
//     credential cloned and ends every session of the account (one more
//     TransactWriteItems) and tells its owner.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/dynaguard/dynaguard"
)

// assertion is a parsed response whose challenge opened.
type assertion struct {
	par *protocol.ParsedCredentialAssertionData
	ch  challenge
	pks []string // where its credential may be stored, current key first
}

// openAssertion does steps 1 and 2 for purpose, bound to account uid
// ("" for sign-in).
func (s *Users) openAssertion(ctx context.Context, response []byte, purpose ceremony, uid string) (*assertion, error) {
	if !s.passkeys.enabled() {
		return nil, ErrPasskeysDisabled
	}
	browser, ok := s.browserBinding(ctx, false)
	if !ok {
		return nil, ErrNoBrowserBinding
	}
	if len(response) == 0 || len(response) > maxPasskeyResponse {
		return nil, refuse("malformed")
	}
	par, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil || len(par.RawID) == 0 || len(par.RawID) > 1023 {
		return nil, refuse("malformed")
	}
	b := binding{browser: browser}
	if purpose != ceremonyLogin {
		b.session, b.user = s.sessionID(ctx), uid
	}
	ch, ok := s.openChallenge(par.Response.CollectedClientData.Challenge, purpose, b)
	if !ok {
		return nil, refuse("challenge")
	}
	return &assertion{par: par, ch: ch, pks: s.credentialPKs(par.RawID)}, nil
}

// credentialIn returns the assertion's credential from a read (the first
// of its keys found).
func (a *assertion) credentialIn(items map[string]item) (credential, bool) {
	for _, pk := range a.pks {
		if it := items[pk]; it != nil {
			return decodeCredential(it)
		}
	}
	return credential{}, false
}

// passkeyClient is the throttling state of an assertion's client: the
// counters read with the credential.
type passkeyClient struct {
	ip     netip.Addr
	ipPK   string
	ipEnd  time.Time
	ranges []rangeKey
	dev    *device
	dr     *deviceRequest
	devPK  string
	devEnd time.Time
}

// client names the counters of the request's client; keys lists them for
// the read.
func (s *Users) passkeyClient(ctx context.Context, ip netip.Addr, now time.Time) (*passkeyClient, []string) {
	k := s.keysFor("", ip, now)
	pc := &passkeyClient{ip: ip, ipPK: k.ip, ipEnd: k.ipEnd, ranges: s.rangeKeys(ip, now)}
	keys := []string{pc.ipPK}
	for _, r := range pc.ranges {
		keys = append(keys, r.pk)
	}
	if pc.dev, pc.dr = s.deviceOf(ctx); pc.dev != nil {
		pc.devPK, pc.devEnd = s.deviceKey(pc.dev, now)
		keys = append(keys, pc.devPK)
	}
	return pc, keys
}

// wait is how long the client must wait before an assertion for account
// acct (nil: not known) is checked: a known device by its own counter,
// others by the address's, its ranges' and the account's unknown-client
// count — as for passwords (attempt).
func (s *Users) passkeyWait(pc *passkeyClient, items map[string]item, acct item, uid string, now time.Time) time.Duration {
	if pc.dev.isFor(uid) {
		return s.throttle.PerDevice.wait(liveCounter(items, pc.devPK, now), now)
	}
	wait := s.throttle.PerIP.wait(liveCounter(items, pc.ipPK, now), now)
	for _, r := range pc.ranges {
		wait = max(wait, r.lim.wait(liveCounter(items, r.pk, now), now))
	}
	if acct != nil {
		uc, _ := unknownCount(acct, true, s.throttle.UnknownClients.Window, now)
		if uc.n >= int64(s.throttle.MaxFailures) {
			wait = max(wait, time.Unix(uc.last, 0).Add(s.throttle.UnknownClients.Window).Sub(now))
		}
		wait = max(wait, s.throttle.UnknownClients.wait(uc, now))
	}
	return wait
}

// countPasskeyFailure counts a refused assertion as a failed password is
// counted, with the writes sent at once: a known device's on its own
// counter only; others on the client address and its ranges and — when the
// credential names an account — the account's unknown-client count. An
// unknown credential counts against the address only: it names no account.
func (s *Users) countPasskeyFailure(ctx context.Context, pc *passkeyClient, acct item, uid string, now time.Time) error {
	if pc.dev.isFor(uid) {
		return s.st.countIPFailure(ctx, pc.devPK, now, pc.devEnd)
	}
	writes := []func(context.Context) error{func(ctx context.Context) error {
		return s.st.countIPFailure(ctx, pc.ipPK, now, pc.ipEnd)
	}}
	for _, r := range pc.ranges {
		writes = append(writes, func(ctx context.Context) error { return s.st.countIPFailure(ctx, r.pk, now, r.end) })
	}
	if acct != nil {
		_, live := unknownCount(acct, true, s.throttle.UnknownClients.Window, now)
		writes = append(writes, func(ctx context.Context) error {
			return s.st.countUnknownClient(ctx, userPK(uid), true, live, s.throttle.UnknownClients.Window, now)
		})
	}
	return parallel(ctx, writes...)
}

// verify is step 5 for the assertion a of credential c of account u: nil,
// or the refusal (its reason for the event).
func (s *Users) verifyAssertion(a *assertion, c credential, u *User) error {
	r := a.par.Response
	switch {
	case u == nil || u.Disabled || !u.listsPasskey(c.pk):
		return refuse("unknown_credential")
	case c.cloned:
		return &passkeyRefused{reason: "cloned", cause: ErrPasskeyCloned}
	case len(u.handle) == 0 || subtle.ConstantTimeCompare(r.UserHandle, u.handle) != 1:
		return refuse("wrong_account")
	case !slices.Contains(s.passkeys.Origins, r.CollectedClientData.Origin):
		return refuse("origin")
	}
	rp := sha256.Sum256([]byte(s.passkeys.RPID))
	switch {
	case !bytes.Equal(r.AuthenticatorData.RPIDHash, rp[:]):
		return refuse("rp_id")
	case !r.AuthenticatorData.Flags.UserPresent(), !r.AuthenticatorData.Flags.UserVerified():
		return refuse("user_verification")
	case !backupFlagsValid(r.AuthenticatorData.Flags, c.be):
		return refuse("backup_flags")
	}
	// No extension is requested for an assertion: any client extension
	// output is unsolicited, and refused (WebAuthn L3 §7.2 step 4).
	if err := a.par.ClientExtensionResults.Verify(protocol.SessionExtensions{}, protocol.AssertCeremony,
		protocol.UnsolicitedOutputPolicyReject); err != nil {
		return refuse("extensions")
	}
	// The library re-checks all of the above and the signature: it is the
	// authority, the checks before it only name the reason.
	if err := a.par.Verify(a.ch.raw, s.passkeys.RPID, "", s.passkeys.Origins, nil, nil,
		protocol.TopOriginExplicitVerificationMode, false, true, true, c.pub, protocol.SignaturePolicy{}); err != nil {
		return refuse("signature")
	}
	return nil
}

// acceptAssertion is step 6: the one write, and what its outcome means.
func (s *Users) acceptAssertion(ctx context.Context, a *assertion, c credential, u *User, ip netip.Addr, now time.Time) error {
	flags := a.par.Response.AuthenticatorData.Flags
	var move *passkeyMove
	if cur := a.pks[0]; c.pk != cur {
		// Stored under an older key's hash: moved by the same write.
		move = newPasskeyMove(c, u, cur)
	}
	out, err := s.st.usePasskey(ctx, a.ch.markerPK(), a.ch.expires.Add(markerMargin), c.pk, u.ID,
		a.par.Response.AuthenticatorData.Counter, flags.HasBackupEligible(), flags.HasBackupState(), now, move,
		a.ch.expires.Add(-s.passkeys.ChallengeTTL))
	if err != nil {
		return err
	}
	switch out {
	case passkeyUsed:
		if move != nil {
			u.passkeys = move.list
			s.log.InfoContext(ctx, "users: passkey moved to the current key's hash", "user", u.ID, "passkey", passkeyID(move.to))
		}
		return nil
	case passkeyReplayed:
		s.log.WarnContext(ctx, "users: a passkey response whose challenge was already used was presented again", "user", u.ID)
		s.event(ctx, dynaguard.EventPasskeyChallengeReplayed, a.ch.purpose.String(), u.ID, ip)
		return refuse("replayed")
	case passkeyGone:
		return refuse("unknown_credential")
	case passkeyCloned:
		return &passkeyRefused{reason: "cloned", cause: ErrPasskeyCloned}
	case passkeyBackupFlags:
		return refuse("backup_flags")
	case passkeyOverlapped:
		// Out of order, not cloned: one authenticator signed two challenges
		// (counters n and n+1) and n+1 was accepted first — it was accepted
		// after this assertion's challenge was issued, so the ceremonies
		// overlapped. Policy: refuse this one (its counter is stale: the
		// credential's state only moves forward) without marking the
		// credential. A clone gains nothing from it: its counter must
		// still be above the stored one to be accepted, and the genuine
		// key's next ceremony (a challenge issued after the clone's use,
		// counter below it) marks the credential cloned as before. The
		// exemption is bounded by the challenge lifetime and needs a
		// counter strictly between 0 and the stored one: an equal counter
		// or a 0 after counting is always a clone.
		s.log.WarnContext(ctx, "users: a passkey assertion arrived after a later one of the same credential; refused, not marked cloned",
			"user", u.ID, "stored", c.counter, "presented", a.par.Response.AuthenticatorData.Counter)
		return refuse("out_of_order")
	}
	// The counter did not advance: a genuine authenticator never does that.
	first, err := s.st.markCloned(ctx, c.pk, u.ID, now)
	if err != nil {
		return err
	}
	if first {
		s.log.ErrorContext(ctx, "users: a passkey's signature counter went back; the credential is marked cloned and refused from now on",
			"user", u.ID, "stored", c.counter, "presented", a.par.Response.AuthenticatorData.Counter)
		s.event(ctx, dynaguard.EventPasskeyCloned, "", u.ID, ip)
		// The mark raised the session epoch: every session fails its next
		// check; the store drops them now.
		s.revokeAll(ctx, u.ID, "")
		s.notify(ctx, Message{Kind: MessagePasskeyCloned, To: u.Email, UserID: u.ID, IP: ip, PasskeyName: c.name})
	}
	return &passkeyRefused{reason: "cloned", cause: ErrPasskeyCloned}
}

// backupFlagsValid reports whether an assertion's backup flags may be
// accepted for a credential registered with backup eligibility be: BE is
// fixed for the life of a credential, and BS (backed up) is meaningless
// without BE (WebAuthn L3 §6.1.3 steps 18-19).
func backupFlagsValid(f protocol.AuthenticatorFlags, be bool) bool {
	return f.HasBackupEligible() == be && (f.HasBackupEligible() || !f.HasBackupState())
}

// passkeyEvent emits passkey.refused for a refused assertion (not for a
// storage failure or a throttled client, which have their own events, nor
// for a replay, whose event acceptAssertion emitted).
func (s *Users) passkeyEvent(ctx context.Context, uid string, ip netip.Addr, err error) {
	var pr *passkeyRefused
	if errors.As(err, &pr) && pr.reason != "replayed" {
		s.event(ctx, dynaguard.EventPasskeyRefused, pr.reason, uid, ip)
	}
}

// checkAssertion runs steps 3 to 6 for a, when the account uid is known
// in advance (the second step of a login, a step-up), and returns the
// account. One BatchGetItem, one TransactWriteItems.
//
// pre, when set, vets the account before anything is checked or written
// (the second step's pending login must still be valid): its error is
// returned as it is.
func (s *Users) checkAssertion(ctx context.Context, a *assertion, uid string, ip netip.Addr, pre func(*User) error) (_ *User, err error) {
	defer func() { s.passkeyEvent(ctx, uid, ip, err) }()
	now := s.now()
	pc, keys := s.passkeyClient(ctx, ip, now)
	keys = append(keys, userPK(uid))
	keys = append(keys, a.pks...)
	items, err := s.st.batchGet(ctx, keys...)
	if err != nil {
		return nil, err
	}
	acct := items[userPK(uid)]
	if w := s.passkeyWait(pc, items, acct, uid, now); w > 0 {
		return nil, s.throttled(w)
	}
	var u *User
	if acct != nil {
		if u, err = decodeUser(acct); err != nil {
			return nil, errors.Join(ErrUnavailable, err)
		}
	}
	if pre != nil {
		if err := pre(u); err != nil {
			return nil, err
		}
	}
	c, found := a.credentialIn(items)
	if !found || c.uid != uid {
		// Unknown, or another account's: this account's passkeys only.
		if err := s.countPasskeyFailure(ctx, pc, acct, uid, now); err != nil {
			return nil, err
		}
		if found {
			return nil, refuse("wrong_account")
		}
		return nil, refuse("unknown_credential")
	}
	if err := s.verifyAssertion(a, c, u); err != nil {
		if cerr := s.countPasskeyFailure(ctx, pc, acct, uid, now); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	if err := s.acceptAssertion(ctx, a, c, u, ip, now); err != nil {
		return nil, err
	}
	return u, nil
}
