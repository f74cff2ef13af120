package nonce

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

func TestIssueMakesNoStorageCall(t *testing.T) {
	e := newEnv(t)
	b := e.newBrowser()
	b.session = "session-1"
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		tok := e.token(b, "transfer")
		if seen[tok] {
			t.Fatal("two issues returned the same token")
		}
		seen[tok] = true
	}
	if n := e.rec.Count(""); n != 0 {
		t.Fatalf("issuing made %d DynamoDB calls, want 0: %+v", n, e.rec.Calls())
	}
}

func TestConsumeIsOneConditionalPut(t *testing.T) {
	e := newEnv(t)
	b := e.newBrowser()
	tok := e.token(b, "transfer")

	res := e.submit(b, tok, "transfer")
	if !res.called || res.err != nil || res.w.Code != http.StatusNoContent {
		t.Fatalf("first submission: called %v, err %v, status %d", res.called, res.err, res.w.Code)
	}
	calls := e.rec.Calls()
	if len(calls) != 1 || calls[0].Op != "PutItem" || calls[0].Condition != "attribute_not_exists(#pk)" || calls[0].Err != nil {
		t.Fatalf("consume made %+v, want exactly one conditional PutItem", calls)
	}

	// The record: keyed by a hash of the ID, expiring after the token; the ID
	// itself is not in the table.
	c, _, err := e.m.decode(tok)
	if err != nil {
		t.Fatal(err)
	}
	items := ddbtest.Scan(t, e.base)
	if len(items) != 1 {
		t.Fatalf("table holds %d items, want 1", len(items))
	}
	it := items[0]
	if it["pk"] != recordKey(&c.id) || !strings.HasPrefix(it["pk"], dynaguard.PrefixNonce) || len(it) != 2 {
		t.Fatalf("record = %v", it)
	}
	if want := strconv.FormatInt(t0.Add(DefaultTTL+DefaultRecordMargin).Unix(), 10); it["ttl"] != want {
		t.Fatalf("ttl = %s, want the token's expiry plus the margin, %s", it["ttl"], want)
	}
	dump := ddbtest.Dump(t, e.base)
	for _, enc := range []string{hex.EncodeToString(c.id[:]), base64.RawURLEncoding.EncodeToString(c.id[:]), base64.StdEncoding.EncodeToString(c.id[:])} {
		if strings.Contains(dump, enc) {
			t.Fatalf("the table holds the nonce ID in the clear: %s", dump)
		}
	}

	// A second submission costs one more (failed) conditional write.
	e.rec.Reset()
	res = e.submit(b, tok, "transfer")
	if res.called || !errors.Is(res.err, ErrAlreadyUsed) || res.w.Code != http.StatusConflict {
		t.Fatalf("second submission: called %v, err %v, status %d", res.called, res.err, res.w.Code)
	}
	if n := e.rec.Count("PutItem"); n != 1 || e.rec.Count("") != 1 {
		t.Fatalf("replay made %+v, want one PutItem", e.rec.Calls())
	}
}

func TestConcurrentConsumeExactlyOnce(t *testing.T) {
	// Two application instances with their own DynamoDB clients share one
	// table, as two servers behind a load balancer would.
	base := ddbtest.NewTable(t)
	clock := ddbtest.NewClock(t0)
	e1 := newEnvOn(t, base, clock)
	e2 := newEnvOn(t, dynaguard.NewTable(ddbtest.NewClient(ddbtest.Endpoint()), base.Name), clock)

	b := e1.newBrowser()
	b.session = "s"
	tok := e1.token(b, "transfer")

	const n = 200
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		ok      int
		used    int
		others  []error
		release = make(chan struct{})
	)
	for i := 0; i < n; i++ {
		e := e1
		if i%2 == 1 {
			e = e2
		}
		r := formRequest(b, DefaultFieldName, tok)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			err := e.m.Consume(nil, r, "transfer")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrAlreadyUsed):
				used++
			default:
				others = append(others, err)
			}
		}()
	}
	close(release)
	wg.Wait()
	if ok != 1 || used != n-1 || len(others) != 0 {
		t.Fatalf("%d succeeded, %d already used, other errors %v; want 1 and %d", ok, used, others, n-1)
	}
	if calls := e1.rec.Count("PutItem") + e2.rec.Count("PutItem"); calls != n {
		t.Fatalf("%d PutItem calls for %d submissions", calls, n)
	}
	if e1.rec.Reads()+e2.rec.Reads() != 0 {
		t.Fatal("consume read the table")
	}
}

