package sessionstore_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/sessionstore"
)

const marker = "card-4111-1111-1111-1111"

func TestEncryptionRoundTrip(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	st := newStore(t, tbl, encrypted)
	tok := newToken(t)
	mustCommit(t, st, tok, []byte(marker), time.Now().Add(time.Hour))
	if got := mustFind(t, st, tok); string(got) != marker {
		t.Fatalf("Find = %q", got)
	}
	item := rawItem(t, tbl, st, tok)
	data, _ := ddb.Bytes(item, sessionstore.AttrData)
	if bytes.Contains(data, []byte(marker)) || len(data) != len(marker)+40 {
		t.Fatalf("stored data is not sealed (%d bytes)", len(data))
	}
	enc, _ := ddb.Str(item, sessionstore.AttrEnc)
	if enc != keyring(t, secret1).Key(dynaguard.PurposeSessionEncryption).ID {
		t.Fatalf("enc = %q", enc)
	}
	// Each write seals with a fresh nonce.
	mustCommit(t, st, tok, []byte(marker+"!"), time.Now().Add(2*time.Hour))
	mustCommit(t, st, tok, []byte(marker), time.Now().Add(3*time.Hour))
	data2, _ := ddb.Bytes(rawItem(t, tbl, st, tok), sessionstore.AttrData)
	if bytes.Equal(data, data2) || bytes.Equal(data[:24], data2[:24]) {
		t.Fatal("the same plaintext sealed twice to the same bytes")
	}
}

// Someone with write access to the table cannot change, move or extend
// sealed session data: the session is then treated as absent.
func TestEncryptionDetectsTampering(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	clock := ddbtest.NewClock(time.Now())
	st := newStore(t, tbl, encrypted, withClock(clock))
	exp := clock.Now().Add(time.Hour)
	fresh := func() (string, string) {
		tok := newToken(t)
		mustCommit(t, st, tok, []byte(marker), exp)
		return tok, dynaguard.PrefixSession + st.ID(tok)
	}
	names := func(n ...string) map[string]string {
		m := map[string]string{}
		for _, x := range n {
			m["#"+x] = x
		}
		return m
	}

	t.Run("flipped bit", func(t *testing.T) {
		tok, pk := fresh()
		data, _ := ddb.Bytes(rawPK(t, tbl, pk), sessionstore.AttrData)
		data = bytes.Clone(data)
		data[len(data)-20] ^= 1
		rawUpdate(t, tbl, pk, "SET #data = :d", names("data"), map[string]types.AttributeValue{":d": ddb.B(data)})
		mustNotFind(t, st, tok)
	})
	t.Run("truncated", func(t *testing.T) {
		tok, pk := fresh()
		rawUpdate(t, tbl, pk, "SET #data = :d", names("data"), map[string]types.AttributeValue{":d": ddb.B([]byte("short"))})
		mustNotFind(t, st, tok)
	})
	t.Run("copied from another session", func(t *testing.T) {
		victim, vpk := fresh()
		_, apk := fresh()
		src := rawPK(t, tbl, apk)
		rawUpdate(t, tbl, vpk, "SET #data = :d, #exp = :e, #ttl = :t, #enc = :k", names("data", "exp", "ttl", "enc"),
			map[string]types.AttributeValue{":d": src["data"], ":e": src["exp"], ":t": src["ttl"], ":k": src["enc"]})
		mustNotFind(t, st, victim)
	})
	t.Run("expiry pushed later", func(t *testing.T) {
		tok, pk := fresh()
		later := exp.Add(1000 * time.Hour)
		rawUpdate(t, tbl, pk, "SET #exp = :e, #ttl = :t", names("exp", "ttl"),
			map[string]types.AttributeValue{":e": ddb.N(later.UnixNano()), ":t": ddb.TTLValue(later)})
		mustNotFind(t, st, tok)
	})
	t.Run("downgraded to plaintext", func(t *testing.T) {
		tok, pk := fresh()
		rawUpdate(t, tbl, pk, "SET #data = :d REMOVE #enc", names("data", "enc"),
			map[string]types.AttributeValue{":d": ddb.B([]byte(marker))})
		mustNotFind(t, st, tok)
	})
	t.Run("control", func(t *testing.T) {
		tok, _ := fresh()
		mustFind(t, st, tok)
	})
}

