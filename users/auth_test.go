package users

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

func (e *env) auth(login, password, addr string) (*User, error) {
	return e.users.Authenticate(ctx, Credentials{Login: login, Password: password, IP: ip(addr)})
}

func ops(calls []ddbtest.Call) string {
	s := make([]string, len(calls))
	for i, c := range calls {
		s[i] = c.Op
	}
	return strings.Join(s, ",")
}

func TestAuthenticateCalls(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ivy := e.create("ivy@example.com", "ivy")
	e.hasher.reset()
	for _, login := range []string{"IVY@example.com", "Ivy"} {
		e.rec.Reset()
		u, err := e.auth(login, goodPassword, "192.0.2.10")
		if err != nil || u.ID != ivy.ID {
			t.Fatalf("%s: %v", login, err)
		}
		// One BatchGetItem (marker + two counters) and one GetItem (account),
		// both strongly consistent; one conditional UpdateItem that counts
		// the attempt before the password is checked, one DeleteItem that
		// clears it after the success.
		calls := e.rec.Calls()
		if got := ops(calls); got != "BatchGetItem,GetItem,UpdateItem,DeleteItem" {
			t.Fatalf("calls per login: %s", got)
		}
		if !calls[0].ConsistentRead || !calls[1].ConsistentRead {
			t.Fatal("a read on the login path is not strongly consistent")
		}
		if calls[2].Condition == "" {
			t.Fatal("the attempt counter update is not conditional")
		}
	}
	if e.hasher.verifies.Load() != 2 || e.hasher.hashes.Load() != 0 {
		t.Fatalf("verifies %d hashes %d", e.hasher.verifies.Load(), e.hasher.hashes.Load())
	}
}

// Unknown account, wrong password and disabled account: the same error, the
// same calls to DynamoDB, and exactly one hash verification each. A
// throttled attempt: the same error class, and no hash work at all.
func TestFailuresLookTheSame(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("jack@example.com", "jack")
	kim := e.create("kim@example.com", "kim")
	if err := e.users.Disable(ctx, kim.ID); err != nil {
		t.Fatal(err)
	}
	type result struct {
		err      error
		ops      string
		verifies int64
	}
	try := func(login, password, addr string) result {
		e.rec.Reset()
		e.hasher.reset()
		u, err := e.auth(login, password, addr)
		if u != nil {
			t.Fatalf("%s logged in", login)
		}
		for _, c := range e.rec.Calls() {
			if (c.Op == "GetItem" || c.Op == "BatchGetItem") && !c.ConsistentRead {
				t.Fatalf("%s: eventually consistent %s", login, c.Op)
			}
		}
		return result{err, ops(e.rec.Calls()), e.hasher.verifies.Load()}
	}
	paths := map[string]result{
		"unknown account":       try("nobody@example.com", goodPassword, "192.0.2.21"),
		"unknown username":      try("nobody", goodPassword, "192.0.2.22"),
		"wrong password":        try("jack", "wrong "+goodPassword, "192.0.2.23"),
		"disabled, right pw":    try("kim", goodPassword, "192.0.2.24"),
		"disabled, wrong pw":    try("kim@example.com", "wrong", "192.0.2.25"),
		"empty login":           try("", "", "192.0.2.26"),
		"unregistrable login":   try("\xff\xfe!!", goodPassword, "192.0.2.27"),
		"right pw, other error": try("jack", goodPassword+" ", "192.0.2.28"),
		"megabyte password":     try("jack", goodPassword+strings.Repeat("x", 1<<20), "192.0.2.31"),
	}
	want := paths["wrong password"]
	if want.err != ErrInvalidCredentials || want.verifies != 1 {
		t.Fatalf("wrong password: %+v", want)
	}
	for name, r := range paths {
		if r.err != want.err || r.err.Error() != want.err.Error() {
			t.Errorf("%s: error %v, want %v", name, r.err, want.err)
		}
		if r.ops != want.ops {
			t.Errorf("%s: calls %s, want %s", name, r.ops, want.ops)
		}
		if r.verifies != 1 {
			t.Errorf("%s: %d hash verifications, want 1", name, r.verifies)
		}
	}
	// Throttled: rejected before any password work, still an invalid login.
	for range 5 {
		try("jack", "wrong", "192.0.2.29")
	}
	r := try("jack", goodPassword, "192.0.2.29")
	var te *ThrottledError
	if !errors.As(r.err, &te) || !errors.Is(r.err, ErrInvalidCredentials) || r.verifies != 0 || r.ops != "BatchGetItem" {
		t.Fatalf("throttled: %+v", r)
	}
	// Same for a login name without an account.
	for range 5 {
		try("nobody", "wrong", "192.0.2.30")
	}
	if r2 := try("nobody", "wrong", "192.0.2.30"); !errors.As(r2.err, &te) || r2.verifies != 0 || r2.ops != r.ops {
		t.Fatalf("throttled unknown: %+v", r2)
	}
}

