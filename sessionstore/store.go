package sessionstore

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/budget"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/obs"
)

// Defaults of Config.
const (
	DefaultTouchInterval = time.Minute
	DefaultTombstoneTTL  = time.Hour
	DefaultCacheSize     = 10000
)

// MaxDataSize is the largest session data, in bytes, that Commit stores. It
// is DynamoDB's item limit (dynaguard.MaxItemSize, 400 KiB) less a reserve
// that covers every other attribute of a session item at its largest (key,
// expiry, counters, owner, client info, and the encryption overhead), so a
// commit within it can never be refused by DynamoDB for its size.
const MaxDataSize = dynaguard.MaxItemSize - 4096

// Limits on what Bind records. Longer client info is truncated; a longer user
// ID is refused.
const (
	MaxUserIDLen    = 1024
	MaxUserAgentLen = 512
	MaxIPLen        = 64
)

// maxTokenLen bounds the tokens the store hashes. scs tokens are 43
// characters (64 with HashTokenInStore); anything far longer is not a token
// scs made, and Find answers "not found" without a call.
const maxTokenLen = 512

// Errors. Storage failures are returned wrapped, classified by
// dynaguard.Classify (dynaguard.ErrThrottled, ...), never as "not found".
var (
	// ErrTooLarge: the session data is larger than MaxDataSize. Nothing is
	// written. It matches dynaguard.ErrItemTooLarge too.
	ErrTooLarge = fmt.Errorf("sessionstore: session data too large: %w", dynaguard.ErrItemTooLarge)
	// ErrInvalidToken: Commit or Bind was given an empty or oversized token.
	ErrInvalidToken = errors.New("sessionstore: invalid session token")
	// ErrInvalidUserID: Bind, List, Revoke or RevokeAll was given an empty
	// or oversized user ID.
	ErrInvalidUserID = errors.New("sessionstore: invalid user ID")
	// ErrNotFound: Revoke found no live session with that ID owned by that
	// user. The same error covers "no such session", "expired" and "owned by
	// someone else", so it reveals nothing about other users' sessions.
	ErrNotFound = errors.New("sessionstore: no such session")
	// ErrTooManyBindings: Bind was called while the bounded table of
	// bindings waiting for their commit was full. The login should fail
	// rather than leave a session that List and RevokeAll cannot see.
	ErrTooManyBindings = errors.New("sessionstore: too many bindings waiting for a commit")
	// ErrConflict: Find kept losing a race to move a session to the current
	// secret. A storage-level error; the request should be retried.
	ErrConflict = errors.New("sessionstore: concurrent update of a session during a key rotation")
)

