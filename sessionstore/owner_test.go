package sessionstore_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/sessionstore"
)

// login makes a bound session for user on st, the way a login request does:
// Bind, then the request's commit.
func login(t testing.TB, st *sessionstore.Store, user, ua string, exp time.Time) string {
	t.Helper()
	tok := newToken(t)
	if err := st.Bind(ctx, tok, user, sessionstore.ClientInfo{UserAgent: ua, IP: "198.51.100.1"}); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, st, tok, []byte("user="+user), exp)
	return tok
}

func ids(ss []sessionstore.Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	return out
}

// Bind, List, Revoke and RevokeAll across two store instances sharing a
// table, as two application servers would.
func TestPerUserSessionsAcrossInstances(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	clock := ddbtest.NewClock(time.Now())
	a := newStore(t, tbl, withClock(clock))
	b := newStore(t, tbl, withClock(clock))
	exp := clock.Now().Add(24 * time.Hour)

	s1 := login(t, a, "u1", "Firefox", exp)
	clock.Advance(time.Second)
	s2 := login(t, b, "u1", "Safari", exp)
	clock.Advance(time.Second)
	s3 := login(t, a, "u1", "Chrome", exp)
	other := login(t, b, "u2", "Edge", exp)

	list, err := b.List(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{a.ID(s3), b.ID(s2), a.ID(s1)} // newest first
	if strings.Join(ids(list), ",") != strings.Join(want, ",") {
		t.Fatalf("List = %v, want %v", ids(list), want)
	}
	if s := list[0]; s.UserID != "u1" || s.UserAgent != "Chrome" || s.IP != "198.51.100.1" ||
		!s.Created.Equal(clock.Now()) || !s.LastSeen.Equal(clock.Now()) || !s.Expires.Equal(exp) {
		t.Fatalf("session = %+v", s)
	}
	if a.ID(s1) != b.ID(s1) {
		t.Fatal("two instances with one keyring disagree on a session ID")
	}

	// Revoke on b ends the session for a, at once.
	mustFind(t, a, s1)
	if err := b.Revoke(ctx, "u1", a.ID(s1)); err != nil {
		t.Fatal(err)
	}
	mustNotFind(t, a, s1)
	mustCommit(t, a, s1, []byte("user=u1"), exp) // the in-flight request's commit
	mustNotFind(t, a, s1)
	if err := b.Revoke(ctx, "u1", a.ID(s1)); !errors.Is(err, sessionstore.ErrNotFound) {
		t.Fatalf("second Revoke: %v", err)
	}

	// Nobody can revoke another user's session, or learn that it exists.
	if err := a.Revoke(ctx, "u1", a.ID(other)); !errors.Is(err, sessionstore.ErrNotFound) {
		t.Fatalf("Revoke of another user's session: %v", err)
	}
	mustFind(t, b, other)
	for _, bad := range []string{"", "short", strings.Repeat("#", 43), a.ID(other) + "x"} {
		if err := a.Revoke(ctx, "u2", bad); !errors.Is(err, sessionstore.ErrNotFound) {
			t.Fatalf("Revoke(%q): %v", bad, err)
		}
	}

	// RevokeAll keeps the current session.
	n, err := a.RevokeAll(ctx, "u1", b.ID(s3))
	if err != nil || n != 1 {
		t.Fatalf("RevokeAll = %d, %v; want 1", n, err)
	}
	mustNotFind(t, b, s2)
	mustFind(t, b, s3)
	mustFind(t, a, other)
	if list, _ := a.List(ctx, "u1"); strings.Join(ids(list), ",") != a.ID(s3) {
		t.Fatalf("List after RevokeAll = %v", ids(list))
	}
	n, err = b.RevokeAll(ctx, "u1", "")
	if err != nil || n != 1 {
		t.Fatalf("RevokeAll(keep none) = %d, %v; want 1", n, err)
	}
	mustNotFind(t, a, s3)
	if list, _ := a.List(ctx, "u1"); len(list) != 0 {
		t.Fatalf("List = %v", ids(list))
	}
	if list, _ := a.List(ctx, "u2"); len(list) != 1 {
		t.Fatalf("u2's sessions were touched: %v", ids(list))
	}
}

// The owner written at login survives every later commit, and LastSeen
// follows the writes.
func TestOwnerSurvivesCommits(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	clock := ddbtest.NewClock(time.Now())
	st := newStore(t, tbl, withClock(clock))
	exp := clock.Now().Add(time.Hour)
	tok := login(t, st, "u", "UA", exp)
	created := clock.Now()
	for i := range 3 {
		clock.Advance(time.Minute)
		mustCommit(t, st, tok, []byte{byte(i)}, exp.Add(time.Duration(i)*time.Minute))
	}
	list, err := st.List(ctx, "u")
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %v, %v", list, err)
	}
	if s := list[0]; !s.Created.Equal(created) || !s.LastSeen.Equal(clock.Now()) || s.UserAgent != "UA" {
		t.Fatalf("session = %+v", s)
	}
}

