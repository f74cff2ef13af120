package nonce

import (
	"errors"
	"net/http"
	"testing"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

// The fault matrix of the package's one call site, the consumption PutItem:
// every fault class fails closed (the handler never runs), a storage fault
// leaves the token usable once DynamoDB is back, and a condition failure is
// a used nonce.
func TestFaultMatrix(t *testing.T) {
	for _, f := range ddbtest.AllFaults {
		t.Run("consume/PutItem/"+f.String(), func(t *testing.T) {
			tbl, faults := ddbtest.Inject(ddbtest.NewTable(t))
			e := newEnvOn(t, tbl, ddbtest.NewClock(t0))
			b := e.newBrowser()
			tok := e.token(b, "transfer")
			faults.Fail("PutItem", f)
			res := e.submit(b, tok, "transfer")
			if res.called {
				t.Fatal("the handler ran with the consumption failing")
			}
			faults.Clear()
			if f == ddbtest.ConditionFailed {
				if !errors.Is(res.err, ErrAlreadyUsed) || res.w.Code != http.StatusConflict {
					t.Fatalf("err %v status %d", res.err, res.w.Code)
				}
				return
			}
			if !errors.Is(res.err, ErrStorage) || res.w.Code != http.StatusServiceUnavailable || res.w.Header().Get("Retry-After") == "" {
				t.Fatalf("err %v status %d", res.err, res.w.Code)
			}
			var de error = res.err
			if f == ddbtest.Throttling && !errors.Is(de, dynaguard.ErrThrottled) {
				t.Fatalf("the cause is lost: %v", de)
			}
			if res := e.submit(b, tok, "transfer"); !res.called {
				t.Fatalf("after recovery: %v", res.err)
			}
			if res := e.submit(b, tok, "transfer"); res.called || !errors.Is(res.err, ErrAlreadyUsed) {
				t.Fatalf("replay after recovery: called %v err %v", res.called, res.err)
			}
		})
	}
}