// Turning encryption on refuses sessions stored in the clear (otherwise a
// table writer could plant plaintext); turning it off still reads sealed
// sessions.
func TestEncryptionSwitch(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	plain := newStore(t, tbl, plaintext)
	sealed := newStore(t, tbl, encrypted)
	exp := time.Now().Add(time.Hour)
	t1, t2 := newToken(t), newToken(t)
	mustCommit(t, plain, t1, []byte("x"), exp)
	mustNotFind(t, sealed, t1)
	mustCommit(t, sealed, t2, []byte("y"), exp)
	if got := mustFind(t, plain, t2); string(got) != "y" {
		t.Fatalf("Find = %q", got)
	}
}

// Rotation of the secret: a store whose keyring is (new, old) finds sessions
// made under the old secret, moves each to the new key once (re-sealing its
// data), and from then on reads it with one GetItem. A store that has dropped
// the old secret still finds moved sessions.
func TestSecretRotation(t *testing.T) {
	for _, enc := range []bool{false, true} {
		name := "plaintext"
		if enc {
			name = "encrypted"
		}
		t.Run(name, func(t *testing.T) {
			base := ddbtest.NewTable(t)
			tbl, rec := ddbtest.Record(base)
			clock := ddbtest.NewClock(time.Now())
			mod := func(c *sessionstore.Config) { c.Plaintext = !enc; c.Clock = clock }
			old := newStore(t, tbl, mod)
			rotating := newStore(t, tbl, mod, withKeys(keyring(t, secret2, secret1)))
			rotated := newStore(t, tbl, mod, withKeys(keyring(t, secret2)))
			exp := clock.Now().Add(time.Hour)

			tok := login(t, old, "u", "UA", exp)
			oldID := old.ID(tok)
			mustNotFind(t, rotated, tok) // the old secret is needed to find it

			rec.Reset()
			if got := mustFind(t, rotating, tok); string(got) != "user=u" {
				t.Fatalf("Find = %q", got)
			}
			if rec.Count("GetItem") != 2 || rec.Count("TransactWriteItems") != 1 || rec.Count("") != 3 {
				t.Fatalf("first read under the new secret: %+v", rec.Calls())
			}
			rec.Reset()
			mustFind(t, rotating, tok)
			if rec.Count("") != 1 {
				t.Fatalf("second read: %+v", rec.Calls())
			}
			mustFind(t, rotated, tok)

			newItem := rawItem(t, base, rotating, tok)
			if exp2, _ := ddb.Int(newItem, sessionstore.AttrExp); exp2 != exp.UnixNano() {
				t.Fatalf("expiry changed by the move: %d", exp2)
			}
			if enc {
				k, _ := ddb.Str(newItem, sessionstore.AttrEnc)
				if k != keyring(t, secret2).Key(dynaguard.PurposeSessionEncryption).ID {
					t.Fatalf("not re-sealed under the new key: enc=%q", k)
				}
			}
			oldItem := rawPK(t, base, dynaguard.PrefixSession+oldID)
			if moved, _ := ddb.Str(oldItem, sessionstore.AttrMoved); oldItem[sessionstore.AttrTomb] == nil || oldItem[sessionstore.AttrData] != nil ||
				moved != dynaguard.PrefixSession+rotating.ID(tok) {
				t.Fatalf("old item after the move: %v", ddbtest.Flatten(oldItem))
			}
			// The owner moved with it.
			l, err := rotated.List(ctx, "u")
			if err != nil || len(l) != 1 || l[0].ID != rotated.ID(tok) || l[0].UserAgent != "UA" {
				t.Fatalf("List = %+v, %v", l, err)
			}
			// An instance still on the old keyring cannot write the old key
			// back to life.
			mustCommit(t, old, tok, []byte("stale"), exp)
			mustNotFind(t, old, tok)
			if got := mustFind(t, rotated, tok); string(got) != "user=u" {
				t.Fatalf("Find = %q", got)
			}
			// Commits go to the new key.
			mustCommit(t, rotating, tok, []byte("new"), exp)
			if got := mustFind(t, rotated, tok); string(got) != "new" {
				t.Fatalf("Find = %q", got)
			}
		})
	}
}

