package seal

import (
	"bytes"
	"errors"
	"testing"

	"github.com/dynaguard/dynaguard"
)

func TestSealOpen(t *testing.T) {
	kr, err := dynaguard.NewKeyring(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	keys := Keys(kr.Keys("test"), "label/a")
	other := Keys(kr.Keys("test"), "label/b")
	ad := func(s string) AD { return func(dst []byte) []byte { return append(dst, s...) } }
	msg := []byte("hello")
	sealed, err := keys[0].Seal(msg, ad("record-1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != len(msg)+Overhead {
		t.Fatalf("sealed length %d", len(sealed))
	}
	if got, err := keys[0].Open(sealed, ad("record-1")); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("open: %q %v", got, err)
	}
	again, _ := keys[0].Seal(msg, ad("record-1"))
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals of one message are equal")
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	for name, open := range map[string]func() ([]byte, error){
		"other ad":    func() ([]byte, error) { return keys[0].Open(sealed, ad("record-2")) },
		"other label": func() ([]byte, error) { return other[0].Open(sealed, ad("record-1")) },
		"tampered":    func() ([]byte, error) { return keys[0].Open(tampered, ad("record-1")) },
		"short":       func() ([]byte, error) { return keys[0].Open(sealed[:Overhead-1], ad("record-1")) },
	} {
		if _, err := open(); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: %v, want ErrOpen", name, err)
		}
	}
	if k, ok := Find(keys, keys[0].ID); !ok || k.ID != keys[0].ID {
		t.Fatal("Find")
	}
	if _, ok := Find(keys, "nope"); ok {
		t.Fatal("Find of an unknown ID")
	}
}
