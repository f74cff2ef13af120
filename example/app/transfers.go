package app

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/dynaguard/dynaguard/idempotency"
	"github.com/dynaguard/dynaguard/internal/problem"
	"github.com/dynaguard/dynaguard/users"
)

// Transfers: a browser form (guarded by a single-use nonce) and a JSON API
// (guarded by Idempotency-Key). Both write to the app's own items in the
// table (dynamo.go), so every instance sees the same transfers.

// Limits of a transfer.
const (
	maxAmount      = 1_000_000_00 // cents: one million
	maxRecipient   = 64           // characters
	maxRequestBody = 4 << 10      // bytes of JSON
)

// ---- browser pages ----

type transfersData struct {
	Transfers []Transfer
	Max       int
}

func (a *App) transfersGet(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := a.newView(r, "Transfers")
	list, err := a.transfers.list(ctx, v.User.ID)
	if err != nil {
		a.log.ErrorContext(ctx, "app: listing transfers failed", "err", err)
		unavailable(w, r)
		return
	}
	v.Data = transfersData{Transfers: list, Max: MaxTransfers}
	a.render(w, "transfers", v)
}

func (a *App) transferNewGet(w http.ResponseWriter, r *http.Request) {
	a.transferNewPage(w, r, a.newView(r, ""))
}

func (a *App) transferNewPage(w http.ResponseWriter, r *http.Request, v *view) {
	v.Title = "New transfer"
	v.Narrow = true
	// Cacheable, so that Back shows the submitted form itself (with its
	// spent nonce): sending it again is then refused as a duplicate.
	v.cache = formCache
	a.render(w, "transfer_new", v)
}

// transferPost runs once per rendered form: the stack consumed the form's
// nonce with one conditional write before this handler was called.
func (a *App) transferPost(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, _ := users.FromContext(ctx)
	v := a.newView(r, "")
	v.Form = keptInput(r)
	to, toErr := checkRecipient(r.PostFormValue("to"))
	amount, amountErr := parseDecimalAmount(r.PostFormValue("amount"))
	if toErr != "" || amountErr != "" {
		v.status = http.StatusUnprocessableEntity
		v.Alert = &alert{Title: "Check the transfer", Detail: "Nothing was sent."}
		if toErr != "" {
			v.Errors["to"] = toErr
		}
		if amountErr != "" {
			v.Errors["amount"] = amountErr
		}
		a.transferNewPage(w, r, v)
		return
	}
	t := Transfer{ID: newID(), To: to, Amount: amount, Created: a.clock.Now().UTC().Truncate(time.Millisecond)}
	if _, _, err := a.transfers.add(ctx, u.ID, t); err != nil {
		if errors.Is(err, errTransfersFull) {
			v.status = http.StatusConflict
			v.Alert = &alert{Title: "Transfer limit reached", Detail: "This demo keeps at most " + strconv.Itoa(MaxTransfers) + " transfers per account."}
			a.transferNewPage(w, r, v)
			return
		}
		a.log.ErrorContext(ctx, "app: storing a transfer failed", "err", err)
		unavailable(w, r)
		return
	}
	a.setFlash(r, "ok", "Sent "+formatAmount(amount)+" to "+to+".")
	redirect(w, r, "/transfers")
}

// parseDecimalAmount reads "12", "12.5" or "12.50" as cents.
func parseDecimalAmount(s string) (int64, string) {
	s = strings.TrimSpace(s)
	whole, frac, hasFrac := strings.Cut(s, ".")
	if whole == "" || len(whole) > 7 || !digits(whole) || (hasFrac && (len(frac) == 0 || len(frac) > 2 || !digits(frac))) {
		return 0, "Enter an amount such as 12.50."
	}
	for len(frac) < 2 {
		frac += "0"
	}
	n, _ := strconv.ParseInt(whole+frac, 10, 64)
	if n <= 0 || n > maxAmount {
		return 0, "Enter an amount between 0.01 and " + formatAmount(maxAmount) + "."
	}
	return n, ""
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// checkRecipient validates a recipient name and returns it trimmed, or a
// message.
func checkRecipient(s string) (string, string) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", "Enter who receives the money."
	case !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxRecipient:
		return "", "Use at most " + strconv.Itoa(maxRecipient) + " characters."
	}
	for _, c := range s {
		if !unicode.IsPrint(c) {
			return "", "Use letters, digits, spaces and punctuation only."
		}
	}
	return s, ""
}

