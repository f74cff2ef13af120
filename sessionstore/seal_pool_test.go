package sessionstore

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"strconv"
	"sync"
	"testing"

	"github.com/dynaguard/dynaguard"
)

// Data sealed with the pooled subkey HMAC opens with the subkey derived as
// the format states it (HMAC-SHA256(key, label || nonce[:12])), so sessions
// written before and after the pooling read alike, also under concurrency.
func TestSealSubkeyMatchesFormat(t *testing.T) {
	keys, err := dynaguard.NewKeyring(bytes.Repeat([]byte{5}, 32))
	if err != nil {
		t.Fatal(err)
	}
	k := sealKeys(keys.Keys(dynaguard.PurposeSessionEncryption))[0]
	plainOpen := func(pk string, exp int64, data []byte) ([]byte, error) {
		m := hmac.New(sha256.New, k.key)
		m.Write(subkeyLabel)
		m.Write(data[:12])
		block, err := aes.NewCipher(m.Sum(nil))
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		ad := []byte("dynaguard/session/v1\x00" + pk + "\x00" + strconv.FormatInt(exp, 10))
		return aead.Open(nil, data[12:nonceLen], data[nonceLen:], ad)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				msg := bytes.Repeat([]byte{byte(i)}, j)
				sealed, err := k.seal("sess#x", int64(j), msg)
				if err != nil {
					t.Error(err)
					return
				}
				got, err := plainOpen("sess#x", int64(j), sealed)
				if err != nil || !bytes.Equal(got, msg) {
					t.Errorf("a pooled seal does not open with the stated subkey: %v", err)
					return
				}
				if back, err := k.open("sess#x", int64(j), sealed); err != nil || !bytes.Equal(back, msg) {
					t.Errorf("open: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