// Config configures a Store. Table and Keys are required; every other field
// has a safe default.
type Config struct {
	// Table is where sessions live. It may be shared with every other
	// dynaguard component.
	Table *dynaguard.Table

	// Budget bounds each DynamoDB call this component makes when the
	// request's context has no earlier deadline (middleware.Stack sets one
	// for the whole request from its own Budget). A call past it fails
	// closed: 503 with Retry-After. Default 3 s.
	Budget time.Duration

	// Keys keys the token hash (dynaguard.PurposeSessionID) and the data
	// encryption (dynaguard.PurposeSessionEncryption).
	// The current secret hashes and seals every new write; sessions made
	// under a previous secret are still found until they expire, and are
	// moved to the current secret the first time they are read (see
	// "Rotating the secret" in the package documentation). The keys are
	// derived once, in New: rotating means restarting with a new Keyring.
	Keys *dynaguard.Keyring

	// EventuallyConsistent makes Find read with eventually consistent
	// GetItem calls, at half the read cost. Leave it false (the default:
	// strongly consistent reads) unless you accept that for up to about a
	// second after a logout, RenewToken or revocation, another instance
	// may still load the old session — the window in which a stolen token
	// that was just revoked still works. List always reads consistently.
	EventuallyConsistent bool

	// TouchInterval is how far scs's expiry may run ahead of the stored
	// one before an unchanged session is written again (default 1 minute).
	// Under an IdleTimeout scs commits every request only to push the
	// expiry forward; Commit skips that write when the data is unchanged,
	// no binding is pending, and the new expiry E satisfies
	//
	//	S ≤ E ≤ S + min(TouchInterval, (E − now)/10)
	//
	// where S is the expiry stored by the last write this process saw. So
	// the stored expiry is never later than scs's, and never earlier by
	// more than TouchInterval nor by more than a tenth of the remaining
	// lifetime: a session whose requests come less than 90% of its idle
	// timeout apart never lapses. A negative TouchInterval disables
	// skipping: every commit writes.
	TouchInterval time.Duration

	// TombstoneTTL is how long a deleted or revoked session's tombstone
	// blocks commits of its token (default 1 hour). A request that loaded
	// the session before the logout and commits after this long could
	// write it back; keep it well above your longest request
	// (http.Server.WriteTimeout).
	TombstoneTTL time.Duration

	// Plaintext stores session data as scs encoded it, without encryption
	// or integrity protection. By default (false) data is sealed with an
	// AEAD bound to the session's key and expiry (see the package
	// documentation), so that neither a dump of the table reveals it nor
	// someone with write access to the table can change it — for instance
	// put an administrator's user ID into their own session. While
	// encryption is on, unsealed session items are refused: switching from
	// Plaintext to the default ends the sessions stored in the clear.
	// Sealed sessions are still read after switching to Plaintext.
	Plaintext bool

	// CacheSize bounds the in-process record of what was last read or
	// written per session (default 10000 sessions, about 150 bytes each),
	// used by the skip rule of TouchInterval. A negative value disables it.
	CacheSize int

	// Clock tells the time (default dynaguard.SystemClock).
	Clock dynaguard.Clock

	// Logger receives warnings about tampered or malformed items and
	// commits refused by a tombstone (default slog.Default()). Tokens and
	// session data are never logged; sessions are named by their ID.
	Logger *slog.Logger
	// Events receives session.revoked for every deleted session,
	// session.refused_after_logout for a token presented or committed
	// after its session was deleted, session.expired_idle for one past its
	// deadline, and storage.failure (see dynaguard.Events). Default: the
	// zero Events.
	Events *dynaguard.Events
}

// Store is an scs session store on DynamoDB. It implements scs.Store and
// scs.CtxStore, and is safe for concurrent use.
type Store struct {
	tbl        *dynaguard.Table
	tableName  *string      // the table's name for request inputs, shared: the SDK never modifies its input
	consistent *bool        // ConsistentRead of every read, shared likewise
	ids        []*sync.Pool // HMAC-SHA256 per PurposeSessionID key, current first
	seal       []sealKey    // PurposeSessionEncryption keys, current first
	encrypt    bool
	touch      time.Duration
	tombTTL    time.Duration
	clock      dynaguard.Clock
	log        *slog.Logger
	ev         *obs.Emitter
	cache      *seenCache
	bindings   *bindings
}

var (
	_ scs.Store    = (*Store)(nil)
	_ scs.CtxStore = (*Store)(nil)
)

