package sessionstore_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/sessionstore"
)

// The fault matrix: every DynamoDB call site of the store × every fault
// class, injected at that call on DynamoDB Local. The invariants: a read
// that fails is an error, never "found" and never a silent "not found" (fail
// closed); a write that fails is reported and changes nothing; and a deleted
// session never comes back. docs/SECURITY.md lists the outcomes.
func TestFaultMatrix(t *testing.T) {
	t.Parallel()
	sites := []struct {
		name   string
		faults []ddbtest.Fault
		run    func(t *testing.T, fx *matrixFixture, f ddbtest.Fault)
	}{
		{"find/GetItem", ddbtest.AllFaults, func(t *testing.T, fx *matrixFixture, f ddbtest.Fault) {
			fx.faults.Fail("GetItem", f)
			fx.findFails(t, fx.st, fx.tok)
			fx.faults.Clear()
			mustFind(t, fx.st, fx.tok)
		}},
		{"find, moved pointer/GetItem", ddbtest.AllFaults, func(t *testing.T, fx *matrixFixture, f ddbtest.Fault) {
			// The rotated instance moves the session; an instance not yet
			// rotated reads the tombstone, then follows its pointer.
			mustFind(t, fx.rotated, fx.oldTok)
			fx.faults.FailNth("GetItem", 2, f)
			fx.findFails(t, fx.st, fx.oldTok)
			fx.faults.Clear()
			mustFind(t, fx.st, fx.oldTok)
		}},
		{"find, move/TransactWriteItems", ddbtest.AllFaults, func(t *testing.T, fx *matrixFixture, f ddbtest.Fault) {
			fx.faults.Fail("TransactWriteItems", f)
			fx.findFails(t, fx.rotated, fx.oldTok)
			fx.faults.Clear()
			mustFind(t, fx.rotated, fx.oldTok)
		}},
		{"commit/UpdateItem", ddbtest.AllFaults, func(t *testing.T, fx *matrixFixture, f ddbtest.Fault) {
			fx.faults.Fail("UpdateItem", f)
			err := fx.st.CommitCtx(ctx, fx.tok, []byte("changed"), fx.exp)
			if f != ddbtest.ConditionFailed && err == nil {
				t.Fatal("a failed commit reported success")
			}
			// A condition failure is a tombstone: the commit is dropped
			// without error, as for a deleted session.
			fx.faults.Clear()
			if got := mustFind(t, fx.st, fx.tok); !bytes.Equal(got, []byte("user=u")) {
				t.Fatalf("stored %q after a failed commit", got)
			}
		}},
		{"delete/PutItem", ddbtest.AllFaults, func(t *testing.T, fx *matrixFixture, f ddbtest.Fault) {
			fx.faults.Fail("PutItem", f)
			if err := fx.single.DeleteCtx(ctx, fx.tok); err == nil {
				t.Fatal("a failed delete reported success")
			}
			fx.faults.Clear()
			mustFind(t, fx.single, fx.tok)
			fx.deleteSticks(t, fx.single, fx.tok)
		}},
		{"delete during a rotation/BatchWriteItem", append(ddbtest.AllFaults, ddbtest.Unprocessed), func(t *testing.T, fx *matrixFixture, f ddbtest.Fault) {
			fx.faults.Fail("BatchWriteItem", f)
			if err := fx.rotated.DeleteCtx(ctx, fx.tok); err == nil {
				t.Fatal("a failed delete reported success")
			}
			fx.faults.Clear()
			// Unprocessed once, then processed: the delete completes.
			fx.faults.FailNth("BatchWriteItem", 1, ddbtest.Unprocessed)
			fx.deleteSticks(t, fx.rotated, fx.tok)
			fx.findAbsent(t, fx.st, fx.tok) // under the previous secret too
		}},
		{"revoke/PutItem", ddbtest.AllFaults, func(t *testing.T, fx *matrixFixture, f ddbtest.Fault) {
			fx.faults.Fail("PutItem", f)
			err := fx.st.Revoke(ctx, "u", fx.st.ID(fx.tok))
			if err == nil {
				t.Fatal("a failed revoke reported success")
			}
			if f != ddbtest.ConditionFailed && errors.Is(err, sessionstore.ErrNotFound) {
				t.Fatal("a storage fault reported as ErrNotFound")
			}
			fx.faults.Clear()
			mustFind(t, fx.st, fx.tok)
		}},
		{"owner index/Query", ddbtest.AllFaults, func(t *testing.T, fx *matrixFixture, f ddbtest.Fault) {
			fx.faults.Fail("Query", f)
			if _, err := fx.st.List(ctx, "u"); err == nil {
				t.Fatal("List succeeded with the owner Query failing")
			}
			if n, err := fx.st.RevokeAll(ctx, "u", ""); err == nil || n != 0 {
				t.Fatalf("RevokeAll: %d, %v", n, err)
			}
			fx.faults.Clear()
			mustFind(t, fx.st, fx.tok)
		}},
		{"list/BatchGetItem", append(ddbtest.AllFaults, ddbtest.Unprocessed), func(t *testing.T, fx *matrixFixture, f ddbtest.Fault) {
			fx.faults.Fail("BatchGetItem", f)
			if _, err := fx.st.List(ctx, "u"); err == nil {
				t.Fatal("List succeeded with BatchGetItem failing")
			}
			fx.faults.Clear()
			if ss, err := fx.st.List(ctx, "u"); err != nil || len(ss) != 2 {
				t.Fatalf("List after recovery: %d sessions, %v", len(ss), err)
			}
		}},
	}
	for _, site := range sites {
		for _, f := range site.faults {
			t.Run(site.name+"/"+f.String(), func(t *testing.T) {
				t.Parallel()
				site.run(t, newMatrixFixture(t), f)
			})
		}
	}
}

