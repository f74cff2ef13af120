package idempotency

import (
	"os"
	"testing"

	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

// TestMain proves, after the suite, that the requests it saw this package
// make are exactly those internal/grants declares (the IAM policy's source).
func TestMain(m *testing.M) { os.Exit(ddbtest.Main(m, "github.com/dynaguard/dynaguard/idempotency")) }
