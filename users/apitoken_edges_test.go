package users

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
)

// A refresh or revoke token this keyring did not make — the victim's user
// ID, which every access token shows, with a random family ID and secret —
// is refused in memory: no call, so no write on the victim's account item.
func TestAPITokenForgedRefreshCostsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	victim := e.create("forged@example.com", "forged")
	p := e.tokenLogin(e.users, "forged@example.com")
	c, why := e.users.verifyAccess(p.AccessToken, e.users.now())
	if why != "" || c.uid != victim.ID {
		t.Fatalf("access token: %q %q", why, c.uid)
	}
	// The attacker's own instance of the package, with a keyring of its own.
	other := &Users{refreshKeys: keyring(t, secretB).Keys(purposeAPIRefreshMAC)}
	real, _ := e.users.parseRefresh(p.RefreshToken)
	forged := newFamily(victim, "x", e.users.now())
	flipped := []byte(p.RefreshToken)
	flipped[len(flipped)-2] ^= 1 // in the MAC
	for _, tc := range []struct{ name, tok string }{
		{"another keyring, random family", other.refreshToken(forged)},
		{"another keyring, the real family", other.refreshToken(real)},
		{"MAC changed", string(flipped)},
		{"no MAC", p.RefreshToken[:len(p.RefreshToken)-43]},
	} {
		e.rec.Reset()
		if _, err := e.users.RefreshAPITokens(ctx, tc.tok, Client{}); !errors.Is(err, ErrInvalidAPIToken) || errors.Is(err, ErrRefreshReused) {
			t.Errorf("%s: refresh: %v", tc.name, err)
		}
		if err := e.users.RevokeAPIToken(ctx, tc.tok, Client{}); err != nil {
			t.Errorf("%s: revoke: %v", tc.name, err)
		}
		if n := len(e.rec.Calls()); n != 0 {
			t.Errorf("%s: %d DynamoDB calls, want 0", tc.name, n)
		}
	}
	if _, err := e.users.RefreshAPITokens(ctx, p.RefreshToken, Client{}); err != nil {
		t.Fatalf("the real token after the forgeries: %v", err)
	}
}

// An access token minted by a refresh just before the family's absolute
// end ends with the family, not AccessLifetime later.
func TestAPITokenAccessEndsWithFamily(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) {
		c.APITokens = APITokenConfig{AccessLifetime: 10 * time.Minute, AbsoluteLifetime: time.Hour}
	})
	e.create("end@example.com", "end")
	api := newAPIServer(e, e.users)
	p := e.tokenLogin(e.users, "end@example.com")
	e.clock.Advance(55 * time.Minute)
	q, err := e.users.RefreshAPITokens(ctx, p.RefreshToken, Client{})
	if err != nil {
		t.Fatal(err)
	}
	if q.ExpiresIn != 5*time.Minute {
		t.Fatalf("expires_in %v, want the 5 min left of the family", q.ExpiresIn)
	}
	if got := api.status(q.AccessToken); got != 200 {
		t.Fatalf("before the family's end: %d", got)
	}
	e.clock.Advance(5 * time.Minute)
	if _, why := e.users.verifyAccess(q.AccessToken, e.users.now()); why != "expired" {
		t.Fatalf("the token at the family's end: %q, want expired", why)
	}
	if got := api.status(q.AccessToken); got != 401 {
		t.Fatalf("after the family's end: %d", got)
	}
}

// Input → outcome: the name a client is listed under on the sessions page.
func TestClientName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ ua, want string }{
		{"curl/8.5.0", "curl/8.5.0"},
		{"", "API client"},
		{"a\x00b\tc\r\nd\x7f", "abcd"},
		{"a\u0085b\u009bc", "abc"},                         // C1 controls (NEL, CSI)
		{"app\u202etxt.exe", "apptxt.exe"},                 // right-to-left override
		{"a\u202ab\u202bc\u202cd\u202de", "abcde"},         // embeddings, pop
		{"a\u2066b\u2067c\u2068d\u2069e", "abcde"},         // isolates
		{"a\u200eb\u200fc\u200bd", "abcd"},                 // marks, zero width space
		{"\u202e\u2066\x00", "API client"},                 // nothing left
		{strings.Repeat("é", 40), strings.Repeat("é", 32)}, // cut on a character boundary
	} {
		if got := clientName(tc.ua); got != tc.want {
			t.Errorf("clientName(%q) = %q, want %q", tc.ua, got, tc.want)
		}
	}
}

// The client list sorts by creation time without overflowing.
func TestEntriesOrder(t *testing.T) {
	t.Parallel()
	u := &User{apic: map[string]types.AttributeValue{
		"a": ddb.S(apiEntry{created: math.MaxInt64, abs: 1}.String()),
		"b": ddb.S(apiEntry{created: -1, abs: 1}.String()),
		"c": ddb.S(apiEntry{created: 5, abs: 1}.String()),
	}}
	var ids []string
	for _, e := range u.entries() {
		ids = append(ids, e.id)
	}
	if strings.Join(ids, "") != "bca" {
		t.Fatalf("order %v, want b c a", ids)
	}
}

// MaxClients holds under racing logins on two instances: an account at its
// limit never lists more clients than that, however the logins interleave.
func TestAPITokenMaxClientsUnderRace(t *testing.T) {
	t.Parallel()
	var evictions atomic.Int32
	e := newEnv(t, func(c *Config) {
		c.APITokens.MaxClients = 2
		c.Events = &dynaguard.Events{Hook: func(_ context.Context, ev dynaguard.Event) {
			if ev.Name == dynaguard.EventAPITokenRevoked && ev.Reason == "evicted" {
				evictions.Add(1)
			}
		}}
	})
	u := e.create("race@example.com", "race")
	e.tokenLogin(e.users, "race@example.com")
	e.tokenLogin(e.users, "race@example.com")
	instances := []*Users{e.users, e.instance()}
	const logins = 12
	var wg sync.WaitGroup
	var ok, conflicts atomic.Int32
	errs := make(chan error, logins)
	for i := range logins {
		wg.Go(func() {
			_, err := instances[i%2].IssueAPITokens(ctx, APILogin{Login: "race@example.com", Password: goodPassword,
				Client: Client{IP: ip("192.0.2.7"), UserAgent: "racer"}})
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrConflict):
				conflicts.Add(1)
			default:
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("login: %v", err)
	}
	acct, err := e.users.st.getUser(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d logins issued tokens, %d gave up on conflicts", ok.Load(), conflicts.Load())
	if n := len(acct.apic); n != 2 || ok.Load() == 0 {
		t.Fatalf("%d clients listed after %d logins, want 2", n, ok.Load())
	}
	// Each login at the limit evicted one client, and said so once.
	if evictions.Load() != ok.Load() {
		t.Fatalf("%d eviction events for %d logins at the limit", evictions.Load(), ok.Load())
	}
}
