package sessionstore

import (
	"container/list"
	"sync"
)

// seenCache remembers, per session, what this process last read from or
// wrote to the table: a SHA-256 digest of the data (32 bytes, whatever the
// session's size) and the stored expiry. It is what lets Commit skip a write.
// It is a bounded LRU: when an entry is evicted the next commit of that
// session simply writes. It never holds a token or session data.
type seenCache struct {
	mu  sync.Mutex
	max int
	m   map[string]*list.Element
	l   list.List // of *seenEntry, most recent first
}

type seenEntry struct {
	id     string
	digest [32]byte
	exp    int64  // stored expiry, Unix ns
	pk     string // where the session lives, when not under the current secret
}

func newSeenCache(max int) *seenCache {
	if max <= 0 {
		return nil
	}
	return &seenCache{max: max, m: make(map[string]*list.Element, min(max, 1024))}
}

func (c *seenCache) get(id string) (seenEntry, bool) {
	if c == nil {
		return seenEntry{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok {
		return seenEntry{}, false
	}
	c.l.MoveToFront(e)
	return *e.Value.(*seenEntry), true
}

func (c *seenCache) put(v seenEntry) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[v.id]; ok {
		*e.Value.(*seenEntry) = v
		c.l.MoveToFront(e)
		return
	}
	if c.l.Len() >= c.max {
		last := c.l.Back()
		delete(c.m, last.Value.(*seenEntry).id)
		c.l.Remove(last)
	}
	e := new(seenEntry) // only here: a v that escaped would cost every put an allocation
	*e = v
	c.m[v.id] = c.l.PushFront(e)
}

func (c *seenCache) remove(id string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[id]; ok {
		delete(c.m, id)
		c.l.Remove(e)
	}
}

func (c *seenCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.l.Len()
}