type matrixFixture struct {
	faults      *ddbtest.Faults
	single      *sessionstore.Store // secret1 alone: one key per session
	st, rotated *sessionstore.Store // secret1 then secret2; secret2 then secret1
	tok, oldTok string              // two sessions of user "u" under secret1
	exp         time.Time
}

func newMatrixFixture(t *testing.T) *matrixFixture {
	tbl, faults := ddbtest.Inject(ddbtest.NewTable(t))
	fx := &matrixFixture{faults: faults, exp: time.Now().Add(time.Hour)}
	fx.single = newStore(t, tbl)
	fx.st = newStore(t, tbl, withKeys(keyring(t, secret1, secret2)))
	fx.rotated = newStore(t, tbl, withKeys(keyring(t, secret2, secret1)))
	fx.tok = login(t, fx.st, "u", "", fx.exp)
	fx.oldTok = login(t, fx.st, "u", "", fx.exp)
	return fx
}

func (fx *matrixFixture) findFails(t *testing.T, st *sessionstore.Store, tok string) {
	t.Helper()
	b, found, err := st.FindCtx(ctx, tok)
	if err == nil || found || b != nil {
		t.Fatalf("Find with a fault: found=%v err=%v", found, err)
	}
}

func (fx *matrixFixture) findAbsent(t *testing.T, st *sessionstore.Store, tok string) {
	t.Helper()
	if _, found, err := st.FindCtx(ctx, tok); found || err != nil {
		t.Fatalf("deleted session: found=%v err=%v", found, err)
	}
}

// deleteSticks deletes tok, then lets a request that loaded the session
// before the delete commit it: the session must stay deleted.
func (fx *matrixFixture) deleteSticks(t *testing.T, st *sessionstore.Store, tok string) {
	t.Helper()
	if err := st.DeleteCtx(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := fx.st.CommitCtx(ctx, tok, []byte("late write"), fx.exp); err != nil {
		t.Fatal(err)
	}
	fx.findAbsent(t, st, tok)
	fx.findAbsent(t, fx.st, tok)
}
