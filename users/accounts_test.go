package users

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

// 50 concurrent sign-ups with one email address in different Unicode and
// case forms, on two instances sharing the table: exactly one account.
func TestCreateConcurrentSameEmail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	instances := []*Users{e.users, e.instance()}
	forms := []string{"alice@example.com", "Alice@Example.com", "ALICE@EXAMPLE.COM", "ａｌｉｃｅ@example.com",
		"ＡＬＩＣＥ@ＥＸＡＭＰＬＥ.ＣＯＭ", " alice@example.com "}
	const n = 50
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		won     []*User
		taken   int
		unknown []error
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := instances[i%2].Create(ctx, NewUser{Email: forms[i%len(forms)], Username: fmt.Sprintf("user%d", i), Password: goodPassword})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won = append(won, u)
			case errors.Is(err, ErrEmailTaken) && !errors.Is(err, ErrUsernameTaken):
				taken++
			default:
				unknown = append(unknown, err)
			}
		}()
	}
	wg.Wait()
	if len(won) != 1 || taken != n-1 || len(unknown) > 0 {
		t.Fatalf("%d created, %d ErrEmailTaken, other errors %v", len(won), taken, unknown)
	}
	// The table holds one account, one email marker and one username marker.
	var users, emails, names int
	for _, it := range ddbtest.Scan(t, e.base) {
		switch pk := it[dynaguard.AttrPK]; {
		case strings.HasPrefix(pk, dynaguard.PrefixUser):
			users++
		case strings.HasPrefix(pk, dynaguard.PrefixUnique+"email#"):
			emails++
			if it[attrUID] != won[0].ID {
				t.Errorf("email marker points at %s, want %s", it[attrUID], won[0].ID)
			}
		case strings.HasPrefix(pk, dynaguard.PrefixUnique+"username#"):
			names++
		}
	}
	if users != 1 || emails != 1 || names != 1 {
		t.Fatalf("table holds %d accounts, %d email markers, %d username markers", users, emails, names)
	}
	// Every form logs in to the one account.
	for _, f := range forms {
		u, err := e.users.Authenticate(ctx, Credentials{Login: f, Password: goodPassword, IP: ip("192.0.2.7")})
		if err != nil || u.ID != won[0].ID {
			t.Errorf("login as %q: %v", f, err)
		}
	}
}

func TestCreateConcurrentSameUsername(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	instances := []*Users{e.users, e.instance()}
	forms := []string{"jörg", "JÖRG", "jo\u0308rg", "Jörg", "ＪÖＲＧ"}
	var wg sync.WaitGroup
	var ok, taken atomic32
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := instances[i%2].Create(ctx, NewUser{Email: fmt.Sprintf("u%d@example.com", i), Username: forms[i%len(forms)], Password: goodPassword})
			switch {
			case err == nil:
				ok.add()
			case errors.Is(err, ErrUsernameTaken) && !errors.Is(err, ErrEmailTaken):
				taken.add()
			default:
				t.Errorf("unexpected: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.get() != 1 || taken.get() != 19 {
		t.Fatalf("%d created, %d taken", ok.get(), taken.get())
	}
}

type atomic32 struct {
	mu sync.Mutex
	n  int
}

func (a *atomic32) add()     { a.mu.Lock(); a.n++; a.mu.Unlock() }
func (a *atomic32) get() int { a.mu.Lock(); defer a.mu.Unlock(); return a.n }

func TestCreateErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("bob@example.com", "bob")
	cases := []struct {
		nu          NewUser
		email, name bool
	}{
		{NewUser{Email: "BOB@example.com", Username: "robert", Password: goodPassword}, true, false},
		{NewUser{Email: "robert@example.com", Username: "Bob", Password: goodPassword}, false, true},
		{NewUser{Email: "Bob@Example.com", Username: "BOB", Password: goodPassword}, true, true},
	}
	for _, c := range cases {
		_, err := e.users.Create(ctx, c.nu)
		var te *TakenError
		if !errors.As(err, &te) || te.Email != c.email || te.Username != c.name ||
			errors.Is(err, ErrEmailTaken) != c.email || errors.Is(err, ErrUsernameTaken) != c.name {
			t.Errorf("%+v: %v", c.nu, err)
		}
	}
	if _, err := e.users.Create(ctx, NewUser{Email: "not-an-address", Username: "x", Password: goodPassword}); !errors.Is(err, ErrInvalidIdentifier) {
		t.Errorf("bad email: %v", err)
	}
	if _, err := e.users.Create(ctx, NewUser{Email: "x@example.com", Username: "", Password: goodPassword}); !errors.Is(err, ErrInvalidIdentifier) {
		t.Errorf("empty username: %v", err)
	}
	if _, err := e.users.Create(ctx, NewUser{Email: "x@example.com", Username: "quentinbl", Password: "Quentinbl2024"}); rule(err) != RuleContext {
		t.Errorf("password from username: %v", err)
	}
	if _, err := e.users.Create(ctx, NewUser{Email: "x@example.com", Username: "xavier", Password: "password1"}); rule(err) != RuleCommon {
		t.Errorf("common password: %v", err)
	}
	// A refused sign-up leaves nothing behind: the one account, its email
	// and username markers and its username's skeleton marker.
	n := len(ddbtest.Scan(t, e.base))
	if n != 4 {
		t.Errorf("table holds %d items after refused sign-ups, want 4", n)
	}
}

