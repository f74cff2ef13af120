package sessionstore_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/sessionstore"
)

// The store implements scs.Store and scs.CtxStore, and deliberately not the
// iterable interfaces: scs's Iterate would use the returned map keys as
// tokens, and the store only knows keyed hashes of them.
var (
	_ scs.Store    = (*sessionstore.Store)(nil)
	_ scs.CtxStore = (*sessionstore.Store)(nil)
)

func TestNotIterable(t *testing.T) {
	var st any = &sessionstore.Store{}
	if _, ok := st.(scs.IterableStore); ok {
		t.Error("Store implements scs.IterableStore; scs.Iterate would act on hashes as if they were tokens")
	}
	if _, ok := st.(scs.IterableCtxStore); ok {
		t.Error("Store implements scs.IterableCtxStore; scs.Iterate would act on hashes as if they were tokens")
	}
}

func TestNewValidatesConfig(t *testing.T) {
	tbl := dynaguard.NewTable(nil, "x")
	if _, err := sessionstore.New(sessionstore.Config{Table: tbl, Keys: keyring(t, secret1)}); err == nil {
		t.Error("New accepted a table without a client")
	}
	if _, err := sessionstore.New(sessionstore.Config{Keys: keyring(t, secret1)}); err == nil {
		t.Error("New accepted a config without a table")
	}
	tbl = dynaguard.NewTable(ddbtest.NewRecorder(nil), "x")
	if _, err := sessionstore.New(sessionstore.Config{Table: tbl}); err == nil {
		t.Error("New accepted a config without keys")
	}
}

func TestFindMissingAndMalformedTokens(t *testing.T) {
	tbl, rec := ddbtest.Record(ddbtest.NewTable(t))
	st := newStore(t, tbl)
	mustNotFind(t, st, newToken(t))
	if rec.Count("GetItem") != 1 {
		t.Fatalf("a miss cost %d GetItem, want 1", rec.Count("GetItem"))
	}
	rec.Reset()
	mustNotFind(t, st, "")
	mustNotFind(t, st, strings.Repeat("A", 100_000))
	if n := rec.Count(""); n != 0 {
		t.Errorf("empty and oversized tokens cost %d calls, want 0", n)
	}
	if err := st.Commit("", []byte("x"), time.Now().Add(time.Hour)); err != sessionstore.ErrInvalidToken {
		t.Errorf("Commit with an empty token: %v", err)
	}
}

func TestCommitFindOverwrite(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	clock := ddbtest.NewClock(time.Now())
	st := newStore(t, tbl, withClock(clock))
	tok := newToken(t)
	exp1 := clock.Now().Add(time.Hour + 123*time.Millisecond)
	mustCommit(t, st, tok, []byte("one"), exp1)
	if b := mustFind(t, st, tok); string(b) != "one" {
		t.Fatalf("Find = %q", b)
	}
	exp2 := exp1.Add(time.Hour)
	mustCommit(t, st, tok, []byte("two"), exp2)
	if b := mustFind(t, st, tok); string(b) != "two" {
		t.Fatalf("Find after overwrite = %q", b)
	}
	// Through the plain scs.Store methods too.
	if err := st.Commit(tok, []byte("three"), exp2); err != nil {
		t.Fatal(err)
	}
	if b, found, err := st.Find(tok); err != nil || !found || string(b) != "three" {
		t.Fatalf("Find = %q %v %v", b, found, err)
	}
	// The item carries the TTL (rounded up to whole seconds) and the precise
	// expiry.
	item := rawItem(t, tbl, st, tok)
	if ttl, _ := ddb.Int(item, dynaguard.AttrTTL); ttl != ddb.EpochSeconds(exp2) {
		t.Errorf("ttl = %d, want %d", ttl, ddb.EpochSeconds(exp2))
	}
	if exp, _ := ddb.Int(item, sessionstore.AttrExp); exp != exp2.UnixNano() {
		t.Errorf("exp = %d, want %d", exp, exp2.UnixNano())
	}
	if err := st.Delete(tok); err != nil {
		t.Fatal(err)
	}
	mustNotFind(t, st, tok)
}