func retryAfter(t *testing.T, err error) time.Duration {
	t.Helper()
	var te *ThrottledError
	if !errors.As(err, &te) || te.Locked {
		t.Fatalf("want a ThrottledError, got %v", err)
	}
	return te.RetryAfter
}

// Per account (and client address): 5 failures free, then 30 s, doubling
// up to 1 h. A login name without an account is throttled the same way.
func TestThrottlePerAccountEscalates(t *testing.T) {
	t.Parallel()
	// The account-wide unknown-client limit is tested on its own.
	e := newEnv(t, func(c *Config) { c.Throttle.UnknownClients.Free = 1000 })
	e.create("leo@example.com", "leo")
	for _, login := range []string{"leo", "nobody-here"} {
		for i := range 5 {
			if _, err := e.auth(login, "wrong", "192.0.2.40"); err != ErrInvalidCredentials {
				t.Fatalf("%s failure %d: %v", login, i+1, err)
			}
		}
		want := 30 * time.Second
		for i := range 10 {
			_, err := e.auth(login, goodPassword, "192.0.2.40")
			if got := retryAfter(t, err); got != want {
				t.Fatalf("%s step %d: retry after %v, want %v", login, i, got, want)
			}
			e.clock.Advance(want - time.Second)
			if _, err := e.auth(login, "wrong", "192.0.2.40"); retryAfter(t, err) != time.Second {
				t.Fatalf("%s step %d: one second early was let through: %v", login, i, err)
			}
			e.clock.Advance(time.Second)
			if _, err := e.auth(login, "wrong", "192.0.2.40"); err != ErrInvalidCredentials {
				t.Fatalf("%s step %d: after the wait: %v", login, i, err)
			}
			want = min(2*want, time.Hour)
		}
		if want != time.Hour {
			t.Fatalf("delay did not reach the 1 h cap: %v", want)
		}
		if login != "leo" {
			continue
		}
		// The attacker's address is slowed down; the owner's is not.
		if _, err := e.auth("leo", goodPassword, "198.51.100.1"); err != nil {
			t.Fatalf("owner from another address: %v", err)
		}
		if _, err := e.auth("leo", goodPassword, "192.0.2.40"); retryAfter(t, err) != time.Hour {
			t.Fatalf("the owner's success must not lift the attacker's delay: %v", err)
		}
	}
}

