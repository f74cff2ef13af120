package idempotency

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/authctx"
	"github.com/dynaguard/dynaguard/internal/budget"
	"github.com/dynaguard/dynaguard/internal/problem"
)

// finishTimeout bounds the completion or release write after the handler
// returns. It runs on a context detached from the request's, so a client
// that hangs up does not leave its key claimed; inside a request budget it
// ends at most budget.Grace after the request's deadline, so the answer is
// not held up by a DynamoDB that stopped answering.
const finishTimeout = 10 * time.Second

type handler struct {
	g     *Guard
	rules rules
	next  http.Handler
}

// ServeHTTP: method → key → scope → body → fingerprint → cache → claim →
// (handler, completion) or (replay | 409 | 422 | 503).
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := h.g
	if !h.rules.methods[r.Method] {
		h.next.ServeHTTP(w, r)
		return
	}
	vals := r.Header.Values(HeaderKey)
	if len(vals) == 0 {
		if h.rules.requireKey {
			writeProblem(w, r, probKeyMissing)
			return
		}
		h.next.ServeHTTP(w, r)
		return
	}
	if len(vals) > 1 { // several field lines would combine into a list
		writeProblem(w, r, probKeyMalformed)
		return
	}
	key, err := ParseKey(vals[0])
	if err != nil {
		writeProblem(w, r, probKeyMalformed)
		return
	}
	scope, ok := g.scopeOf(r)
	if !ok {
		writeProblem(w, r, probUnattributed)
		return
	}
	body, p := g.readBody(r)
	if p != nil {
		writeProblem(w, r, *p)
		return
	}
	fp := fingerprint(r, body)
	pk := recordKey(kindHTTP, scope, key)
	now := g.clock.Now()

	if resp, cfp, ok := g.cache.get(pk, now); ok {
		if !bytes.Equal(cfp, fp) {
			g.event(r.Context(), dynaguard.EventIdempotencyMismatch)
			writeProblem(w, r, probKeyReused)
			return
		}
		g.event(r.Context(), dynaguard.EventIdempotencyReplayed)
		writeReplay(w, r, resp)
		return
	}

	owner := rand.Text()
	rec, err := g.store.claim(r.Context(), pk, fp, owner, now, g.lease, g.retention)
	if err != nil {
		// Fail closed: without a claim the request is not executed.
		if r.Context().Err() == nil { // not merely a client that hung up
			g.log.ErrorContext(r.Context(), "idempotency: claim failed; request refused", "record", pk, "err", err)
			g.storageFailure(r.Context(), err)
		}
		writeProblem(w, r, probUnavailable)
		return
	}
	if rec != nil {
		g.answerTaken(w, r, pk, rec, fp, now)
		return
	}
	g.event(r.Context(), dynaguard.EventIdempotencyClaimed)
	h.run(w, r, pk, owner, fp, body)
}

// answerTaken answers a request whose key another request holds: 422 for a
// different payload, 409 while the holder runs, the stored response once it
// has completed.
func (g *Guard) answerTaken(w http.ResponseWriter, r *http.Request, pk string, rec *record, fp []byte, now time.Time) {
	switch {
	case !bytes.Equal(rec.fp, fp):
		g.event(r.Context(), dynaguard.EventIdempotencyMismatch)
		writeProblem(w, r, probKeyReused)
	case rec.state == stateRunning:
		g.event(r.Context(), dynaguard.EventIdempotencyConflict)
		writeProblem(w, r, probInFlight)
	case rec.status < 200 || rec.status > 599:
		// Not a record this middleware completed: never a free key, and
		// no status to replay.
		g.log.ErrorContext(r.Context(), "idempotency: completed record without a valid status", "record", pk, "status", rec.status)
		writeProblem(w, r, probUnavailable)
	default:
		resp, err := g.open(pk, rec)
		if err != nil {
			g.log.ErrorContext(r.Context(), "idempotency: stored response unreadable; replaying status only", "record", pk, "err", err)
		}
		g.cache.put(pk, rec.fp, resp, time.Unix(rec.ttl, 0), now)
		g.event(r.Context(), dynaguard.EventIdempotencyReplayed)
		writeReplay(w, r, resp)
	}
}