// DynamoDB deletes expired items lazily (up to ~48 h late); the store treats
// an item past its expiry as absent to the nanosecond, while it is still in
// the table.
func TestExpiredButNotYetDeleted(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	clock := ddbtest.NewClock(time.Now())
	st := newStore(t, tbl, withClock(clock))
	tok := newToken(t)
	exp := clock.Now().Add(time.Minute + 500*time.Millisecond)
	mustCommit(t, st, tok, []byte("data"), exp)

	clock.Set(exp.Add(-time.Nanosecond))
	mustFind(t, st, tok)
	clock.Set(exp)
	mustNotFind(t, st, tok)
	clock.Set(exp.Add(time.Hour))
	mustNotFind(t, st, tok)
	if item := rawItem(t, tbl, st, tok); item == nil || item[sessionstore.AttrData] == nil {
		t.Fatal("the test needs the expired item to still be in the table")
	}

	// A tampered ttl cannot outvote the precise expiry, nor the reverse.
	pk := dynaguard.PrefixSession + st.ID(tok)
	rawUpdate(t, tbl, pk, "SET #ttl = :far", map[string]string{"#ttl": dynaguard.AttrTTL},
		map[string]types.AttributeValue{":far": ddb.N(clock.Now().Add(1000 * time.Hour).Unix())})
	mustNotFind(t, st, tok)
	clock.Set(exp.Add(-time.Minute))
	rawUpdate(t, tbl, pk, "SET #ttl = :past", map[string]string{"#ttl": dynaguard.AttrTTL},
		map[string]types.AttributeValue{":past": ddb.N(clock.Now().Add(-time.Second).Unix())})
	mustNotFind(t, st, tok)
}

func TestTamperedTokens(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	st := newStore(t, tbl)
	tok := newToken(t)
	mustCommit(t, st, tok, []byte("data"), time.Now().Add(time.Hour))
	flip := []byte(tok)
	flip[10] ^= 1
	sum := sha256.Sum256([]byte(tok))
	for name, bad := range map[string]string{
		"one character changed": string(flip),
		"suffix":                tok + "A",
		"prefix":                "A" + tok,
		"truncated":             tok[:42],
		"upper case":            strings.ToUpper(tok),
		"the public ID":         st.ID(tok),
		"the item key":          dynaguard.PrefixSession + st.ID(tok),
		"plain SHA-256 (hex)":   hex.EncodeToString(sum[:]),
		"plain SHA-256 (b64)":   base64.RawURLEncoding.EncodeToString(sum[:]),
		"with NUL":              tok + "\x00",
		"invalid UTF-8":         tok[:40] + "\xff\xfe",
	} {
		t.Run(name, func(t *testing.T) { mustNotFind(t, st, bad) })
	}
	mustFind(t, st, tok)
}

// Someone who can write to the table but does not hold the secret cannot mint
// a session: every key they can compute is the wrong one.
// (Plaintext stores, to test the key alone; encryption adds its own check.)
func TestTableWriterCannotForgeSessions(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	st := newStore(t, tbl, plaintext)
	codec := sessionstore.Codec{}
	b, err := codec.Encode(time.Now().Add(time.Hour), map[string]any{"user": "admin"})
	if err != nil {
		t.Fatal(err)
	}
	tok := newToken(t)
	sum := sha256.Sum256([]byte(tok))
	exp := time.Now().Add(time.Hour)
	for _, pk := range []string{
		dynaguard.PrefixSession + tok,
		dynaguard.PrefixSession + hex.EncodeToString(sum[:]),
		dynaguard.PrefixSession + base64.RawURLEncoding.EncodeToString(sum[:]),
	} {
		rawPut(t, tbl, map[string]types.AttributeValue{
			dynaguard.AttrPK: ddb.S(pk), dynaguard.AttrTTL: ddb.TTLValue(exp),
			sessionstore.AttrExp: ddb.N(exp.UnixNano()), sessionstore.AttrVer: ddb.N(1),
			sessionstore.AttrData: ddb.B(b),
		})
	}
	mustNotFind(t, st, tok)
	// With another secret the same token maps to another key.
	other := newStore(t, tbl, plaintext, withKeys(keyring(t, secret2)))
	mustCommit(t, other, tok, b, exp)
	mustNotFind(t, st, tok)
}

