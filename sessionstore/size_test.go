package sessionstore_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/sessionstore"
)

// Data above the limit is refused with a typed error before any write; the
// stored session is left as it was. Data at the limit is stored whole, with
// the largest owner and client info, sealed.
func TestSessionDataSizeLimit(t *testing.T) {
	tbl, rec := ddbtest.Record(ddbtest.NewTable(t))
	st := newStore(t, tbl, encrypted)
	tok := newToken(t)
	exp := time.Now().Add(time.Hour)
	mustCommit(t, st, tok, []byte("small"), exp)

	big := make([]byte, sessionstore.MaxDataSize+1)
	rec.Reset()
	err := st.CommitCtx(ctx, tok, big, exp)
	if !errors.Is(err, sessionstore.ErrTooLarge) || !errors.Is(err, dynaguard.ErrItemTooLarge) {
		t.Fatalf("Commit(%d bytes) = %v, want ErrTooLarge", len(big), err)
	}
	if rec.Count("") != 0 {
		t.Fatalf("an oversized commit made calls: %+v", rec.Calls())
	}
	if got := mustFind(t, st, tok); string(got) != "small" {
		t.Fatalf("stored data changed: %q", got)
	}

	max := make([]byte, sessionstore.MaxDataSize)
	rand.Read(max) // incompressible, not that DynamoDB compresses
	user := strings.Repeat("u", sessionstore.MaxUserIDLen)
	info := sessionstore.ClientInfo{UserAgent: strings.Repeat("a", 10_000), IP: strings.Repeat("1", 1000)}
	if err := st.Bind(ctx, tok, user, info); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, st, tok, max, exp)
	if got := mustFind(t, st, tok); !bytes.Equal(got, max) {
		t.Fatalf("stored %d bytes, want %d", len(got), len(max))
	}
	if l, err := st.List(ctx, user); err != nil || len(l) != 1 {
		t.Fatalf("List = %v, %v", l, err)
	}
}

// If DynamoDB itself refuses an item for its size, the error is the same
// typed error (and nothing is half-written).
func TestItemTooLargeFromDynamoDB(t *testing.T) {
	tbl := ddbtest.NewTable(t)
	st := newStore(t, tbl)
	tok := newToken(t)
	exp := time.Now().Add(time.Hour)
	mustCommit(t, st, tok, []byte("small"), exp)
	// Someone added a large attribute to the item: a commit within
	// MaxDataSize now exceeds the item limit.
	pad := make([]byte, 100*1024)
	rawUpdate(t, tbl, dynaguard.PrefixSession+st.ID(tok), "SET #pad = :p", map[string]string{"#pad": "pad"},
		map[string]types.AttributeValue{":p": ddb.B(pad)})
	err := st.CommitCtx(ctx, tok, make([]byte, sessionstore.MaxDataSize), exp.Add(time.Hour))
	if !errors.Is(err, sessionstore.ErrTooLarge) {
		t.Fatalf("Commit = %v, want ErrTooLarge", err)
	}
	if got := mustFind(t, st, tok); string(got) != "small" {
		t.Fatalf("stored data changed: %.10q", got)
	}
}