// ---- JSON API ----

// requireAPIUser answers 401 problem+json to requests without a logged-in
// session (an API client is never redirected to a login page). The stack
// already refuses them before the idempotency guard; this keeps the routes
// safe if they are ever mounted with middleware.Config.PublicAPI.
func (a *App) requireAPIUser(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := users.FromContext(r.Context()); !ok {
			problem.Write(w, r, problem.Problem{Reason: "authentication-required", Status: http.StatusUnauthorized,
				Title: "Please log in", Detail: "This API needs a logged-in session cookie or an access token (Authorization: Bearer)."})
			return
		}
		next(w, r)
	})
}

func (a *App) apiTransfersList(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, _ := users.FromContext(ctx)
	list, err := a.transfers.list(ctx, u.ID)
	if err != nil {
		a.log.ErrorContext(ctx, "app: listing transfers failed", "err", err)
		unavailable(w, r)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// transferRequest is the body of POST /api/transfers. Amount is a raw
// number so that only an integer literal is accepted (no 1.5, 1e3, "12").
type transferRequest struct {
	To     *string        `json:"to"`
	Amount jsontext.Value `json:"amount"`
}

// apiTransfersCreate creates a transfer. The stack's idempotency guard runs
// it at most once per user and Idempotency-Key, on any instance, and
// replays its 201 to every retry. Below that, the transfer's ID is derived
// from the key, and the store refuses a second entry with the same ID: even
// a retry after a timeout whose first write landed (the guard releases the
// key on a 5xx) cannot create a second transfer.
func (a *App) apiTransfersCreate(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, _ := users.FromContext(ctx)
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		badRequest(w, r, http.StatusUnsupportedMediaType, "transfer-content-type", "Send the transfer as JSON",
			`Use Content-Type: application/json and a body like {"to": "bob", "amount": 1250}.`)
		return
	}
	req, msg := decodeTransfer(w, r)
	if msg != "" {
		badRequest(w, r, http.StatusBadRequest, "transfer-invalid", "The transfer is not valid", msg)
		return
	}
	key, err := idempotency.ParseKey(r.Header.Get(idempotency.HeaderKey))
	if err != nil { // the guard already refused missing and malformed keys
		badRequest(w, r, http.StatusBadRequest, "transfer-invalid", "The transfer is not valid", "Send an Idempotency-Key header.")
		return
	}
	t := Transfer{ID: transferID(u.ID, key), To: req.to, Amount: req.amount, Created: a.clock.Now().UTC().Truncate(time.Millisecond)}
	stored, existed, err := a.transfers.add(ctx, u.ID, t)
	switch {
	case errors.Is(err, errTransfersFull):
		badRequest(w, r, http.StatusConflict, "transfer-limit", "Transfer limit reached",
			"This demo keeps at most "+strconv.Itoa(MaxTransfers)+" transfers per account.")
		return
	case err != nil:
		a.log.ErrorContext(ctx, "app: storing a transfer failed", "err", err)
		unavailable(w, r) // 503: the guard releases the key, and a retry is safe (same ID)
		return
	case existed && (stored.To != t.To || stored.Amount != t.Amount):
		// The key was used for another transfer whose record has since
		// left the idempotency table (after its retention).
		badRequest(w, r, http.StatusUnprocessableEntity, "transfer-key-reused", "Idempotency-Key already used",
			"This Idempotency-Key was used for a different transfer. Use a new key for every transfer.")
		return
	}
	// No idempotency.Final here, on purpose: the transfer write above is
	// itself keyed by the transfer's ID, so if this request's completion
	// were lost and a retry took the key over, it would find the transfer
	// (existed) and answer the same without moving money twice — at no
	// extra call. A handler whose side effect cannot be repeated safely
	// calls Final once it has taken effect (one more conditional write).
	w.Header().Set("Location", "/api/transfers#"+stored.ID)
	writeJSON(w, http.StatusCreated, stored)
}

type validTransfer struct {
	to     string
	amount int64
}

// decodeTransfer reads exactly one JSON object with exactly the known
// members, within maxRequestBody bytes; msg says what is wrong otherwise.
//
// The decoder has encoding/json/v2's semantics (go-json-experiment/json,
// which becomes the standard library's once it leaves GOEXPERIMENT):
// a duplicate member, a name that matches only in another case, invalid
// UTF-8 (raw or as an unpaired surrogate escape) and anything after the
// object are errors, and RejectUnknownMembers refuses unknown members.
// encoding/json v1 would take the last duplicate, fold case and replace bad
// UTF-8 silently — so a proxy or signature check reading the same body
// another way could see another transfer than the one stored.
func decodeTransfer(w http.ResponseWriter, r *http.Request) (validTransfer, string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		return validTransfer{}, "The body is larger than " + strconv.Itoa(maxRequestBody) + " bytes."
	}
	if !utf8.Valid(body) {
		return validTransfer{}, "The body is not valid UTF-8."
	}
	var req transferRequest
	if err := jsonv2.Unmarshal(body, &req, jsonv2.RejectUnknownMembers(true)); err != nil {
		return validTransfer{}, jsonProblem(err)
	}
	if req.To == nil || req.Amount == nil {
		return validTransfer{}, `Both "to" and "amount" are required.`
	}
	to, msg := checkRecipient(*req.To)
	if msg != "" {
		return validTransfer{}, `"to": ` + msg
	}
	amount, msg := parseAmountJSON(req.Amount)
	if msg != "" {
		return validTransfer{}, `"amount": ` + msg
	}
	return validTransfer{to: to, amount: amount}, ""
}

