package users

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"sync"
	"testing"

	"github.com/dynaguard/dynaguard"
)

// The pooled auth hash is exactly HMAC-SHA256(key, "dynaguard session auth
// v1" 0 ID 0 cv 0 epoch) — what sessions have always stored — and the check
// accepts it under any key of the keyring and nothing else.
func TestAuthHashPooled(t *testing.T) {
	cur, _ := dynaguard.NewKeyring(secretA)
	k := cur.Key(dynaguard.PurposeSessionAuth)
	plain := func(u *User) string {
		m := hmac.New(sha256.New, k.Secret)
		m.Write([]byte("dynaguard session auth v1\x00" + u.ID + "\x00" +
			strconv.FormatInt(u.credVersion, 10) + "\x00" + strconv.FormatInt(u.epoch, 10)))
		return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 100 {
				u := &User{ID: "user-" + strconv.Itoa(i), credVersion: int64(j), epoch: int64(i * j)}
				if got := authHash(k, u); got != plain(u) {
					t.Errorf("authHash(%+v) = %s, want %s", u, got, plain(u))
					return
				}
			}
		}()
	}
	wg.Wait()

	s := &Users{keys: cur, authKeys: cur.Keys(dynaguard.PurposeSessionAuth)}
	u := &User{ID: "u1", credVersion: 3, epoch: 2}
	good := authHash(k, u)
	if !s.authHashValid(u, good) {
		t.Fatal("the current key's hash is refused")
	}
	for _, bad := range []string{"", good[:42], good + "x", authHash(k, &User{ID: "u1", credVersion: 4, epoch: 2}), "A" + good[1:]} {
		if s.authHashValid(u, bad) {
			t.Errorf("accepted %q", bad)
		}
	}
	// After a rotation the previous key's hashes still pass.
	next, _ := dynaguard.NewKeyring(secretB, secretA)
	if !(&Users{keys: next, authKeys: next.Keys(dynaguard.PurposeSessionAuth)}).authHashValid(u, good) {
		t.Error("a hash made under the previous secret is refused")
	}
}
