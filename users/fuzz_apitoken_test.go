package users

import (
	"strings"
	"testing"
	"time"
)

// Token parsing takes anything without panicking; a refresh token parses
// only as made (its MAC), and says the same after a round trip; an access
// token verifies only as made (any change to it is refused).
func FuzzAPITokens(f *testing.F) {
	k := keyring(f, secretA)
	s := &Users{keys: k, accessKeys: k.Keys(purposeAPIAccess), refreshKeys: k.Keys(purposeAPIRefreshMAC), apiTokens: APITokenConfig{}.withDefaults()}
	now := time.Unix(1_800_000_000, 0)
	// Fixed, not random: fuzzing workers run this setup again, and the
	// seeds must be the same tokens there.
	fam := &family{gen: 3, uid: "abcdefghijklmnopqrstuvwxyz", cv: 4, se: 9, at: now.Unix()}
	fam.fid[0], fam.fs[0], fam.secret[0] = 1, 2, 3
	fam.id = apiEncoding.EncodeToString(fam.fid[:])
	access := s.accessToken(fam, now)
	f.Add(s.refreshToken(fam))
	f.Add(access)
	f.Add("dga_")
	f.Add("dgr_" + strings.Repeat("A", 200))
	f.Fuzz(func(t *testing.T, tok string) {
		if g, ok := s.parseRefresh(tok); ok {
			made := s.refreshToken(g)
			if made != tok {
				t.Fatalf("a refresh token that was never made parsed: %q", tok)
			}
			again, ok := s.parseRefresh(made)
			if !ok || again.id != g.id || again.gen != g.gen || again.uid != g.uid || again.cv != g.cv || again.se != g.se || again.at != g.at || again.fs != g.fs || again.secret != g.secret {
				t.Fatalf("round trip changed %q", tok)
			}
		}
		c, why := s.verifyAccess(tok, now)
		if why == "" && tok != access {
			t.Fatalf("a token that was never made verified: %q (%+v)", tok, c)
		}
	})
}