func TestGetLookupDisplayForm(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.create("  Carol.Smith@Example.COM ", "CarolS")
	if u.Email != "Carol.Smith@Example.COM" || u.Username != "CarolS" {
		t.Fatalf("display forms not kept: %q %q", u.Email, u.Username)
	}
	for _, login := range []string{"carol.smith@example.com", "CAROLS", "carols"} {
		got, err := e.users.Lookup(ctx, login)
		if err != nil || got.ID != u.ID || got.Email != u.Email {
			t.Errorf("Lookup(%q) = %+v, %v", login, got, err)
		}
	}
	if _, err := e.users.Lookup(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup(nobody): %v", err)
	}
	if _, err := e.users.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(nope): %v", err)
	}
	e.rec.Reset()
	if _, err := e.users.Lookup(ctx, "carols"); err != nil {
		t.Fatal(err)
	}
	calls := e.rec.Calls()
	if len(calls) != 2 || calls[0].Op != "GetItem" || calls[1].Op != "GetItem" || !calls[0].ConsistentRead || !calls[1].ConsistentRead {
		t.Fatalf("Lookup calls: %+v", calls)
	}
}

func TestChangeUsername(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dave := e.create("dave@example.com", "dave")
	e.create("erin@example.com", "erin")

	// Taken by another account.
	if _, err := e.users.ChangeUsername(ctx, dave, "Erin"); !errors.Is(err, ErrUsernameTaken) {
		t.Fatalf("taken: %v", err)
	}
	// Moved: the new name logs in, the old one is free for anyone.
	d2, err := e.users.ChangeUsername(ctx, dave, "David")
	if err != nil || d2.Username != "David" {
		t.Fatalf("change: %+v %v", d2, err)
	}
	if _, err := e.users.Authenticate(ctx, Credentials{Login: "david", Password: goodPassword, IP: ip("192.0.2.1")}); err != nil {
		t.Fatalf("login with new username: %v", err)
	}
	if _, err := e.users.Authenticate(ctx, Credentials{Login: "dave", Password: goodPassword, IP: ip("192.0.2.1")}); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("login with old username: %v", err)
	}
	if _, err := e.users.Create(ctx, NewUser{Email: "dave2@example.com", Username: "dave", Password: goodPassword}); err != nil {
		t.Fatalf("old username not released: %v", err)
	}
	// The stale snapshot cannot be used again: the version moved on.
	if _, err := e.users.ChangeUsername(ctx, dave, "dave3"); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale version: %v", err)
	}
	if _, err := e.users.Lookup(ctx, "dave3"); !errors.Is(err, ErrNotFound) {
		t.Fatal("a refused change claimed the new username")
	}
	// Display-only change (same normalised form): no marker moves.
	d3, err := e.users.ChangeUsername(ctx, d2, "DAVID")
	if err != nil || d3.Username != "DAVID" {
		t.Fatalf("display change: %v", err)
	}
	// Concurrent changes of one account to different names: one wins.
	var wg sync.WaitGroup
	var wins atomic32
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.users.ChangeUsername(ctx, d3, fmt.Sprintf("d%d", i)); err == nil {
				wins.add()
			} else if !errors.Is(err, ErrConflict) {
				t.Errorf("concurrent change: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins.get() != 1 {
		t.Fatalf("%d concurrent changes won", wins.get())
	}
	markers := 0
	for _, it := range ddbtest.Scan(t, e.base) {
		if strings.HasPrefix(it[dynaguard.AttrPK], dynaguard.PrefixUnique+"username#") && it[attrUID] == dave.ID {
			markers++
		}
	}
	if markers != 1 {
		t.Fatalf("account owns %d username markers, want 1", markers)
	}
}