func TestListLeavesOutEndedSessions(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	clock := ddbtest.NewClock(time.Now())
	st := newStore(t, tbl, withClock(clock))
	short := login(t, st, "u", "", clock.Now().Add(time.Minute))
	long := login(t, st, "u", "", clock.Now().Add(time.Hour))
	gone := login(t, st, "u", "", clock.Now().Add(time.Hour))
	if err := st.Delete(gone); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute)
	list, err := st.List(ctx, "u")
	if err != nil || len(list) != 1 || list[0].ID != st.ID(long) {
		t.Fatalf("List = %v, %v; want only %s", ids(list), err, st.ID(long))
	}
	// The expired one is still in the table and still indexed: List filters
	// it by its expiry, RevokeAll's condition skips it.
	if rawItem(t, tbl, st, short) == nil {
		t.Fatal("the test needs the expired item in the table")
	}
	if n, err := st.RevokeAll(ctx, "u", ""); err != nil || n != 1 {
		t.Fatalf("RevokeAll = %d, %v; want 1", n, err)
	}
}

// Re-binding a session to another user moves it between the users' lists;
// a stale index entry does not let the old owner list or revoke it.
func TestRebind(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	st := newStore(t, tbl)
	exp := time.Now().Add(time.Hour)
	tok := login(t, st, "old", "", exp)
	if err := st.Bind(ctx, tok, "new", sessionstore.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, st, tok, []byte("user=old"), exp) // unchanged data: the binding still forces the write
	if l, _ := st.List(ctx, "old"); len(l) != 0 {
		t.Fatalf("old owner still lists it: %v", ids(l))
	}
	if l, _ := st.List(ctx, "new"); len(l) != 1 {
		t.Fatalf("new owner's list: %v", ids(l))
	}
	if err := st.Revoke(ctx, "old", st.ID(tok)); !errors.Is(err, sessionstore.ErrNotFound) {
		t.Fatalf("old owner revoked it: %v", err)
	}
	if n, _ := st.RevokeAll(ctx, "old", ""); n != 0 {
		t.Fatalf("old owner's RevokeAll ended %d sessions", n)
	}
	mustFind(t, st, tok)
}