// A success from an unknown client starts the per-address count over, but
// leaves the account's unknown-client count as it is — the owner logging in
// must not hand an attacker a fresh set of free guesses — and writes
// nothing but the deletion of its reservation.
func TestSuccessKeepsTheAccountCount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mia := e.create("mia@example.com", "mia")
	for range 4 {
		_, _ = e.auth("mia", "wrong", "192.0.2.50")
	}
	u, _ := e.users.Get(ctx, mia.ID)
	if u.ConsecutiveFailures() != 4 {
		t.Fatalf("failures = %d", u.ConsecutiveFailures())
	}
	e.rec.Reset()
	if _, err := e.auth("mia", goodPassword, "192.0.2.50"); err != nil {
		t.Fatal(err)
	}
	if got := ops(e.rec.Calls()); got != "BatchGetItem,GetItem,UpdateItem,DeleteItem" {
		t.Fatalf("calls: %s", got)
	}
	u, _ = e.users.Get(ctx, mia.ID)
	if u.ConsecutiveFailures() != 4 {
		t.Fatalf("failures after success = %d", u.ConsecutiveFailures())
	}
	// The per-address counter starts over: 5 more free failures (the
	// account's 10 free unknown-client failures are reached at the 6th).
	for i := range 5 {
		if _, err := e.auth("mia", "wrong", "192.0.2.50"); err != ErrInvalidCredentials {
			t.Fatalf("failure %d after success: %v", i+1, err)
		}
	}
	if _, err := e.auth("mia", "wrong", "192.0.2.51"); err != ErrInvalidCredentials {
		t.Fatalf("10th unknown-client failure: %v", err)
	}
	if _, err := e.auth("mia", goodPassword, "192.0.2.52"); retryAfter(t, err) != 30*time.Second {
		t.Fatalf("11th unknown-client attempt: %v", err)
	}
}

// Per client address, over all accounts: 50 failures free, then delays.
// IPv6 addresses count per /64.
func TestThrottlePerIP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("ned@example.com", "ned")
	for _, addrs := range [][2]string{{"192.0.2.60", "192.0.2.61"}, {"2001:db8:1:2::1", "2001:db8:1:3::1"}} {
		for i := range 50 {
			// A different /64 suffix each time: same prefix.
			a := addrs[0]
			if strings.Contains(a, ":") {
				a = fmt.Sprintf("2001:db8:1:2::%x", i+1)
			}
			if _, err := e.auth(fmt.Sprintf("victim%d", i), "wrong", a); err != ErrInvalidCredentials {
				t.Fatalf("failure %d from %s: %v", i+1, a, err)
			}
		}
		if _, err := e.auth("ned", goodPassword, addrs[0]); retryAfter(t, err) != 30*time.Second {
			t.Fatalf("51st attempt from %s: %v", addrs[0], err)
		}
		if _, err := e.auth("ned", goodPassword, addrs[1]); err != nil {
			t.Fatalf("another address (%s): %v", addrs[1], err)
		}
	}
	// A new window forgets the address's failures.
	e.clock.Advance(24 * time.Hour)
	if _, err := e.auth("ned", goodPassword, "192.0.2.60"); err != nil {
		t.Fatalf("next window: %v", err)
	}
}

