package sessionstore

// Test-only access to internals.

// SetMaxBindings changes the bound of pending bindings.
func (s *Store) SetMaxBindings(n int) { s.bindings.max = n }

// PendingBindings returns how many bindings wait for a commit.
func (s *Store) PendingBindings() int { return s.bindings.len() }

// CachedSessions returns the number of sessions in the skip-write cache.
func (s *Store) CachedSessions() int { return s.cache.len() }

// Attribute names, for tests that inspect or tamper with raw items.
const (
	AttrData  = attrData
	AttrExp   = attrExp
	AttrVer   = attrVer
	AttrEnc   = attrEnc
	AttrTomb  = attrTomb
	AttrMoved = attrMoved
	AttrUA    = attrUA
	AttrIP    = attrIP
	AttrSeen  = attrSeen
)
