package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

// The DynamoDB Local plumbing of the report: one client, throw-away tables,
// and a tap that notes which items each call touched (the recorder notes
// the operation and the capacity; the tap adds the keys and item sizes, so
// every call can be attributed to the component that owns its key prefix).

// endpoint returns the DynamoDB endpoint or an error that says how to get one.
func endpoint() (string, error) {
	ep := ddbtest.Endpoint()
	if ep == "" {
		return "", fmt.Errorf("%s is not set: run `make bench`, which starts DynamoDB Local, or start one with "+
			"`scripts/dynamodb-local start` and set %s=http://127.0.0.1:8000", ddbtest.EnvEndpoint, ddbtest.EnvEndpoint)
	}
	return ep, nil
}

var (
	clientOnce sync.Once
	ddbClient  *dynamodb.Client
)

// client returns the shared client for the endpoint.
func client(ep string) *dynamodb.Client {
	clientOnce.Do(func() { ddbClient = ddbtest.NewClient(ep) })
	return ddbClient
}

// tables creates and removes the report's tables.
type tables struct {
	c     *dynamodb.Client
	mu    sync.Mutex
	names []string
}

// create makes a fresh table with dynaguard's layout, named after what it
// is for.
func (ts *tables) create(ctx context.Context, what string) (*dynaguard.Table, error) {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := "bench_" + what + "_" + hex.EncodeToString(rnd[:])
	tbl := dynaguard.NewTable(ts.c, name)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := tbl.Create(cctx); err != nil {
		return nil, fmt.Errorf("create table %s: %w", name, err)
	}
	ts.mu.Lock()
	ts.names = append(ts.names, name)
	ts.mu.Unlock()
	return tbl, nil
}

// cleanup deletes every table create made.
func (ts *tables) cleanup() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, n := range ts.names {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, _ = ts.c.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(n)})
		cancel()
	}
	ts.names = nil
}

// tapCall is what the tap saw of one call.
type tapCall struct {
	Op        string
	Keys      []string // the pk of every item the call named
	ReadSizes []int    // reads: bytes of each item read, in key order (0: not found)
	NewSizes  []int    // writes: bytes of each item put (0: an update or delete)
	OldSize   int      // bytes of the item returned by a failed condition (0: none)
	Failed    bool     // a condition failed (or a transaction was canceled)
}

// NewSize is the size of the largest item the call put.
func (c tapCall) NewSize() int {
	n := 0
	for _, s := range c.NewSizes {
		n = max(n, s)
	}
	return n
}

// tap wraps an API and records the keys of every call.
type tap struct {
	dynaguard.API
	mu    sync.Mutex
	calls []tapCall
}

func (t *tap) add(c tapCall, err error) {
	if err != nil {
		var ccf *types.ConditionalCheckFailedException
		var tce *types.TransactionCanceledException
		switch {
		case errors.As(err, &ccf):
			c.Failed = true
			c.OldSize = itemSize(ccf.Item)
		case errors.As(err, &tce):
			c.Failed = true
			for _, r := range tce.CancellationReasons {
				c.OldSize += itemSize(r.Item)
			}
		}
	}
	t.mu.Lock()
	t.calls = append(t.calls, c)
	t.mu.Unlock()
}

func (t *tap) reset() {
	t.mu.Lock()
	t.calls = nil
	t.mu.Unlock()
}

func (t *tap) snapshot() []tapCall {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]tapCall(nil), t.calls...)
}

func pkOf(key map[string]types.AttributeValue) string {
	s, _ := ddb.Str(key, dynaguard.AttrPK)
	return s
}

func (t *tap) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	out, err := t.API.GetItem(ctx, in, opts...)
	c := tapCall{Op: "GetItem", Keys: []string{pkOf(in.Key)}, ReadSizes: []int{0}}
	if err == nil {
		c.ReadSizes[0] = itemSize(out.Item)
	}
	t.add(c, err)
	return out, err
}

func (t *tap) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	out, err := t.API.BatchGetItem(ctx, in, opts...)
	c := tapCall{Op: "BatchGetItem"}
	found := map[string]int{}
	if err == nil {
		for _, items := range out.Responses {
			for _, it := range items {
				found[pkOf(it)] = itemSize(it)
			}
		}
	}
	for _, ka := range in.RequestItems {
		for _, k := range ka.Keys {
			c.Keys = append(c.Keys, pkOf(k))
			c.ReadSizes = append(c.ReadSizes, found[pkOf(k)])
		}
	}
	t.add(c, err)
	return out, err
}

func (t *tap) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	out, err := t.API.PutItem(ctx, in, opts...)
	t.add(tapCall{Op: "PutItem", Keys: []string{pkOf(in.Item)}, NewSizes: []int{itemSize(in.Item)}}, err)
	return out, err
}