// At most MaxFailures unknown-client failures per account, from however
// many addresses; then unknown clients wait for what is left of the window
// (no hash work), and the cap lapses with it — there is no lock that only
// a reset lifts. A login name without an account is capped the same way.
func TestMaxFailuresLapses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.Throttle.UnknownClients.MaxDelay = time.Minute })
	olga := e.create("olga@example.com", "olga")
	for _, login := range []string{"olga@example.com", "no-such-olga"} {
		fails := 0
		for i := 0; fails < 100; i++ {
			addr := fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)
			_, err := e.auth(login, "wrong", addr)
			var te *ThrottledError
			switch {
			case err == ErrInvalidCredentials:
				fails++
			case errors.As(err, &te) && !te.Locked && te.RetryAfter <= time.Minute:
				e.clock.Advance(te.RetryAfter)
			default:
				t.Fatalf("%s attempt %d after %d failures: %v", login, i+1, fails, err)
			}
		}
		e.hasher.reset()
		if _, err := e.auth(login, goodPassword, "198.51.100.77"); retryAfter(t, err) != 24*time.Hour {
			t.Fatalf("%s after 100 failures: %v", login, err)
		}
		if e.hasher.verifies.Load() != 0 {
			t.Fatal("a capped account's attempt did hash work")
		}
		// The cap lapses a window after the last failure.
		e.clock.Advance(24*time.Hour - time.Second)
		if _, err := e.auth(login, goodPassword, "198.51.100.78"); retryAfter(t, err) != time.Second {
			t.Fatalf("%s one second before the window ends: %v", login, err)
		}
		e.clock.Advance(time.Second)
		_, err := e.auth(login, goodPassword, "198.51.100.79")
		if login == "olga@example.com" && err != nil {
			t.Fatalf("after the window: %v", err)
		}
		if login != "olga@example.com" && err != ErrInvalidCredentials {
			t.Fatalf("%s after the window: %v", login, err)
		}
	}
	// Unlock clears the count at once.
	for range 10 {
		_, _ = e.auth("olga", "wrong", "10.2.0.1")
		_, _ = e.auth("olga", "wrong", "10.2.0.2")
	}
	if _, err := e.auth("olga", goodPassword, "10.2.0.3"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("after 10 more failures: %v", err)
	}
	if err := e.users.Unlock(ctx, olga.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.auth("olga", goodPassword, "198.51.100.80"); err != nil {
		t.Fatalf("after Unlock: %v", err)
	}
}

// One address, however persistent, cannot keep the owner out: its own
// attempts are delayed, and paced by those delays it stays far from the
// cap (24 a day; the count lapses a day after the last failure only if it
// stops, but 100 takes more than four days). Known devices are not even
// slowed (see guessing_test.go).
func TestOneAddressCannotLockOutTheOwner(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("pia@example.com", "pia")
	attacker := "203.0.113.66"
	for day := range 3 {
		for range 24 {
			_, err := e.auth("pia", "guess", attacker)
			if err != ErrInvalidCredentials && !errors.Is(err, ErrThrottled) {
				t.Fatal(err)
			}
			e.clock.Advance(time.Hour)
		}
		if _, err := e.auth("pia@example.com", goodPassword, "198.51.100.5"); err != nil {
			t.Fatalf("day %d: owner kept out: %v", day+1, err)
		}
	}
}

// Concurrent attempts cannot slip past the limit: each needs its own
// conditional write before any password work.
func TestConcurrentAttemptsRespectTheLimit(t *testing.T) {
	t.Parallel()
	// Waits long enough that a loaded machine answers every attempt (no
	// ErrBusy, no budget timeout): the limit is what this test is about.
	e := newEnv(t, func(c *Config) { c.HashWait, c.Budget = time.Minute, time.Minute })
	e.create("quinn@example.com", "quinn")
	other := e.instance()
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := e.users
			if i%2 == 1 {
				u = other
			}
			_, err := u.Authenticate(ctx, Credentials{Login: "quinn", Password: "wrong", IP: ip("192.0.2.80")})
			if !errors.Is(err, ErrInvalidCredentials) {
				t.Errorf("attempt: %v", err)
			}
		}()
	}
	wg.Wait()
	// The second instance has its own hasher wrapper in cfg: both share e.hasher.
	if n := e.hasher.verifies.Load(); n > 5 {
		t.Fatalf("%d password verifications for 30 concurrent attempts; the limit is 5", n)
	}
}

