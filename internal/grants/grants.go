// Package grants is the one declaration of which DynamoDB requests each
// package of dynaguard makes: the operations, on the table or on its index,
// and the prefixes of the partition key values they touch. The IAM policy
// that `dynaguard iam-policy` prints is built from it, and every package's
// test suite proves it (internal/ddbtest.Main): a request a package makes but
// this list omits fails the suite, and so does a listed request that the
// package's whole suite never makes. The policy therefore allows exactly
// what the tests see each component do.
package grants

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
)

// Use is one kind of request: an API operation — a transaction's parts
// named "TransactWriteItems/Put", "/Update", "/Delete", "/ConditionCheck",
// because IAM authorises each part as its own action — on the table (Index
// "") or on an index, touching partition key values that start with Prefix
// (the table's pk, or the index's partition key for a Query on an index).
// Table management operations have no Prefix.
type Use struct {
	Op     string
	Index  string
	Prefix string
}

func (u Use) String() string {
	s := u.Op
	if u.Index != "" {
		s += " on index " + u.Index
	}
	if u.Prefix != "" {
		s += " " + u.Prefix + "*"
	}
	return s
}

// PrefixOf returns the component prefix of a partition key value: up to and
// including the first '#' (the whole value when there is none).
func PrefixOf(v string) string {
	if i := strings.IndexByte(v, '#'); i >= 0 {
		return v[:i+1]
	}
	return v
}

// Component is a package whose requests the policy grants.
type Component struct {
	Name    string // as `dynaguard iam-policy -components` takes it
	Package string // import path
	Admin   bool   // manages the table rather than serving requests
	Doc     string // one line for the policy's statement ids and the docs
	Uses    []Use
}

const module = "github.com/dynaguard/dynaguard"

func t(op, prefix string) Use { return Use{Op: op, Prefix: prefix} }

func idx(op, prefix string) Use { return Use{Op: op, Index: dynaguard.IndexGSI1, Prefix: prefix} }

func admin(op string) Use { return Use{Op: op} }

// sessions is the index partition prefix of a user's sessions.
var sessions = ddb.OwnerSessions("")

