package ddbtest

import (
	"context"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
)

// Call is one recorded request.
type Call struct {
	Op             string // "GetItem", "PutItem", ...
	ConsistentRead bool   // GetItem, BatchGetItem (every table), Query
	Condition      string // ConditionExpression, if any (TransactWriteItems: all, joined by " ; ")
	Update         string // UpdateExpression, if any
	ReturnOnFail   bool   // ReturnValuesOnConditionCheckFailure=ALL_OLD
	Index          string // Query IndexName
	RCU, WCU       float64
	Err            error
}

// Write reports whether the call writes (or may write) the table.
func (c Call) Write() bool {
	switch c.Op {
	case "PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem":
		return true
	}
	return false
}

// Recorder wraps an API and records every call, for calls-per-request
// assertions. With Capacity set it asks for ReturnConsumedCapacity=TOTAL and
// records the capacity units each call consumed.
type Recorder struct {
	dynaguard.API
	Capacity bool

	mu    sync.Mutex
	calls []Call
}

// NewRecorder wraps api.
func NewRecorder(api dynaguard.API) *Recorder { return &Recorder{API: api} }

// Record returns a copy of tbl whose client is a Recorder wrapping tbl's.
func Record(tbl *dynaguard.Table) (*dynaguard.Table, *Recorder) {
	r := NewRecorder(tbl.Client)
	return dynaguard.NewTable(r, tbl.Name), r
}

// Calls returns a copy of the calls recorded so far.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// Reset forgets the recorded calls.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.calls = nil
	r.mu.Unlock()
}

// Count returns how many calls of op were recorded ("" counts all).
func (r *Recorder) Count(op string) int {
	n := 0
	for _, c := range r.Calls() {
		if op == "" || c.Op == op {
			n++
		}
	}
	return n
}

// Writes returns how many recorded calls were writes.
func (r *Recorder) Writes() int {
	n := 0
	for _, c := range r.Calls() {
		if c.Write() {
			n++
		}
	}
	return n
}

// Reads returns how many recorded calls were reads.
func (r *Recorder) Reads() int { return len(r.Calls()) - r.Writes() }

// CapacityUsed sums the consumed read and write capacity units (needs Capacity).
func (r *Recorder) CapacityUsed() (rcu, wcu float64) {
	for _, c := range r.Calls() {
		rcu += c.RCU
		wcu += c.WCU
	}
	return rcu, wcu
}

func (r *Recorder) add(c Call, cc ...types.ConsumedCapacity) {
	for _, x := range cc {
		c.RCU += aws.ToFloat64(x.ReadCapacityUnits)
		c.WCU += aws.ToFloat64(x.WriteCapacityUnits)
		if x.ReadCapacityUnits == nil && x.WriteCapacityUnits == nil {
			// DynamoDB Local reports only CapacityUnits; attribute it by op.
			if c.Write() {
				c.WCU += aws.ToFloat64(x.CapacityUnits)
			} else {
				c.RCU += aws.ToFloat64(x.CapacityUnits)
			}
		}
	}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
}

// record runs one request with a copy of its input — asking for consumed
// capacity through setRCC when Capacity is set, so the caller's input is
// never modified — and records it as c.
func record[I, O any](r *Recorder, c Call, in *I, setRCC func(*I), send func(*I) (*O, error), cc func(*O) []types.ConsumedCapacity) (*O, error) {
	cp := *in
	if r.Capacity {
		setRCC(&cp)
	}
	out, err := send(&cp)
	c.Err = err
	if out != nil {
		r.add(c, cc(out)...)
	} else {
		r.add(c)
	}
	return out, err
}

const total = types.ReturnConsumedCapacityTotal

func one(c *types.ConsumedCapacity) []types.ConsumedCapacity {
	if c == nil {
		return nil
	}
	return []types.ConsumedCapacity{*c}
}

func returnedOld(v types.ReturnValuesOnConditionCheckFailure) bool {
	return v == types.ReturnValuesOnConditionCheckFailureAllOld
}

func (r *Recorder) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return record(r, Call{Op: "GetItem", ConsistentRead: aws.ToBool(in.ConsistentRead)}, in,
		func(i *dynamodb.GetItemInput) { i.ReturnConsumedCapacity = total },
		func(i *dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error) { return r.API.GetItem(ctx, i, opts...) },
		func(o *dynamodb.GetItemOutput) []types.ConsumedCapacity { return one(o.ConsumedCapacity) })
}

