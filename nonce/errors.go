package nonce

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/dynaguard/dynaguard/internal/problem"
)

// Why a submission was refused. Every error returned by [Manager.Consume]
// and passed to Config.ErrorHandler matches exactly one of these with
// errors.Is; errors.As yields an [*Error] with the details.
var (
	// ErrMissing: the request carried no token, neither in the form field
	// nor in the header.
	ErrMissing = errors.New("nonce: missing")
	// ErrMalformed: the token is not shaped like a token (wrong length,
	// not base64, truncated) or has an unknown layout.
	ErrMalformed = errors.New("nonce: malformed")
	// ErrBadSignature: the token is shaped like a token but no configured
	// key signed it: it was altered, forged, or signed with a key that has
	// since been dropped from the keyring.
	ErrBadSignature = errors.New("nonce: bad signature")
	// ErrExpired: the token's lifetime (Config.TTL) has passed.
	ErrExpired = errors.New("nonce: expired")
	// ErrNotYetValid: the token is dated further in the future than
	// Config.MaxClockSkew allows — the instance that issued it has a clock
	// that runs fast.
	ErrNotYetValid = errors.New("nonce: dated in the future")
	// ErrWrongPurpose: the token was issued for another form.
	ErrWrongPurpose = errors.New("nonce: issued for another purpose")
	// ErrWrongBrowser: the token was issued to another browser, or this
	// browser's nonce cookie is missing (cleared, blocked or expired).
	ErrWrongBrowser = errors.New("nonce: issued to another browser")
	// ErrWrongSession: the token was issued inside a session that is not
	// the current one — most often because a login or logout renewed the
	// session after the form was rendered.
	ErrWrongSession = errors.New("nonce: issued in another session")
	// ErrAlreadyUsed: the token is genuine but was already consumed — a
	// double submission, a Back-button resubmission or a replay.
	ErrAlreadyUsed = errors.New("nonce: already used")
	// ErrStorage: the consumption could not be recorded (throttling,
	// DynamoDB error, timeout, network). The request is refused: a nonce is
	// never accepted without its consumption being recorded.
	ErrStorage = errors.New("nonce: storage unavailable")
	// ErrBodyTooLarge: the form body exceeds Config.MaxBodyBytes.
	ErrBodyTooLarge = errors.New("nonce: request body too large")
	// ErrBadForm: the form body could not be parsed.
	ErrBadForm = errors.New("nonce: form body cannot be parsed")
)

// ErrNotPrepared is returned by [Token] and [Field] for a request that did
// not pass through [Manager.Handler] or [Manager.Require]: there is no
// browser to bind a token to. It is a programming error, not a client one.
var ErrNotPrepared = errors.New("nonce: request did not pass through Manager.Handler or Manager.Require")

// Error is a refused submission. Kind is one of the sentinel errors above;
// Err, when set, is the underlying cause (for ErrStorage, the classified
// DynamoDB error, so errors.Is(err, dynaguard.ErrThrottled) works too).
type Error struct {
	Kind    error
	Purpose string // the purpose the route requires
	Err     error
}

func (e *Error) Error() string {
	s := e.Kind.Error()
	if e.Purpose != "" {
		s += " (purpose " + strconv.Quote(e.Purpose) + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns Kind and, when set, Err.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

func reject(kind error, purpose string, cause error) error {
	return &Error{Kind: kind, Purpose: purpose, Err: cause}
}

// reasons maps each sentinel to its response. The reason names are the
// anchors documented in docs/PROBLEMS.md.
var reasons = []struct {
	kind   error
	reason string
	status int
	title  string
	detail string
}{
	{ErrMissing, "nonce-missing", http.StatusForbidden, "This form could not be verified",
		"The form was sent without its security token. Reload the page and submit it again."},
	{ErrMalformed, "nonce-malformed", http.StatusForbidden, "This form could not be verified",
		"The form's security token is damaged. Reload the page and submit it again."},
	{ErrBadSignature, "nonce-bad-signature", http.StatusForbidden, "This form could not be verified",
		"The form's security token is not valid. Reload the page and submit it again."},
	{ErrExpired, "nonce-expired", http.StatusForbidden, "This form has expired",
		"The form was open for too long. Reload the page and submit it again."},
	{ErrNotYetValid, "nonce-not-yet-valid", http.StatusForbidden, "This form could not be verified",
		"The form's security token is dated in the future. Reload the page and submit it again."},
	{ErrWrongPurpose, "nonce-wrong-purpose", http.StatusForbidden, "This form could not be verified",
		"The security token belongs to a different form. Reload the page and submit it again."},
	{ErrWrongBrowser, "nonce-wrong-browser", http.StatusForbidden, "This form could not be verified",
		"The form was opened in another browser, or this browser's cookies were cleared or blocked. " +
			"Allow cookies for this site, reload the page and submit it again."},
	{ErrWrongSession, "nonce-wrong-session", http.StatusForbidden, "Your session has changed",
		"You signed in or out since this form was opened. Reload the page and submit it again."},
	{ErrAlreadyUsed, "nonce-used", http.StatusConflict, "This form was already submitted",
		"Each form can be submitted only once, and this one already was. " +
			"If you meant to submit it again, reload the page and fill it in anew."},
	{ErrStorage, "nonce-storage-unavailable", http.StatusServiceUnavailable, "Please try again in a moment",
		"The submission could not be verified right now, so it was not processed."},
	{ErrBodyTooLarge, "nonce-body-too-large", http.StatusRequestEntityTooLarge, "The submission is too large",
		"The form's content exceeds the size this site accepts."},
	{ErrBadForm, "nonce-form-invalid", http.StatusBadRequest, "The submission could not be read",
		"The form's content is not valid form data."},
}

// Reason returns the problem reason of err ("nonce-used", ...) as documented
// in docs/PROBLEMS.md, or "" when err is not one of this package's.
func Reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.kind) {
			return r.reason
		}
	}
	return ""
}

// Status returns the HTTP status the default error handler answers err
// with: 403 for a token that fails verification, 409 for one already used,
// 503 for a storage failure, 413 and 400 for an unreadable body, and 500
// for anything else.
func Status(err error) int {
	for _, r := range reasons {
		if errors.Is(err, r.kind) {
			return r.status
		}
	}
	return http.StatusInternalServerError
}

// DefaultErrorHandler writes err as a problem: a readable HTML page for
// browsers, problem+json for API clients. For ErrStorage it also sets
// Retry-After. It is Config.ErrorHandler's default; a custom handler can
// re-render the form for some errors and delegate the rest to it.
func DefaultErrorHandler(w http.ResponseWriter, r *http.Request, err error) {
	writeError(w, r, err, time.Second)
}

func writeError(w http.ResponseWriter, r *http.Request, err error, retryAfter time.Duration) {
	for _, rs := range reasons {
		if !errors.Is(err, rs.kind) {
			continue
		}
		p := problem.Problem{Reason: rs.reason, Status: rs.status, Title: rs.title, Detail: rs.detail}
		if rs.kind == ErrStorage {
			secs := max(1, int((retryAfter+time.Second-1)/time.Second))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			p.Extra = map[string]any{"retry_after": secs}
		}
		problem.Write(w, r, p)
		return
	}
	problem.Write(w, r, problem.Problem{Status: http.StatusInternalServerError})
}