// New returns a Store. It makes no call to DynamoDB; check the table at
// start-up with dynaguard.Table.Ensure or Check.
func New(cfg Config) (*Store, error) {
	if cfg.Table == nil || cfg.Table.Client == nil || cfg.Table.Name == "" {
		return nil, errors.New("sessionstore: Config.Table with a client and a name is required")
	}
	if cfg.Keys == nil {
		return nil, errors.New("sessionstore: Config.Keys is required")
	}
	ev := obs.New(cfg.Events, "sessionstore", cfg.Clock, cfg.Logger)
	s := &Store{
		ev:         ev,
		tbl:        ev.Table(budget.Table(cfg.Table, cfg.Budget)),
		encrypt:    !cfg.Plaintext,
		tableName:  aws.String(cfg.Table.Name),
		consistent: aws.Bool(!cfg.EventuallyConsistent),
		touch:      cfg.TouchInterval,
		tombTTL:    cfg.TombstoneTTL,
		clock:      dynaguard.ClockOrSystem(cfg.Clock),
		log:        cfg.Logger,
		bindings:   newBindings(maxPendingBindings),
	}
	if s.touch == 0 {
		s.touch = DefaultTouchInterval
	}
	if s.tombTTL <= 0 {
		s.tombTTL = DefaultTombstoneTTL
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	switch {
	case cfg.CacheSize == 0:
		s.cache = newSeenCache(DefaultCacheSize)
	case cfg.CacheSize > 0:
		s.cache = newSeenCache(cfg.CacheSize)
	}
	for _, k := range cfg.Keys.Keys(dynaguard.PurposeSessionID) {
		secret := k.Secret
		s.ids = append(s.ids, &sync.Pool{New: func() any { return &idHasher{mac: hmac.New(sha256.New, secret)} }})
	}
	s.seal = sealKeys(cfg.Keys.Keys(dynaguard.PurposeSessionEncryption))
	return s, nil
}

// ID returns the session's public identifier: the keyed hash of token under
// the current secret, which is also its key in the table. It is not a secret
// (it appears in List, in logs and in table dumps) and cannot be turned back
// into the token. ID("") is "".
func (s *Store) ID(token string) string {
	if token == "" {
		return ""
	}
	return idOf(s.pkWith(0, token))
}

// idHasher is a pooled HMAC with its buffers, so hashing a token allocates
// only the resulting string.
type idHasher struct {
	mac hash.Hash
	in  []byte
	sum [sha256.Size]byte
	out [len(dynaguard.PrefixSession) + idLen]byte
}

// idLen is the length of an ID: unpadded base64url of 32 bytes.
const idLen = 43

// pkWith returns the table key of token under secret i: PrefixSession and
// the token's ID, built in one allocation (idOf takes the ID back out of it
// without another).
func (s *Store) pkWith(i int, token string) string {
	h := s.ids[i].Get().(*idHasher)
	h.mac.Reset()
	h.in = append(h.in[:0], token...)
	h.mac.Write(h.in)
	h.mac.Sum(h.sum[:0])
	n := copy(h.out[:], dynaguard.PrefixSession)
	base64.RawURLEncoding.Encode(h.out[n:], h.sum[:])
	pk := string(h.out[:])
	if cap(h.in) <= maxTokenLen {
		s.ids[i].Put(h)
	}
	return pk
}

// isPKOf reports whether pk is PrefixSession+id, without building that
// string.
func isPKOf(pk, id string) bool {
	return len(pk) == len(dynaguard.PrefixSession)+len(id) &&
		strings.HasPrefix(pk, dynaguard.PrefixSession) && pk[len(dynaguard.PrefixSession):] == id
}

// validID reports whether id has the form ID returns.
func validID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func validToken(token string) bool { return token != "" && len(token) <= maxTokenLen }

// Find implements scs.Store. See FindCtx.
func (s *Store) Find(token string) ([]byte, bool, error) {
	return s.FindCtx(context.Background(), token)
}

// FindCtx returns the session data for token. It costs one GetItem (strongly
// consistent unless Config.EventuallyConsistent). An unknown, expired,
// deleted, malformed or tampered session is (nil, false, nil), as scs
// requires — even when DynamoDB's TTL has not removed the item yet. A storage
// failure is an error, never "not found": scs then fails the request instead
// of starting a new session.
//
// While a rotation keeps previous secrets, a token with no item under the
// current secret costs one more GetItem per previous secret; a session found
// under a previous secret is moved to the current one in one transaction
// (TransactWriteItems, two items), once.
func (s *Store) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	if !validToken(token) {
		return nil, false, nil
	}
	for range 3 {
		b, found, retry, err := s.find(ctx, token)
		if !retry {
			return b, found, err
		}
	}
	return nil, false, ErrConflict
}