func TestDeleteReleasesIdentifiers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.create("frank@example.com", "frank")
	if err := e.users.Delete(ctx, u); err != nil {
		t.Fatal(err)
	}
	if _, err := e.users.Get(ctx, u.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted account still there: %v", err)
	}
	if _, err := e.users.Create(ctx, NewUser{Email: "Frank@example.com", Username: "FRANK", Password: goodPassword}); err != nil {
		t.Fatalf("identifiers not released: %v", err)
	}
}

// The account item stays far below 4 KB even with the longest identifiers,
// so the strongly consistent read on every request costs one read unit.
func TestUserItemIsOneReadUnit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	email := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com"
	if len(email) != MaxEmailBytes {
		t.Fatalf("test email is %d bytes", len(email))
	}
	u, err := e.users.Create(ctx, NewUser{Email: email, Username: strings.Repeat("ü", MaxUsernameRunes), Password: goodPassword})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.users.Create(ctx, NewUser{Email: "x" + email, Username: "x", Password: goodPassword}); !errors.Is(err, ErrInvalidIdentifier) {
		t.Fatalf("255-byte email: %v", err)
	}
	out, err := ddbtest.Client(t).GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(e.base.Name),
		Key: ddb.Key(userPK(u.ID)), ConsistentRead: aws.Bool(true), ReturnConsumedCapacity: "TOTAL"})
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for k, v := range ddbtest.Flatten(out.Item) {
		size += len(k) + len(v)
	}
	if size > 2048 {
		t.Errorf("account item is about %d bytes", size)
	}
	if cu := aws.ToFloat64(out.ConsumedCapacity.CapacityUnits); cu != 1 {
		t.Errorf("consistent read of the account costs %v units, want 1", cu)
	}
}

// A dump of the table shows no password, no password-derived secret in the
// clear, and no login name or client address in a throttling key.
func TestTableDumpHoldsNoSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.Pepper = true })
	e.create("grace@example.com", "grace")
	for _, login := range []string{"grace", "MySecretTypo-in-login-field", "nobody@example.com"} {
		_, _ = e.users.Authenticate(ctx, Credentials{Login: login, Password: "wrong-" + goodPassword, IP: ip("203.0.113.9")})
	}
	dump := ddbtest.Dump(t, e.base)
	for _, secret := range []string{goodPassword, "wrong-" + goodPassword, "MySecretTypo", "mysecrettypo", "203.0.113.9", "nobody@example.com"} {
		if strings.Contains(dump, secret) {
			t.Errorf("table dump contains %q", secret)
		}
	}
	if !strings.Contains(dump, "$argon2id$") || !strings.Contains(dump, attrPepper+"=") {
		t.Error("the account should hold a peppered argon2id hash")
	}
}