func (r *Recorder) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	consistent := len(in.RequestItems) > 0
	for _, ka := range in.RequestItems {
		consistent = consistent && aws.ToBool(ka.ConsistentRead)
	}
	return record(r, Call{Op: "BatchGetItem", ConsistentRead: consistent}, in,
		func(i *dynamodb.BatchGetItemInput) { i.ReturnConsumedCapacity = total },
		func(i *dynamodb.BatchGetItemInput) (*dynamodb.BatchGetItemOutput, error) {
			return r.API.BatchGetItem(ctx, i, opts...)
		},
		func(o *dynamodb.BatchGetItemOutput) []types.ConsumedCapacity { return o.ConsumedCapacity })
}

func (r *Recorder) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c := Call{Op: "PutItem", Condition: aws.ToString(in.ConditionExpression), ReturnOnFail: returnedOld(in.ReturnValuesOnConditionCheckFailure)}
	return record(r, c, in,
		func(i *dynamodb.PutItemInput) { i.ReturnConsumedCapacity = total },
		func(i *dynamodb.PutItemInput) (*dynamodb.PutItemOutput, error) { return r.API.PutItem(ctx, i, opts...) },
		func(o *dynamodb.PutItemOutput) []types.ConsumedCapacity { return one(o.ConsumedCapacity) })
}

func (r *Recorder) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c := Call{Op: "UpdateItem", Condition: aws.ToString(in.ConditionExpression), Update: aws.ToString(in.UpdateExpression),
		ReturnOnFail: returnedOld(in.ReturnValuesOnConditionCheckFailure)}
	return record(r, c, in,
		func(i *dynamodb.UpdateItemInput) { i.ReturnConsumedCapacity = total },
		func(i *dynamodb.UpdateItemInput) (*dynamodb.UpdateItemOutput, error) {
			return r.API.UpdateItem(ctx, i, opts...)
		},
		func(o *dynamodb.UpdateItemOutput) []types.ConsumedCapacity { return one(o.ConsumedCapacity) })
}

func (r *Recorder) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	c := Call{Op: "DeleteItem", Condition: aws.ToString(in.ConditionExpression), ReturnOnFail: returnedOld(in.ReturnValuesOnConditionCheckFailure)}
	return record(r, c, in,
		func(i *dynamodb.DeleteItemInput) { i.ReturnConsumedCapacity = total },
		func(i *dynamodb.DeleteItemInput) (*dynamodb.DeleteItemOutput, error) {
			return r.API.DeleteItem(ctx, i, opts...)
		},
		func(o *dynamodb.DeleteItemOutput) []types.ConsumedCapacity { return one(o.ConsumedCapacity) })
}

func (r *Recorder) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	conds := make([]string, len(in.TransactItems))
	for i, ti := range in.TransactItems {
		switch {
		case ti.Put != nil:
			conds[i] = aws.ToString(ti.Put.ConditionExpression)
		case ti.Update != nil:
			conds[i] = aws.ToString(ti.Update.ConditionExpression)
		case ti.Delete != nil:
			conds[i] = aws.ToString(ti.Delete.ConditionExpression)
		case ti.ConditionCheck != nil:
			conds[i] = aws.ToString(ti.ConditionCheck.ConditionExpression)
		}
	}
	return record(r, Call{Op: "TransactWriteItems", Condition: strings.Join(conds, " ; ")}, in,
		func(i *dynamodb.TransactWriteItemsInput) { i.ReturnConsumedCapacity = total },
		func(i *dynamodb.TransactWriteItemsInput) (*dynamodb.TransactWriteItemsOutput, error) {
			return r.API.TransactWriteItems(ctx, i, opts...)
		},
		func(o *dynamodb.TransactWriteItemsOutput) []types.ConsumedCapacity { return o.ConsumedCapacity })
}

func (r *Recorder) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return record(r, Call{Op: "Query", ConsistentRead: aws.ToBool(in.ConsistentRead), Index: aws.ToString(in.IndexName)}, in,
		func(i *dynamodb.QueryInput) { i.ReturnConsumedCapacity = total },
		func(i *dynamodb.QueryInput) (*dynamodb.QueryOutput, error) { return r.API.Query(ctx, i, opts...) },
		func(o *dynamodb.QueryOutput) []types.ConsumedCapacity { return one(o.ConsumedCapacity) })
}

func (r *Recorder) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	return record(r, Call{Op: "BatchWriteItem"}, in,
		func(i *dynamodb.BatchWriteItemInput) { i.ReturnConsumedCapacity = total },
		func(i *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
			return r.API.BatchWriteItem(ctx, i, opts...)
		},
		func(o *dynamodb.BatchWriteItemOutput) []types.ConsumedCapacity { return o.ConsumedCapacity })
}
