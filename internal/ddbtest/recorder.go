package ddbtest

import (
	"context"
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

// Capacity sums the consumed read and write capacity units (needs Capacity).
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

func (r *Recorder) rcc() types.ReturnConsumedCapacity {
	if r.Capacity {
		return types.ReturnConsumedCapacityTotal
	}
	return ""
}

func one(c *types.ConsumedCapacity) []types.ConsumedCapacity {
	if c == nil {
		return nil
	}
	return []types.ConsumedCapacity{*c}
}

func (r *Recorder) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	cp := *in
	if r.Capacity {
		cp.ReturnConsumedCapacity = r.rcc()
	}
	out, err := r.API.GetItem(ctx, &cp, opts...)
	c := Call{Op: "GetItem", ConsistentRead: aws.ToBool(in.ConsistentRead), Err: err}
	if out != nil {
		r.add(c, one(out.ConsumedCapacity)...)
	} else {
		r.add(c)
	}
	return out, err
}

func (r *Recorder) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	cp := *in
	if r.Capacity {
		cp.ReturnConsumedCapacity = r.rcc()
	}
	out, err := r.API.BatchGetItem(ctx, &cp, opts...)
	consistent := len(in.RequestItems) > 0
	for _, ka := range in.RequestItems {
		consistent = consistent && aws.ToBool(ka.ConsistentRead)
	}
	c := Call{Op: "BatchGetItem", ConsistentRead: consistent, Err: err}
	if out != nil {
		r.add(c, out.ConsumedCapacity...)
	} else {
		r.add(c)
	}
	return out, err
}

func (r *Recorder) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	cp := *in
	if r.Capacity {
		cp.ReturnConsumedCapacity = r.rcc()
	}
	out, err := r.API.PutItem(ctx, &cp, opts...)
	c := Call{Op: "PutItem", Condition: aws.ToString(in.ConditionExpression),
		ReturnOnFail: in.ReturnValuesOnConditionCheckFailure == types.ReturnValuesOnConditionCheckFailureAllOld, Err: err}
	if out != nil {
		r.add(c, one(out.ConsumedCapacity)...)
	} else {
		r.add(c)
	}
	return out, err
}

func (r *Recorder) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	cp := *in
	if r.Capacity {
		cp.ReturnConsumedCapacity = r.rcc()
	}
	out, err := r.API.UpdateItem(ctx, &cp, opts...)
	c := Call{Op: "UpdateItem", Condition: aws.ToString(in.ConditionExpression), Update: aws.ToString(in.UpdateExpression),
		ReturnOnFail: in.ReturnValuesOnConditionCheckFailure == types.ReturnValuesOnConditionCheckFailureAllOld, Err: err}
	if out != nil {
		r.add(c, one(out.ConsumedCapacity)...)
	} else {
		r.add(c)
	}
	return out, err
}

func (r *Recorder) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	cp := *in
	if r.Capacity {
		cp.ReturnConsumedCapacity = r.rcc()
	}
	out, err := r.API.DeleteItem(ctx, &cp, opts...)
	c := Call{Op: "DeleteItem", Condition: aws.ToString(in.ConditionExpression),
		ReturnOnFail: in.ReturnValuesOnConditionCheckFailure == types.ReturnValuesOnConditionCheckFailureAllOld, Err: err}
	if out != nil {
		r.add(c, one(out.ConsumedCapacity)...)
	} else {
		r.add(c)
	}
	return out, err
}

func (r *Recorder) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	cp := *in
	if r.Capacity {
		cp.ReturnConsumedCapacity = r.rcc()
	}
	out, err := r.API.TransactWriteItems(ctx, &cp, opts...)
	var conds string
	for i, ti := range in.TransactItems {
		var ce *string
		switch {
		case ti.Put != nil:
			ce = ti.Put.ConditionExpression
		case ti.Update != nil:
			ce = ti.Update.ConditionExpression
		case ti.Delete != nil:
			ce = ti.Delete.ConditionExpression
		case ti.ConditionCheck != nil:
			ce = ti.ConditionCheck.ConditionExpression
		}
		if i > 0 {
			conds += " ; "
		}
		conds += aws.ToString(ce)
	}
	c := Call{Op: "TransactWriteItems", Condition: conds, Err: err}
	if out != nil {
		r.add(c, out.ConsumedCapacity...)
	} else {
		r.add(c)
	}
	return out, err
}

func (r *Recorder) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	cp := *in
	if r.Capacity {
		cp.ReturnConsumedCapacity = r.rcc()
	}
	out, err := r.API.Query(ctx, &cp, opts...)
	c := Call{Op: "Query", ConsistentRead: aws.ToBool(in.ConsistentRead), Index: aws.ToString(in.IndexName), Err: err}
	if out != nil {
		r.add(c, one(out.ConsumedCapacity)...)
	} else {
		r.add(c)
	}
	return out, err
}

func (r *Recorder) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	cp := *in
	if r.Capacity {
		cp.ReturnConsumedCapacity = r.rcc()
	}
	out, err := r.API.BatchWriteItem(ctx, &cp, opts...)
	c := Call{Op: "BatchWriteItem", Err: err}
	if out != nil {
		r.add(c, out.ConsumedCapacity...)
	} else {
		r.add(c)
	}
	return out, err
}