// Components lists every package that calls DynamoDB, runtime ones first.
var Components = []Component{
	{
		Name: "sessionstore", Package: module + "/sessionstore",
		Doc: "session store: sessions and their tombstones; a user's sessions through the index",
		Uses: []Use{
			t("GetItem", dynaguard.PrefixSession),
			t("BatchGetItem", dynaguard.PrefixSession),
			t("PutItem", dynaguard.PrefixSession),
			t("UpdateItem", dynaguard.PrefixSession),
			t("BatchWriteItem", dynaguard.PrefixSession),
			t("TransactWriteItems/Put", dynaguard.PrefixSession),
			idx("Query", sessions),
		},
	},
	{
		Name: "nonce", Package: module + "/nonce",
		Doc: "single-use form nonces: one conditional write per consumed nonce",
		Uses: []Use{
			t("PutItem", dynaguard.PrefixNonce),
		},
	},
	{
		Name: "idempotency", Package: module + "/idempotency",
		Doc: "Idempotency-Key records",
		Uses: []Use{
			t("PutItem", dynaguard.PrefixIdempotency),
			t("UpdateItem", dynaguard.PrefixIdempotency),
			t("DeleteItem", dynaguard.PrefixIdempotency),
		},
	},
	{
		Name: "users", Package: module + "/users",
		Doc: "accounts, uniqueness markers, throttling counters, one-time tokens, API client token families, passkeys",
		Uses: []Use{
			t("GetItem", dynaguard.PrefixUser),
			t("GetItem", dynaguard.PrefixUnique),
			t("GetItem", dynaguard.PrefixThrottle),
			t("GetItem", dynaguard.PrefixToken),
			t("BatchGetItem", dynaguard.PrefixUser),
			t("BatchGetItem", dynaguard.PrefixUnique),
			t("BatchGetItem", dynaguard.PrefixThrottle),
			t("UpdateItem", dynaguard.PrefixUser),
			t("UpdateItem", dynaguard.PrefixThrottle),
			t("DeleteItem", dynaguard.PrefixThrottle),
			t("DeleteItem", dynaguard.PrefixToken),
			t("TransactWriteItems/Put", dynaguard.PrefixUser),
			t("TransactWriteItems/Put", dynaguard.PrefixUnique),
			t("TransactWriteItems/Put", dynaguard.PrefixToken),
			t("TransactWriteItems/Update", dynaguard.PrefixUser),
			t("TransactWriteItems/Update", dynaguard.PrefixThrottle),
			t("TransactWriteItems/Delete", dynaguard.PrefixUser),
			t("TransactWriteItems/Delete", dynaguard.PrefixUnique),
			t("TransactWriteItems/Delete", dynaguard.PrefixToken),
			t("TransactWriteItems/ConditionCheck", dynaguard.PrefixUnique),
			t("TransactWriteItems/ConditionCheck", dynaguard.PrefixUser),
			t("TransactWriteItems/Put", dynaguard.PrefixAPIFamily),
			t("TransactWriteItems/Update", dynaguard.PrefixAPIFamily),
			t("TransactWriteItems/Delete", dynaguard.PrefixAPIFamily),
			t("BatchGetItem", dynaguard.PrefixPasskey),
			t("UpdateItem", dynaguard.PrefixPasskey),
			t("TransactWriteItems/Put", dynaguard.PrefixPasskey),
			t("TransactWriteItems/Update", dynaguard.PrefixPasskey),
			t("TransactWriteItems/Delete", dynaguard.PrefixPasskey),
			t("TransactWriteItems/ConditionCheck", dynaguard.PrefixPasskey),
		},
	},
	{
		Name: "table", Package: module, Admin: true,
		Doc: "Table.Create, Check and Ensure",
		Uses: []Use{
			admin("CreateTable"), admin("DescribeTable"), admin("DescribeTimeToLive"), admin("UpdateTimeToLive"),
		},
	},
	{
		Name: "cli", Package: module + "/cmd/dynaguard", Admin: true,
		Doc: "the dynaguard command: table fix and doctor",
		Uses: []Use{
			admin("DescribeTable"), admin("UpdateTimeToLive"), admin("UpdateTable"), admin("DescribeContinuousBackups"),
		},
	},
}

// Runtime returns the names of the components an application's request
// handling uses.
func Runtime() []string {
	var out []string
	for _, c := range Components {
		if !c.Admin {
			out = append(out, c.Name)
		}
	}
	return out
}

// Lookup returns the component named name.
func Lookup(name string) (Component, error) {
	for _, c := range Components {
		if c.Name == name {
			return c, nil
		}
	}
	var names []string
	for _, c := range Components {
		names = append(names, c.Name)
	}
	return Component{}, fmt.Errorf("unknown component %q (have %s)", name, strings.Join(names, ", "))
}

// Declared returns the uses declared for the package with import path pkg.
func Declared(pkg string) ([]Use, bool) {
	for _, c := range Components {
		if c.Package == pkg {
			out := slices.Clone(c.Uses)
			Sort(out)
			return out, true
		}
	}
	return nil, false
}

// Sort orders uses by index, operation and prefix.
func Sort(us []Use) {
	slices.SortFunc(us, func(a, b Use) int {
		return cmp.Or(cmp.Compare(a.Index, b.Index), cmp.Compare(a.Op, b.Op), cmp.Compare(a.Prefix, b.Prefix))
	})
}

// Minus returns the uses of a that b does not hold.
func Minus(a, b []Use) []Use {
	var out []Use
	for _, u := range a {
		if !slices.Contains(b, u) {
			out = append(out, u)
		}
	}
	return out
}

// Action is the IAM action that authorises op ("TransactWriteItems/Put" is
// dynamodb:PutItem, "/ConditionCheck" dynamodb:ConditionCheckItem).
func Action(op string) string {
	switch op {
	case "TransactWriteItems/Put":
		return "dynamodb:PutItem"
	case "TransactWriteItems/Update":
		return "dynamodb:UpdateItem"
	case "TransactWriteItems/Delete":
		return "dynamodb:DeleteItem"
	case "TransactWriteItems/ConditionCheck":
		return "dynamodb:ConditionCheckItem"
	}
	return "dynamodb:" + op
}
