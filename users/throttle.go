package users

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
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

// Throttle limits login attempts. It follows OWASP's "Slow Down Online
// Guessing Attacks with Device Cookies" and NIST SP 800-63B: guessing is
// slowed per account whatever the number of addresses it comes from, and
// the owner's own browser keeps working while it is.
//
// A browser that has logged in to an account holds a device cookie for it
// (see DeviceCookieConfig). An attempt that presents a valid one for the
// account it names is a known client: it is counted against that device
// alone (PerDevice) and no other counter applies to it, so nobody else's
// failures — from any number of addresses — slow it down. Every other
// attempt is an unknown client, and meets these limits, checked before any
// password work:
//
//   - UnknownClients: the failures of unknown clients on one account,
//     from every address together. Past its Free failures (default 10),
//     each further unknown-client attempt on the account waits a delay that
//     doubles with every failure — 429 with Retry-After, whatever address
//     it comes from. At MaxFailures (default 100, NIST's cap) unknown
//     clients are refused until the count lapses: UnknownClients.Window
//     after the last failure, or at once when the password is reset. There
//     is no lock that only a reset lifts, and known devices never meet it.
//   - PerAccount: one login name from one client address, so one address
//     slows down before the account-wide count does.
//   - PerIP and Ranges: one client address (an IPv4 address, or the IPv6
//     prefix IPv6Prefix) and its wider ranges (by default the IPv4 /24, the
//     IPv6 /56 and /48) over all accounts — credential stuffing, and one
//     allocation posing as thousands of clients. Wider ranges get looser
//     limits, because more people share them.
//
// A login name and its account's other login name (email, username) share
// the account's counts: the unknown-client count lives on the account item.
//
// How exact each limit is under concurrency (many requests at once, on any
// number of instances):
//
//   - PerAccount and PerDevice are exact: every password check is paid for
//     first by a conditional write on its (login name, address) counter,
//     or on its device's counter.
//   - UnknownClients and MaxFailures hold to within the verifications
//     running at once: the count is read, and a failure added after the
//     verification, both while the attempt holds a hashing slot (counting
//     every attempt before verifying it would cost every successful login
//     two more writes). At most S - 1 more passwords are verified than the
//     limit allows, S being the hashing slots of all instances together.
//   - For second-factor codes, MaxFailures counts the account's failed
//     codes (a separate count) exactly: see CompleteLogin.
//   - PerIP and Ranges are read before an attempt and a failure added
//     after it, so a burst from one address can pass them by the attempts
//     in flight; each of those still needs its own PerAccount reservation.
//     They brake credential stuffing; they are not exact counts.
type Throttle struct {
	// PerAccount limits failed attempts on one login name from one client
	// address. Default Free 5, Delay 30 s, MaxDelay 1 h, Window 24 h.
	PerAccount Limit
	// PerIP limits failed attempts from one client address on all
	// accounts together; looser than PerAccount because many people can
	// share an address. Default Free 50, Delay 30 s, MaxDelay 1 h,
	// Window 24 h.
	PerIP Limit
	// MaxFailures is the number of failed unknown-client logins after which
	// an account refuses unknown clients until UnknownClients.Window has
	// passed since the last failure, or the password is reset (Unlock also
	// clears it). Known devices are not affected. For second-factor codes,
	// it is the number of consecutive failed codes after which the account
	// needs a reset or Unlock. Default 100.
	MaxFailures int
	// IPv6Prefix is the prefix length an IPv6 client address is counted
	// under (one subscriber usually has a whole /64). Default 64.
	IPv6Prefix int

	// UnknownClients limits failed attempts on one account from clients
	// without its device cookie, from every address together. Its Window
	// is how long after the last failure the count lapses (a sliding
	// window, not an epoch-aligned one). Default Free 10, Delay 30 s,
	// MaxDelay 1 h, Window 24 h.
	UnknownClients Limit
	// PerDevice limits failed attempts from one device cookie: a small
	// lockout of its own, so that a copied device cookie buys no more than
	// a few guesses. Default Free 5, Delay 1 min, MaxDelay 1 h,
	// Window 24 h.
	PerDevice Limit
	// Ranges are the wider address ranges whose failures are counted too,
	// each with its own (looser) limit. Nil means the default: the IPv4 /24
	// and IPv6 /56 with Free 200, and the IPv6 /48 with Free 500 (Delay
	// 30 s, MaxDelay 1 h, Window 24 h). An empty, non-nil slice counts no
	// range. At most 4.
	Ranges []RangeLimit
}

// RangeLimit is the limit of one wider address range: a client address is
// also counted under its IPv4Bits prefix (IPv4) or IPv6Bits prefix (IPv6).
// A zero length leaves that family out of this range.
type RangeLimit struct {
	IPv4Bits, IPv6Bits int
	Limit
}

// maxRanges bounds the range counters an attempt reads and writes.
const maxRanges = 4

func (t Throttle) withDefaults() Throttle {
	t.PerAccount = t.PerAccount.withDefaults(5)
	t.PerIP = t.PerIP.withDefaults(50)
	if t.MaxFailures <= 0 {
		t.MaxFailures = 100
	}
	if t.IPv6Prefix <= 0 || t.IPv6Prefix > 128 {
		t.IPv6Prefix = 64
	}
	t.UnknownClients = t.UnknownClients.withDefaults(10)
	if t.PerDevice.Delay <= 0 {
		t.PerDevice.Delay = time.Minute
	}
	t.PerDevice = t.PerDevice.withDefaults(5)
	if t.Ranges == nil {
		t.Ranges = []RangeLimit{
			{IPv4Bits: 24, IPv6Bits: 56, Limit: Limit{Free: 200}},
			{IPv6Bits: 48, Limit: Limit{Free: 500}},
		}
	}
	ranges := make([]RangeLimit, len(t.Ranges))
	for i, r := range t.Ranges {
		r.Limit = r.Limit.withDefaults(200)
		ranges[i] = r
	}
	t.Ranges = ranges
	return t
}

// validate reports a configuration that cannot be honoured.
func (t Throttle) validate() error {
	if len(t.Ranges) > maxRanges {
		return fmt.Errorf("users: Throttle.Ranges has %d ranges; at most %d", len(t.Ranges), maxRanges)
	}
	for _, r := range t.Ranges {
		if r.IPv4Bits < 0 || r.IPv4Bits > 32 || r.IPv6Bits < 0 || r.IPv6Bits > 128 {
			return fmt.Errorf("users: Throttle.Ranges: prefix lengths /%d, /%d out of range", r.IPv4Bits, r.IPv6Bits)
		}
	}
	return nil
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
	pair, ip       string    // current-window counters
	pairEnd, ipEnd time.Time // their window ends (TTL)
	unknownAccount string    // unknown-client count of a login name with no account
}

func (s *Users) keysFor(account string, ip netip.Addr, now time.Time) throttleKeys {
	src := s.throttle.source(ip)
	pw, pairEnd := s.throttle.PerAccount.window(now)
	iw, ipEnd := s.throttle.PerIP.window(now)
	return throttleKeys{
		pair:           dynaguard.PrefixThrottle + "login#" + s.throttleID("login", account, src) + "#" + pw,
		ip:             dynaguard.PrefixThrottle + "ip#" + s.throttleID("ip", src) + "#" + iw,
		pairEnd:        pairEnd,
		ipEnd:          ipEnd,
		unknownAccount: dynaguard.PrefixThrottle + "acct#" + s.throttleID("acct", account),
	}
}
