//go:build !race

// The race detector drops sync.Pool entries at random, so allocation counts
// are only meaningful without it.

package nonce

import (
	"errors"
	"testing"
)

// The request path's in-memory steps allocate nothing beyond what they must
// return: a regression here shows in every protected request.
func TestAllocations(t *testing.T) {
	m := fuzzManager(t)
	r, c := prepared(m)
	tok, _ := Token(r, "transfer")
	forged := tok[:len(tok)-2] + "AA"
	if _, _, err := m.decode(forged); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("test setup: the forged token gives %v", err)
	}
	get := newGet(&browser{cookie: c})
	if _, _, _, ok := m.readCookie(get, t0); !ok { // fills the cache
		t.Fatal("the cookie does not read")
	}
	var secret [secretLen]byte
	var id [idLen]byte
	for _, tc := range []struct {
		name string
		max  float64
		f    func()
	}{
		{"decode", 0, func() { _, _, _ = m.decode(tok) }},
		{"decode forged", 0, func() { _, _, _ = m.decode(forged) }},
		{"readCookie, cached", 0, func() { _, _, _, _ = m.readCookie(get, t0) }},
		{"formMediaType", 0, func() { _ = formMediaType("multipart/form-data; boundary=x") }},
		{"binding", 0, func() { _ = m.keys[0].bind.bytes(labelBrowser, secret[:]) }},
		{"issue", 1, func() { _, _ = m.issue(&secret, "session", "transfer", t0) }},
		{"recordKey", 1, func() { _ = recordKey(&id) }},
	} {
		if n := testing.AllocsPerRun(100, tc.f); n > tc.max {
			t.Errorf("%s: %v allocations, want at most %v", tc.name, n, tc.max)
		}
	}
}
