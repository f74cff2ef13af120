package sessionstore

import (
	"errors"

	"github.com/alexedwards/scs/v2"
)

// ErrHashTokenInStore is returned by Use for a SessionManager whose
// HashTokenInStore is set: the store already hashes tokens with a key, and
// with scs hashing them first, Bind and ID would name sessions that the store
// never sees.
var ErrHashTokenInStore = errors.New("sessionstore: SessionManager.HashTokenInStore must be off: the store hashes tokens itself")

// NewManager returns a new scs session manager ready to use: scs's defaults,
// a Store for cfg as its Store, and [Codec] as its Codec (so that unchanged
// sessions skip their write). Set the cookie and timeouts on it as usual:
//
//	sm, err := sessionstore.NewManager(sessionstore.Config{Table: tbl, Keys: keys})
//	sm.IdleTimeout = 30 * time.Minute
//	sm.Cookie.Secure = true
//	http.ListenAndServe(addr, sm.LoadAndSave(mux))
//
// The Store is sm.Store.(*sessionstore.Store); [Use] returns it directly. It
// makes no call to DynamoDB.
func NewManager(cfg Config) (*scs.SessionManager, error) {
	sm := scs.New()
	if _, err := Use(sm, cfg); err != nil {
		return nil, err
	}
	return sm, nil
}

// Use makes an existing scs session manager keep its sessions in DynamoDB:
// it sets sm.Store to a new Store for cfg and sm.Codec to [Codec], and
// returns the Store (for Bind, List and Revoke, and for users.Config). The
// manager's other settings are kept. It refuses a manager with
// HashTokenInStore set ([ErrHashTokenInStore]) and changes nothing on error.
//
// Call it at start-up, before the manager serves a request: scs reads Store
// and Codec without synchronisation. Sessions already stored elsewhere are
// not moved.
func Use(sm *scs.SessionManager, cfg Config) (*Store, error) {
	if sm == nil {
		return nil, errors.New("sessionstore: Use needs a SessionManager")
	}
	if sm.HashTokenInStore {
		return nil, ErrHashTokenInStore
	}
	store, err := New(cfg)
	if err != nil {
		return nil, err
	}
	sm.Store = store
	sm.Codec = Codec{}
	return store, nil
}
