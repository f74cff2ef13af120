package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
)

// rawApp is the baseline of the throughput comparison: a hand-written
// handler that serves the example app's measured routes with the same
// minimum DynamoDB calls, straight on the SDK — a session read and an
// account read per request, the same transfer write, and an idempotency
// claim and completion — and nothing else: no sealing, no keyed hashes, no
// auth-hash check, no throttling, no nonce, no security headers. It is what
// an application without dynaguard would need at the very least to do the
// same work, so the ratio between the two is dynaguard's full price.
type rawApp struct {
	api   dynaguard.API
	table string
	cache sync.Map // uid + "\x00" + key → completed response body
	// Shapes: the raw session and account items copy every attribute of
	// an example app session and account (the handler reads only its own),
	// so that both targets move the same attributes and bytes through the
	// SDK and DynamoDB Local.
	sessionShape, userShape item
	// pages renders GET /account: the example app's own layout and
	// account templates (rawpage.go); dev as the example app runs.
	pages *template.Template
	dev   bool
}

// Raw items use their own prefixes in the shared table.
const (
	rawSession    = "raw#sess#"
	rawUser       = "raw#user#"
	rawIdem       = "raw#idem#"
	rawTransfer   = "raw#xfer#"
	rawCookieName = "rawsess"
)

// rawTransferEntry matches the example app's JSON of a transfer.
type rawTransferEntry struct {
	ID      string    `json:"id"`
	To      string    `json:"to"`
	Amount  int64     `json:"amount"`
	Created time.Time `json:"created"`
}

// addUser stores an account and a session for it, and returns the
// session's cookie value.
func (a *rawApp) addUser(ctx context.Context, uid, email string, shape item) (string, error) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	token := base64.RawURLEncoding.EncodeToString(b[:])
	user := shaped(shape)
	user[dynaguard.AttrPK], user["email"] = ddb.S(rawUser+uid), ddb.S(email)
	if _, err := a.api.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(a.table), Item: user}); err != nil {
		return "", err
	}
	sess := shaped(a.sessionShape)
	sess[dynaguard.AttrPK], sess["uid"] = ddb.S(rawSession+hashHex(token)), ddb.S(uid)
	sess[dynaguard.AttrTTL] = ddb.TTLValue(time.Now().Add(12 * time.Hour))
	_, err := a.api.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(a.table), Item: sess})
	return token, err
}

// shaped copies an item's attributes; index keys are renamed, so that the
// copy has the same size without joining the index.
func shaped(shape item) item {
	it := make(item, len(shape)+2)
	for k, v := range shape {
		switch k {
		case dynaguard.AttrGSI1PK:
			k = "x1"
		case dynaguard.AttrGSI1SK:
			k = "x2"
		}
		it[k] = v
	}
	return it
}

func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func (a *rawApp) get(ctx context.Context, pk string, projection ...string) (item, error) {
	in := &dynamodb.GetItemInput{TableName: aws.String(a.table), Key: ddb.Key(pk), ConsistentRead: aws.Bool(true)}
	if len(projection) > 0 {
		in.ProjectionExpression = aws.String("#p")
		in.ExpressionAttributeNames = map[string]string{"#p": projection[0]}
	}
	out, err := a.api.GetItem(ctx, in)
	if err != nil {
		return nil, err
	}
	return out.Item, nil
}

// user reads the session and the account: the two reads of every request.
func (a *rawApp) user(r *http.Request) (uid string, acct item, status int) {
	c, err := r.Cookie(rawCookieName)
	if err != nil {
		return "", nil, http.StatusUnauthorized
	}
	sess, err := a.get(r.Context(), rawSession+hashHex(c.Value))
	if err != nil {
		return "", nil, http.StatusServiceUnavailable
	}
	if sess == nil || ddb.Expired(sess, time.Now()) {
		return "", nil, http.StatusUnauthorized
	}
	uid, _ = ddb.Str(sess, "uid")
	acct, err = a.get(r.Context(), rawUser+uid)
	if err != nil {
		return "", nil, http.StatusServiceUnavailable
	}
	if acct == nil {
		return "", nil, http.StatusUnauthorized
	}
	return uid, acct, 0
}

func (a *rawApp) handler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /account", a.account)
	m.HandleFunc("GET /api/transfers", a.list)
	m.HandleFunc("POST /api/transfers", a.create)
	return m
}

func (a *rawApp) account(w http.ResponseWriter, r *http.Request) {
	_, acct, status := a.user(r)
	if status != 0 {
		http.Error(w, http.StatusText(status), status)
		return
	}
	page, err := renderAccount(a.pages, acct, a.dev)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store") // a page of personal data, as the example app sends it
	_, _ = w.Write(page)
}

