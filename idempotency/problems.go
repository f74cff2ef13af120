package idempotency

import (
	"net/http"
	"strconv"

	"github.com/dynaguard/dynaguard/internal/problem"
)

// Problem reasons (documented in docs/PROBLEMS.md).
const (
	ReasonKeyMissing      = "idempotency-key-missing"
	ReasonKeyMalformed    = "idempotency-key-malformed"
	ReasonUnattributed    = "idempotency-unattributed"
	ReasonBodyTooLarge    = "idempotency-body-too-large"
	ReasonBodyUnreadable  = "idempotency-body-unreadable"
	ReasonKeyReused       = "idempotency-key-reused"
	ReasonInFlight        = "idempotency-request-in-flight"
	ReasonUnavailable     = "idempotency-unavailable"
	ReasonResponseNotKept = "idempotency-response-not-kept"
	ReasonFailedFinal     = "idempotency-request-failed"
	ReasonOutcomeUnknown  = "idempotency-outcome-unknown"
)

// retryAfter is the Retry-After of 409 and 503 answers, in seconds. A
// duplicate usually arrives while the first request is about to finish,
// so a short hint serves clients best; a crashed holder frees its key when
// its lease lapses.
const retryAfter = 1

var (
	probKeyMissing = problem.Problem{Reason: ReasonKeyMissing, Status: http.StatusBadRequest,
		Title:  "Idempotency-Key required",
		Detail: "This endpoint requires an Idempotency-Key header: a unique value (for example a random UUID) that you send again, unchanged, when you retry the request."}
	probKeyMalformed = problem.Problem{Reason: ReasonKeyMalformed, Status: http.StatusBadRequest,
		Title:  "Malformed Idempotency-Key",
		Detail: "The Idempotency-Key header must be one value: 1 to 255 printable ASCII characters, as a quoted string (\"...\") or a bare value without spaces, quotes, backslashes, commas or semicolons."}
	probUnattributed = problem.Problem{Reason: ReasonUnattributed, Status: http.StatusForbidden,
		Title:  "Request cannot be attributed to a client",
		Detail: "Idempotency keys are kept per client, and this request carries no identity to keep its key under. Sign in (or authenticate the API client) and send the request again."}
	probBodyTooLarge = problem.Problem{Reason: ReasonBodyTooLarge, Status: http.StatusRequestEntityTooLarge,
		Title: "Request body too large"}
	probBodyUnreadable = problem.Problem{Reason: ReasonBodyUnreadable, Status: http.StatusBadRequest,
		Title:  "Request body could not be read",
		Detail: "The request body ended early or could not be read. Send the request again with the same Idempotency-Key."}
	probKeyReused = problem.Problem{Reason: ReasonKeyReused, Status: http.StatusUnprocessableEntity,
		Title:  "Idempotency-Key reused with a different request",
		Detail: "This Idempotency-Key was already used for a request with a different method, path, query, content type or body. Use a new key for a new request; resend the original request unchanged to get its response."}
	probInFlight = problem.Problem{Reason: ReasonInFlight, Status: http.StatusConflict,
		Title:  "Request with this Idempotency-Key is still in progress",
		Detail: "An earlier request with this Idempotency-Key has not finished yet. Retry after the time given in Retry-After; you will then receive its response.",
		Extra:  map[string]any{"retry_after": retryAfter}}
	probOutcomeUnknown = problem.Problem{Reason: ReasonOutcomeUnknown, Status: http.StatusConflict,
		Title:  "Outcome of the first request with this Idempotency-Key not yet recorded",
		Detail: "The first request with this Idempotency-Key took effect, but its outcome has not been recorded yet. It will not be executed again. Retry after the time given in Retry-After to receive its response.",
		Extra:  map[string]any{"retry_after": retryAfter}}
	probUnavailable = problem.Problem{Reason: ReasonUnavailable, Status: http.StatusServiceUnavailable,
		Title:  "Service temporarily unavailable",
		Detail: "The request was not processed because its Idempotency-Key could not be checked. Retry with the same key.",
		Extra:  map[string]any{"retry_after": retryAfter}}
)

func bodyTooLarge(limit int64) problem.Problem {
	p := probBodyTooLarge
	p.Detail = "A request that carries an Idempotency-Key may have a body of at most " + strconv.FormatInt(limit, 10) + " bytes."
	p.Extra = map[string]any{"max_bytes": limit}
	return p
}

func notKept(status int, unreadable bool) problem.Problem {
	p := problem.Problem{Reason: ReasonResponseNotKept, Status: status,
		Title: "Original response replayed without its body"}
	if unreadable {
		p.Detail = "This request was already processed with the status shown. Its stored response can no longer be read, so only the status and headers are replayed. It was not executed again."
	} else {
		p.Detail = "This request was already processed with the status shown. Its response body was too large to keep, so only the status and headers are replayed. It was not executed again."
	}
	return p
}

// failedFinal is what a request that panicked after it was marked final
// stores: a replay must not execute it again, and must not pretend it
// succeeded.
var failedFinal = problem.Problem{Reason: ReasonFailedFinal, Status: http.StatusInternalServerError,
	Title:  "Original request failed",
	Detail: "This request failed after it had taken effect, so it will not be executed again under this Idempotency-Key. Check the resource's state before sending a new request with a new key."}

func writeProblem(w http.ResponseWriter, r *http.Request, p problem.Problem) {
	if p.Status == http.StatusConflict || p.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	problem.Write(w, r, p)
}
