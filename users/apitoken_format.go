package users

import (
	"cmp"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
)

// Token layouts. Both are opaque to clients: a prefix that says what the
// token is (so a token pasted in the wrong place, or leaked into a log, is
// recognisable and refused at once) and base64url of a binary record.
//
//	refresh  "dgr_" version(1) kid(8) fid(16) fs(16) secret(32) uvarint(gen, cv, se, at) uid mac(32)
//	access   "dga_" version(1) kid(8) exp(8) at(8) fid(16) uvarint(cv, se) uid mac(32)
//
// fid names the family (public: it is in access tokens and on the sessions
// page); fs is the family's secret, the same in every generation; secret
// is the 256 random bits of this one token; gen its generation. Only keyed
// hashes of fs and of (fid, gen, secret) are stored (purposeAPIRefresh):
// a table dump holds nothing that refreshes, revokes or derives a token.
// uid, cv, se and at (the login's time) are claims that the refresh's
// write conditions compare with the family item and the account, so they
// cannot be altered without the write failing.
//
// The access token's MAC is HMAC-SHA256 under the key of purposeAPIAccess
// named by kid (the DerivedKey.ID), so tokens made before a secret rotation
// still verify while the previous secret is in the keyring. The refresh
// token's MAC is the same under purposeAPIRefreshMAC, with its own domain
// string: a refresh or revoke token that this keyring did not make — a
// chosen user ID (which every access token shows) with a random family ID —
// is refused in memory, before the write that would otherwise be spent on
// the victim's account item. The MAC proves origin only; the family's
// secret and the stored hash still decide whether the token is current.
// Neither token is encrypted: uid, cv, se, the login time and (access) the
// expiry are readable by whoever holds the token.
const (
	refreshPrefix = "dgr_"
	accessPrefix  = "dga_"
	tokenVersion  = 1

	famIDLen     = 16
	famSecretLen = 16
	refreshLen   = 32
	kidLen       = 8
	macLen       = sha256.Size

	// maxUIDLen bounds the user ID a token may carry (IDs this package
	// makes have 26 characters; imported accounts may have others).
	maxUIDLen = 128
	// maxTokenLen bounds what is decoded at all.
	maxTokenLen = 512
)

var apiEncoding = base64.RawURLEncoding.Strict()

// family is a refresh-token family at one generation.
type family struct {
	id     string // base64url(fid)
	fid    [famIDLen]byte
	fs     [famSecretLen]byte
	secret [refreshLen]byte
	gen    uint64
	uid    string
	cv, se int64
	at     int64 // the login's time, Unix seconds
	name   string
}

func newFamily(u *User, name string, now time.Time) *family {
	f := &family{gen: 1, uid: u.ID, cv: u.credVersion, se: u.epoch, at: now.Unix(), name: name}
	fill(f.fid[:], f.fs[:], f.secret[:])
	f.id = apiEncoding.EncodeToString(f.fid[:])
	return f
}

func fill(bufs ...[]byte) {
	for _, b := range bufs {
		if _, err := rand.Read(b); err != nil {
			panic(err) // crypto/rand never fails on supported platforms
		}
	}
}

// next is the family at the next generation, with a fresh secret.
func (f *family) next() *family {
	n := *f
	n.gen++
	fill(n.secret[:])
	return &n
}

func (s *Users) refreshToken(f *family) string {
	key := s.refreshKeys[0]
	b := make([]byte, 0, 1+kidLen+famIDLen+famSecretLen+refreshLen+4*binary.MaxVarintLen64+len(f.uid)+macLen)
	b = append(b, tokenVersion)
	b = append(b, key.ID...)
	b = append(b, f.fid[:]...)
	b = append(b, f.fs[:]...)
	b = append(b, f.secret[:]...)
	b = binary.AppendUvarint(b, f.gen)
	b = binary.AppendUvarint(b, uint64(f.cv))
	b = binary.AppendUvarint(b, uint64(f.se))
	b = binary.AppendUvarint(b, uint64(f.at))
	b = append(b, f.uid...)
	sum := tokenSum(key, refreshDomain, b)
	b = append(b, sum[:]...)
	return refreshPrefix + apiEncoding.EncodeToString(b)
}

