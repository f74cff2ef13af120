package nonce

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"sync"
	"testing"
)

// The pooled binder computes exactly the binding tokens have always
// carried — HMAC-SHA256(key, label || value), truncated — so tokens issued
// before and after stay valid; concurrent use does not mix states.
func TestBinderMatchesHMAC(t *testing.T) {
	key := bytes.Repeat([]byte{9}, 32)
	b := newBinder(key)
	want := func(label byte, value []byte) (out [bindLen]byte) {
		m := hmac.New(sha256.New, key)
		m.Write(append([]byte{label}, value...))
		copy(out[:], m.Sum(nil))
		return out
	}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				v := bytes.Repeat([]byte{byte(i)}, j%70)
				if b.bytes(labelBrowser, v) != want(labelBrowser, v) || b.string(labelSession, string(v)) != want(labelSession, v) {
					t.Errorf("binding of %d bytes differs from HMAC", len(v))
					return
				}
			}
		}()
	}
	wg.Wait()
}
