package users

// Request counters of self-service actions (sign-up, email change):
//
//	thr#act#<action>#<h(action, source or prefix or account)>#<window>   n, ttl
//
// Each is counted with one conditional UpdateItem (ADD, on condition that
// it is under its limit), all of one request at once.

import (
	"context"
	"net/netip"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
)

// Actions limited per client address (and per account) by limitRequests.
const (
	actionSignup      = "signup"
	actionEmailChange = "email-change"
)

// requestCounter is one fixed-window request counter and its limit.
type requestCounter struct {
	pk  string
	max int
	end time.Time
}

// addressCounters returns the counters of one request of action from ip:
// the address's (IPv4 address or IPv6 Throttle.IPv6Prefix) under per, and
// one per wider range under ranges. Requests without a valid address share
// one counter (more throttling, never less).
func (s *Users) addressCounters(action string, ip netip.Addr, per Limit, ranges []RangeLimit, now time.Time) []requestCounter {
	src := s.throttle.source(ip)
	w, end := per.window(now)
	prefix := dynaguard.PrefixThrottle + "act#" + action + "#"
	out := []requestCounter{{pk: prefix + s.throttleID("act", action, src) + "#" + w, max: per.Free, end: end}}
	if !ip.IsValid() {
		return out
	}
	ip = ip.Unmap().WithZone("")
	for _, r := range ranges {
		bits := r.IPv6Bits
		if ip.Is4() {
			bits = r.IPv4Bits
		}
		if bits == 0 {
			continue
		}
		p, err := ip.Prefix(bits)
		if err != nil {
			continue
		}
		w, end := r.window(now)
		out = append(out, requestCounter{pk: prefix + s.throttleID("act", action, p.String()) + "#" + w, max: r.Free, end: end})
	}
	return out
}

// limitRequests counts one request on every counter, each with one
// conditional UpdateItem that adds 1 only under its limit, all at once (one
// round trip of latency). Over any limit: a *RateLimitedError until the
// latest refusing window ends. A counter that went up while another refused
// stays counted: attempts are what is limited. Nothing is read first.
func (s *Users) limitRequests(ctx context.Context, counters []requestCounter) error {
	now := s.now()
	refused := make([]bool, len(counters))
	writes := make([]func(context.Context) error, len(counters))
	for i, c := range counters {
		writes[i] = func(ctx context.Context) error {
			_, err := s.st.tbl.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
				TableName:                 s.st.name(),
				Key:                       ddb.Key(c.pk),
				UpdateExpression:          aws.String("ADD #n :one SET #ttl = :end"),
				ConditionExpression:       aws.String("attribute_not_exists(#n) OR #n < :max"),
				ExpressionAttributeNames:  map[string]string{"#n": attrN, "#ttl": dynaguard.AttrTTL},
				ExpressionAttributeValues: item{":one": ddb.N(1), ":max": ddb.N(int64(c.max)), ":end": ddb.TTLValue(c.end)},
			})
			switch {
			case err == nil:
				return nil
			case dynaguard.IsConditionFailed(err):
				refused[i] = true
				return nil
			default:
				return unavailable("UpdateItem", err)
			}
		}
	}
	if err := parallel(ctx, writes...); err != nil {
		return err
	}
	var until time.Time
	for i, r := range refused {
		if r && counters[i].end.After(until) {
			until = counters[i].end
		}
	}
	if !until.IsZero() {
		return rateLimited(until, now)
	}
	return nil
}