// MaxFailures under a burst of passwords: 200 concurrent wrong passwords
// from 40 addresses (5 each, within the per-address limits) on two
// instances with 2 hashing slots each verify at most MaxFailures + 3
// passwords — the account's count is read and a failure added inside the
// hashing slot, so only the 4 slots' attempts can pass the cap together —
// and the count ends within the same bound.
func TestPasswordCapUnderConcurrency(t *testing.T) {
	t.Parallel()
	const maxFails, slots = 10, 2
	e := newEnv(t, func(c *Config) {
		c.Throttle.MaxFailures = maxFails
		c.HashConcurrency = slots
		c.HashWait = time.Minute
		c.Budget = time.Minute // 200 writes contend for one item; see TestSecondFactorCapUnderConcurrency
	})
	rex := e.create("rex@example.com", "rex")
	other := e.instance()
	e.hasher.reset()
	const n = 200
	var (
		wg                           sync.WaitGroup
		mu                           sync.Mutex
		wrongs, locked, throttled, x int
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := e.users
			if i%2 == 1 {
				u = other
			}
			_, err := u.Authenticate(ctx, Credentials{Login: "rex", Password: "not the password", IP: ip(fmt.Sprintf("198.51.100.%d", i%40))})
			var te *ThrottledError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.As(err, &te) && te.Locked:
				locked++
			case errors.As(err, &te):
				throttled++
			case err == ErrInvalidCredentials:
				wrongs++
			default:
				x++
				t.Errorf("attempt %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	bound := int64(maxFails + 2*slots - 1)
	verified, fails := e.hasher.verifies.Load(), int64(mustGet(t, e, rex.ID).ConsecutiveFailures())
	t.Logf("%d concurrent wrong passwords: %d verified, %d wrong, %d locked, %d throttled; fails = %d (bound %d)", n, verified, wrongs, locked, throttled, fails, bound)
	if verified > bound || fails > bound || fails < maxFails {
		t.Fatalf("%d passwords verified, fails = %d; the bound is %d", verified, fails, bound)
	}
	if _, err := e.auth("rex", goodPassword, "203.0.113.9"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("the right password after the cap: %v", err)
	}
}

func setHash(t *testing.T, e *env, uid, hash string) {
	t.Helper()
	_, err := ddbtest.Client(t).UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(e.base.Name),
		Key:                       ddb.Key(userPK(uid)),
		UpdateExpression:          aws.String("SET ph = :h REMOVE pep"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":h": ddb.S(hash)},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func storedHash(t *testing.T, e *env, uid string) (hash, pepper string) {
	t.Helper()
	u, err := e.users.Get(ctx, uid)
	if err != nil {
		t.Fatal(err)
	}
	return u.hash, u.pepperID
}

// A hash of an older algorithm or with older parameters is replaced at the
// next successful login, by one of the current hasher.
func TestHashUpgrade(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rita := e.create("rita@example.com", "rita")
	for _, v := range []struct{ password, hash string }{
		{djangoPBKDF2Vectors[0].password, djangoPBKDF2Vectors[0].encoded},
		{djangoArgon2Vectors[2].password, djangoArgon2Vectors[2].encoded},
		{"password", "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"},
	} {
		setHash(t, e, rita.ID, v.hash)
		if _, err := e.auth("rita", v.password+"x", "192.0.2.90"); err != ErrInvalidCredentials {
			t.Fatalf("wrong password against %s: %v", v.hash, err)
		}
		if h, _ := storedHash(t, e, rita.ID); h != v.hash {
			t.Fatal("a failed login changed the hash")
		}
		e.hasher.reset()
		if _, err := e.auth("rita", v.password, "192.0.2.90"); err != nil {
			t.Fatalf("legacy hash %s: %v", v.hash, err)
		}
		h, _ := storedHash(t, e, rita.ID)
		if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") || e.hasher.hashes.Load() != 1 {
			t.Fatalf("not upgraded: %s (%d hashes)", h, e.hasher.hashes.Load())
		}
		// Upgraded once: the next login verifies and writes nothing more.
		e.hasher.reset()
		e.rec.Reset()
		if _, err := e.auth("rita@example.com", v.password, "192.0.2.90"); err != nil {
			t.Fatal(err)
		}
		if e.hasher.hashes.Load() != 0 || ops(e.rec.Calls()) != "BatchGetItem,GetItem,UpdateItem,DeleteItem" {
			t.Fatalf("second login: %d hashes, calls %s", e.hasher.hashes.Load(), ops(e.rec.Calls()))
		}
	}
	// New parameters: another instance configured with more memory
	// upgrades the hash at the next login.
	stronger := e.cfg
	stronger.Hasher = Argon2id{Memory: 128, Time: 1, Threads: 1}
	u2, err := New(stronger)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u2.Authenticate(ctx, Credentials{Login: "rita", Password: "password", IP: ip("192.0.2.91")}); err != nil {
		t.Fatal(err)
	}
	if h, _ := storedHash(t, e, rita.ID); !strings.HasPrefix(h, "$argon2id$v=19$m=128,t=1,p=1$") {
		t.Fatalf("parameters not upgraded: %s", h)
	}
}

// The upgrade is written on condition that the hash is still the one that
// was verified (and the credential version unchanged): a password change
// that lands in between is never overwritten, and the login fails.
func TestHashUpgradeNeverOverwritesAPasswordChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sam := e.create("sam@example.com", "sam")
	stale, _ := e.users.Get(ctx, sam.ID)
	setHash(t, e, sam.ID, djangoPBKDF2Vectors[1].encoded) // "the password changed"
	err := e.users.st.loginSucceeded(ctx, stale, true, "$argon2id$v=19$m=64,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "")
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("upgrade over a changed hash: %v", err)
	}
	if h, _ := storedHash(t, e, sam.ID); h != djangoPBKDF2Vectors[1].encoded {
		t.Fatalf("the changed hash was overwritten: %s", h)
	}
}

// Pepper rotation: a hash made with the previous secret still verifies and
// is re-peppered with the current one; once the previous secret is gone,
// a hash made with it no longer verifies (and costs the same dummy work).
func TestPepperRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.Pepper = true })
	tom := e.create("tom@example.com", "tom")
	_, pepA := storedHash(t, e, tom.ID)
	if pepA != e.keys.Key(dynaguard.PurposePasswordPepper).ID {
		t.Fatalf("pepper ID %q", pepA)
	}
	// Unpeppered instances cannot verify it: the pepper is required.
	plain := e.cfg
	plain.Pepper = false
	plain.Keys = keyring(t, secretB)
	up, _ := New(plain)
	e.hasher.reset()
	if _, err := up.Authenticate(ctx, Credentials{Login: "tom", Password: goodPassword, IP: ip("192.0.2.95")}); err != ErrInvalidCredentials {
		t.Fatalf("without the pepper secret: %v", err)
	}
	if e.hasher.verifies.Load() != 1 {
		t.Fatalf("%d verifications for an unusable pepper, want 1 (dummy)", e.hasher.verifies.Load())
	}
	// Rotated: B current, A previous.
	rotated := e.cfg
	rotated.Keys = keyring(t, secretB, secretA)
	ur, _ := New(rotated)
	if _, err := ur.Authenticate(ctx, Credentials{Login: "tom", Password: goodPassword, IP: ip("192.0.2.96")}); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	_, pepB := storedHash(t, e, tom.ID)
	if pepB == pepA || pepB != rotated.Keys.Key(dynaguard.PurposePasswordPepper).ID {
		t.Fatalf("not re-peppered: %q → %q", pepA, pepB)
	}
	// A dropped: B alone verifies the re-peppered hash.
	only := e.cfg
	only.Keys = keyring(t, secretB)
	uo, _ := New(only)
	if _, err := uo.Authenticate(ctx, Credentials{Login: "tom", Password: goodPassword, IP: ip("192.0.2.97")}); err != nil {
		t.Fatalf("with the new secret only: %v", err)
	}
}