func TestMultipleTokensAreIndependent(t *testing.T) {
	e := newEnv(t)
	b := e.newBrowser()
	var toks []string
	for i := 0; i < 5; i++ {
		toks = append(toks, e.token(b, "comment"))
	}
	for _, i := range []int{3, 0, 4, 1, 2} {
		if res := e.submit(b, toks[i], "comment"); !res.called {
			t.Fatalf("token %d refused: %v", i, res.err)
		}
	}
	for i := range toks {
		if res := e.submit(b, toks[i], "comment"); !errors.Is(res.err, ErrAlreadyUsed) {
			t.Fatalf("token %d resubmitted: %v", i, res.err)
		}
	}
}

// tamper flips one bit in the signed payload of a token and re-encodes it,
// keeping its shape: what an attacker editing a token produces.
func tamper(t *testing.T, tok string) string {
	t.Helper()
	raw, err := tokenEncoding.DecodeString(tok)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-tagLen-1] ^= 1 // the purpose's last byte
	return tokenEncoding.EncodeToString(raw)
}

func TestRejections(t *testing.T) {
	e := newEnv(t)
	other := newEnvOn(t, e.base, e.clock, func(c *Config) { c.Keys = keyring(t, secretB) })

	type tc struct {
		name   string
		setup  func() (b *browser, token string)
		want   error
		status int
	}
	cases := []tc{
		{"missing", func() (*browser, string) { return e.newBrowser(), "" }, ErrMissing, 403},
		{"malformed garbage", func() (*browser, string) { return e.newBrowser(), "not a token" }, ErrMalformed, 403},
		{"malformed truncated", func() (*browser, string) {
			b := e.newBrowser()
			tok := e.token(b, "transfer")
			return b, tok[:len(tok)/2]
		}, ErrMalformed, 403},
		{"malformed too long", func() (*browser, string) {
			return e.newBrowser(), strings.Repeat("A", maxTokenLen+1)
		}, ErrMalformed, 403},
		{"tampered", func() (*browser, string) {
			b := e.newBrowser()
			return b, tamper(t, e.token(b, "transfer"))
		}, ErrBadSignature, 403},
		{"signed with an unknown key", func() (*browser, string) {
			b := other.newBrowser()
			return b, other.token(b, "transfer")
		}, ErrBadSignature, 403},
		{"expired", func() (*browser, string) {
			b := e.newBrowser()
			tok := e.token(b, "transfer")
			e.clock.Advance(DefaultTTL)
			return b, tok
		}, ErrExpired, 403},
		{"wrong purpose", func() (*browser, string) {
			b := e.newBrowser()
			return b, e.token(b, "delete-account")
		}, ErrWrongPurpose, 403},
		{"another browser", func() (*browser, string) {
			victim, attacker := e.newBrowser(), e.newBrowser()
			return attacker, e.token(victim, "transfer")
		}, ErrWrongBrowser, 403},
		{"no browser cookie", func() (*browser, string) {
			b := e.newBrowser()
			tok := e.token(b, "transfer")
			b.cookie = nil
			return b, tok
		}, ErrWrongBrowser, 403},
		{"altered browser cookie", func() (*browser, string) {
			b := e.newBrowser()
			tok := e.token(b, "transfer")
			b.cookie.Value = b.cookie.Value[:len(b.cookie.Value)-4] + "AAA="
			return b, tok
		}, ErrWrongBrowser, 403},
		{"another session", func() (*browser, string) {
			b := e.newBrowser()
			b.session = "session-1"
			tok := e.token(b, "transfer")
			b.session = "session-2"
			return b, tok
		}, ErrWrongSession, 403},
		{"session gone", func() (*browser, string) {
			b := e.newBrowser()
			b.session = "session-1"
			tok := e.token(b, "transfer")
			b.session = ""
			return b, tok
		}, ErrWrongSession, 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.clock.Set(t0)
			b, tok := c.setup()
			e.rec.Reset()
			res := e.submit(b, tok, "transfer")
			if res.called {
				t.Fatal("the protected handler ran")
			}
			if !errors.Is(res.err, c.want) || res.w.Code != c.status {
				t.Fatalf("got %v (status %d), want %v (%d)", res.err, res.w.Code, c.want, c.status)
			}
			var ne *Error
			if !errors.As(res.err, &ne) || ne.Purpose != "transfer" {
				t.Fatalf("not an *Error with the purpose: %#v", res.err)
			}
			if n := e.rec.Count(""); n != 0 {
				t.Fatalf("a refused token cost %d DynamoDB calls", n)
			}
			if ct := res.w.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("content type %q", ct)
			}
			if !strings.Contains(res.w.Body.String(), `"reason":"`+Reason(c.want)+`"`) {
				t.Fatalf("body %s", res.w.Body)
			}
		})
	}
}

