package dynaguard

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// Sentinel errors that [Classify] attaches to DynamoDB errors. Each
// classified error still wraps the SDK error it came from.
var (
	// ErrConditionFailed: a ConditionExpression did not hold. For a
	// single-use write this means "already used"; it is never a storage
	// fault. errors.As yields a *ConditionFailedError with the old item
	// when the request asked for ReturnValuesOnConditionCheckFailure.
	ErrConditionFailed = errors.New("dynaguard: condition check failed")
	// ErrTransactionCanceled: TransactWriteItems was canceled. errors.As
	// yields a *TransactionCanceledError with one reason per item.
	ErrTransactionCanceled = errors.New("dynaguard: transaction canceled")
	// ErrThrottled: DynamoDB refused the request for capacity or rate
	// reasons after the SDK's retries. A storage error, never an answer.
	ErrThrottled = errors.New("dynaguard: throttled by DynamoDB")
	// ErrItemTooLarge: the item would exceed MaxItemSize.
	ErrItemTooLarge = errors.New("dynaguard: item exceeds the DynamoDB item size limit")
)

// ConditionFailedError is a failed ConditionExpression, carrying the item as
// it was when the request asked for it (ReturnValuesOnConditionCheckFailure
// ALL_OLD) — so a caller learns why in the same round trip.
type ConditionFailedError struct {
	Item map[string]types.AttributeValue // nil when not requested or absent
	Err  error
}

func (e *ConditionFailedError) Error() string { return "dynaguard: condition check failed" }

// Is makes errors.Is(err, ErrConditionFailed) true.
func (e *ConditionFailedError) Is(target error) bool { return target == ErrConditionFailed }

// Unwrap returns the SDK error.
func (e *ConditionFailedError) Unwrap() error { return e.Err }

// CancellationReason is why one item of a transaction was canceled. Code is
// DynamoDB's ("None", "ConditionalCheckFailed", "TransactionConflict",
// "ThrottlingError", "ValidationError", ...).
type CancellationReason struct {
	Code    string
	Message string
	Item    map[string]types.AttributeValue
}

// TransactionCanceledError is a canceled TransactWriteItems with its reasons,
// in the order of the request's items.
type TransactionCanceledError struct {
	Reasons []CancellationReason
	Err     error
}

func (e *TransactionCanceledError) Error() string {
	codes := make([]string, len(e.Reasons))
	for i, r := range e.Reasons {
		codes[i] = r.Code
	}
	return "dynaguard: transaction canceled [" + strings.Join(codes, ", ") + "]"
}

// Is makes errors.Is(err, ErrTransactionCanceled) true, and also
// errors.Is(err, ErrThrottled) when a reason was throttling.
func (e *TransactionCanceledError) Is(target error) bool {
	switch target {
	case ErrTransactionCanceled:
		return true
	case ErrThrottled:
		for _, r := range e.Reasons {
			if r.Code == "ThrottlingError" || r.Code == "ProvisionedThroughputExceeded" || r.Code == "RequestLimitExceeded" {
				return true
			}
		}
	}
	return false
}

// Unwrap returns the SDK error.
func (e *TransactionCanceledError) Unwrap() error { return e.Err }

// ConditionFailed reports whether item i of the transaction failed its
// condition (as opposed to not being evaluated, or a conflict).
func (e *TransactionCanceledError) ConditionFailed(i int) bool {
	return i >= 0 && i < len(e.Reasons) && e.Reasons[i].Code == "ConditionalCheckFailed"
}

// OnlyConditionsFailed reports whether every reason is either "None" or
// "ConditionalCheckFailed" — the transaction lost on its conditions, not on
// a conflict, throttling or validation.
func (e *TransactionCanceledError) OnlyConditionsFailed() bool {
	any := false
	for _, r := range e.Reasons {
		switch r.Code {
		case "None", "":
		case "ConditionalCheckFailed":
			any = true
		default:
			return false
		}
	}
	return any
}

var throttleCodes = map[string]bool{
	"ProvisionedThroughputExceededException": true,
	"ThrottlingException":                    true,
	"RequestLimitExceeded":                   true,
	"ThrottlingError":                        true,
}

// Classify attaches dynaguard's sentinel errors to an error returned by the
// DynamoDB client, keeping the original in the chain. It returns nil for nil
// and leaves context cancellation and unknown errors as they are.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return &ConditionFailedError{Item: ccf.Item, Err: err}
	}
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) {
		reasons := make([]CancellationReason, len(tce.CancellationReasons))
		for i, r := range tce.CancellationReasons {
			reasons[i] = CancellationReason{Code: aws.ToString(r.Code), Message: aws.ToString(r.Message), Item: r.Item}
		}
		return &TransactionCanceledError{Reasons: reasons, Err: err}
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		if throttleCodes[api.ErrorCode()] {
			return fmt.Errorf("%w: %w", ErrThrottled, err)
		}
		if api.ErrorCode() == "ValidationException" && strings.Contains(strings.ToLower(api.ErrorMessage()), "item size") {
			return fmt.Errorf("%w: %w", ErrItemTooLarge, err)
		}
	}
	return err
}

// IsConditionFailed reports whether err is (or wraps) a failed condition,
// classified or not.
func IsConditionFailed(err error) bool {
	if errors.Is(err, ErrConditionFailed) {
		return true
	}
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// IsCanceled reports whether err comes from the caller's context (canceled
// or past its deadline) rather than from DynamoDB.
func IsCanceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
