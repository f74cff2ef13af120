package idempotency

import (
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/seal"
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
	final   bool  // running and marked final: never taken over
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

// sealer encrypts stored responses with internal/seal (AES-256-GCM under a
// fresh subkey per record, 192-bit random nonce) under the keys derived for
// PurposeIdempotencySeal. The associated data binds the ciphertext to the
// record's table key and to every stored field that shapes the replay — the
// status, the encoding, the omitted-body length, the expiry and the
// fingerprint — so a sealed response cannot be moved to another record, and
// none of those attributes can be changed in the table without the replay
// failing closed (answered as unreadable, never executed again). Responses
// sealed with a previous secret still open while that secret is configured.
type sealer struct {
	keys []seal.Key // current first
}

func newSealer(k *dynaguard.Keyring) *sealer {
	return &sealer{keys: seal.Keys(k.Keys(dynaguard.PurposeIdempotencySeal), sealLabel)}
}

const (
	sealLabel   = "dynaguard/idempotency-seal/v2"
	sealContext = "dynaguard/idempotency/v2 response\x00"
)

// sealAD appends the associated data of a stored response to ad.
func sealAD(ad []byte, pk string, st *stored, fp []byte) []byte {
	ad = append(ad, sealContext...)
	ad = append(ad, pk...)
	ad = append(ad, 0)
	ad = strconv.AppendInt(ad, int64(st.status), 10)
	ad = append(ad, 0)
	ad = append(ad, st.enc...)
	ad = append(ad, 0)
	ad = strconv.AppendInt(ad, st.omitted, 10)
	ad = append(ad, 0)
	ad = strconv.AppendInt(ad, st.ttl, 10)
	ad = append(ad, 0)
	return append(ad, fp...)
}

func (s *sealer) seal(pk string, st *stored, fp []byte) error {
	k := s.keys[0]
	sealed, err := k.Seal(st.blob, func(ad []byte) []byte { return sealAD(ad, pk, st, fp) })
	if err != nil {
		return err
	}
	st.kid, st.blob = k.ID, sealed
	return nil
}

var errNoSealKey = errors.New("idempotency: stored response is sealed with a key that is not configured")

func (s *sealer) open(pk string, rec *record) ([]byte, error) {
	k, ok := seal.Find(s.keys, rec.kid)
	if !ok {
		return nil, errNoSealKey
	}
	st := stored{status: rec.status, enc: rec.enc, omitted: rec.omitted, ttl: rec.ttl}
	p, err := k.Open(rec.blob, func(ad []byte) []byte { return sealAD(ad, pk, &st, rec.fp) })
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	return p, nil
}

// stored is a response ready for the completion write.
type stored struct {
	status  int
	blob    []byte // nil when the body is omitted
	enc     string
	kid     string
	omitted int64
	ttl     int64 // the record's expiry, epoch seconds
}

// prepare turns a response into what the completion write stores:
// encoded, compressed when that helps, sealed, to be kept until ttl.
// A body that was too large to capture (truncated > 0) or still does not
// fit an item is dropped and its length recorded; the status and headers
// are always kept (the headers too, unless they alone overflow). It never
// fails: a body that cannot be kept is dropped, never the completion.
func (g *Guard) prepare(pk string, fp []byte, ttl int64, status int, header http.Header, body []byte, truncated int64) (stored, error) {
	st := stored{status: status, ttl: ttl}
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
	return st, g.sealer.seal(pk, &st, fp)
}

// open reads a completed record back into a response. A body that cannot be
// read (sealed with a dropped secret, corrupt) yields a response marked
// unreadable, never an error: the request must still not run again.
func (g *Guard) open(pk string, rec *record) (*response, error) {
	resp := &response{status: rec.status, omitted: rec.omitted}
	// Every record this package writes is sealed: one without a key ID
	// was not written by it, and is not replayed.
	blob, err := g.sealer.open(pk, rec)
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

// Fingerprints. A request's fingerprint is an HMAC-SHA256, under the key
// derived for dynaguard.PurposeIdempotencyFingerprint, of its method, path,
// query, content type and the SHA-256 of its body (length-prefixed so that no
// two requests encode alike); a Do call's is the HMAC of its fingerprint
// argument. Keyed, because a plain hash of a low-entropy body — a JSON
// password change, a small transfer — is reversed from a table dump by
// guessing. The body is hashed first so that checking a stored fingerprint
// against every secret of a rotation costs one HMAC of a few dozen bytes per
// secret, not one pass over the body each.
type fingerprinter struct {
	macs []*sync.Pool // per key, current first: pooled HMACs
}

func newFingerprinter(k *dynaguard.Keyring) *fingerprinter {
	f := &fingerprinter{}
	for _, dk := range k.Keys(dynaguard.PurposeIdempotencyFingerprint) {
		secret := dk.Secret
		f.macs = append(f.macs, &sync.Pool{New: func() any { return hmac.New(sha256.New, secret) }})
	}
	return f
}

// fpInput is what a fingerprint is the MAC of: computed once per request.
type fpInput []byte

// sum returns the fingerprint under key i.
func (f *fingerprinter) sum(in fpInput, i int) []byte {
	m := f.macs[i].Get().(hash.Hash)
	m.Reset()
	m.Write(in)
	out := m.Sum(nil)
	f.macs[i].Put(m)
	return out
}

// matches reports whether stored is the fingerprint of in under any key:
// the current one (cur, already computed) or a previous one still in the
// keyring, so a retry that spans a rotation still matches its record.
func (f *fingerprinter) matches(in fpInput, cur, stored []byte) bool {
	if hmac.Equal(cur, stored) {
		return true
	}
	for i := 1; i < len(f.macs); i++ {
		if hmac.Equal(f.sum(in, i), stored) {
			return true
		}
	}
	return false
}

// requestInput is the fingerprint input of an HTTP request.
func requestInput(r *http.Request, body []byte) fpInput {
	bodySum := sha256.Sum256(body)
	path, ct := r.URL.EscapedPath(), r.Header.Get("Content-Type")
	b := make([]byte, 0, 48+len(r.Method)+len(path)+len(r.URL.RawQuery)+len(ct)+5*binary.MaxVarintLen64)
	b = append(b, "dynaguard/idempotency/v2 request\x00"...)
	for _, f := range []string{r.Method, path, r.URL.RawQuery, ct} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return append(b, bodySum[:]...)
}

// taskInput is the fingerprint input of a Do call.
func taskInput(fingerprint []byte) fpInput {
	sum := sha256.Sum256(fingerprint)
	return append([]byte("dynaguard/idempotency/v2 task\x00"), sum[:]...)
}