func (s *Store) find(ctx context.Context, token string) (b []byte, found, retry bool, err error) {
	pk := s.pkWith(0, token)
	id := idOf(pk)
	item, err := s.getItem(ctx, pk)
	if err != nil {
		s.ev.StorageFailure(ctx, "", err)
		return nil, false, false, fmt.Errorf("sessionstore: find session %s: %w", id, err)
	}
	now := s.clock.Now()
	if item != nil || len(s.ids) == 1 {
		// Whatever is stored under the current secret is authoritative: a
		// tombstone there ends the session under every secret.
		if to, ok := ddb.Str(item, attrMoved); ok {
			// An instance whose current secret this one knows only as a
			// previous one moved the session there (a new secret is
			// being rolled out): read it where it is, without moving it
			// back.
			b, found, err := s.findMoved(ctx, token, id, to)
			return b, found, false, err
		}
		b, found := s.accept(id, pk, item, now)
		if !found {
			s.absent(ctx, item, now)
		}
		return b, found, false, nil
	}
	for i := 1; i < len(s.ids); i++ {
		oldPK := s.pkWith(i, token)
		old, err := s.getItem(ctx, oldPK)
		if err != nil {
			return nil, false, false, fmt.Errorf("sessionstore: find session %s under a previous secret: %w", id, err)
		}
		if old == nil {
			continue
		}
		if to, moved := ddb.Str(old, attrMoved); moved {
			// Another request moved it after our first read.
			b, found, err := s.findMoved(ctx, token, id, to)
			return b, found, false, err
		}
		v, ok := s.open(oldPK, old, now)
		if !ok {
			return nil, false, false, nil
		}
		moved, err := s.movedItem(pk, old, v)
		if err == nil {
			err = s.move(ctx, oldPK, v.ver, moved, now)
		}
		switch {
		case err == nil:
			s.cache.put(seenEntry{id: id, digest: sha256.Sum256(v.data), exp: v.exp})
			return v.data, true, false, nil
		case lostRace(err):
			// Another request moved, deleted or rewrote it meanwhile:
			// read again.
			return nil, false, true, nil
		default:
			return nil, false, false, fmt.Errorf("sessionstore: move session %s to the current secret: %w", id, err)
		}
	}
	return nil, false, false, nil
}

// findMoved reads the session at to, where a tombstone says it moved: one
// more GetItem, and only if to is the token's key under one of this store's
// secrets. The session is not moved again.
func (s *Store) findMoved(ctx context.Context, token, id, to string) ([]byte, bool, error) {
	if !s.isKeyOf(token, to) {
		s.cache.remove(id)
		return nil, false, nil
	}
	item, err := s.getItem(ctx, to)
	if err != nil {
		return nil, false, fmt.Errorf("sessionstore: find session %s: %w", id, err)
	}
	b, found := s.accept(id, to, item, s.clock.Now())
	return b, found, nil
}

// isKeyOf reports whether pk is token's key under one of the store's secrets.
func (s *Store) isKeyOf(token, pk string) bool {
	for i := range s.ids {
		if pk == s.pkWith(i, token) {
			return true
		}
	}
	return false
}

// accept opens item and records what was seen for the skip rule, and where
// the session lives when that is not its key under the current secret.
func (s *Store) accept(id, pk string, item map[string]types.AttributeValue, now time.Time) ([]byte, bool) {
	v, ok := s.open(pk, item, now)
	if !ok {
		s.cache.remove(id)
		return nil, false
	}
	e := seenEntry{id: id, digest: sha256.Sum256(v.data), exp: v.exp}
	if !isPKOf(pk, id) {
		e.pk = pk
	}
	s.cache.put(e)
	return v.data, true
}

// lostRace reports whether a move was canceled only because another writer
// got there first (a condition or a conflicting transaction), not for a
// storage reason.
func lostRace(err error) bool {
	var tce *dynaguard.TransactionCanceledError
	if !errors.As(err, &tce) {
		return false
	}
	lost := false
	for _, r := range tce.Reasons {
		switch r.Code {
		case "None", "":
		case "ConditionalCheckFailed", "TransactionConflict":
			lost = true
		default:
			return false
		}
	}
	return lost
}

