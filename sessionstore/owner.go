package sessionstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
)

// Pending bindings: Bind records the owner in memory and the session's next
// Commit writes it together with the data, so a login costs no extra write.
// The table is bounded, and an entry that no commit picks up expires.
const (
	maxPendingBindings = 10000
	bindingTTL         = 5 * time.Minute
)

type binding struct {
	userID string
	info   ClientInfo
	at     time.Time
}

type bindings struct {
	mu  sync.Mutex
	max int
	m   map[string]binding
}

func newBindings(max int) *bindings {
	return &bindings{max: max, m: make(map[string]binding)}
}

// add records b for the session id, replacing an earlier binding. It reports
// how many expired entries it dropped to make room.
func (p *bindings) add(id string, b binding, now time.Time) (expired int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.m[id]; !ok && len(p.m) >= p.max {
		for k, v := range p.m {
			if now.Sub(v.at) > bindingTTL {
				delete(p.m, k)
				expired++
			}
		}
		if len(p.m) >= p.max {
			return expired, ErrTooManyBindings
		}
	}
	p.m[id] = b
	return expired, nil
}

// get returns the pending binding of session id, if one has not expired.
func (p *bindings) get(id string, now time.Time) (binding, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.m[id]
	if ok && now.Sub(b.at) > bindingTTL {
		delete(p.m, id)
		return binding{}, false
	}
	return b, ok
}

func (p *bindings) done(id string) {
	p.mu.Lock()
	delete(p.m, id)
	p.mu.Unlock()
}

func (p *bindings) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}

func validUserID(userID string) bool {
	return userID != "" && len(userID) <= MaxUserIDLen && utf8.ValidString(userID)
}

// clean makes client-supplied text storable: valid UTF-8, at most max bytes,
// cut on a character boundary.
func clean(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max]
}

// Bind records that the session with this token belongs to userID, with
// optional client information for List (truncated to MaxUserAgentLen and
// MaxIPLen). It makes no call: the binding is written by the session's next
// Commit in this process, in the same write as the data, and it forces that
// commit to write even if nothing else changed. The owner then survives every
// later commit.
//
// Call it during a request under scs's LoadAndSave, after RenewToken, with
// the renewed token:
//
//	if err := sm.RenewToken(ctx); err != nil { ... }
//	if err := store.Bind(ctx, sm.Token(ctx), userID, info); err != nil { ... }
//	sm.Put(ctx, "userID", userID)
//
// A binding that no commit picks up within five minutes is dropped (and
// logged). Do not set the SessionManager's HashTokenInStore: the store already
// hashes tokens with a key, and with it scs would commit a hash of the token
// that Bind never sees.
func (s *Store) Bind(ctx context.Context, token, userID string, info ClientInfo) error {
	if !validToken(token) {
		return ErrInvalidToken
	}
	if !validUserID(userID) {
		return ErrInvalidUserID
	}
	info.UserAgent = clean(info.UserAgent, MaxUserAgentLen)
	info.IP = clean(info.IP, MaxIPLen)
	now := s.clock.Now()
	expired, err := s.bindings.add(s.ID(token), binding{userID: userID, info: info, at: now}, now)
	if expired > 0 {
		s.log.Warn("sessionstore: session bindings expired without a commit; is the session committed after Bind (and HashTokenInStore off)?", "count", expired)
	}
	return err
}

