package users

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/dynaguard/dynaguard"
)

// Limit is one throttling rule: Free failed attempts are allowed, then
// each further attempt must wait Delay after the previous one, doubling
// with every further failure up to MaxDelay. Counters live in fixed windows
// (aligned to the Unix epoch) and start over when their window ends;
// DynamoDB's TTL removes old windows.
type Limit struct {
	Free     int
	Delay    time.Duration
	MaxDelay time.Duration
	Window   time.Duration
}

func (l Limit) withDefaults(free int) Limit {
	if l.Free <= 0 {
		l.Free = free
	}
	if l.Delay <= 0 {
		l.Delay = 30 * time.Second
	}
	if l.MaxDelay <= 0 {
		l.MaxDelay = time.Hour
	}
	if l.MaxDelay < l.Delay {
		l.MaxDelay = l.Delay
	}
	if l.Window < time.Second {
		l.Window = 24 * time.Hour
	}
	return l
}

// delay returns the wait imposed after n failures.
func (l Limit) delay(n int64) time.Duration {
	over := n - int64(l.Free)
	if over < 0 {
		return 0
	}
	if over >= 32 {
		return l.MaxDelay
	}
	d := l.Delay << over
	if d <= 0 || d > l.MaxDelay {
		return l.MaxDelay
	}
	return d
}

// wait returns how long an attempt at now must still wait given counter c.
func (l Limit) wait(c counter, now time.Time) time.Duration {
	d := l.delay(c.n)
	if d == 0 {
		return 0
	}
	next := time.Unix(c.last, 0).Add(d)
	if !now.Before(next) {
		return 0
	}
	return next.Sub(now)
}

// window names the window holding now — its length and index, so that
// counters kept under different configurations never share a key — and
// returns its end.
func (l Limit) window(now time.Time) (name string, end time.Time) {
	secs := int64(l.Window / time.Second)
	index := now.Unix() / secs
	return strconv.FormatInt(secs, 10) + "." + strconv.FormatInt(index, 10), time.Unix((index+1)*secs, 0)
}

// Throttle limits login attempts. Its defaults follow NIST SP 800-63B: at
// most MaxFailures (100) consecutive failures per account, and rising waits
// before that.
//
// Why the escalating delay is per account AND client address: a delay that
// applied to every client of an account would let an attacker keep the
// owner out for good from one address, by spending each attempt the moment
// the previous wait ends. Keyed by (login name, client address), an
// attacker's failures slow down that attacker's address only; the owner,
// from any other address, logs in without waiting. Guessing from many
// addresses is bounded by MaxFailures, which counts every failure of the
// account whatever its source, and by PerIP, which slows each address
// across all accounts (credential stuffing).
//
// MaxFailures is reached from one address no sooner than the delays allow
// (with the defaults: 5 at once, then 30 s, 1 min, 2 min ... 1 h — about
// four days for 100), and a successful login resets the account's count, so
// an owner who logs in now and then never reaches it; an account that does
// reach it is unlocked by a password reset (or Unlock), never by waiting.
//
// How exact each limit is under concurrency (many requests at once, on any
// number of instances):
//
//   - PerAccount is exact: every password or code check is paid for first
//     by a conditional write on its (login name, address) counter.
//   - MaxFailures is exact for second-factor codes (CompleteLogin,
//     ConfirmTOTP): each check first adds itself to the account's count,
//     in a conditional write that requires the count to be under
//     MaxFailures; at most MaxFailures codes are ever checked between two
//     successes, and none once it is reached.
//   - For passwords, MaxFailures holds to within the verifications running
//     at once. Counting every attempt on the account before verifying it
//     would cost every successful login two more writes (count, then
//     reset), so the count is read, and a failure added after the
//     verification, both while the attempt holds a hashing slot. When the
//     MaxFailures-th failure is counted, only attempts holding a slot can
//     still have read a lower count: at most MaxFailures + S - 1 passwords
//     are verified, S being the hashing slots of all instances together
//     (the sum of their HashConcurrency; by default, their CPUs).
//   - PerIP is read before an attempt and a failure added after it, so a
//     burst from one address can pass it by the attempts in flight (for
//     passwords, those holding or waiting up to HashWait for a hashing
//     slot). Each of those still needs its own PerAccount reservation, so
//     the overshoot is at most PerAccount.Free attempts per login name
//     tried, and for codes each also needs the account's password. PerIP
//     brakes credential stuffing; it is not an exact count.
type Throttle struct {
	// PerAccount limits failed attempts on one login name from one client
	// address. Default Free 5, Delay 30 s, MaxDelay 1 h, Window 24 h.
	PerAccount Limit
	// PerIP limits failed attempts from one client address on all
	// accounts together; looser than PerAccount because many people can
	// share an address. Default Free 50, Delay 30 s, MaxDelay 1 h,
	// Window 24 h.
	PerIP Limit
	// MaxFailures is the number of consecutive failed logins after which
	// an account is locked until its password is reset (Unlock also clears
	// it). Default 100.
	MaxFailures int
	// IPv6Prefix is the prefix length an IPv6 client address is counted
	// under (one subscriber usually has a whole /64). Default 64.
	IPv6Prefix int
}