// Bind forces the next commit to write even when the skip rule would skip it.
func TestBindForcesTheNextCommit(t *testing.T) {
	tbl, rec := ddbtest.Record(ddbtest.NewTable(t))
	st := newStore(t, tbl)
	tok := newToken(t)
	exp := time.Now().Add(time.Hour)
	mustCommit(t, st, tok, []byte("x"), exp)
	rec.Reset()
	mustCommit(t, st, tok, []byte("x"), exp)
	if rec.Writes() != 0 {
		t.Fatal("precondition: an identical commit is skipped")
	}
	if err := st.Bind(ctx, tok, "u", sessionstore.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	if rec.Count("") != 0 {
		t.Fatal("Bind made a call")
	}
	mustCommit(t, st, tok, []byte("x"), exp)
	if rec.Writes() != 1 || st.PendingBindings() != 0 {
		t.Fatalf("writes = %d, pending = %d", rec.Writes(), st.PendingBindings())
	}
	mustCommit(t, st, tok, []byte("x"), exp)
	if rec.Writes() != 1 {
		t.Fatal("the binding was written twice")
	}
	if l, _ := st.List(ctx, "u"); len(l) != 1 {
		t.Fatal("not listed")
	}
}

func TestBindValidation(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	clock := ddbtest.NewClock(time.Now())
	st := newStore(t, tbl, withClock(clock))
	tok := newToken(t)
	for _, bad := range []string{"", strings.Repeat("u", sessionstore.MaxUserIDLen+1), "bad\xffutf8"} {
		if err := st.Bind(ctx, tok, bad, sessionstore.ClientInfo{}); !errors.Is(err, sessionstore.ErrInvalidUserID) {
			t.Errorf("Bind(user %.10q) = %v", bad, err)
		}
		if _, err := st.List(ctx, bad); !errors.Is(err, sessionstore.ErrInvalidUserID) {
			t.Errorf("List(%.10q) = %v", bad, err)
		}
		if err := st.Revoke(ctx, bad, st.ID(tok)); !errors.Is(err, sessionstore.ErrInvalidUserID) {
			t.Errorf("Revoke(%.10q) = %v", bad, err)
		}
		if _, err := st.RevokeAll(ctx, bad, ""); !errors.Is(err, sessionstore.ErrInvalidUserID) {
			t.Errorf("RevokeAll(%.10q) = %v", bad, err)
		}
	}
	if err := st.Bind(ctx, "", "u", sessionstore.ClientInfo{}); !errors.Is(err, sessionstore.ErrInvalidToken) {
		t.Errorf("Bind with no token = %v", err)
	}
	// Client info is made storable: valid UTF-8, bounded.
	long := strings.Repeat("é", sessionstore.MaxUserAgentLen) // 2 bytes each
	if err := st.Bind(ctx, tok, "u", sessionstore.ClientInfo{UserAgent: long + "\xff", IP: strings.Repeat("1", 100)}); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, st, tok, []byte("x"), clock.Now().Add(time.Hour))
	l, err := st.List(ctx, "u")
	if err != nil || len(l) != 1 {
		t.Fatalf("List = %v, %v", l, err)
	}
	if ua := l[0].UserAgent; len(ua) > sessionstore.MaxUserAgentLen || !strings.HasPrefix(long, ua) || len(ua) < sessionstore.MaxUserAgentLen-1 {
		t.Errorf("user agent stored as %d bytes", len(ua))
	}
	if len(l[0].IP) != sessionstore.MaxIPLen {
		t.Errorf("IP stored as %d bytes", len(l[0].IP))
	}
	// A user ID of the maximum length works end to end.
	maxUser := strings.Repeat("m", sessionstore.MaxUserIDLen)
	tok2 := login(t, st, maxUser, "", clock.Now().Add(time.Hour))
	if l, err := st.List(ctx, maxUser); err != nil || len(l) != 1 || l[0].ID != st.ID(tok2) {
		t.Fatalf("List(max user) = %v, %v", l, err)
	}
}

// Pending bindings are bounded; Bind refuses rather than drop one, and
// bindings that never reach a commit expire.
func TestPendingBindingsAreBounded(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	clock := ddbtest.NewClock(time.Now())
	st := newStore(t, tbl, withClock(clock))
	st.SetMaxBindings(2)
	t1, t2, t3 := newToken(t), newToken(t), newToken(t)
	for _, tok := range []string{t1, t2} {
		if err := st.Bind(ctx, tok, "u", sessionstore.ClientInfo{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Bind(ctx, t1, "u2", sessionstore.ClientInfo{}); err != nil {
		t.Fatalf("re-binding a pending session: %v", err)
	}
	if err := st.Bind(ctx, t3, "u", sessionstore.ClientInfo{}); !errors.Is(err, sessionstore.ErrTooManyBindings) {
		t.Fatalf("third Bind = %v, want ErrTooManyBindings", err)
	}
	mustCommit(t, st, t2, []byte("x"), clock.Now().Add(time.Hour)) // consumes one
	if err := st.Bind(ctx, t3, "u", sessionstore.ClientInfo{}); err != nil {
		t.Fatalf("Bind after a commit: %v", err)
	}
	clock.Advance(6 * time.Minute) // pending bindings of t1 and t3 expire
	if err := st.Bind(ctx, t2, "u", sessionstore.ClientInfo{}); err != nil {
		t.Fatalf("Bind after expiry: %v", err)
	}
	if st.PendingBindings() != 1 {
		t.Fatalf("%d pending bindings, want 1", st.PendingBindings())
	}
	// An expired binding is not written.
	mustCommit(t, st, t1, []byte("x"), clock.Now().Add(time.Hour))
	if l, _ := st.List(ctx, "u2"); len(l) != 0 {
		t.Fatal("an expired binding was written")
	}
}

// Deleting a session drops its pending binding: a later commit of the token
// (refused anyway) carries no owner.
func TestDeleteDropsPendingBinding(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	st := newStore(t, tbl)
	tok := newToken(t)
	if err := st.Bind(ctx, tok, "u", sessionstore.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(tok); err != nil {
		t.Fatal(err)
	}
	if st.PendingBindings() != 0 {
		t.Fatal("binding kept after Delete")
	}
	item := rawItem(t, tbl, st, tok)
	if _, ok := ddb.Str(item, dynaguard.AttrGSI1PK); ok {
		t.Fatal("tombstone carries an owner")
	}
}