// liveSession is what open extracts from a live session item.
type liveSession struct {
	data []byte // plaintext
	exp  int64  // Unix ns
	ver  int64
}

// open applies every rule that makes an item a live session: not a
// tombstone, not expired (ttl and the precise exp, whatever TTL deletion has
// done), well formed, and — when sealed, or when encryption is required —
// authentic. Anything else is "no session"; suspicious items are logged.
func (s *Store) open(pk string, item map[string]types.AttributeValue, now time.Time) (liveSession, bool) {
	if item == nil {
		return liveSession{}, false
	}
	if _, tomb := item[attrTomb]; tomb {
		return liveSession{}, false
	}
	exp, okExp := ddb.Int(item, attrExp)
	ver, okVer := ddb.Int(item, attrVer)
	data, okData := ddb.Bytes(item, attrData)
	if !okExp || !okVer || !okData {
		s.log.Warn("sessionstore: malformed session item treated as absent", "session", idOf(pk))
		return liveSession{}, false
	}
	if ddb.Expired(item, now) || now.UnixNano() >= exp {
		return liveSession{}, false
	}
	encID, sealed := ddb.Str(item, attrEnc)
	switch {
	case sealed:
		k, ok := s.sealKey(encID)
		if !ok {
			s.log.Warn("sessionstore: session sealed with an unknown key treated as absent", "session", idOf(pk), "key", encID)
			return liveSession{}, false
		}
		plain, err := k.open(pk, exp, data)
		if err != nil {
			s.log.Warn("sessionstore: session data failed authentication; possible tampering", "session", idOf(pk))
			return liveSession{}, false
		}
		data = plain
	case s.encrypt:
		s.log.Warn("sessionstore: unencrypted session refused (Config.Plaintext is off); possible tampering", "session", idOf(pk))
		return liveSession{}, false
	}
	return liveSession{data: data, exp: exp, ver: ver}, true
}

func (s *Store) sealKey(id string) (sealKey, bool) {
	for _, k := range s.seal {
		if k.id == id {
			return k, true
		}
	}
	return sealKey{}, false
}

// movedItem is the item a session found under a previous secret becomes
// under the current one: the same attributes (owner and timestamps
// included), its data sealed anew for the new key when encryption is on.
func (s *Store) movedItem(pk string, old map[string]types.AttributeValue, v liveSession) (map[string]types.AttributeValue, error) {
	item := maps.Clone(old)
	item[dynaguard.AttrPK] = ddb.S(pk)
	delete(item, attrEnc)
	item[attrData] = ddb.B(v.data)
	if s.encrypt {
		sealed, err := s.seal[0].seal(pk, v.exp, v.data)
		if err != nil {
			return nil, err
		}
		item[attrData] = ddb.B(sealed)
		item[attrEnc] = ddb.S(s.seal[0].id)
	}
	return item, nil
}

func idOf(pk string) string { return pk[len(dynaguard.PrefixSession):] }

// Commit implements scs.Store. See CommitCtx.
func (s *Store) Commit(token string, b []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), token, b, expiry)
}

