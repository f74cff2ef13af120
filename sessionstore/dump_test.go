package sessionstore_test

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/sessionstore"
)

// After full flows on two instances — anonymous sessions, logins with
// RenewToken and Bind, sliding commits, a revocation and a logout — a dump of
// the table holds no token in any encoding: a leaked dump or backup opens no
// session. With encryption, no session value appears either.
func TestTableDumpHoldsNoToken(t *testing.T) {
	for _, enc := range []bool{false, true} {
		name := "plaintext"
		if enc {
			name = "encrypted"
		}
		t.Run(name, func(t *testing.T) {
			tbl := ddbtest.NewTable(t)
			a := newStore(t, tbl, func(c *sessionstore.Config) { c.Plaintext = !enc })
			b := newStore(t, tbl, func(c *sessionstore.Config) { c.Plaintext = !enc })
			ha := app(manager(a, idle(time.Hour)), a)
			hb := app(manager(b, idle(time.Hour)), b)
			var browsers []*browser
			for i := range 4 {
				br := newBrowser(t, ha)
				if i%2 == 1 {
					br.h = hb
				}
				br.must("/put?k=secret&v=" + marker)
				br.must("/login?user=u" + string(rune('0'+i%2)))
				br.must("/get?k=secret")
				br.must("/put?k=n&v=2")
				browsers = append(browsers, br)
			}
			browsers[0].must("/logout")
			if err := b.Revoke(ctx, "u1", b.ID(browsers[1].token())); err != nil {
				t.Fatal(err)
			}

			dump := ddbtest.Dump(t, tbl)
			if !strings.Contains(dump, "sessions#u0") {
				t.Fatal("the dump does not look like a dump of the flows")
			}
			var tokens []string
			for _, br := range browsers {
				tokens = append(tokens, br.tokens...)
			}
			if len(tokens) < 12 {
				t.Fatalf("only %d tokens seen", len(tokens))
			}
			for _, tok := range tokens {
				raw, err := base64.RawURLEncoding.DecodeString(tok)
				if err != nil {
					t.Fatal(err)
				}
				for _, form := range []string{tok, hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw), string(raw)} {
					if strings.Contains(dump, form) {
						t.Fatalf("token %.8s… appears in the table dump", tok)
					}
				}
			}
			if has := strings.Contains(dump, marker); has == enc {
				t.Fatalf("encrypt=%v, session value in dump=%v", enc, has)
			}
		})
	}
}