// A bcrypt hash imported from a system that truncated at 72 bytes does not
// match a longer password: never truncated silently.
func TestBcryptLegacyNeverTruncates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	uma := e.create("uma@example.com", "uma")
	long := strings.Repeat("correct horse ", 6) // 84 bytes
	h, err := Bcrypt{Cost: 4}.Hash([]byte(long[:72]))
	if err != nil {
		t.Fatal(err)
	}
	setHash(t, e, uma.ID, h)
	if _, err := e.auth("uma", long, "192.0.2.98"); err != ErrInvalidCredentials {
		t.Fatalf("84-byte password against a 72-byte bcrypt hash: %v", err)
	}
	if _, err := e.auth("uma", long[:72], "192.0.2.98"); err != nil {
		t.Fatalf("the 72-byte password itself: %v", err)
	}
}

func TestHashLimiterBusy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.HashConcurrency = 1; c.HashWait = 30 * time.Millisecond })
	e.create("vera@example.com", "vera")
	release, err := e.users.limiter.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.rec.Reset()
	_, err = e.auth("vera", goodPassword, "192.0.2.100")
	if !errors.Is(err, ErrBusy) || errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("with every slot taken: %v", err)
	}
	// Busy before the attempt was counted: the user is not penalised.
	if e.rec.Writes() != 0 {
		t.Fatalf("a busy attempt wrote: %s", ops(e.rec.Calls()))
	}
	w := httptest.NewRecorder()
	WriteError(w, httptest.NewRequest("POST", "/login", nil), err)
	if w.Code != 503 || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "login-busy") {
		t.Fatalf("busy response: %d %v %s", w.Code, w.Header(), w.Body)
	}
	if _, err := e.users.Create(ctx, NewUser{Email: "w@example.com", Username: "wanda", Password: goodPassword}); !errors.Is(err, ErrBusy) {
		t.Fatalf("Create with every slot taken: %v", err)
	}
	release()
	if _, err := e.auth("vera", goodPassword, "192.0.2.100"); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