func (t Throttle) withDefaults() Throttle {
	t.PerAccount = t.PerAccount.withDefaults(5)
	t.PerIP = t.PerIP.withDefaults(50)
	if t.MaxFailures <= 0 {
		t.MaxFailures = 100
	}
	if t.IPv6Prefix <= 0 || t.IPv6Prefix > 128 {
		t.IPv6Prefix = 64
	}
	return t
}

// source names the client address a counter is kept for: an IPv4 address,
// or the IPv6 prefix (IPv4-mapped IPv6 addresses count as IPv4). Requests
// without a valid address share one counter, so a caller that forgets to
// pass the address gets more throttling, never less.
func (t Throttle) source(ip netip.Addr) string {
	if !ip.IsValid() {
		return "none"
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.WithZone("").Prefix(t.IPv6Prefix)
	if err != nil {
		return ip.String()
	}
	return p.String()
}

// counter is the state of one throttling counter.
type counter struct {
	n    int64 // failures (for a login counter: attempts not yet known to have succeeded)
	last int64 // Unix seconds of the last counted attempt
}

// throttleID returns a keyed hash of parts, so that the table never holds
// login names (which are often passwords typed in the wrong field) or client
// addresses in the clear.
func (s *Users) throttleID(parts ...string) string {
	m := hmac.New(sha256.New, s.keys.Key(dynaguard.PurposeThrottleKey).Secret)
	m.Write([]byte(strings.Join(parts, "\x00")))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// throttleKeys returns the keys of the counters an attempt consults.
type throttleKeys struct {
	pair, ip          string    // current-window counters
	pairEnd, ipEnd    time.Time // their window ends (TTL)
	unknownAccount    string    // failure count of a login name with no account
	unknownAccountTTL time.Time
}

// unknownMemory is how long the failure count of a login name that has no
// account is kept after its last failure (an account's own count is kept
// until a success or reset).
const unknownMemory = 30 * 24 * time.Hour

func (s *Users) keysFor(account string, ip netip.Addr, now time.Time) throttleKeys {
	src := s.throttle.source(ip)
	pw, pairEnd := s.throttle.PerAccount.window(now)
	iw, ipEnd := s.throttle.PerIP.window(now)
	return throttleKeys{
		pair:              dynaguard.PrefixThrottle + "login#" + s.throttleID("login", account, src) + "#" + pw,
		ip:                dynaguard.PrefixThrottle + "ip#" + s.throttleID("ip", src) + "#" + iw,
		pairEnd:           pairEnd,
		ipEnd:             ipEnd,
		unknownAccount:    dynaguard.PrefixThrottle + "acct#" + s.throttleID("acct", account),
		unknownAccountTTL: now.Add(unknownMemory),
	}
}
