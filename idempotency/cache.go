package idempotency

import (
	"container/list"
	"sync"
	"time"
)

// cache is a bounded LRU of completed records, keyed by record key (the
// scoped hash — never the client's key alone) so that a hit can only be the
// same client's. A completed record never changes until it expires, and
// its key cannot be claimed again before then, so an entry that expires
// with its record can never be stale. The fingerprint is kept to answer 422
// on a hit just as the table would.
type cache struct {
	mu     sync.Mutex
	budget int
	used   int
	ll     *list.List // front: most recently used
	items  map[string]*list.Element
}

type cacheEntry struct {
	pk      string
	fp      []byte
	resp    *response
	expires time.Time
	size    int
}

func newCache(budget int) *cache {
	return &cache{budget: budget, ll: list.New(), items: make(map[string]*list.Element)}
}

// get returns the cached response and fingerprint of pk. A nil cache is
// always empty.
func (c *cache) get(pk string, now time.Time) (*response, []byte, bool) {
	if c == nil {
		return nil, nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[pk]
	if !ok {
		return nil, nil, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) { // the same rule as ddb.Expired
		c.remove(el)
		return nil, nil, false
	}
	c.ll.MoveToFront(el)
	return e.resp, e.fp, true
}

// put caches a completed record until expires. Entries larger than an
// eighth of the budget are not cached, so one large response cannot evict
// everything else.
func (c *cache) put(pk string, fp []byte, resp *response, expires, now time.Time) {
	if c == nil || !now.Before(expires) {
		return
	}
	size := resp.size() + len(pk) + len(fp) + 64
	if size > c.budget/8 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[pk]; ok {
		c.remove(el)
	}
	c.items[pk] = c.ll.PushFront(&cacheEntry{pk: pk, fp: fp, resp: resp, expires: expires, size: size})
	c.used += size
	for c.used > c.budget {
		c.remove(c.ll.Back())
	}
}

func (c *cache) remove(el *list.Element) {
	e := el.Value.(*cacheEntry)
	c.ll.Remove(el)
	delete(c.items, e.pk)
	c.used -= e.size
}
