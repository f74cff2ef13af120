package idempotency

import (
	"bytes"
	"crypto/rand"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard"
)

func TestResponseEncodingRoundTrip(t *testing.T) {
	h := http.Header{"Content-Type": {"application/json"}, "Link": {"<a>; rel=x", "<b>; rel=y"}}
	for _, body := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("abc"), 5000)} {
		gh, gb, err := decodeResponse(encodeResponse(h, body))
		if err != nil || !reflect.DeepEqual(gh, h) || !bytes.Equal(gb, body) {
			t.Fatalf("round trip: %v %v %v", gh, len(gb), err)
		}
	}
	if gh, _, err := decodeResponse(encodeResponse(nil, nil)); err != nil || gh != nil {
		t.Fatalf("empty: %v %v", gh, err)
	}
}

// FuzzDecodeResponse: a damaged stored response is an error, never a panic
// or a huge allocation.
func FuzzDecodeResponse(f *testing.F) {
	f.Add(encodeResponse(http.Header{"A": {"b"}}, []byte("body")))
	f.Add([]byte{blobVersion, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{blobVersion, 1, 200, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, body, err := decodeResponse(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeResponse(h, body)[len(encodeResponse(h, nil)):], body) {
			t.Fatal("inconsistent decode")
		}
	})
}

func TestCompression(t *testing.T) {
	small := []byte("short")
	if b, enc := compress(small); enc != "" || !bytes.Equal(b, small) {
		t.Fatal("small blobs stay plain")
	}
	text := []byte(strings.Repeat(`{"k":"value"},`, 1000))
	z, enc := compress(text)
	if enc != "gzip" || len(z) >= len(text)/10 {
		t.Fatalf("enc %q, %d bytes", enc, len(z))
	}
	if back, err := decompress(z, enc); err != nil || !bytes.Equal(back, text) {
		t.Fatalf("decompress: %v", err)
	}
	if _, err := decompress([]byte("not gzip"), "gzip"); err == nil {
		t.Fatal("garbage decompressed")
	}
	if _, err := decompress(z, "br"); err == nil {
		t.Fatal("unknown encoding accepted")
	}
}

func TestPrepareDropsBodyThatDoesNotFit(t *testing.T) {
	k, _ := dynaguard.NewKeyring(secret(1))
	g := &Guard{budget: storeBudget, sealer: newSealer(k)}
	big := make([]byte, dynaguard.MaxItemSize)
	_, _ = rand.Read(big) // does not compress
	fp := []byte("fp")
	st, err := g.prepare("pk", fp, 99, 201, http.Header{"Location": {"/x"}}, big, 0)
	if err != nil || st.omitted != int64(len(big)) || len(st.blob) > storeBudget {
		t.Fatalf("omitted %d, blob %d, err %v", st.omitted, len(st.blob), err)
	}
	resp, err := g.open("pk", &record{status: 201, blob: st.blob, enc: st.enc, kid: st.kid, omitted: st.omitted, ttl: 99, fp: fp})
	if err != nil || resp.header.Get("Location") != "/x" || len(resp.body) != 0 {
		t.Fatalf("open: %+v %v", resp, err)
	}
	if st, _ := g.prepare("pk", fp, 99, 200, nil, nil, 12345); st.omitted != 12345 {
		t.Fatal("truncated capture must be recorded as omitted")
	}
}

func TestRecordKeyIsUnambiguous(t *testing.T) {
	seen := map[string]string{}
	for _, c := range []struct {
		kind       byte
		scope, key string
	}{
		{kindHTTP, "user\x00ab", "c"}, {kindHTTP, "user\x00a", "bc"}, {kindHTTP, "user\x00abc", ""},
		{kindTask, "user\x00ab", "c"}, {kindHTTP, "session\x00ab", "c"},
	} {
		pk := recordKey(c.kind, c.scope, c.key)
		if !strings.HasPrefix(pk, dynaguard.PrefixIdempotency) {
			t.Fatal(pk)
		}
		if prev, dup := seen[pk]; dup {
			t.Fatalf("%q and %+v share a record key", prev, c)
		}
		seen[pk] = c.scope + "|" + c.key
	}
}

func TestCacheLRUAndExpiry(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	resp := func(n int) *response { return &response{status: 200, body: make([]byte, n)} }
	c := newCache(8 << 10)
	c.put("a", nil, resp(500), now.Add(time.Minute), now)
	c.put("b", nil, resp(500), now.Add(time.Minute), now)
	if _, _, ok := c.get("a", now); !ok { // a is now most recent
		t.Fatal("a missing")
	}
	for i := 0; i < 20; i++ {
		c.put(string(rune('c'+i)), nil, resp(500), now.Add(time.Minute), now)
	}
	if c.used > c.budget {
		t.Fatalf("over budget: %d > %d", c.used, c.budget)
	}
	if _, _, ok := c.get("b", now); ok {
		t.Fatal("least recently used entry not evicted")
	}
	c.put("big", nil, resp(2<<10), now.Add(time.Minute), now)
	if _, _, ok := c.get("big", now); ok {
		t.Fatal("an entry over an eighth of the budget must not be cached")
	}
	c.put("exp", []byte{1}, resp(10), now.Add(time.Second), now)
	if _, fp, ok := c.get("exp", now.Add(999*time.Millisecond)); !ok || fp[0] != 1 {
		t.Fatal("live entry missing")
	}
	if _, _, ok := c.get("exp", now.Add(time.Second)); ok {
		t.Fatal("an entry must expire with its record")
	}
	c.put("dead", nil, resp(10), now, now)
	if _, _, ok := c.get("dead", now.Add(-time.Second)); ok {
		t.Fatal("an already expired record must not be cached")
	}
	var nilCache *cache
	if _, _, ok := nilCache.get("a", now); ok {
		t.Fatal("nil cache hit")
	}
	nilCache.put("a", nil, resp(1), now.Add(time.Hour), now)
}