// Storage faults on any call of the login path never log anyone in: the
// result is ErrUnavailable, never a user, and never mistaken for a failed
// password either.
func TestStorageFaultsNeverLogIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.Throttle.UnknownClients.Free = 1000 })
	xena := e.create("xena@example.com", "xena")
	// Successful path: BatchGetItem, GetItem, UpdateItem (attempt), then
	// DeleteItem.
	steps := []struct {
		op string
		n  int
	}{{"BatchGetItem", 1}, {"GetItem", 1}, {"UpdateItem", 1}, {"DeleteItem", 1}}
	n := 0
	for _, step := range steps {
		for _, fault := range ddbtest.StorageFaults {
			n++
			// One earlier failure, so the account has a count.
			_, _ = e.auth("xena", "wrong", fmt.Sprintf("10.9.%d.1", n))
			e.faults.FailNth(step.op, step.n, fault)
			u, err := e.auth("xena", goodPassword, fmt.Sprintf("10.9.%d.2", n))
			e.faults.Clear()
			if u != nil || !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidCredentials) {
				t.Errorf("%s #%d %v: user %v, err %v", step.op, step.n, fault, u != nil, err)
			}
		}
	}
	// Failure path writes: a fault there is reported, not swallowed.
	for _, op := range []string{"UpdateItem"} {
		// The unknown-client count, the address's and its /24's, at once.
		for _, nth := range []int{2, 3, 4} {
			e.faults.FailNth(op, nth, ddbtest.InternalError)
			_, err := e.auth("xena", "wrong", fmt.Sprintf("10.8.%d.1", nth))
			e.faults.Clear()
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("failure-path %s #%d: %v", op, nth, err)
			}
		}
	}
	// Sign-up: nothing is written when the transaction fails.
	e.faults.Fail("TransactWriteItems", ddbtest.Throttling)
	if _, err := e.users.Create(ctx, NewUser{Email: "yara@example.com", Username: "yara", Password: goodPassword}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("create under faults: %v", err)
	}
	e.faults.Clear()
	if _, err := e.users.Lookup(ctx, "yara"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a failed sign-up left an account: %v", err)
	}
	_ = xena
}