func (t *tap) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	out, err := t.API.UpdateItem(ctx, in, opts...)
	t.add(tapCall{Op: "UpdateItem", Keys: []string{pkOf(in.Key)}}, err)
	return out, err
}

func (t *tap) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	out, err := t.API.DeleteItem(ctx, in, opts...)
	t.add(tapCall{Op: "DeleteItem", Keys: []string{pkOf(in.Key)}}, err)
	return out, err
}

func (t *tap) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	out, err := t.API.TransactWriteItems(ctx, in, opts...)
	c := tapCall{Op: "TransactWriteItems"}
	for _, ti := range in.TransactItems {
		switch {
		case ti.Put != nil:
			c.Keys = append(c.Keys, pkOf(ti.Put.Item))
			c.NewSizes = append(c.NewSizes, itemSize(ti.Put.Item))
		case ti.Update != nil:
			c.Keys = append(c.Keys, pkOf(ti.Update.Key))
			c.NewSizes = append(c.NewSizes, 0)
		case ti.Delete != nil:
			c.Keys = append(c.Keys, pkOf(ti.Delete.Key))
			c.NewSizes = append(c.NewSizes, 0)
		case ti.ConditionCheck != nil:
			c.Keys = append(c.Keys, pkOf(ti.ConditionCheck.Key))
			c.NewSizes = append(c.NewSizes, 0)
		}
	}
	t.add(c, err)
	return out, err
}

func (t *tap) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	out, err := t.API.Query(ctx, in, opts...)
	c := tapCall{Op: "Query"}
	for _, v := range in.ExpressionAttributeValues {
		if s, ok := v.(*types.AttributeValueMemberS); ok && strings.HasPrefix(s.Value, "sessions#") {
			c.Keys = []string{s.Value}
		}
	}
	if len(c.Keys) == 0 {
		c.Keys = []string{"(index " + aws.ToString(in.IndexName) + ")"}
	}
	t.add(c, err)
	return out, err
}

func (t *tap) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	out, err := t.API.BatchWriteItem(ctx, in, opts...)
	c := tapCall{Op: "BatchWriteItem"}
	for _, reqs := range in.RequestItems {
		for _, w := range reqs {
			switch {
			case w.PutRequest != nil:
				c.Keys = append(c.Keys, pkOf(w.PutRequest.Item))
				c.NewSizes = append(c.NewSizes, itemSize(w.PutRequest.Item))
			case w.DeleteRequest != nil:
				c.Keys = append(c.Keys, pkOf(w.DeleteRequest.Key))
				c.NewSizes = append(c.NewSizes, 0)
			}
		}
	}
	t.add(c, err)
	return out, err
}

// component names the owner of a key by its prefix (the layout in
// docs/ARCHITECTURE.md).
func component(pk string) string {
	for _, p := range []struct{ prefix, name string }{
		{dynaguard.PrefixSession, "session"},
		{dynaguard.PrefixNonce, "nonce"},
		{dynaguard.PrefixIdempotency, "idempotency"},
		{dynaguard.PrefixUser, "account"},
		{dynaguard.PrefixUnique, "unique"},
		{dynaguard.PrefixThrottle, "throttle"},
		{dynaguard.PrefixToken, "token"},
		{dynaguard.PrefixRecovery, "recovery"},
		{dynaguard.PrefixPasskey + "ch#", "passkey challenge"},
		{dynaguard.PrefixPasskey, "passkey"},
		{"sessions#", "session list"},
		{seedPrefix, "seed nonce"},
		{"xfer#", "app"},
	} {
		if strings.HasPrefix(pk, p.prefix) {
			return p.name
		}
	}
	return "other"
}

// components lists the distinct owners of keys, in order of appearance.
func components(keys []string) string {
	var out []string
	seen := map[string]int{}
	for _, k := range keys {
		c := component(k)
		if _, ok := seen[c]; !ok {
			out = append(out, c)
		}
		seen[c]++
	}
	for i, c := range out {
		if n := seen[c]; n > 1 {
			out[i] = fmt.Sprintf("%d× %s", n, c)
		}
	}
	return strings.Join(out, " + ")
}

// itemSize estimates the size DynamoDB bills an item at: attribute names
// plus values (strings and binaries by length, numbers by significant
// digits, documents with their overhead). It is used only to state the AWS
// capacity of failed conditional writes, which DynamoDB Local does not
// report.
func itemSize(item map[string]types.AttributeValue) int {
	n := 0
	for k, v := range item {
		n += len(k) + valueSize(v)
	}
	return n
}