// run executes the handler under the claim, renewing the lease while it
// runs, then completes or releases the record.
func (h *handler) run(w http.ResponseWriter, r *http.Request, pk, owner string, fp, body []byte) {
	g := h.g
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	c := &claimState{g: g, pk: pk, owner: owner, cancel: cancel}
	if h.rules.storeServerErrors {
		c.final.Store(true)
	}
	r = r.WithContext(context.WithValue(ctx, claimKey{}, c))
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	rw := &recorder{w: w, replay: g.replay}

	c.start()
	done := false
	defer func() {
		if done {
			return
		}
		// The handler panicked. Deal with the key, then let the panic go
		// on to the application's recovery, stack intact.
		lost := c.stop()
		fctx, fcancel := budget.Detach(r.Context(), finishTimeout)
		defer fcancel()
		if lost {
			return
		}
		if c.final.Load() {
			b, _ := failedFinal.MarshalJSON()
			hdr := http.Header{"Content-Type": {"application/problem+json"}}
			g.finish(fctx, pk, owner, fp, failedFinal.Status, hdr, append(b, '\n'), 0)
			return
		}
		g.release(fctx, pk, owner)
	}()
	h.next.ServeHTTP(rw, r)
	done = true

	lost := c.stop()
	if lost {
		return // logged by the renewal; the new owner's record stands
	}
	status := rw.status
	if status == 0 {
		status = http.StatusOK
		rw.header = snapshot(w.Header(), g.replay)
	}
	fctx, fcancel := budget.Detach(r.Context(), finishTimeout)
	defer fcancel()
	if !c.final.Load() && releases(status) {
		g.release(fctx, pk, owner)
		return
	}
	var truncated int64
	if rw.over {
		truncated = rw.n
	}
	g.finish(fctx, pk, owner, fp, status, rw.header, rw.buf.Bytes(), truncated)
}

// releases reports whether a response says the request was not processed
// and may simply be sent again: a server error, or 408, 425 and 429.
func releases(status int) bool {
	return status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooEarly ||
		status == http.StatusTooManyRequests
}

// finish stores the outcome. Its failure never reaches the client, whose
// response has already been written: it is logged, and the key stays
// claimed until its lease lapses, when a retry executes again.
func (g *Guard) finish(ctx context.Context, pk, owner string, fp []byte, status int, header http.Header, body []byte, truncated int64) {
	st := g.prepare(pk, status, header, body, truncated)
	now := g.clock.Now()
	err := g.store.complete(ctx, pk, owner, now, g.retention, st)
	if errors.Is(err, dynaguard.ErrItemTooLarge) && st.omitted == 0 {
		// Our estimate let through an item DynamoDB refused: keep the
		// status and headers only.
		st = g.prepare(pk, status, header, nil, max(int64(len(body)), 1))
		err = g.store.complete(ctx, pk, owner, now, g.retention, st)
	}
	switch {
	case errors.Is(err, ErrLeaseLost):
		g.log.ErrorContext(ctx, "idempotency: late completion refused, another owner holds the key; the request executed twice", "record", pk)
		return
	case err != nil:
		g.log.ErrorContext(ctx, "idempotency: completion failed; the key stays claimed until its lease lapses", "record", pk, "err", err)
		return
	}
	if g.cache != nil {
		// A copy: the caller (Do's) may modify the result it returns.
		resp := &response{status: status, header: header, body: bytes.Clone(body), omitted: st.omitted}
		if st.omitted > 0 {
			resp.body = nil
		}
		g.cache.put(pk, fp, resp, time.Unix(dynaguard.EpochSeconds(now.Add(g.retention)), 0), now)
	}
}

func (g *Guard) release(ctx context.Context, pk, owner string) {
	err := g.store.release(ctx, pk, owner)
	switch {
	case errors.Is(err, ErrLeaseLost):
		g.log.WarnContext(ctx, "idempotency: release refused, another owner holds the key", "record", pk)
	case err != nil:
		g.log.ErrorContext(ctx, "idempotency: release failed; the key stays claimed until its lease lapses", "record", pk, "err", err)
	}
}

// scopeOf names the client a key belongs to: the signed-in user, else the
// session, else the application's Scope. Each source has its own namespace,
// so no value of one can collide with a value of another.
func (g *Guard) scopeOf(r *http.Request) (string, bool) {
	ctx := r.Context()
	if id, ok := authctx.User(ctx); ok {
		return "user\x00" + id, true
	}
	if id, ok := authctx.Session(ctx); ok {
		return "session\x00" + id, true
	}
	if g.scope != nil {
		if s, ok := g.scope(r); ok {
			return "app\x00" + s, true
		}
	}
	return "", false
}

