package sessionstore_test

import (
	"errors"
	"testing"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/sessionstore"
)

func TestUse(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	cfg := sessionstore.Config{Table: tbl, Keys: keyring(t, secret1), Logger: quiet}

	sm := scs.New()
	store, err := sessionstore.Use(sm, cfg)
	if err != nil || sm.Store != store || sm.Codec != (sessionstore.Codec{}) {
		t.Fatalf("Use: %v; Store %T, Codec %T", err, sm.Store, sm.Codec)
	}

	// Refused, and nothing changed: a hashing manager, a bad config.
	hashing := scs.New()
	hashing.HashTokenInStore = true
	before := hashing.Store
	if _, err := sessionstore.Use(hashing, cfg); !errors.Is(err, sessionstore.ErrHashTokenInStore) || hashing.Store != before {
		t.Fatalf("HashTokenInStore: %v, store %T", err, hashing.Store)
	}
	plain := scs.New()
	if _, err := sessionstore.Use(plain, sessionstore.Config{Table: tbl}); err == nil || plain.Store == nil {
		t.Fatalf("config without Keys: %v", err)
	}
	if _, err := sessionstore.Use(plain, sessionstore.Config{}); err == nil {
		t.Fatal("empty config accepted")
	}
	if _, err := sessionstore.Use(nil, cfg); err == nil {
		t.Fatal("nil manager accepted")
	}
	if _, err := sessionstore.NewManager(sessionstore.Config{}); err == nil {
		t.Fatal("NewManager accepted an empty config")
	}
}