func valueSize(v types.AttributeValue) int {
	switch x := v.(type) {
	case *types.AttributeValueMemberS:
		return len(x.Value)
	case *types.AttributeValueMemberN:
		return numberSize(x.Value)
	case *types.AttributeValueMemberB:
		return len(x.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberSS:
		n := 0
		for _, s := range x.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberNS:
		n := 0
		for _, s := range x.Value {
			n += numberSize(s)
		}
		return n
	case *types.AttributeValueMemberBS:
		n := 0
		for _, b := range x.Value {
			n += len(b)
		}
		return n
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range x.Value {
			n += 1 + valueSize(e)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range x.Value {
			n += 1 + len(k) + valueSize(e)
		}
		return n
	}
	return 0
}

// numberSize is DynamoDB's size of a number: one byte per two significant
// digits, plus one.
func numberSize(s string) int {
	s = strings.TrimLeft(strings.TrimPrefix(s, "-"), "0")
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		s = s[:i]
	}
	s = strings.Replace(s, ".", "", 1)
	s = strings.Trim(s, "0")
	return (len(s)+1)/2 + 1
}

// writeUnits returns the AWS write units of one write of size bytes.
func writeUnits(size int) float64 {
	if size <= 0 {
		return 1
	}
	return float64((size + 1023) / 1024)
}

// readUnits returns the AWS read units of reading one item of size bytes
// (0: not found, which is billed like a small item).
func readUnits(size int, consistent bool) float64 {
	u := float64(max(1, (size+4095)/4096))
	if !consistent {
		u /= 2
	}
	return u
}

// recorded is one call as the report states it: the recorder's view
// (operation, consistency, capacity on DynamoDB Local) joined with the tap's
// (keys, sizes), and what AWS bills for it.
type recorded struct {
	ddbtest.Call
	tapCall
	AWSRCU float64
	AWSWCU float64
}

// join zips the recorder's and the tap's calls of one sequential request.
//
// DynamoDB Local reports the capacity of most calls as AWS does (index
// writes included), with three exceptions that the AWS columns correct,
// following the DynamoDB developer guide ("DynamoDB read and write
// operations"): a read of an item that does not exist still consumes read
// units, and BatchGetItem bills every key as its own GetItem (Local counts
// only the items it found); a transactional write costs two write units per
// item per KB (Local reports less); and a write whose condition fails
// consumes write units for the larger of the existing and the new item
// (Local reports nothing, because the call fails).
func join(rc []ddbtest.Call, tc []tapCall) ([]recorded, error) {
	if len(rc) != len(tc) {
		return nil, fmt.Errorf("recorder saw %d calls, tap %d", len(rc), len(tc))
	}
	out := make([]recorded, len(rc))
	for i := range rc {
		if rc[i].Op != tc[i].Op {
			return nil, fmt.Errorf("call %d: recorder %s, tap %s", i, rc[i].Op, tc[i].Op)
		}
		r := recorded{Call: rc[i], tapCall: tc[i], AWSRCU: rc[i].RCU, AWSWCU: rc[i].WCU}
		switch rc[i].Op {
		case "GetItem", "BatchGetItem":
			r.AWSRCU = 0
			for _, sz := range tc[i].ReadSizes {
				r.AWSRCU += readUnits(sz, rc[i].ConsistentRead)
			}
		case "TransactWriteItems":
			r.AWSWCU = 0
			for _, sz := range tc[i].NewSizes {
				r.AWSWCU += 2 * writeUnits(sz)
			}
		default:
			if tc[i].Failed && rc[i].Write() {
				r.AWSWCU = writeUnits(max(tc[i].OldSize, tc[i].NewSize()))
			}
		}
		out[i] = r
	}
	return out, nil
}

// opSummary renders calls as "GetItem×2 (session, account) · PutItem (nonce)".
func opSummary(calls []recorded) string {
	if len(calls) == 0 {
		return "none"
	}
	type agg struct {
		n    int
		keys []string
	}
	order := []string{}
	by := map[string]*agg{}
	for _, c := range calls {
		op := c.Call.Op
		if c.Failed {
			op += " (condition failed)"
		}
		a, ok := by[op]
		if !ok {
			a = &agg{}
			by[op] = a
			order = append(order, op)
		}
		a.n++
		a.keys = append(a.keys, c.Keys...)
	}
	sort.SliceStable(order, func(i, j int) bool { return opRank(order[i]) < opRank(order[j]) })
	parts := make([]string, 0, len(order))
	for _, op := range order {
		a := by[op]
		s := op
		if a.n > 1 {
			s = fmt.Sprintf("%s×%d", op, a.n)
		}
		parts = append(parts, s+" ("+components(a.keys)+")")
	}
	return strings.Join(parts, " · ")
}

func opRank(op string) int {
	for i, p := range []string{"GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"} {
		if strings.HasPrefix(op, p) {
			return i
		}
	}
	return 99
}