// parseRefresh checks a refresh token's MAC, in memory, and decodes it;
// whether it is the family's current token only the family's write can
// say.
func (s *Users) parseRefresh(tok string) (*family, bool) {
	raw, ok := decodeAPIToken(tok, refreshPrefix)
	if !ok || len(raw) < 1+kidLen+famIDLen+famSecretLen+refreshLen+4+1+macLen || raw[0] != tokenVersion {
		return nil, false
	}
	payload, mac := raw[:len(raw)-macLen], raw[len(raw)-macLen:]
	if !macValid(s.refreshKeys, refreshDomain, payload, mac) {
		return nil, false
	}
	f := &family{}
	p := payload[1+kidLen:]
	p = p[copy(f.fid[:], p):]
	p = p[copy(f.fs[:], p):]
	p = p[copy(f.secret[:], p):]
	var vals [4]uint64
	for i := range vals {
		v, n := binary.Uvarint(p)
		if n <= 0 || v > 1<<62 {
			return nil, false
		}
		vals[i], p = v, p[n:]
	}
	f.gen, f.cv, f.se, f.at = vals[0], int64(vals[1]), int64(vals[2]), int64(vals[3])
	if f.gen == 0 || !validUID(p) {
		return nil, false
	}
	f.uid = string(p)
	f.id = apiEncoding.EncodeToString(f.fid[:])
	return f, true
}

func decodeAPIToken(tok, prefix string) ([]byte, bool) {
	body, ok := strings.CutPrefix(tok, prefix)
	if !ok || len(tok) > maxTokenLen {
		return nil, false
	}
	raw, err := apiEncoding.DecodeString(body)
	return raw, err == nil
}

