package sessionstore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/sessionstore"
)

// Every storage failure is returned as an error — never as "found", never as
// a silent "not found", and never as ErrNotFound from Revoke.
func TestStorageFaultsSurface(t *testing.T) {
	base := ddbtest.NewTable(t)
	tbl, faults := ddbtest.Inject(base)
	st := newStore(t, tbl)
	rotating := newStore(t, tbl, withKeys(keyring(t, secret2, secret1)))
	exp := time.Now().Add(time.Hour)
	tok := login(t, st, "u", "", exp)
	oldTok := login(t, st, "u", "", exp) // not yet moved for rotating

	for _, f := range ddbtest.StorageFaults {
		t.Run(f.String(), func(t *testing.T) {
			check := func(op, what string, err error) {
				t.Helper()
				if err == nil {
					t.Errorf("%s with %s failing: no error", what, op)
				}
				if errors.Is(err, sessionstore.ErrNotFound) {
					t.Errorf("%s with %s failing: reported as ErrNotFound", what, op)
				}
			}
			for _, op := range []string{"GetItem", "UpdateItem", "PutItem", "BatchWriteItem", "TransactWriteItems", "Query", "BatchGetItem"} {
				faults.Clear()
				faults.Fail(op, f)
				switch op {
				case "GetItem":
					b, found, err := st.FindCtx(ctx, tok)
					if found || b != nil {
						t.Fatalf("Find returned found=%v with GetItem failing", found)
					}
					check(op, "Find", err)
				case "UpdateItem":
					check(op, "Commit", st.CommitCtx(ctx, tok, []byte("changed"), exp))
				case "PutItem":
					check(op, "Delete", st.DeleteCtx(ctx, tok))
					check(op, "Revoke", st.Revoke(ctx, "u", st.ID(tok)))
					n, err := st.RevokeAll(ctx, "u", "")
					check(op, "RevokeAll", err)
					if n != 0 {
						t.Errorf("RevokeAll counted %d with every write failing", n)
					}
				case "BatchWriteItem":
					check(op, "Delete during a rotation", rotating.DeleteCtx(ctx, tok))
				case "TransactWriteItems":
					b, found, err := rotating.FindCtx(ctx, oldTok)
					if found || b != nil {
						t.Fatal("Find returned found=true with the move failing")
					}
					check(op, "Find under a previous secret", err)
				case "Query":
					_, err := st.List(ctx, "u")
					check(op, "List", err)
					_, err = st.RevokeAll(ctx, "u", "")
					check(op, "RevokeAll", err)
				case "BatchGetItem":
					_, err := st.List(ctx, "u")
					check(op, "List", err)
				}
			}
			// Nothing was lost: with the faults gone, both sessions are there.
			faults.Clear()
			mustFind(t, st, tok)
			mustFind(t, st, oldTok)
		})
	}
}

// A failed commit forgets what it knew, so the next commit writes rather than
// skip on the strength of a write that may not have happened.
func TestFailedCommitIsRetriedNextTime(t *testing.T) {
	base := ddbtest.NewTable(t)
	tbl, faults := ddbtest.Inject(base)
	st := newStore(t, tbl)
	tok := newToken(t)
	exp := time.Now().Add(time.Hour)
	mustCommit(t, st, tok, []byte("a"), exp)
	faults.Fail("UpdateItem", ddbtest.Timeout)
	if err := st.CommitCtx(ctx, tok, []byte("b"), exp); err == nil {
		t.Fatal("no error")
	}
	faults.Clear()
	mustCommit(t, st, tok, []byte("b"), exp)
	if got := mustFind(t, st, tok); string(got) != "b" {
		t.Fatalf("stored %q", got)
	}
}