func TestMalformedItemsAreAbsent(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	clock := ddbtest.NewClock(time.Now())
	st := newStore(t, tbl, withClock(clock), plaintext)
	exp := clock.Now().Add(time.Hour)
	good := func(pk string) map[string]types.AttributeValue {
		return map[string]types.AttributeValue{
			dynaguard.AttrPK: ddb.S(pk), dynaguard.AttrTTL: ddb.TTLValue(exp),
			sessionstore.AttrExp: ddb.N(exp.UnixNano()), sessionstore.AttrVer: ddb.N(1),
			sessionstore.AttrData: ddb.B([]byte("data")),
		}
	}
	for name, mutate := range map[string]func(map[string]types.AttributeValue){
		"no ttl":         func(m map[string]types.AttributeValue) { delete(m, dynaguard.AttrTTL) },
		"no exp":         func(m map[string]types.AttributeValue) { delete(m, sessionstore.AttrExp) },
		"no ver":         func(m map[string]types.AttributeValue) { delete(m, sessionstore.AttrVer) },
		"no data":        func(m map[string]types.AttributeValue) { delete(m, sessionstore.AttrData) },
		"exp not number": func(m map[string]types.AttributeValue) { m[sessionstore.AttrExp] = ddb.S("soon") },
		"data as string": func(m map[string]types.AttributeValue) { m[sessionstore.AttrData] = ddb.S("data") },
		"ttl as string":  func(m map[string]types.AttributeValue) { m[dynaguard.AttrTTL] = ddb.S("9999999999") },
		"tombstone":      func(m map[string]types.AttributeValue) { m[sessionstore.AttrTomb] = ddb.Bool(true) },
		"unknown key id": func(m map[string]types.AttributeValue) { m[sessionstore.AttrEnc] = ddb.S("nokey") },
		"exp fractional": func(m map[string]types.AttributeValue) {
			m[sessionstore.AttrExp] = &types.AttributeValueMemberN{Value: "1.5"}
		},
		"ver not integer": func(m map[string]types.AttributeValue) {
			m[sessionstore.AttrVer] = &types.AttributeValueMemberN{Value: "1.5"}
		},
	} {
		t.Run(name, func(t *testing.T) {
			tok := newToken(t)
			item := good(dynaguard.PrefixSession + st.ID(tok))
			mutate(item)
			rawPut(t, tbl, item)
			mustNotFind(t, st, tok)
		})
	}
	t.Run("control", func(t *testing.T) {
		tok := newToken(t)
		rawPut(t, tbl, good(dynaguard.PrefixSession+st.ID(tok)))
		mustFind(t, st, tok)
	})
}

func TestDeleteOfAbsentTokenIsNoop(t *testing.T) {
	st := newStore(t, ddbtest.NewTable(t))
	for _, tok := range []string{newToken(t), "", strings.Repeat("x", 10_000)} {
		if err := st.Delete(tok); err != nil {
			t.Fatalf("Delete(%.10q): %v", tok, err)
		}
		mustNotFind(t, st, tok)
	}
}

// A request that loaded the session before it was deleted cannot commit it
// back to life; its commit is a silent no-op.
func TestDeleteWinsOverLaterCommit(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	clock := ddbtest.NewClock(time.Now())
	a := newStore(t, tbl, withClock(clock))
	b := newStore(t, tbl, withClock(clock))
	tok := newToken(t)
	exp := clock.Now().Add(time.Hour)
	mustCommit(t, a, tok, []byte("v1"), exp)
	mustFind(t, a, tok) // the in-flight request loads it on instance a
	if err := b.Delete(tok); err != nil {
		t.Fatal(err)
	}
	mustNotFind(t, b, tok)
	mustCommit(t, a, tok, []byte("v2"), exp.Add(time.Minute)) // ... and commits: refused, no error
	mustCommit(t, a, tok, []byte("v1"), exp)                  // identical data: still refused
	mustNotFind(t, a, tok)
	mustNotFind(t, b, tok)
	item := rawItem(t, tbl, a, tok)
	if item[sessionstore.AttrData] != nil || item[sessionstore.AttrTomb] == nil {
		t.Fatalf("want a tombstone without data, have %v", ddbtest.Flatten(item))
	}
	// The tombstone lives TombstoneTTL (default one hour), then a commit of
	// the same token may write again: the documented bound on how long a
	// request can run after a logout and still be refused.
	clock.Advance(sessionstore.DefaultTombstoneTTL - time.Second)
	mustCommit(t, a, tok, []byte("v3"), clock.Now().Add(time.Hour))
	mustNotFind(t, a, tok)
	clock.Advance(2 * time.Second)
	mustCommit(t, a, tok, []byte("v4"), clock.Now().Add(time.Hour))
	if got := mustFind(t, a, tok); !bytes.Equal(got, []byte("v4")) {
		t.Fatalf("after the tombstone expired: %q", got)
	}
}
