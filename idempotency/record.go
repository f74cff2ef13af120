package idempotency

import (
	"bytes"
	"compress/gzip"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/dynaguard/dynaguard"
)

// Record states.
const (
	stateRunning = "running" // claimed; the owner holds a lease
	stateDone    = "done"    // completed; replayed until the record expires
)

// record is an idempotency item as read back from the table (the old item
// of a failed claim).
type record struct {
	state   string
	owner   string
	leaseMS int64 // lease expiry, epoch milliseconds (running only)
	ttl     int64 // record expiry, epoch seconds
	fp      []byte
	status  int    // HTTP status; 0 for a Do result
	blob    []byte // the stored response (see encodeResponse), maybe compressed and sealed
	enc     string // "" or "gzip"
	kid     string // seal key ID, "" when not sealed
	omitted int64  // > 0: a response body of this many bytes was not kept
}

// response is a completed request's outcome as it is replayed.
type response struct {
	status int         // HTTP status; 0 for a Do result
	header http.Header // allowlisted headers only
	body   []byte
	// omitted > 0 says a body of that many bytes went out to the first
	// client but was too large to keep; unreadable says a stored body could
	// not be read back (sealed with a key no longer configured, or
	// corrupt). Either way the replay has no body to give.
	omitted    int64
	unreadable bool
}

// size approximates the memory a cached response holds.
func (r *response) size() int {
	n := 128 + len(r.body)
	for k, vs := range r.header {
		n += len(k) + 16
		for _, v := range vs {
			n += len(v) + 16
		}
	}
	return n
}

// Stored responses are encoded as: version byte, uvarint header count, then
// per header the uvarint-prefixed name, a uvarint value count and the
// uvarint-prefixed values; the body is the rest. One blob rather than
// separate attributes so that headers (a Location can name a resource) are
// sealed together with the body.
const blobVersion = 1

func encodeResponse(header http.Header, body []byte) []byte {
	n := 1 + binary.MaxVarintLen64 + len(body)
	for k, vs := range header {
		n += 2*binary.MaxVarintLen64 + len(k)
		for _, v := range vs {
			n += binary.MaxVarintLen64 + len(v)
		}
	}
	b := make([]byte, 0, n)
	b = append(b, blobVersion)
	b = binary.AppendUvarint(b, uint64(len(header)))
	for k, vs := range header {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		}
	}
	return append(b, body...)
}

var errCorrupt = errors.New("idempotency: stored response is corrupt")

func decodeResponse(b []byte) (http.Header, []byte, error) {
	if len(b) == 0 || b[0] != blobVersion {
		return nil, nil, errCorrupt
	}
	b = b[1:]
	next := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	str := func() (string, bool) {
		l, ok := next()
		if !ok || l > uint64(len(b)) {
			return "", false
		}
		s := string(b[:l])
		b = b[l:]
		return s, true
	}
	nh, ok := next()
	if !ok || nh > uint64(len(b)) {
		return nil, nil, errCorrupt
	}
	var h http.Header
	if nh > 0 {
		h = make(http.Header, nh)
	}
	for i := uint64(0); i < nh; i++ {
		k, ok := str()
		if !ok {
			return nil, nil, errCorrupt
		}
		nv, ok := next()
		if !ok || nv > uint64(len(b)) {
			return nil, nil, errCorrupt
		}
		vs := make([]string, 0, nv)
		for j := uint64(0); j < nv; j++ {
			v, ok := str()
			if !ok {
				return nil, nil, errCorrupt
			}
			vs = append(vs, v)
		}
		h[k] = vs
	}
	return h, b, nil
}

// Compression. Bodies from compressThreshold bytes on are gzipped (fast
// level first; the best level only when the fast one does not fit) and kept
// compressed only when that is smaller. Stored items cost write capacity per
// KB, so compression pays for itself on every first request, and it lets
// responses of several hundred KB fit DynamoDB's item limit.
const compressThreshold = 1024

// maxCapture bounds how much of a response body is held in memory for
// storing. A larger body still goes out to the client in full; the record
// keeps only its status and headers. JSON rarely compresses better than
// 8:1, so a larger body would not fit an item anyway.
const maxCapture = 8 * dynaguard.MaxItemSize

// storeBudget is the most the stored blob may take in one item: the item
// limit minus room for the key, the fingerprint and the other attributes
// (well under 1 KB) and a margin.
const storeBudget = dynaguard.MaxItemSize - 2048

var gzipPools = map[int]*sync.Pool{}

func init() {
	for _, lvl := range []int{gzip.BestSpeed, gzip.BestCompression} {
		gzipPools[lvl] = &sync.Pool{New: func() any {
			w, _ := gzip.NewWriterLevel(io.Discard, lvl)
			return w
		}}
	}
}

func gzipBytes(b []byte, level int) []byte {
	var buf bytes.Buffer
	buf.Grow(len(b)/4 + 64)
	zw := gzipPools[level].Get().(*gzip.Writer)
	zw.Reset(&buf)
	_, _ = zw.Write(b) // writes to a bytes.Buffer cannot fail
	_ = zw.Close()
	gzipPools[level].Put(zw)
	return buf.Bytes()
}

// compress returns the blob to store and its encoding: the plain blob, or a
// gzip of it when that is smaller.
func compress(plain []byte) ([]byte, string) {
	if len(plain) < compressThreshold {
		return plain, ""
	}
	z := gzipBytes(plain, gzip.BestSpeed)
	if len(z) > storeBudget && len(plain) > storeBudget {
		z = gzipBytes(plain, gzip.BestCompression)
	}
	if len(z) < len(plain) {
		return z, "gzip"
	}
	return plain, ""
}