// Delete during a rotation, before the session moved: the tombstone goes
// under every secret, so the old item cannot reappear once the new key's
// tombstone is gone.
func TestDeleteDuringRotation(t *testing.T) {
	base := ddbtest.NewTable(t)
	tbl, rec := ddbtest.Record(base)
	clock := ddbtest.NewClock(time.Now())
	old := newStore(t, tbl, withClock(clock))
	rotating := newStore(t, tbl, withClock(clock), withKeys(keyring(t, secret2, secret1)))
	tok := newToken(t)
	mustCommit(t, old, tok, []byte("x"), clock.Now().Add(24*time.Hour))
	rec.Reset()
	if err := rotating.Delete(tok); err != nil {
		t.Fatal(err)
	}
	if rec.Count("BatchWriteItem") != 1 || rec.Count("") != 1 {
		t.Fatalf("Delete during rotation: %+v", rec.Calls())
	}
	mustNotFind(t, rotating, tok)
	mustNotFind(t, old, tok)
	// Simulate DynamoDB's TTL removing the new key's tombstone.
	clock.Advance(2 * time.Hour)
	if _, err := ddbtest.Client(t).DeleteItem(ctx, deleteInput(base, dynaguard.PrefixSession+rotating.ID(tok))); err != nil {
		t.Fatal(err)
	}
	mustNotFind(t, rotating, tok)
}

// Many requests reading a not-yet-moved session at once, on two instances:
// exactly one move happens, every request finds the session.
func TestConcurrentMove(t *testing.T) {
	base := ddbtest.NewTable(t)
	tbl, rec := ddbtest.Record(base)
	old := newStore(t, tbl, encrypted)
	a := newStore(t, tbl, encrypted, withKeys(keyring(t, secret2, secret1)))
	b := newStore(t, tbl, encrypted, withKeys(keyring(t, secret2, secret1)))
	tok := newToken(t)
	mustCommit(t, old, tok, []byte(marker), time.Now().Add(time.Hour))
	rec.Reset()
	var wg sync.WaitGroup
	for i := range 12 {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Go(func() {
			got, found, err := st.FindCtx(ctx, tok)
			if err != nil || !found || string(got) != marker {
				t.Errorf("Find = %q %v %v", got, found, err)
			}
		})
	}
	wg.Wait()
	succeeded := 0
	for _, c := range rec.Calls() {
		if c.Op == "TransactWriteItems" && c.Err == nil {
			succeeded++
		}
	}
	if succeeded != 1 {
		t.Fatalf("%d moves succeeded, want 1", succeeded)
	}
}

// Revoke by an ID listed before the session moved follows the move.
func TestRevokeFollowsMove(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	old := newStore(t, tbl)
	rotating := newStore(t, tbl, withKeys(keyring(t, secret2, secret1)))
	tok := login(t, old, "u", "", time.Now().Add(time.Hour))
	l, err := rotating.List(ctx, "u")
	if err != nil || len(l) != 1 || l[0].ID != old.ID(tok) {
		t.Fatalf("List before the move = %v, %v", l, err)
	}
	mustFind(t, rotating, tok) // moves it
	if err := rotating.Revoke(ctx, "u", l[0].ID); err != nil {
		t.Fatalf("Revoke by the pre-move ID: %v", err)
	}
	mustNotFind(t, rotating, tok)
	if strings.Contains(ddbtest.Dump(t, tbl), "gsi1pk=sessions#u") {
		t.Fatal("a revoked or moved session is still indexed")
	}
}