func TestExpiryBoundary(t *testing.T) {
	e := newEnv(t)
	b := e.newBrowser()
	tok := e.token(b, "transfer")
	e.clock.Advance(DefaultTTL - time.Second)
	if res := e.submit(b, tok, "transfer"); !res.called {
		t.Fatalf("refused one second before expiry: %v", res.err)
	}
	tok = e.token(b, "transfer")
	e.clock.Advance(DefaultTTL)
	if res := e.submit(b, tok, "transfer"); !errors.Is(res.err, ErrExpired) {
		t.Fatalf("at expiry: %v", res.err)
	}
}

func TestSessionBinding(t *testing.T) {
	e := newEnv(t)
	b := e.newBrowser()

	// Without a session the token is bound to the browser only, and stays
	// valid when a session appears (the first session is saved after the
	// page that rendered the form).
	anon := e.token(b, "login")
	b.session = "s0"
	if res := e.submit(b, anon, "login"); !res.called {
		t.Fatalf("sessionless token refused in a session: %v", res.err)
	}

	// Login: the login form and another tab's form are both rendered in s0.
	login := e.token(b, "login")
	otherTab := e.token(b, "transfer")
	if res := e.submit(b, login, "login"); !res.called {
		t.Fatalf("login refused: %v", res.err)
	}
	b.session = "s1" // the login handler renewed the session
	if res := e.submit(b, otherTab, "transfer"); !errors.Is(res.err, ErrWrongSession) {
		t.Fatalf("pre-login form after login: %v", res.err)
	}
	if res := e.submit(b, e.token(b, "transfer"), "transfer"); !res.called {
		t.Fatalf("form rendered after login: %v", res.err)
	}
}

func TestCustomSessionFunc(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Session = func(r *http.Request) string { return r.Header.Get("X-Session") }
	})
	b := e.newBrowser()
	var tok string
	r := newGet(b)
	r.Header.Set("X-Session", "abc")
	e.m.Handler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { tok, _ = Token(r, "p") })).ServeHTTP(discard{}, r)
	post := formRequest(b, DefaultFieldName, tok)
	post.Header.Set("X-Session", "xyz")
	if res := e.serve("p", post); !errors.Is(res.err, ErrWrongSession) {
		t.Fatalf("got %v", res.err)
	}
	post = formRequest(b, DefaultFieldName, tok)
	post.Header.Set("X-Session", "abc")
	if res := e.serve("p", post); !res.called {
		t.Fatalf("got %v", res.err)
	}
}

func TestKeyRotation(t *testing.T) {
	base := ddbtest.NewTable(t)
	clock := ddbtest.NewClock(t0)
	keys := func(s ...[]byte) func(*Config) { return func(c *Config) { c.Keys = keyring(t, s...) } }
	oldOnly := newEnvOn(t, base, clock, keys(secretA))
	rotating := newEnvOn(t, base, clock, keys(secretB, secretA))
	newOnly := newEnvOn(t, base, clock, keys(secretB))

	b := oldOnly.newBrowser()
	b.session = "s"
	tok1, tok2, tok3 := oldOnly.token(b, "p"), oldOnly.token(b, "p"), oldOnly.token(b, "p")

	// While the old secret is listed, its tokens and cookie are accepted.
	if res := rotating.submit(b, tok1, "p"); !res.called {
		t.Fatalf("old-key token refused while the old key is listed: %v", res.err)
	}
	// A replay after the rotation still meets its record.
	if res := rotating.submit(b, tok1, "p"); !errors.Is(res.err, ErrAlreadyUsed) {
		t.Fatalf("replay across rotation: %v", res.err)
	}
	// Once the old secret is dropped, its tokens are refused.
	if res := newOnly.submit(b, tok2, "p"); !errors.Is(res.err, ErrBadSignature) {
		t.Fatalf("old-key token after the old key was dropped: %v", res.err)
	}

	// Visiting during the rotation re-sets the cookie with the new key and
	// the same secret: tokens issued before still bind to it, and the
	// browser keeps working once the old key is gone.
	oldCookie := b.cookie
	tok4 := rotating.token(b, "p")
	if b.cookie == oldCookie {
		t.Fatal("the cookie read with a previous key was not re-set")
	}
	if res := rotating.submit(b, tok3, "p"); !res.called {
		t.Fatalf("old token with re-keyed cookie: %v", res.err)
	}
	if res := newOnly.submit(b, tok4, "p"); !res.called {
		t.Fatalf("new token after the old key was dropped: %v", res.err)
	}
}

