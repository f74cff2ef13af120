package main

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/dynaguard/dynaguard"
)

// The zero-latency stub of the CPU benchmarks. A flow first runs once on
// DynamoDB Local through a capture, which keeps every item DynamoDB
// returned; the benchmark then serves those answers from memory: a read of a
// key returns its captured item, a write succeeds, and a write whose
// condition failed during the capture fails the same way with the same
// item. It has no storage semantics at all (nothing is ever stored, a
// nonce can be "consumed" forever) — it exists only so that the benchmarks
// measure dynaguard's CPU and allocations without the SDK or the network.
// Every storage behaviour is tested on DynamoDB Local.

type item = map[string]types.AttributeValue

// capture forwards to DynamoDB and keeps what it answered.
type capture struct {
	dynaguard.API
	mu        sync.Mutex
	items     map[string]item // pk → the last item a read returned
	conflicts map[string]item // pk → the item a failed condition returned
}

func newCapture(api dynaguard.API) *capture {
	return &capture{API: api, items: map[string]item{}, conflicts: map[string]item{}}
}

func (c *capture) keep(pk string, it item) {
	if it == nil {
		return
	}
	c.mu.Lock()
	c.items[pk] = it
	c.mu.Unlock()
}

func (c *capture) failed(pk string, err error) {
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) && ccf.Item != nil {
		c.mu.Lock()
		c.conflicts[pk] = ccf.Item
		c.mu.Unlock()
	}
}

func (c *capture) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	out, err := c.API.GetItem(ctx, in, opts...)
	if err == nil {
		c.keep(pkOf(in.Key), out.Item)
	}
	return out, err
}

func (c *capture) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	out, err := c.API.BatchGetItem(ctx, in, opts...)
	if err == nil {
		for _, items := range out.Responses {
			for _, it := range items {
				c.keep(pkOf(it), it)
			}
		}
	}
	return out, err
}

func (c *capture) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	out, err := c.API.PutItem(ctx, in, opts...)
	c.failed(pkOf(in.Item), err)
	return out, err
}

func (c *capture) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	out, err := c.API.UpdateItem(ctx, in, opts...)
	c.failed(pkOf(in.Key), err)
	return out, err
}

func (c *capture) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	out, err := c.API.DeleteItem(ctx, in, opts...)
	c.failed(pkOf(in.Key), err)
	return out, err
}

// stub serves a capture from memory. Its maps are read-only once built.
// Its answers are built once and shared by every call (the SDK would build
// new ones; dynaguard only reads what it is given), so that the stub itself
// allocates nothing and the figures are dynaguard's alone.
type stub struct {
	items     map[string]item
	gets      map[string]*dynamodb.GetItemOutput
	conflicts map[string]item
	fallback  item // returned for a key that was not captured (nil: not found)
	calls     atomic.Int64
	writes    atomic.Int64
}

// replay returns a stub serving what c captured so far.
func (c *capture) replay() *stub {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &stub{items: make(map[string]item, len(c.items)), gets: make(map[string]*dynamodb.GetItemOutput, len(c.items)),
		conflicts: make(map[string]item, len(c.conflicts))}
	for k, v := range c.items {
		s.items[k] = v
		s.gets[k] = &dynamodb.GetItemOutput{Item: v}
	}
	for k, v := range c.conflicts {
		s.conflicts[k] = v
	}
	return s
}

// The answers of successful writes (no attributes asked for).
var (
	emptyPutItem            dynamodb.PutItemOutput
	emptyUpdateItem         dynamodb.UpdateItemOutput
	emptyDeleteItem         dynamodb.DeleteItemOutput
	emptyTransactWriteItems dynamodb.TransactWriteItemsOutput
)

var errNotCaptured = errors.New("stub: operation not captured")

func conditionFailed(op string, it item) error {
	return &smithy.OperationError{ServiceID: "DynamoDB", OperationName: op,
		Err: &types.ConditionalCheckFailedException{Message: ptr("The conditional request failed"), Item: it}}
}

func ptr[T any](v T) *T { return &v }

func (s *stub) write(op, pk string) error {
	s.calls.Add(1)
	s.writes.Add(1)
	if it, ok := s.conflicts[pk]; ok {
		return conditionFailed(op, it)
	}
	return nil
}

func (s *stub) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	s.calls.Add(1)
	if out, ok := s.gets[pkOf(in.Key)]; ok {
		return out, nil
	}
	return &dynamodb.GetItemOutput{Item: s.fallback}, nil
}

func (s *stub) BatchGetItem(_ context.Context, in *dynamodb.BatchGetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	s.calls.Add(1)
	out := map[string][]item{}
	for name, ka := range in.RequestItems {
		for _, k := range ka.Keys {
			if it, ok := s.items[pkOf(k)]; ok {
				out[name] = append(out[name], it)
			}
		}
	}
	return &dynamodb.BatchGetItemOutput{Responses: out}, nil
}

func (s *stub) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if err := s.write("PutItem", pkOf(in.Item)); err != nil {
		return nil, err
	}
	return &emptyPutItem, nil
}

func (s *stub) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if err := s.write("UpdateItem", pkOf(in.Key)); err != nil {
		return nil, err
	}
	return &emptyUpdateItem, nil
}

func (s *stub) DeleteItem(_ context.Context, in *dynamodb.DeleteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if err := s.write("DeleteItem", pkOf(in.Key)); err != nil {
		return nil, err
	}
	return &emptyDeleteItem, nil
}

func (s *stub) TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	s.calls.Add(1)
	s.writes.Add(1)
	return &emptyTransactWriteItems, nil
}

func (s *stub) Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return nil, errNotCaptured
}

func (s *stub) BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	return nil, errNotCaptured
}

// switchable sends calls to DynamoDB (through a capture) until use is
// called, then to the stub.
type switchable struct {
	live   *capture
	stub   *stub
	onStub bool
}

func (s *switchable) api() dynaguard.API {
	if s.onStub {
		return s.stub
	}
	return s.live
}

// use switches to the stub built from everything captured so far.
func (s *switchable) use() *stub {
	s.stub = s.live.replay()
	s.onStub = true
	return s.stub
}

func (s *switchable) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return s.api().GetItem(ctx, in, opts...)
}
func (s *switchable) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	return s.api().BatchGetItem(ctx, in, opts...)
}
func (s *switchable) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return s.api().PutItem(ctx, in, opts...)
}
func (s *switchable) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return s.api().UpdateItem(ctx, in, opts...)
}
func (s *switchable) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	return s.api().DeleteItem(ctx, in, opts...)
}
func (s *switchable) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	return s.api().TransactWriteItems(ctx, in, opts...)
}
func (s *switchable) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return s.api().Query(ctx, in, opts...)
}
func (s *switchable) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	return s.api().BatchWriteItem(ctx, in, opts...)
}
