package ddbtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/dynaguard/dynaguard"
)

// Fault kinds, as the SDK would return them after its retries.
type Fault int

const (
	Throttling      Fault = iota + 1 // ProvisionedThroughputExceededException
	InternalError                    // InternalServerError (HTTP 500)
	Timeout                          // the call's context deadline passed
	ConnReset                        // connection reset by peer
	ConditionFailed                  // ConditionalCheckFailedException
	// Unprocessed is not an error: a BatchWriteItem or BatchGetItem call
	// succeeds without doing anything and returns every entry as
	// unprocessed, as DynamoDB does under throttling. Other calls given it
	// fail as throttled.
	Unprocessed
)

// Err returns the error the SDK would return for op.
func (f Fault) Err(op string) error {
	var inner error
	switch f {
	case Throttling:
		inner = &types.ProvisionedThroughputExceededException{Message: ptr("injected: throughput exceeded")}
	case InternalError:
		inner = &types.InternalServerError{Message: ptr("injected: internal server error")}
	case Timeout:
		inner = &smithy.CanceledError{Err: fmt.Errorf("injected: %w", context.DeadlineExceeded)}
	case ConnReset:
		inner = &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	case ConditionFailed:
		inner = &types.ConditionalCheckFailedException{Message: ptr("injected: conditional request failed")}
	case Unprocessed:
		inner = &types.ProvisionedThroughputExceededException{Message: ptr("injected: unprocessed")}
	default:
		inner = fmt.Errorf("injected fault %d", f)
	}
	return &smithy.OperationError{ServiceID: "DynamoDB", OperationName: op, Err: inner}
}

func (f Fault) String() string {
	switch f {
	case Throttling:
		return "throttling"
	case InternalError:
		return "internal-error"
	case Timeout:
		return "timeout"
	case ConnReset:
		return "conn-reset"
	case ConditionFailed:
		return "condition-failed"
	case Unprocessed:
		return "unprocessed"
	}
	return fmt.Sprintf("fault(%d)", int(f))
}

// StorageFaults are the faults that must never let a request through.
var StorageFaults = []Fault{Throttling, InternalError, Timeout, ConnReset}

// AllFaults are the fault classes of the fault matrix: the storage faults
// and a condition failure.
var AllFaults = []Fault{Throttling, InternalError, Timeout, ConnReset, ConditionFailed}

type rule struct {
	op    string // "" matches every op
	nth   int    // 0: every matching call; n: only the n-th (1-based)
	fault Fault
}

// Faults wraps an API and replaces chosen calls with errors; every other
// call goes to the real table. Safe for concurrent use.
type Faults struct {
	dynaguard.API

	mu    sync.Mutex
	rules []rule
	seen  map[string]int
}

// NewFaults wraps api.
func NewFaults(api dynaguard.API) *Faults { return &Faults{API: api, seen: map[string]int{}} }

// Inject returns a copy of tbl whose client is a Faults wrapping tbl's.
func Inject(tbl *dynaguard.Table) (*dynaguard.Table, *Faults) {
	f := NewFaults(tbl.Client)
	return dynaguard.NewTable(f, tbl.Name), f
}

// Fail makes every call of op ("" for every op) fail with fault.
func (f *Faults) Fail(op string, fault Fault) { f.add(rule{op: op, fault: fault}) }

// FailNth makes only the n-th call of op (counting from 1, from now) fail.
func (f *Faults) FailNth(op string, n int, fault Fault) {
	f.mu.Lock()
	n += f.seen[op]
	f.mu.Unlock()
	f.add(rule{op: op, nth: n, fault: fault})
}

// Clear removes every rule.
func (f *Faults) Clear() {
	f.mu.Lock()
	f.rules = nil
	f.mu.Unlock()
}

// Calls returns how many calls of op were made ("" for all), failed or not.
func (f *Faults) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if op == "" {
		n := 0
		for _, v := range f.seen {
			n += v
		}
		return n
	}
	return f.seen[op]
}

func (f *Faults) add(r rule) {
	f.mu.Lock()
	f.rules = append(f.rules, r)
	f.mu.Unlock()
}

// check counts the call and returns the injected error, if any.
func (f *Faults) check(op string) error {
	_, err := f.checkFault(op)
	return err
}

// checkFault is check that also reports an Unprocessed rule, for the batch
// calls, which answer it without an error.
func (f *Faults) checkFault(op string) (unprocessed bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen[op]++
	n := f.seen[op]
	for _, r := range f.rules {
		if (r.op == "" || r.op == op) && (r.nth == 0 || r.nth == n) {
			if r.fault == Unprocessed && (op == "BatchWriteItem" || op == "BatchGetItem") {
				return true, nil
			}
			return false, r.fault.Err(op)
		}
	}
	return false, nil
}

func (f *Faults) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if err := f.check("GetItem"); err != nil {
		return nil, err
	}
	return f.API.GetItem(ctx, in, opts...)
}

func (f *Faults) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	unprocessed, err := f.checkFault("BatchGetItem")
	if err != nil {
		return nil, err
	}
	if unprocessed {
		return &dynamodb.BatchGetItemOutput{UnprocessedKeys: in.RequestItems}, nil
	}
	return f.API.BatchGetItem(ctx, in, opts...)
}

func (f *Faults) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if err := f.check("PutItem"); err != nil {
		return nil, err
	}
	return f.API.PutItem(ctx, in, opts...)
}

func (f *Faults) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if err := f.check("UpdateItem"); err != nil {
		return nil, err
	}
	return f.API.UpdateItem(ctx, in, opts...)
}

func (f *Faults) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if err := f.check("DeleteItem"); err != nil {
		return nil, err
	}
	return f.API.DeleteItem(ctx, in, opts...)
}

func (f *Faults) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	if err := f.check("TransactWriteItems"); err != nil {
		return nil, err
	}
	return f.API.TransactWriteItems(ctx, in, opts...)
}

func (f *Faults) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	if err := f.check("Query"); err != nil {
		return nil, err
	}
	return f.API.Query(ctx, in, opts...)
}

func (f *Faults) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	unprocessed, err := f.checkFault("BatchWriteItem")
	if err != nil {
		return nil, err
	}
	if unprocessed {
		return &dynamodb.BatchWriteItemOutput{UnprocessedItems: in.RequestItems}, nil
	}
	return f.API.BatchWriteItem(ctx, in, opts...)
}

func ptr(s string) *string { return &s }