func decompress(b []byte, enc string) ([]byte, error) {
	switch enc {
	case "":
		return b, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errCorrupt, err)
		}
		// The table is ours, but a bound keeps a damaged item from
		// exhausting memory.
		out, err := io.ReadAll(io.LimitReader(zr, maxCapture+64*1024))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errCorrupt, err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: unknown encoding %q", errCorrupt, enc)
}

// sealer encrypts stored responses with AES-256-GCM under a key derived
// from the Keyring (PurposeIdempotencySeal), a random nonce per record, and
// the record's table key as associated data, so a sealed response cannot be
// moved to another record. Responses sealed with a previous secret still
// open while that secret is configured.
type sealer struct {
	keys []sealKey // current first
}

type sealKey struct {
	id   string
	aead cipher.AEAD
}

func newSealer(k *dynaguard.Keyring) (*sealer, error) {
	if k == nil {
		return nil, nil
	}
	s := &sealer{}
	for _, dk := range k.Keys(dynaguard.PurposeIdempotencySeal) {
		block, err := aes.NewCipher(dk.Secret)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, err
		}
		s.keys = append(s.keys, sealKey{id: dk.ID, aead: aead})
	}
	return s, nil
}

const sealContext = "dynaguard/idempotency/v1 sealed response\x00"

func (s *sealer) seal(pk string, plain []byte) (kid string, sealed []byte) {
	k := s.keys[0]
	return k.id, k.aead.Seal(nil, nil, plain, []byte(sealContext+pk))
}

var errNoSealKey = errors.New("idempotency: stored response is sealed with a key that is not configured")

func (s *sealer) open(pk, kid string, sealed []byte) ([]byte, error) {
	if s == nil {
		return nil, errNoSealKey
	}
	for _, k := range s.keys {
		if k.id == kid {
			p, err := k.aead.Open(nil, nil, sealed, []byte(sealContext+pk))
			if err != nil {
				return nil, fmt.Errorf("%w: %w", errCorrupt, err)
			}
			return p, nil
		}
	}
	return nil, errNoSealKey
}

// stored is a response ready for the completion write.
type stored struct {
	status  int
	blob    []byte // nil when the body is omitted
	enc     string
	kid     string
	omitted int64
}

// prepare turns a response into what the completion write stores:
// encoded, compressed when that helps, sealed when a Keyring is configured.
// A body that was too large to capture (truncated > 0) or still does not
// fit an item is dropped and its length recorded; the status and headers
// are always kept (the headers too, unless they alone overflow). It never
// fails: a body that cannot be kept is dropped, never the completion.
func (g *Guard) prepare(pk string, status int, header http.Header, body []byte, truncated int64) stored {
	st := stored{status: status}
	var blob []byte
	if truncated == 0 {
		blob, st.enc = compress(encodeResponse(header, body))
	}
	if truncated > 0 || len(blob) > g.budget {
		st.omitted = max(truncated, int64(len(body)), 1)
		blob, st.enc = compress(encodeResponse(header, nil))
		if len(blob) > g.budget {
			blob, st.enc = compress(encodeResponse(nil, nil))
		}
	}
	st.blob = blob
	if g.sealer != nil {
		st.kid, st.blob = g.sealer.seal(pk, st.blob)
	}
	return st
}

// open reads a completed record back into a response. A body that cannot be
// read (sealed with a dropped secret, corrupt) yields a response marked
// unreadable, never an error: the request must still not run again.
func (g *Guard) open(pk string, rec *record) (*response, error) {
	resp := &response{status: rec.status, omitted: rec.omitted}
	blob := rec.blob
	var err error
	if rec.kid != "" {
		blob, err = g.sealer.open(pk, rec.kid, blob)
	}
	if err == nil {
		blob, err = decompress(blob, rec.enc)
	}
	if err == nil {
		resp.header, resp.body, err = decodeResponse(blob)
	}
	if err != nil {
		resp.header, resp.body, resp.unreadable = nil, nil, true
		return resp, err
	}
	return resp, nil
}

// recordKey is the table key of an idempotency record: the prefix and the
// SHA-256 of (kind, scope, key), length-prefixed so that no two
// (scope, key) pairs encode alike. A plain hash, not a keyed one, on
// purpose: the key must stay the same across secret rotation, or a retry
// arriving after a rotation — or at an instance not yet rotated — would
// find no record and run again. Idempotency keys are chosen by clients and
// are not credentials; what a record holds of value, the response, is
// sealed when a Keyring is configured.
func recordKey(kind byte, scope, key string) string {
	h := sha256.New()
	var buf [binary.MaxVarintLen64 + 32]byte
	b := append(buf[:0], "dynaguard/idempotency/v1\x00"...)
	b = append(b, kind)
	b = binary.AppendUvarint(b, uint64(len(scope)))
	h.Write(b)
	h.Write([]byte(scope))
	h.Write([]byte(key))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	// Prefix and encoding built in one array, converted once.
	var pk [len(dynaguard.PrefixIdempotency) + 43]byte
	n := copy(pk[:], dynaguard.PrefixIdempotency)
	base64.RawURLEncoding.Encode(pk[n:], sum[:])
	return string(pk[:])
}

// Kinds of records, so that HTTP requests and Do calls never share one.
const (
	kindHTTP byte = 'h'
	kindTask byte = 't'
)