// jsonProblem says what is wrong with a body the strict decoder refused.
func jsonProblem(err error) string {
	var serr *jsonv2.SemanticError
	var synerr *jsontext.SyntacticError
	switch {
	case errors.Is(err, jsontext.ErrDuplicateName) && errors.As(err, &synerr):
		return "The member " + memberName(string(synerr.JSONPointer)) + " appears more than once."
	case errors.Is(err, jsonv2.ErrUnknownName) && errors.As(err, &serr):
		return "Unknown member " + memberName(string(serr.JSONPointer)) +
			`: only "to" and "amount" are accepted, in lower case.`
	case errors.As(err, &serr) && serr.JSONPointer != "":
		return "The member " + memberName(string(serr.JSONPointer)) + " has the wrong type."
	case errors.As(err, &synerr) && strings.Contains(synerr.Error(), "surrogate"):
		return "The body holds invalid UTF-8 (an unpaired surrogate escape)."
	default:
		return "The body must be exactly one valid JSON object."
	}
}

// memberName quotes the last token of a JSON Pointer, shortened.
func memberName(ptr string) string {
	name := ptr[strings.LastIndexByte(ptr, '/')+1:]
	name = strings.NewReplacer("~1", "/", "~0", "~").Replace(name)
	if utf8.RuneCountInString(name) > 32 {
		name = string([]rune(name)[:32]) + "…"
	}
	return strconv.Quote(name)
}

// parseAmountJSON accepts a positive JSON integer of cents up to maxAmount.
func parseAmountJSON(raw jsontext.Value) (int64, string) {
	s := string(bytes.TrimSpace(raw))
	if !digits(s) || len(s) > 12 || (len(s) > 1 && s[0] == '0') {
		return 0, "an integer number of cents is required, such as 1250 for 12.50."
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > maxAmount {
		return 0, "must be between 1 and " + strconv.Itoa(maxAmount) + " cents."
	}
	return n, ""
}

// transferID derives a transfer's ID from the user and the request's
// Idempotency-Key: the same request always names the same transfer.
func transferID(userID, key string) string {
	sum := sha256.Sum256([]byte("dynaguard example transfer\x00" + userID + "\x00" + key))
	return strings.ToLower(base32.StdEncoding.EncodeToString(sum[:10]))
}

func badRequest(w http.ResponseWriter, r *http.Request, status int, reason, title, detail string) {
	problem.Write(w, r, problem.Problem{Reason: reason, Status: status, Title: title, Detail: detail})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