func (a *rawApp) list(w http.ResponseWriter, r *http.Request) {
	uid, _, status := a.user(r)
	if status != 0 {
		http.Error(w, http.StatusText(status), status)
		return
	}
	it, err := a.get(r.Context(), rawTransfer+uid, "items")
	if err != nil {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	ts := rawDecode(it)
	for i, j := 0, len(ts)-1; i < j; i, j = i+1, j-1 {
		ts[i], ts[j] = ts[j], ts[i]
	}
	rawJSON(w, http.StatusOK, ts)
}

func (a *rawApp) create(w http.ResponseWriter, r *http.Request) {
	uid, _, status := a.user(r)
	if status != 0 {
		http.Error(w, http.StatusText(status), status)
		return
	}
	key := strings.Trim(r.Header.Get("Idempotency-Key"), `"`)
	if key == "" {
		http.Error(w, "Idempotency-Key required", http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<10))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	var req struct {
		To     *string         `json:"to"`
		Amount json.RawMessage `json:"amount"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.To == nil || req.Amount == nil {
		http.Error(w, "bad transfer", http.StatusBadRequest)
		return
	}
	amount, err := strconv.ParseInt(string(req.Amount), 10, 64)
	if err != nil || amount <= 0 {
		http.Error(w, "bad amount", http.StatusBadRequest)
		return
	}
	ck := uid + "\x00" + key
	if b, ok := a.cache.Load(ck); ok {
		rawReplay(w, b.([]byte))
		return
	}
	ctx := r.Context()
	idem := ddb.Key(rawIdem + uid + "#" + key)
	fp := sha256.Sum256(body) // a retry with another body must not get this response
	var owner [16]byte
	_, _ = rand.Read(owner[:])
	_, err = a.api.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(a.table),
		Item: item{dynaguard.AttrPK: idem[dynaguard.AttrPK], "state": ddb.S("running"),
			"fp": ddb.B(fp[:]), "owner": ddb.B(owner[:]), dynaguard.AttrTTL: ddb.TTLValue(time.Now().Add(24 * time.Hour))},
		ConditionExpression:                 aws.String("attribute_not_exists(pk)"),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err != nil {
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			if old, _ := ddb.Bytes(ccf.Item, "fp"); !bytes.Equal(old, fp[:]) {
				http.Error(w, "key reused with another body", http.StatusUnprocessableEntity)
				return
			}
			if b, ok := ddb.Bytes(ccf.Item, "resp"); ok {
				a.cache.Store(ck, b)
				rawReplay(w, b)
				return
			}
			http.Error(w, "in flight", http.StatusConflict)
			return
		}
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	sum := sha256.Sum256([]byte("raw transfer\x00" + uid + "\x00" + key))
	t := rawTransferEntry{ID: strings.ToLower(base32.StdEncoding.EncodeToString(sum[:10])), To: *req.To, Amount: amount, Created: time.Now().UTC()}
	if err := a.addTransfer(ctx, uid, t); err != nil {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	resp, _ := json.Marshal(t)
	resp = append(resp, '\n')
	if _, err := a.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(a.table),
		Key:                       idem,
		UpdateExpression:          aws.String("SET #s = :done, #r = :resp"),
		ExpressionAttributeNames:  map[string]string{"#s": "state", "#r": "resp"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":done": ddb.S("done"), ":resp": ddb.B(resp)},
	}); err != nil {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	a.cache.Store(ck, resp)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(resp)
}

// addTransfer is the example app's own transfer write, the same
// UpdateItem: append to the user's list unless the ID is there or the list
// is full.
func (a *rawApp) addTransfer(ctx context.Context, uid string, t rawTransferEntry) error {
	entry := &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
		"id": ddb.S(t.ID), "to": ddb.S(t.To), "amount": ddb.N(t.Amount), "at": ddb.N(t.Created.UnixMilli()),
	}}
	_, err := a.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:        aws.String(a.table),
		Key:              ddb.Key(rawTransfer + uid),
		UpdateExpression: aws.String("SET #items = list_append(if_not_exists(#items, :empty), :new) ADD #ids :id"),
		ConditionExpression: aws.String("(attribute_not_exists(#ids) OR NOT contains(#ids, :idv)) AND " +
			"(attribute_not_exists(#items) OR size(#items) < :max)"),
		ExpressionAttributeNames: map[string]string{"#items": "items", "#ids": "ids"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":empty": &types.AttributeValueMemberL{Value: []types.AttributeValue{}},
			":new":   &types.AttributeValueMemberL{Value: []types.AttributeValue{entry}},
			":id":    &types.AttributeValueMemberSS{Value: []string{t.ID}},
			":idv":   ddb.S(t.ID),
			":max":   ddb.N(50),
		},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	return err
}

func rawDecode(it item) []rawTransferEntry {
	l, ok := it["items"].(*types.AttributeValueMemberL)
	if !ok {
		return []rawTransferEntry{}
	}
	ts := make([]rawTransferEntry, 0, len(l.Value))
	for _, v := range l.Value {
		m, ok := v.(*types.AttributeValueMemberM)
		if !ok {
			continue
		}
		id, _ := ddb.Str(m.Value, "id")
		to, _ := ddb.Str(m.Value, "to")
		amount, _ := ddb.Int(m.Value, "amount")
		at, _ := ddb.Int(m.Value, "at")
		ts = append(ts, rawTransferEntry{ID: id, To: to, Amount: amount, Created: time.UnixMilli(at).UTC()})
	}
	return ts
}

func rawReplay(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(b)
}

func rawJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
