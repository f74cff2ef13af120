package users

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/dynaguard/dynaguard"
)

// DeviceCookieConfig configures the device cookie (OWASP, "Slow Down
// Online Guessing Attacks with Device Cookies"): after a successful
// password check, the browser gets a cookie that says "this browser has
// logged in to this account before". Attempts that present it are counted
// per device and never slowed by other clients' failures (see Throttle).
//
// The cookie is issued, read and checked by the library: Authenticate reads
// it from, and sets it on, the request that LoadUser (or RequireUser,
// RequireRecentAuth) wraps. A login handler outside those middlewares
// still works; its attempts are all unknown clients.
//
// The cookie holds a random 128-bit device ID and a keyed hash of the
// account ID (never the login name), MACed with HMAC-SHA256 under its own
// key purpose; it carries no authority besides the throttling, costs no
// storage until the device fails a password, and is kept across logout
// (it is not a session). One browser holds one device cookie: logging in
// to another account replaces it.
type DeviceCookieConfig struct {
	// Name of the cookie. Default "__Host-dg-device": the __Host- prefix
	// makes browsers refuse it unless it is Secure, host-only and Path=/,
	// so a sibling subdomain cannot plant one. With Insecure, "dg-device".
	Name string
	// Insecure drops the Secure attribute and the __Host- prefix, for
	// plain-HTTP development on localhost only.
	Insecure bool
	// MaxAge is how long the browser keeps it. Default 400 days (the most
	// browsers allow); each successful login renews it.
	MaxAge time.Duration
}

func (c DeviceCookieConfig) withDefaults() DeviceCookieConfig {
	if c.Name == "" {
		c.Name = "__Host-dg-device"
		if c.Insecure {
			c.Name = "dg-device"
		}
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 400 * 24 * time.Hour
	}
	return c
}

func (c DeviceCookieConfig) validate() error {
	if c.Insecure && (strings.HasPrefix(c.Name, "__Host-") || strings.HasPrefix(c.Name, "__Secure-")) {
		return errors.New("users: DeviceCookie.Name " + c.Name + " needs the Secure attribute, which Insecure drops")
	}
	if !validCookieName(c.Name) {
		return errors.New("users: DeviceCookie.Name is not a valid cookie name")
	}
	return nil
}

func validCookieName(n string) bool {
	if n == "" {
		return false
	}
	for _, r := range n {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", r) {
			return false
		}
	}
	return true
}

// purposeDevice keys the device cookie's MAC and its account tag. It is the
// users package's own purpose, so that no other key of the keyring can
// make or check a device cookie.
const purposeDevice dynaguard.Purpose = "device-cookie"

// Device cookie layout: version byte, device ID, account tag, MAC.
const (
	deviceVersion = 1
	deviceIDLen   = 16
	deviceTagLen  = 16
	deviceMACLen  = 32
	devicePayload = 1 + deviceIDLen + deviceTagLen
	deviceRawLen  = devicePayload + deviceMACLen
)

var deviceEncoding = base64.RawURLEncoding.Strict()

// device is a device cookie whose MAC checked out.
type device struct {
	id  [deviceIDLen]byte
	tag [deviceTagLen]byte
	key dynaguard.DerivedKey // the key it verified under
}

// deviceTag is the account tag of a device cookie for uid under key.
func deviceTag(key dynaguard.DerivedKey, uid string) [deviceTagLen]byte {
	m := hmac.New(sha256.New, key.Secret)
	m.Write([]byte("dynaguard device account v1\x00" + uid))
	var t [deviceTagLen]byte
	copy(t[:], m.Sum(nil))
	return t
}

func deviceMAC(key dynaguard.DerivedKey, payload []byte) []byte {
	m := hmac.New(sha256.New, key.Secret)
	m.Write([]byte("dynaguard device cookie v1\x00"))
	m.Write(payload)
	return m.Sum(nil)
}

// isFor reports whether d was issued for the account uid.
func (d *device) isFor(uid string) bool {
	if d == nil || uid == "" {
		return false
	}
	t := deviceTag(d.key, uid)
	return subtle.ConstantTimeCompare(t[:], d.tag[:]) == 1
}