// CommitCtx stores the session data b for token until expiry, overwriting
// data and expiry and keeping the session's owner. It costs one conditional
// UpdateItem, or nothing when the skip rule of Config.TouchInterval applies.
//
// A session that was deleted (Delete, RenewToken, Revoke, RevokeAll) stays
// deleted: a commit for it made by a request that loaded it before the
// deletion writes nothing and returns nil, so that request still completes
// and its client simply finds no session next time. A binding made with Bind
// is written in this same write.
func (s *Store) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	if !validToken(token) {
		return ErrInvalidToken
	}
	if len(b) > MaxDataSize {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(b), MaxDataSize)
	}
	now := s.clock.Now()
	pk := s.pkWith(0, token)
	id := idOf(pk)
	binding, bind := s.bindings.get(id, now)
	digest := sha256.Sum256(b)
	exp := expiry.UnixNano()
	seen, cached := s.cache.get(id)
	if !bind && cached && s.skip(seen, digest, exp, now) {
		return nil
	}
	w := sessionWrite{pk: pk, exp: expiry, now: now}
	if cached && seen.pk != "" {
		w.pk = seen.pk // where Find found it (see findMoved)
	}
	if bind {
		owner := binding // declared here, it costs an allocation only when there is a binding to write
		w.owner = &owner
	}
	for followed := false; ; followed = true {
		w.data, w.enc = b, ""
		if s.encrypt {
			sealed, err := s.seal[0].seal(w.pk, exp, b)
			if err != nil {
				return fmt.Errorf("sessionstore: seal session %s: %w", id, err)
			}
			w.data, w.enc = sealed, s.seal[0].id
		}
		movedTo, err := s.writeSession(ctx, w)
		switch {
		case err == nil:
			e := seenEntry{id: id, digest: digest, exp: exp}
			if w.pk != pk {
				e.pk = w.pk
			}
			s.cache.put(e)
			if bind {
				s.bindings.done(id)
			}
			return nil
		case dynaguard.IsConditionFailed(err):
			if !followed && movedTo != "" && movedTo != w.pk && s.isKeyOf(token, movedTo) {
				// Moved by an instance with a newer current secret
				// (a rollout in progress): write it where it is now.
				w.pk = movedTo
				continue
			}
			s.cache.remove(id)
			s.bindings.done(id)
			s.log.Info("sessionstore: commit of a deleted session refused", "session", id)
			s.ev.Emit(ctx, dynaguard.Event{Name: dynaguard.EventSessionRefusedAfterLogout, Reason: "commit"})
			return nil
		case errors.Is(err, dynaguard.ErrItemTooLarge):
			s.cache.remove(id)
			return fmt.Errorf("%w: session %s: %w", ErrTooLarge, id, err)
		default:
			s.cache.remove(id)
			s.ev.StorageFailure(ctx, "", err)
			return fmt.Errorf("sessionstore: commit session %s: %w", id, err)
		}
	}
}

// skip is the rule documented on Config.TouchInterval, given what this
// process last saw of the session.
func (s *Store) skip(e seenEntry, digest [32]byte, exp int64, now time.Time) bool {
	if s.touch < 0 || e.digest != digest || exp < e.exp || e.exp <= now.UnixNano() {
		return false
	}
	limit := int64(s.touch)
	if r := (exp - now.UnixNano()) / 10; r < limit {
		limit = r
	}
	return exp-e.exp <= limit
}

// Delete implements scs.Store. See DeleteCtx.
func (s *Store) Delete(token string) error {
	return s.DeleteCtx(context.Background(), token)
}

// DeleteCtx ends the session: one unconditional PutItem replaces its item
// with a tombstone (no data, no owner, ttl Config.TombstoneTTL), which also
// makes any later commit of the token by an in-flight request a no-op. It is
// nil for a token that has no session. While a rotation keeps previous
// secrets, the tombstone is written under each of them (one BatchWriteItem),
// so the session cannot reappear under an older key.
func (s *Store) DeleteCtx(ctx context.Context, token string) error {
	if !validToken(token) {
		return nil
	}
	pks := make([]string, len(s.ids))
	for i := range s.ids {
		pks[i] = s.pkWith(i, token)
	}
	id := idOf(pks[0])
	s.cache.remove(id)
	s.bindings.done(id)
	if err := s.putTombstones(ctx, pks, s.clock.Now()); err != nil {
		s.ev.StorageFailure(ctx, requestUser(ctx), err)
		return fmt.Errorf("sessionstore: delete session %s: %w", id, err)
	}
	s.ev.Emit(ctx, dynaguard.Event{Name: dynaguard.EventSessionRevoked, Reason: "delete", UserID: requestUser(ctx)})
	return nil
}