// readBody reads the whole body, up to the limit.
func (g *Guard) readBody(r *http.Request) ([]byte, *problem.Problem) {
	if r.ContentLength > g.maxBody {
		p := bodyTooLarge(g.maxBody)
		return nil, &p
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	_, err := buf.ReadFrom(io.LimitReader(r.Body, g.maxBody+1))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe) || int64(buf.Len()) > g.maxBody:
		p := bodyTooLarge(min(g.maxBody, mbeLimit(mbe, g.maxBody)))
		return nil, &p
	case err != nil:
		p := probBodyUnreadable
		return nil, &p
	}
	return buf.Bytes(), nil
}

func mbeLimit(e *http.MaxBytesError, def int64) int64 {
	if e == nil {
		return def
	}
	return e.Limit
}

// fingerprint is the SHA-256 of the request's method, path, query, content
// type and body, each length-prefixed so that no two requests encode alike.
func fingerprint(r *http.Request, body []byte) []byte {
	h := sha256.New()
	var buf [binary.MaxVarintLen64]byte
	field := func(b []byte) {
		h.Write(binary.AppendUvarint(buf[:0], uint64(len(b))))
		h.Write(b)
	}
	h.Write([]byte("dynaguard/idempotency/v1 request\x00"))
	field([]byte(r.Method))
	field([]byte(r.URL.EscapedPath()))
	field([]byte(r.URL.RawQuery))
	field([]byte(r.Header.Get("Content-Type")))
	field(body)
	return h.Sum(nil)
}

// writeReplay answers with a stored response, marked as a replay.
func writeReplay(w http.ResponseWriter, r *http.Request, resp *response) {
	h := w.Header()
	if resp.omitted > 0 || resp.unreadable {
		for k, vs := range resp.header {
			if k != "Content-Type" && k != "Content-Encoding" && k != "Content-Length" {
				h[k] = append([]string(nil), vs...)
			}
		}
		h.Set(HeaderReplayed, "true")
		problem.Write(w, r, notKept(resp.status, resp.unreadable))
		return
	}
	for k, vs := range resp.header {
		h[k] = append([]string(nil), vs...) // the cache shares resp
	}
	h.Set(HeaderReplayed, "true")
	if bodyAllowed(resp.status) {
		h.Set("Content-Length", strconv.Itoa(len(resp.body)))
	}
	w.WriteHeader(resp.status)
	if len(resp.body) > 0 && bodyAllowed(resp.status) {
		_, _ = w.Write(resp.body)
	}
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// recorder passes the response through to the client unchanged and keeps
// what the record needs: the status, the allowlisted headers as they were
// when the status was written, and the body up to maxCapture.
type recorder struct {
	w      http.ResponseWriter
	replay map[string]bool
	status int
	header http.Header
	buf    bytes.Buffer
	n      int64 // body bytes written
	over   bool  // the body outgrew maxCapture and is not kept
}

func (rw *recorder) Header() http.Header { return rw.w.Header() }

func (rw *recorder) WriteHeader(code int) {
	if rw.status == 0 && code >= 200 {
		rw.status = code
		rw.header = snapshot(rw.w.Header(), rw.replay)
	}
	rw.w.WriteHeader(code)
}

func (rw *recorder) Write(p []byte) (int, error) {
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	n, err := rw.w.Write(p)
	rw.n += int64(n)
	if !rw.over {
		if int64(rw.buf.Len()+n) > maxCapture {
			rw.over = true
			rw.buf = bytes.Buffer{}
		} else {
			rw.buf.Write(p[:n])
		}
	}
	return n, err
}

// Flush supports streaming handlers; FlushError and the rest of
// http.ResponseController reach the underlying writer through Unwrap.
func (rw *recorder) Flush() {
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(rw.w).Flush()
}

func (rw *recorder) Unwrap() http.ResponseWriter { return rw.w }

func snapshot(h http.Header, allow map[string]bool) http.Header {
	var out http.Header
	for k, vs := range h {
		if allow[k] && len(vs) > 0 {
			if out == nil {
				out = make(http.Header, 4)
			}
			out[k] = append([]string(nil), vs...)
		}
	}
	return out
}