// newDeviceCookie returns the value of a fresh device cookie for uid.
func (s *Users) newDeviceCookie(uid string) string {
	key := s.keys.Key(purposeDevice)
	raw := make([]byte, devicePayload, deviceRawLen)
	raw[0] = deviceVersion
	_, _ = rand.Read(raw[1 : 1+deviceIDLen])
	tag := deviceTag(key, uid)
	copy(raw[1+deviceIDLen:], tag[:])
	raw = append(raw, deviceMAC(key, raw)...)
	return deviceEncoding.EncodeToString(raw)
}

// parseDevice checks a device cookie value against every key of the
// purpose (a rotated secret keeps devices known); nil for anything that is
// not a device cookie this server issued.
func (s *Users) parseDevice(v string) *device {
	if len(v) != deviceEncoding.EncodedLen(deviceRawLen) {
		return nil
	}
	raw, err := deviceEncoding.DecodeString(v)
	if err != nil || len(raw) != deviceRawLen || raw[0] != deviceVersion {
		return nil
	}
	for _, k := range s.keys.Keys(purposeDevice) {
		if hmac.Equal(deviceMAC(k, raw[:devicePayload]), raw[devicePayload:]) {
			d := &device{key: k}
			copy(d.id[:], raw[1:])
			copy(d.tag[:], raw[1+deviceIDLen:])
			return d
		}
	}
	return nil
}

// deviceRequest is what LoadUser records for Authenticate: the request's
// device cookie (as sent; checked when used) and where to set a new one.
type deviceRequest struct {
	w      http.ResponseWriter
	cookie string
}

// deviceOf returns the request's verified device cookie (nil when none)
// and the request record (nil outside LoadUser). LoadUser keeps the request
// and its response writer on the request's one context value; the cookie
// is read here, when a login needs it, so that other requests pay nothing
// for device cookies. Of several cookies of that name (a sibling subdomain
// may set one where __Host- is not used), the last well-formed one is
// kept; only one that verifies is ever used.
func (s *Users) deviceOf(ctx context.Context) (*device, *deviceRequest) {
	l, ok := loadedFrom(ctx)
	if !ok || l.req == nil {
		return nil, nil
	}
	dr := &deviceRequest{w: l.w}
	for _, c := range l.req.CookiesNamed(s.device.Name) {
		if len(c.Value) == deviceEncoding.EncodedLen(deviceRawLen) {
			dr.cookie = c.Value
		}
	}
	if dr.cookie == "" {
		return nil, dr
	}
	return s.parseDevice(dr.cookie), dr
}

// issueDevice sets a device cookie for uid on the response: a fresh one,
// or the request's own renewed when it already names this account (so the
// device keeps its ID, and its count).
func (s *Users) issueDevice(dr *deviceRequest, d *device, uid string) {
	if dr == nil || dr.w == nil {
		return
	}
	v := dr.cookie
	if !d.isFor(uid) {
		v = s.newDeviceCookie(uid)
	}
	http.SetCookie(dr.w, &http.Cookie{
		Name:     s.device.Name,
		Value:    v,
		Path:     "/",
		MaxAge:   int(s.device.MaxAge / time.Second),
		Secure:   !s.device.Insecure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}

// deviceKey is the counter of failed attempts from device d.
func (s *Users) deviceKey(d *device, now time.Time) (pk string, end time.Time) {
	w, end := s.throttle.PerDevice.window(now)
	return dynaguard.PrefixThrottle + "dev#" + s.throttleID("dev", string(d.id[:])) + "#" + w, end
}

// rangeKey is one wider address range's failure counter.
type rangeKey struct {
	pk  string
	end time.Time
	lim Limit
}

// rangeKeys returns the range counters of a client address (none for an
// attempt without a valid address, which already shares one PerIP
// counter with every other such attempt).
func (s *Users) rangeKeys(ip netip.Addr, now time.Time) []rangeKey {
	if !ip.IsValid() {
		return nil
	}
	ip = ip.Unmap().WithZone("")
	keys := make([]rangeKey, 0, len(s.throttle.Ranges))
	for _, r := range s.throttle.Ranges {
		bits := r.IPv6Bits
		if ip.Is4() {
			bits = r.IPv4Bits
		}
		if bits == 0 {
			continue
		}
		p, err := ip.Prefix(bits)
		if err != nil {
			continue
		}
		w, end := r.window(now)
		keys = append(keys, rangeKey{pk: dynaguard.PrefixThrottle + "net#" + s.throttleID("net", p.String()) + "#" + w, end: end, lim: r.Limit})
	}
	return keys
}