// A moved session that expired and was removed by TTL while the tombstone at
// its old key is still there is simply absent — not an error.
func TestMovedSessionExpires(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	clock := ddbtest.NewClock(time.Now())
	old := newStore(t, tbl, withClock(clock))
	rotating := newStore(t, tbl, withClock(clock), withKeys(keyring(t, secret2, secret1)))
	tok := newToken(t)
	mustCommit(t, old, tok, []byte("x"), clock.Now().Add(time.Minute))
	mustFind(t, rotating, tok)
	clock.Advance(2 * time.Minute)
	if _, err := ddbtest.Client(t).DeleteItem(ctx, deleteInput(tbl, dynaguard.PrefixSession+rotating.ID(tok))); err != nil {
		t.Fatal(err)
	}
	mustNotFind(t, rotating, tok)
	mustNotFind(t, old, tok)
}

// Rolling out a new secret in two phases — first every instance gets it as a
// previous secret, then as the current one — keeps sessions working while
// instances of both phases serve requests: an instance still on the first
// phase reads and writes a session where the other moved it.
func TestRotationRollout(t *testing.T) {
	base := ddbtest.NewTable(t)
	tbl, rec := ddbtest.Record(base)
	phase1 := newStore(t, tbl, withKeys(keyring(t, secret1, secret2)))
	phase2 := newStore(t, tbl, withKeys(keyring(t, secret2, secret1)))
	exp := time.Now().Add(time.Hour)
	tok := login(t, phase1, "u", "UA", exp)

	mustFind(t, phase2, tok) // moves it to secret2's key
	rec.Reset()
	if got := mustFind(t, phase1, tok); string(got) != "user=u" {
		t.Fatalf("phase 1 after the move: %q", got)
	}
	if rec.Count("GetItem") != 2 || rec.Writes() != 0 {
		t.Fatalf("phase 1 read of a moved session: %+v", rec.Calls())
	}
	rec.Reset()
	mustCommit(t, phase1, tok, []byte("from phase 1"), exp)
	if rec.Writes() != 1 {
		t.Fatalf("phase 1 commit: %+v", rec.Calls())
	}
	if got := mustFind(t, phase2, tok); string(got) != "from phase 1" {
		t.Fatalf("phase 2 sees %q", got)
	}
	// Another phase-1 instance that has not read it commits: the refused
	// write says where the session went, and the commit follows.
	other := newStore(t, tbl, withKeys(keyring(t, secret1, secret2)))
	mustCommit(t, other, tok, []byte("from another phase 1"), exp)
	if got := mustFind(t, phase2, tok); string(got) != "from another phase 1" {
		t.Fatalf("phase 2 sees %q", got)
	}
	if l, _ := phase1.List(ctx, "u"); len(l) != 1 || l[0].ID != phase2.ID(tok) {
		t.Fatalf("List = %v", ids(l))
	}
	// An instance that does not know the new secret at all cannot follow:
	// hence the two phases.
	mustNotFind(t, newStore(t, tbl), tok)

	if err := phase1.Delete(tok); err != nil {
		t.Fatal(err)
	}
	mustNotFind(t, phase2, tok)
	mustNotFind(t, phase1, tok)
	mustCommit(t, other, tok, []byte("late"), exp)
	mustNotFind(t, phase2, tok)
}

// "Sign out everywhere else" during a rollout keeps the current session even
// where it lives under the other secret's key.
func TestRevokeAllKeepsCurrentSessionDuringRollout(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	phase1 := newStore(t, tbl, withKeys(keyring(t, secret1, secret2)))
	phase2 := newStore(t, tbl, withKeys(keyring(t, secret2, secret1)))
	exp := time.Now().Add(time.Hour)
	current := login(t, phase1, "u", "", exp)
	other := login(t, phase1, "u", "", exp)
	mustFind(t, phase2, current) // moved to secret2's key
	mustFind(t, phase1, current) // the request on phase 1 reads it there
	n, err := phase1.RevokeAll(ctx, "u", phase1.ID(current))
	if err != nil || n != 1 {
		t.Fatalf("RevokeAll = %d, %v; want 1", n, err)
	}
	mustFind(t, phase1, current)
	mustNotFind(t, phase1, other)
}