func TestStorageFaultsFailClosed(t *testing.T) {
	base := ddbtest.NewTable(t)
	tbl, faults := ddbtest.Inject(base)
	e := newEnvOn(t, tbl, ddbtest.NewClock(t0))
	b := e.newBrowser()
	for _, f := range ddbtest.StorageFaults {
		t.Run(f.String(), func(t *testing.T) {
			faults.Clear()
			faults.Fail("PutItem", f)
			tok := e.token(b, "transfer")
			res := e.submit(b, tok, "transfer")
			if res.called {
				t.Fatal("the protected handler ran although the consumption was not recorded")
			}
			if !errors.Is(res.err, ErrStorage) || res.w.Code != http.StatusServiceUnavailable {
				t.Fatalf("got %v (status %d), want ErrStorage (503)", res.err, res.w.Code)
			}
			if res.w.Header().Get("Retry-After") == "" {
				t.Fatal("no Retry-After")
			}
			if f == ddbtest.Throttling && !errors.Is(res.err, dynaguard.ErrThrottled) {
				t.Fatalf("the classified cause is not in the chain: %v", res.err)
			}
			// Once DynamoDB answers again the same token goes through.
			faults.Clear()
			if res := e.submit(b, tok, "transfer"); !res.called {
				t.Fatalf("after recovery: %v", res.err)
			}
		})
	}
	t.Run("condition-failed", func(t *testing.T) {
		faults.Clear()
		faults.Fail("PutItem", ddbtest.ConditionFailed)
		res := e.submit(b, e.token(b, "transfer"), "transfer")
		if res.called || !errors.Is(res.err, ErrAlreadyUsed) || res.w.Code != http.StatusConflict {
			t.Fatalf("got %v (status %d)", res.err, res.w.Code)
		}
	})
}

func TestCanceledRequestIsRefused(t *testing.T) {
	e := newEnv(t)
	b := e.newBrowser()
	r := formRequest(b, DefaultFieldName, e.token(b, "p"))
	ctx, cancel := context.WithCancel(r.Context())
	cancel()
	if err := e.m.Consume(nil, r.WithContext(ctx), "p"); !errors.Is(err, ErrStorage) || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

func TestRecordKeyIsDomainSeparatedHash(t *testing.T) {
	var id [idLen]byte
	id[0] = 1
	plain := sha256.Sum256(id[:])
	k := recordKey(&id)
	if !strings.HasPrefix(k, "nonce#") || strings.Contains(k, base64.RawURLEncoding.EncodeToString(plain[:])) || len(k) != len("nonce#")+43 {
		t.Fatalf("record key %q", k)
	}
}

// recordKey's output is pinned: consumption records already in a table must
// keep matching the tokens that made them, so the key may never change.
func TestRecordKeyIsPinned(t *testing.T) {
	var id [idLen]byte
	for i := range id {
		id[i] = byte(i + 1)
	}
	// "nonce#" + base64url(SHA-256("dynaguard/nonce/record\x00" || 01..10)),
	// computed independently.
	const want = "nonce#hfGIlknVDzWRrZle3gORZsu3DxxiJ-gRfRejyOcwfv4"
	if got := recordKey(&id); got != want {
		t.Fatalf("recordKey = %q, want %q", got, want)
	}
	sum := sha256.Sum256(append([]byte("dynaguard/nonce/record\x00"), id[:]...))
	if want != dynaguard.PrefixNonce+base64.RawURLEncoding.EncodeToString(sum[:]) || len(want) != recordKeyLen {
		t.Fatal("the pinned key does not follow its definition")
	}
}
