package grants

import (
	"slices"
	"strings"
	"testing"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
)

func TestPrefixOf(t *testing.T) {
	for in, want := range map[string]string{
		"sess#abc": "sess#", "sessions#u1": "sessions#", "user#a#b": "user#", "plain": "plain", "": "",
	} {
		if got := PrefixOf(in); got != want {
			t.Errorf("PrefixOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAction(t *testing.T) {
	for op, want := range map[string]string{
		"GetItem": "dynamodb:GetItem", "TransactWriteItems/Put": "dynamodb:PutItem",
		"TransactWriteItems/Update": "dynamodb:UpdateItem", "TransactWriteItems/Delete": "dynamodb:DeleteItem",
		"TransactWriteItems/ConditionCheck": "dynamodb:ConditionCheckItem", "Query": "dynamodb:Query",
	} {
		if got := Action(op); got != want {
			t.Errorf("Action(%q) = %q, want %q", op, got, want)
		}
	}
}

// The declaration itself is proven by each package's suite (ddbtest.Main);
// here, only that it is well formed: runtime uses carry a known prefix and
// no table management, admin uses carry neither a prefix nor item access,
// and the only index is gsi1.
func TestDeclarationIsWellFormed(t *testing.T) {
	prefixes := []string{dynaguard.PrefixSession, dynaguard.PrefixNonce, dynaguard.PrefixIdempotency, dynaguard.PrefixUser,
		dynaguard.PrefixUnique, dynaguard.PrefixThrottle, dynaguard.PrefixToken, dynaguard.PrefixRecovery,
		dynaguard.PrefixAPIFamily, dynaguard.PrefixPasskey}
	seen := map[string]bool{}
	for _, c := range Components {
		if seen[c.Name] || seen[c.Package] {
			t.Errorf("component %s / %s listed twice", c.Name, c.Package)
		}
		seen[c.Name], seen[c.Package] = true, true
		if _, err := Lookup(c.Name); err != nil {
			t.Error(err)
		}
		for _, u := range c.Uses {
			if c.Admin {
				if u.Prefix != "" || u.Index != "" || strings.HasSuffix(u.Op, "Item") || u.Op == "Query" {
					t.Errorf("%s: admin use %v touches items", c.Name, u)
				}
				continue
			}
			if u.Index != "" && u.Index != dynaguard.IndexGSI1 {
				t.Errorf("%s: unknown index in %v", c.Name, u)
			}
			if u.Index == "" && !slices.Contains(prefixes, u.Prefix) {
				t.Errorf("%s: %v is not on a component prefix", c.Name, u)
			}
			if u.Index != "" && u.Prefix != PrefixOf(ddb.OwnerSessions("x")) {
				t.Errorf("%s: %v is not on the sessions owner prefix", c.Name, u)
			}
		}
	}
	if _, err := Lookup("nope"); err == nil {
		t.Error("Lookup of an unknown component succeeded")
	}
	if got := Minus([]Use{{Op: "A"}, {Op: "B"}}, []Use{{Op: "B"}}); !slices.Equal(got, []Use{{Op: "A"}}) {
		t.Errorf("Minus = %v", got)
	}
}
