package dynaguard

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Event is one security decision: a login refused, a nonce replayed, a
// session revoked. Every component emits one for each decision it takes;
// docs/EVENTS.md is the catalogue.
//
// An event never carries a secret, a token, a password or a raw identifier
// the user typed (an email address, a username): UserID is the account's
// random ID, and Reason is a fixed word from the catalogue.
type Event struct {
	Name    EventName
	Time    time.Time
	Outcome Outcome
	// Reason says why, in a fixed machine-readable word ("already_used",
	// "wrong_password", "idle"); "" when the name says it all.
	Reason string
	// Component is the package that decided: "users", "sessionstore",
	// "nonce", "idempotency", "middleware".
	Component string
	// UserID is the account's opaque random ID, "" when nobody is known.
	UserID string
	// ClientAddr is the client's address as the middleware resolved it
	// (trusted proxies only), "" when unknown.
	ClientAddr string
	// RequestID is the request's trace ID when the request is traced with
	// OpenTelemetry, "" otherwise, so that an event leads to its trace.
	RequestID string
}

// Outcome says whether the attempted action succeeded.
type Outcome uint8

// Outcomes. A refusal is a failure of the attempt, whoever made it.
const (
	OutcomeSuccess Outcome = iota + 1
	OutcomeFailure
)

// String returns "success" or "failure".
func (o Outcome) String() string {
	switch o {
	case OutcomeSuccess:
		return "success"
	case OutcomeFailure:
		return "failure"
	}
	return "unknown"
}

// EventName names a decision. The constants are the whole catalogue; each
// has a fixed outcome and severity (see docs/EVENTS.md).
type EventName uint8

// The catalogue.
const (
	EventLoginSucceeded EventName = iota + 1
	EventLoginFailed
	EventLoginThrottled
	EventLoginLocked
	EventSecondFactorAccepted
	EventSecondFactorRefused
	EventSecondFactorReplayed
	EventStepUpRefused
	EventDeviceTrusted
	EventDeviceLocked
	EventSessionCreated
	EventSessionRenewed
	EventSessionRevoked
	EventSessionExpiredIdle
	EventSessionExpiredAbsolute
	EventSessionRefusedAfterLogout
	EventNonceConsumed
	EventNonceRefused
	EventIdempotencyClaimed
	EventIdempotencyReplayed
	EventIdempotencyConflict
	EventIdempotencyMismatch
	EventIdempotencyTakenOver
	EventIdempotencyLeaseLost
	EventResetRequested
	EventResetUsed
	EventResetRefused
	EventEmailChangeRequested
	EventEmailChangeConfirmed
	EventEmailChangeCancelled
	EventStorageFailure
	EventCrossOriginRefused
	EventRequestShed
	EventAPITokenIssued
	EventAPITokenRefreshed
	EventAPITokenReused
	EventAPITokenRevoked
	EventBearerRefused
	EventPasskeyRegistered
	EventPasskeyRemoved
	EventPasskeyRefused
	EventPasskeyCloned
	EventPasskeyChallengeReplayed
	numEvents
)

type eventInfo struct {
	name    string
	outcome Outcome
	level   slog.Level
}

const (
	ok   = OutcomeSuccess
	fail = OutcomeFailure
)

