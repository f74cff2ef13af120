package sessionstore

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/authctx"
	"github.com/dynaguard/dynaguard/internal/ddb"
)

// absent emits why a stored item was not a live session: a tombstone (the
// token of a deleted session presented again: a copied cookie after
// logout) or a deadline past. A missing item emits nothing: that is any
// unknown token, and the cookie of every expired session TTL has swept.
func (s *Store) absent(ctx context.Context, item map[string]types.AttributeValue, now time.Time) {
	if item == nil || s.ev == nil {
		return
	}
	if _, tomb := item[attrTomb]; tomb {
		s.ev.Emit(ctx, dynaguard.Event{Name: dynaguard.EventSessionRefusedAfterLogout, Reason: "deleted"})
		return
	}
	exp, ok := ddb.Int(item, attrExp)
	if ok && (ddb.Expired(item, now) || now.UnixNano() >= exp) {
		s.ev.Emit(ctx, dynaguard.Event{Name: dynaguard.EventSessionExpiredIdle, Reason: "deadline"})
	}
}

// requestUser is the logged-in user's ID, "" when nobody is.
func requestUser(ctx context.Context) string {
	u, _ := authctx.User(ctx)
	return u
}