// List returns the live sessions of userID, newest first: one Query of the
// owner index (keys only) and strongly consistent BatchGetItem calls (100
// sessions each) that read everything but the data. Expired, deleted and
// revoked sessions are left out, and so is a session whose item no longer
// names userID. The index is updated asynchronously: a session bound in the
// last second or so may be missing from the list.
func (s *Store) List(ctx context.Context, userID string) ([]Session, error) {
	if !validUserID(userID) {
		return nil, ErrInvalidUserID
	}
	owner := ddb.OwnerSessions(userID)
	pks, err := s.ownerKeys(ctx, owner)
	if err != nil {
		return nil, fmt.Errorf("sessionstore: list sessions: %w", err)
	}
	items, err := s.getMany(ctx, pks)
	if err != nil {
		return nil, fmt.Errorf("sessionstore: list sessions: %w", err)
	}
	now := s.clock.Now()
	out := make([]Session, 0, len(items))
	for _, it := range items {
		pk, _ := ddb.Str(it, dynaguard.AttrPK)
		o, _ := ddb.Str(it, dynaguard.AttrGSI1PK)
		exp, okExp := ddb.Int(it, attrExp)
		if _, tomb := it[attrTomb]; tomb || o != owner || !okExp ||
			ddb.Expired(it, now) || now.UnixNano() >= exp || !strings.HasPrefix(pk, dynaguard.PrefixSession) {
			continue
		}
		created, _ := ddb.Int(it, attrCreated)
		seen, _ := ddb.Int(it, attrSeen)
		ua, _ := ddb.Str(it, attrUA)
		ip, _ := ddb.Str(it, attrIP)
		out = append(out, Session{
			ID:         idOf(pk),
			UserID:     userID,
			Created:    time.Unix(0, created),
			LastSeen:   time.Unix(0, seen),
			Expires:    time.Unix(0, exp),
			ClientInfo: ClientInfo{UserAgent: ua, IP: ip},
		})
	}
	slices.SortFunc(out, func(a, b Session) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Revoke ends the session with this ID if it is a live session of userID:
// one conditional PutItem that turns it into a tombstone, so the session's
// next request finds nothing — on every instance, since reads are strongly
// consistent — and an in-flight commit cannot bring it back. Otherwise it
// returns ErrNotFound, whether the session does not exist, has ended, or
// belongs to someone else.
func (s *Store) Revoke(ctx context.Context, userID, id string) error {
	if !validUserID(userID) {
		return ErrInvalidUserID
	}
	if !validID(id) {
		return ErrNotFound
	}
	ok, err := s.revoke(ctx, ddb.OwnerSessions(userID), dynaguard.PrefixSession+id, "")
	if err != nil {
		return fmt.Errorf("sessionstore: revoke session %s: %w", id, err)
	}
	if !ok {
		return ErrNotFound
	}
	return nil
}

// revoke tombstones pk for owner, following the pointer a rotation move
// leaves behind (once), unless it points at keepPK.
func (s *Store) revoke(ctx context.Context, owner, pk, keepPK string) (bool, error) {
	now := s.clock.Now()
	ok, moved, err := s.revokeItem(ctx, pk, owner, now)
	s.cache.remove(idOf(pk))
	if err != nil || ok || moved == "" || moved == keepPK || !strings.HasPrefix(moved, dynaguard.PrefixSession) {
		return ok, err
	}
	ok, _, err = s.revokeItem(ctx, moved, owner, now)
	s.cache.remove(idOf(moved))
	return ok, err
}

// revokeAllWorkers bounds the concurrent writes of RevokeAll.
const revokeAllWorkers = 4

// RevokeAll ends every live session of userID except the one with ID keepID
// ("" keeps none) — typically "sign out everywhere else" with keepID =
// store.ID(sm.Token(ctx)), or every session after a password reset. It costs
// one Query of the owner index and one conditional PutItem per session, and
// returns how many it ended. It tries every session even when some writes
// fail, and then returns the failures.
//
// The index is updated asynchronously, so a session bound within about the
// last second may be missed; an application that must end every session
// without exception (after a password change, say) should also record the
// time of the change on the account and refuse older sessions.
func (s *Store) RevokeAll(ctx context.Context, userID, keepID string) (int, error) {
	if !validUserID(userID) {
		return 0, ErrInvalidUserID
	}
	owner := ddb.OwnerSessions(userID)
	pks, err := s.ownerKeys(ctx, owner)
	if err != nil {
		return 0, fmt.Errorf("sessionstore: revoke sessions: %w", err)
	}
	keepPK, keepAt := "", ""
	if keepID != "" {
		keepPK = dynaguard.PrefixSession + keepID
		// While a new secret is rolled out the kept session may live
		// under another secret's key; this process knows where if the
		// request read it.
		if e, ok := s.cache.get(keepID); ok {
			keepAt = e.pk
		}
	}
	var (
		mu    sync.Mutex
		n     int
		errs  []error
		wg    sync.WaitGroup
		work  = make(chan string)
		setup = min(revokeAllWorkers, len(pks))
	)
	for range setup {
		wg.Go(func() {
			for pk := range work {
				ok, err := s.revoke(ctx, owner, pk, keepPK)
				mu.Lock()
				if ok {
					n++
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("session %s: %w", idOf(pk), err))
				}
				mu.Unlock()
			}
		})
	}
	for _, pk := range pks {
		if pk != keepPK && pk != keepAt {
			work <- pk
		}
	}
	close(work)
	wg.Wait()
	if len(errs) > 0 {
		return n, fmt.Errorf("sessionstore: revoke sessions: %w", errors.Join(errs...))
	}
	return n, nil
}