func validUID(p []byte) bool {
	if len(p) == 0 || len(p) > maxUIDLen {
		return false
	}
	for _, c := range p {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	return true
}

func validFamilyID(id string) bool {
	b, err := apiEncoding.DecodeString(id)
	return err == nil && len(b) == famIDLen
}

// familyHash is the stored form of a family's secret.
func familyHash(key dynaguard.DerivedKey, fid, fs []byte) []byte {
	m := hmac.New(sha256.New, key.Secret)
	m.Write([]byte("dynaguard api family v1\x00"))
	m.Write(fid)
	m.Write(fs)
	return m.Sum(nil)
}

// refreshHash is the stored form of one refresh token of a family.
func refreshHash(key dynaguard.DerivedKey, f *family) []byte {
	m := hmac.New(sha256.New, key.Secret)
	m.Write([]byte("dynaguard api refresh v1\x00"))
	m.Write(f.fid[:])
	var g [8]byte
	binary.BigEndian.PutUint64(g[:], f.gen)
	m.Write(g[:])
	m.Write(f.secret[:])
	return m.Sum(nil)
}

// accessClaims is what a verified access token says.
type accessClaims struct {
	uid    string
	fid    string
	cv, se int64
	exp    time.Time
	at     time.Time
}

// accessExpiry is when an access token of f made at now expires: after
// AccessLifetime, or at the family's absolute end if that comes first.
func (s *Users) accessExpiry(f *family, now time.Time) time.Time {
	return minTime(now.Add(s.apiTokens.AccessLifetime), time.Unix(f.at, 0).Add(s.apiTokens.AbsoluteLifetime))
}

func (s *Users) accessToken(f *family, now time.Time) string {
	key := s.accessKeys[0]
	b := make([]byte, 0, 1+kidLen+16+famIDLen+2*binary.MaxVarintLen64+len(f.uid)+macLen)
	b = append(b, tokenVersion)
	b = append(b, key.ID...)
	// An access token never outlives its family's absolute end: one
	// minted by a refresh just before it ends with it.
	exp := s.accessExpiry(f, now)
	b = binary.BigEndian.AppendUint64(b, uint64(exp.Unix()))
	b = binary.BigEndian.AppendUint64(b, uint64(f.at))
	b = append(b, f.fid[:]...)
	b = binary.AppendUvarint(b, uint64(f.cv))
	b = binary.AppendUvarint(b, uint64(f.se))
	b = append(b, f.uid...)
	sum := tokenSum(key, accessDomain, b)
	b = append(b, sum[:]...)
	return accessPrefix + apiEncoding.EncodeToString(b)
}

// tokenMACs pools keyed HMAC states per token key, as authMACs does for
// session auth hashes: a bearer request checks one MAC, and a fresh
// hmac.New there was most of its allocations.
var tokenMACs sync.Map // string(key.Secret) → *sync.Pool of *authState

// tokenSum is HMAC-SHA256(key, domain payload). The keys of access and
// refresh tokens are of different purposes, and each kind has its own
// domain string besides.
func tokenSum(key dynaguard.DerivedKey, domain, payload []byte) [sha256.Size]byte {
	p, ok := tokenMACs.Load(string(key.Secret))
	if !ok {
		secret := key.Secret
		p, _ = tokenMACs.LoadOrStore(string(secret), &sync.Pool{New: func() any {
			return &authState{mac: hmac.New(sha256.New, secret)}
		}})
	}
	pool := p.(*sync.Pool)
	st := pool.Get().(*authState)
	st.mac.Reset()
	st.mac.Write(domain)
	st.mac.Write(payload)
	st.mac.Sum(st.sum[:0])
	sum := st.sum
	pool.Put(st)
	return sum
}

var (
	accessDomain  = []byte("dynaguard api access v1\x00")
	refreshDomain = []byte("dynaguard api refresh token v1\x00")
)

// macValid checks payload's MAC under the key its kid (payload[1:1+kidLen])
// names among keys — the current one and the previous ones, so that tokens
// made before a secret rotation keep working while the previous secret is
// in the keyring.
func macValid(keys []dynaguard.DerivedKey, domain, payload, mac []byte) bool {
	kid := payload[1 : 1+kidLen]
	for _, k := range keys {
		if k.ID == string(kid) {
			sum := tokenSum(k, domain, payload)
			return subtle.ConstantTimeCompare(sum[:], mac) == 1
		}
	}
	return false
}

// verifyAccess checks an access token's MAC and expiry, in memory; reason
// is the catalogue word when it is refused. A token's expiry further out
// than AccessLifetime (plus a minute of clock drift between instances) is
// refused too: no valid token of this configuration says so.
func (s *Users) verifyAccess(tok string, now time.Time) (accessClaims, string) {
	raw, ok := decodeAPIToken(tok, accessPrefix)
	if !ok || len(raw) < 1+kidLen+16+famIDLen+2+1+macLen || raw[0] != tokenVersion {
		return accessClaims{}, "malformed"
	}
	payload, mac := raw[:len(raw)-macLen], raw[len(raw)-macLen:]
	if !macValid(s.accessKeys, accessDomain, payload, mac) {
		return accessClaims{}, "malformed"
	}
	p := payload[1+kidLen:]
	var c accessClaims
	c.exp = time.Unix(int64(binary.BigEndian.Uint64(p)), 0)
	c.at = time.Unix(int64(binary.BigEndian.Uint64(p[8:])), 0)
	p = p[16:]
	c.fid = apiEncoding.EncodeToString(p[:famIDLen])
	p = p[famIDLen:]
	var vals [2]uint64
	for i := range vals {
		v, n := binary.Uvarint(p)
		if n <= 0 || v > 1<<62 {
			return accessClaims{}, "malformed"
		}
		vals[i], p = v, p[n:]
	}
	c.cv, c.se = int64(vals[0]), int64(vals[1])
	if !validUID(p) {
		return accessClaims{}, "malformed"
	}
	c.uid = string(p)
	if !now.Before(c.exp) || c.exp.After(now.Add(s.apiTokens.AccessLifetime+time.Minute)) {
		return accessClaims{}, "expired"
	}
	return c, ""
}

// apiEntry is a family as the account lists it (attribute apic, a map
// from family ID to "<created> <abs> <cv> <se> <name>").
type apiEntry struct {
	id                   string
	created, abs, cv, se int64
	name                 string
}

func (e apiEntry) String() string {
	return strconv.FormatInt(e.created, 10) + " " + strconv.FormatInt(e.abs, 10) + " " +
		strconv.FormatInt(e.cv, 10) + " " + strconv.FormatInt(e.se, 10) + " " + e.name
}

func parseEntry(id string, av types.AttributeValue) (apiEntry, bool) {
	s, ok := av.(*types.AttributeValueMemberS)
	if !ok {
		return apiEntry{}, false
	}
	e := apiEntry{id: id}
	rest := s.Value
	for _, p := range []*int64{&e.created, &e.abs, &e.cv, &e.se} {
		var f string
		f, rest, ok = strings.Cut(rest, " ")
		n, err := strconv.ParseInt(f, 10, 64)
		if !ok || err != nil {
			return apiEntry{}, false
		}
		*p = n
	}
	e.name = rest
	return e, true
}

// live: the entry was made under the account's current credential version
// and session epoch, and its absolute lifetime has not ended. (An idle
// family dies on its own item; the account cannot see that without a read,
// so it stays listed until its absolute end, eviction or sign-out.)
func (e apiEntry) liveAt(u *User, now time.Time) bool {
	return e.cv == u.credVersion && e.se == u.epoch && now.Unix() < e.abs
}

// entries decodes the account's API client list.
func (u *User) entries() []apiEntry {
	out := make([]apiEntry, 0, len(u.apic))
	for id, av := range u.apic {
		if e, ok := parseEntry(id, av); ok {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b apiEntry) int {
		if c := cmp.Compare(a.created, b.created); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	return out
}

// lists reports whether the account lists family fid as live at now:
// under its current credential version and session epoch, before its
// absolute end (the bearer check: no allocation beyond the entry's parse).
func (u *User) lists(fid string, now time.Time) bool {
	av, ok := u.apic[fid]
	if !ok {
		return false
	}
	e, ok := parseEntry(fid, av)
	return ok && e.liveAt(u, now)
}
