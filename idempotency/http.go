package idempotency

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/authctx"
	"github.com/dynaguard/dynaguard/internal/budget"
	"github.com/dynaguard/dynaguard/internal/ddb"
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
	in := requestInput(r, body)
	fp := g.fps.sum(in, 0)
	pk := recordKey(kindHTTP, scope, key)
	now := g.clock.Now()

	if resp, cfp, ok := g.cache.get(pk, now); ok {
		if !g.fps.matches(in, fp, cfp) {
			g.event(r.Context(), dynaguard.EventIdempotencyMismatch)
			writeProblem(w, r, probKeyReused)
			return
		}
		g.event(r.Context(), dynaguard.EventIdempotencyReplayed)
		writeReplay(w, r, resp)
		return
	}

	cr := claimReq{pk: pk, owner: rand.Text(), fp: fp, final: h.rules.storeServerErrors,
		now: now, lease: g.lease, retention: g.retention, skew: g.skew}
	sent := time.Now()
	rec, over, err := g.store.claim(r.Context(), cr)
	if err == nil && g.rotatedTakeover(rec, in, fp, now) {
		// The lapsed claim was fingerprinted under a previous secret: take
		// it over with the fingerprint it stores.
		cr.fp = rec.fp
		sent = time.Now()
		rec, over, err = g.store.claim(r.Context(), cr)
	}
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
		g.answerTaken(w, r, pk, rec, in, fp, now)
		return
	}
	g.claimed(r.Context(), over)
	h.run(w, r, cr, sent, body)
}

// lapsed reports whether a running record's lease lapsed at least
// MaxClockSkew before now: the rule of the claim's condition.
func (g *Guard) lapsed(rec *record, now time.Time) bool {
	return rec.leaseMS <= epochMillis(now.Add(-g.skew))
}

// rotatedTakeover reports whether a refused claim met a lapsed, unmarked
// claim of the same request fingerprinted under a previous secret.
func (g *Guard) rotatedTakeover(rec *record, in fpInput, fp []byte, now time.Time) bool {
	return rec != nil && rec.state == stateRunning && !rec.final && g.lapsed(rec, now) &&
		!bytes.Equal(rec.fp, fp) && g.fps.matches(in, fp, rec.fp)
}

// answerTaken answers a request whose key another request holds: 422 for a
// different payload, 409 while the holder runs (or while the outcome of a
// first run marked final is not stored), the stored response once it has
// completed.
func (g *Guard) answerTaken(w http.ResponseWriter, r *http.Request, pk string, rec *record, in fpInput, fp []byte, now time.Time) {
	switch {
	case !g.fps.matches(in, fp, rec.fp):
		g.event(r.Context(), dynaguard.EventIdempotencyMismatch)
		writeProblem(w, r, probKeyReused)
	case rec.state == stateRunning && rec.final && g.lapsed(rec, now):
		g.outcomeUnknown(r.Context())
		writeProblem(w, r, probOutcomeUnknown)
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
func (h *handler) run(w http.ResponseWriter, r *http.Request, cr claimReq, sent time.Time, body []byte) {
	g := h.g
	pk, owner, fp := cr.pk, cr.owner, cr.fp
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	c := &claimState{g: g, pk: pk, owner: owner, fence: epochMillis(cr.now), cancel: cancel, marked: cr.final}
	c.final.Store(cr.final)
	r = r.WithContext(context.WithValue(ctx, claimKey{}, c))
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	rw := &recorder{w: w, replay: g.replay}

	c.start(sent)
	done := false
	defer func() {
		if done {
			return
		}
		// The handler panicked. Deal with the key, then let the panic go
		// on to the application's recovery, stack intact.
		lost, marked := c.stop()
		fctx, fcancel := budget.Detach(r.Context(), finishTimeout)
		defer fcancel()
		switch {
		case lost && !marked:
			return
		case c.final.Load():
			b, _ := failedFinal.MarshalJSON()
			hdr := http.Header{"Content-Type": {"application/problem+json"}}
			g.finish(fctx, c, fp, failedFinal.Status, hdr, append(b, '\n'), 0)
		default:
			g.release(fctx, pk, owner)
		}
	}()
	h.next.ServeHTTP(rw, r)
	done = true

	lost, marked := c.stop()
	if lost && !marked {
		// Logged when the lease was lost. The handler was canceled; what
		// it answered is not stored, and the record is left to a retry
		// (after the lease lapses) rather than completed with it.
		return
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
	g.finish(fctx, c, fp, status, rw.header, rw.buf.Bytes(), truncated)
}

// releases reports whether a response says the request was not processed
// and may simply be sent again: a server error, or 408, 425 and 429.
func releases(status int) bool {
	return status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooEarly ||
		status == http.StatusTooManyRequests
}

// finish stores the outcome. Its failure never reaches the client, whose
// response has already been written (or Do's caller, who has its result):
// it is logged and the completion is retried in the background
// (retryLater); until it lands the record stays running and duplicates get
// 409. It reports whether the completion landed now.
func (g *Guard) finish(ctx context.Context, c *claimState, fp []byte, status int, header http.Header, body []byte, truncated int64) bool {
	pk, owner := c.pk, c.owner
	ttl := ddb.EpochSeconds(g.clock.Now().Add(g.retention))
	st, err := g.prepare(pk, fp, ttl, status, header, body, truncated)
	if err == nil {
		err = g.store.complete(ctx, pk, owner, st)
	}
	if errors.Is(err, dynaguard.ErrItemTooLarge) && st.omitted == 0 {
		// Our estimate let through an item DynamoDB refused: keep the
		// status and headers only.
		st, err = g.prepare(pk, fp, ttl, status, header, nil, max(int64(len(body)), 1))
		if err == nil {
			err = g.store.complete(ctx, pk, owner, st)
		}
	}
	resp := &response{status: status, header: header, omitted: st.omitted}
	if st.omitted == 0 {
		// A copy: the caller (Do's) may modify the result it returns.
		resp.body = bytes.Clone(body)
	}
	switch {
	case errors.Is(err, ErrLeaseLost):
		g.log.ErrorContext(ctx, "idempotency: late completion refused, another owner holds the key; the request executed twice", "record", pk)
		if c.markOnFailure {
			// Should the refusal be anything but a takeover, the mark
			// keeps the record from being taken over; after a takeover it
			// is refused as well, and changes nothing.
			_ = c.markFinal(ctx)
		}
		return false
	case err != nil:
		g.log.ErrorContext(ctx, "idempotency: completion failed; retrying in the background, duplicates get 409 meanwhile", "record", pk, "err", err)
		if c.markOnFailure {
			// Do's outcome: mark it final before Do returns, so that the
			// key is not taken over while the completion is retried. A
			// failure is logged by markFinal.
			_ = c.markFinal(ctx)
		}
		g.retryLater(pk, owner, fp, st, resp)
		return false
	}
	g.cacheOutcome(pk, fp, st, resp)
	return true
}

// cacheOutcome caches a stored outcome.
func (g *Guard) cacheOutcome(pk string, fp []byte, st stored, resp *response) {
	if g.cache != nil {
		g.cache.put(pk, fp, resp, time.Unix(st.ttl, 0), g.clock.Now())
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
	// A replay is one client's stored answer: no shared or browser cache
	// may keep it and hand it out in place of a fresh request.
	h.Set("Cache-Control", "no-store")
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