// catalogue: routine successes at Debug, so that the default sink costs
// nothing measurable with Debug off; what an operator acts on at Warn; a
// storage failure (the request failed closed) at Error.
var catalogue = [numEvents]eventInfo{
	EventLoginSucceeded:            {"login.succeeded", ok, slog.LevelInfo},
	EventLoginFailed:               {"login.failed", fail, slog.LevelWarn},
	EventLoginThrottled:            {"login.throttled", fail, slog.LevelWarn},
	EventLoginLocked:               {"login.locked", fail, slog.LevelWarn},
	EventSecondFactorAccepted:      {"second_factor.accepted", ok, slog.LevelInfo},
	EventSecondFactorRefused:       {"second_factor.refused", fail, slog.LevelWarn},
	EventSecondFactorReplayed:      {"second_factor.replayed", fail, slog.LevelWarn},
	EventStepUpRefused:             {"step_up.refused", fail, slog.LevelWarn},
	EventDeviceTrusted:             {"device.trusted", ok, slog.LevelInfo},
	EventDeviceLocked:              {"device.locked", fail, slog.LevelWarn},
	EventSessionCreated:            {"session.created", ok, slog.LevelDebug},
	EventSessionRenewed:            {"session.renewed", ok, slog.LevelDebug},
	EventSessionRevoked:            {"session.revoked", ok, slog.LevelInfo},
	EventSessionExpiredIdle:        {"session.expired_idle", fail, slog.LevelDebug},
	EventSessionExpiredAbsolute:    {"session.expired_absolute", fail, slog.LevelDebug},
	EventSessionRefusedAfterLogout: {"session.refused_after_logout", fail, slog.LevelWarn},
	EventNonceConsumed:             {"nonce.consumed", ok, slog.LevelDebug},
	EventNonceRefused:              {"nonce.refused", fail, slog.LevelInfo}, // mostly stale tabs and double clicks
	EventIdempotencyClaimed:        {"idempotency.claimed", ok, slog.LevelDebug},
	EventIdempotencyReplayed:       {"idempotency.replayed", ok, slog.LevelDebug},
	EventIdempotencyConflict:       {"idempotency.conflict", fail, slog.LevelInfo},
	EventIdempotencyMismatch:       {"idempotency.mismatch", fail, slog.LevelWarn},
	EventIdempotencyTakenOver:      {"idempotency.taken_over", ok, slog.LevelWarn},
	EventIdempotencyLeaseLost:      {"idempotency.lease_lost", fail, slog.LevelWarn},
	EventResetRequested:            {"reset.requested", ok, slog.LevelInfo},
	EventResetUsed:                 {"reset.used", ok, slog.LevelInfo},
	EventResetRefused:              {"reset.refused", fail, slog.LevelWarn},
	EventEmailChangeRequested:      {"email_change.requested", ok, slog.LevelInfo},
	EventEmailChangeConfirmed:      {"email_change.confirmed", ok, slog.LevelInfo},
	EventEmailChangeCancelled:      {"email_change.cancelled", ok, slog.LevelInfo},
	EventStorageFailure:            {"storage.failure", fail, slog.LevelError},
	EventCrossOriginRefused:        {"request.cross_origin_refused", fail, slog.LevelWarn},
	EventRequestShed:               {"request.shed", fail, slog.LevelDebug}, // counted: a log line each would add I/O to an overloaded instance
	EventAPITokenIssued:            {"api_token.issued", ok, slog.LevelInfo},
	EventAPITokenRefreshed:         {"api_token.refreshed", ok, slog.LevelDebug},
	EventAPITokenReused:            {"api_token.reused", fail, slog.LevelWarn},
	EventAPITokenRevoked:           {"api_token.revoked", ok, slog.LevelInfo},
	EventBearerRefused:             {"api_token.bearer_refused", fail, slog.LevelInfo},
	EventPasskeyRegistered:         {"passkey.registered", ok, slog.LevelInfo},
	EventPasskeyRemoved:            {"passkey.removed", ok, slog.LevelInfo},
	EventPasskeyRefused:            {"passkey.refused", fail, slog.LevelWarn},
	EventPasskeyCloned:             {"passkey.cloned", fail, slog.LevelError},
	EventPasskeyChallengeReplayed:  {"passkey.challenge_replayed", fail, slog.LevelWarn},
}

// EventNames returns every name of the catalogue, in order.
func EventNames() []EventName {
	out := make([]EventName, 0, numEvents-1)
	for n := EventName(1); n < numEvents; n++ {
		out = append(out, n)
	}
	return out
}

func (n EventName) info() eventInfo {
	if n == 0 || n >= numEvents {
		return eventInfo{"unknown", 0, slog.LevelWarn}
	}
	return catalogue[n]
}

// String returns the event's catalogue name, as "nonce.refused".
func (n EventName) String() string { return n.info().name }

// Outcome returns the event's fixed outcome.
func (n EventName) Outcome() Outcome { return n.info().outcome }

// Level returns the event's severity, as the slog level it is logged at.
func (n EventName) Level() slog.Level { return n.info().level }

// MarshalText returns the catalogue name, so that JSON encoders write it.
func (n EventName) MarshalText() ([]byte, error) { return []byte(n.String()), nil }

// MarshalText returns "success" or "failure".
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// Events says where a component sends its security events and telemetry.
// Give every component the same value (middleware.Config passes its own
// down to the components it builds into a stack); a nil *Events is the
// zero value.
//
// By default (the zero value) each event is one slog record on
// slog.Default(), at its level (routine successes at Debug), counted on
// OpenTelemetry's global MeterProvider, and each DynamoDB call is timed
// there and traced on the global TracerProvider. dynaguard uses the
// OpenTelemetry API only: without an SDK installed by the application,
// metrics and spans cost a few nanoseconds and go nowhere.
type Events struct {
	// Logger receives one record per event ("security event", with the
	// event's fields as attributes). Default: the component's own
	// Config.Logger (itself slog.Default() by default). Records below the
	// handler's level cost no allocation.
	Logger *slog.Logger
	// Hook, when set, receives every event whatever the Logger's level:
	// the place to forward them to a SIEM or to alerting. It is called
	// synchronously on the request's goroutine, concurrently from many, so
	// it must be safe for concurrent use and must not block (queue and
	// return).
	Hook func(context.Context, Event)
	// MeterProvider counts events (dynaguard.security.events, by name,
	// outcome and component) and times DynamoDB calls
	// (dynaguard.dynamodb.duration, by component, operation and outcome).
	// Default: the global otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// TracerProvider starts a client span per DynamoDB call, as a child of
	// the request's span: a call made outside any trace starts none.
	// Default: the global otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// Off drops every event and all telemetry, for benchmarks that measure
	// what the rest costs. A security control should not run blind.
	Off bool
}
