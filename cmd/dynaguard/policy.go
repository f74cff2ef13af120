package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/grants"
)

// The IAM policy is built from internal/grants, the declaration every
// package's test suite proves (internal/ddbtest.Main): the actions are the
// operations each component was seen to make, no more, no fewer.
//
// How DynamoDB evaluates it:
//   - dynamodb:LeadingKeys holds the partition key values a request touches:
//     the table's pk for item operations, and the index's partition key
//     (gsi1pk) for a Query on gsi1. The table and the index are separate
//     resources, so each gets its own statements with its own prefixes.
//   - ForAllValues:StringLike requires every key of a request to match one
//     statement: a BatchGetItem or BatchWriteItem is allowed only if all its
//     keys carry prefixes of that statement. A batch action therefore gets
//     one statement with every prefix its component uses it on, since one
//     batch may mix them (users reads an account and its counters at once).
//   - A TransactWriteItems is authorised part by part: a Put needs
//     dynamodb:PutItem, an Update dynamodb:UpdateItem, a Delete
//     dynamodb:DeleteItem, a ConditionCheck dynamodb:ConditionCheckItem, each
//     for its own key. There is no TransactWriteItems action.
//   - No statement grants Scan, or any action on the table without a key:
//     ForAllValues on a request with no leading keys would match vacuously.
//   - Each statement groups the prefixes on which a component makes the same
//     set of calls, so no prefix gets an action its component never uses on
//     it.

type policyDoc struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

type statement struct {
	Sid       string                         `json:"Sid"`
	Effect    string                         `json:"Effect"`
	Action    []string                       `json:"Action"`
	Resource  []any                          `json:"Resource"`
	Condition map[string]map[string][]string `json:"Condition,omitempty"`
}

// arns names the table and its index in a policy: plain ARNs for the
// iam-policy command, references for the templates.
type arns struct {
	table, index any
}

func plainARNs(partition, region, account, table string) arns {
	t := fmt.Sprintf("arn:%s:dynamodb:%s:%s:table/%s", partition, region, account, table)
	return arns{table: t, index: t + "/index/" + dynaguard.IndexGSI1}
}

// runtimePolicy grants the named runtime components what they use.
func runtimePolicy(components []string, r arns) (*policyDoc, error) {
	doc := &policyDoc{Version: "2012-10-17"}
	for _, name := range components {
		c, err := grants.Lookup(name)
		if err != nil {
			return nil, err
		}
		if c.Admin {
			return nil, fmt.Errorf("component %q manages the table: use -admin", name)
		}
		for _, onIndex := range []bool{false, true} {
			groups := groupByActions(c.Uses, onIndex)
			for i, g := range groups {
				res, what := r.table, "Table"
				if onIndex {
					res, what = r.index, "Index"
				}
				sid := sidName(c.Name) + what
				if len(groups) > 1 {
					sid += fmt.Sprint(i + 1)
				}
				doc.Statement = append(doc.Statement, statement{
					Sid: sid, Effect: "Allow", Action: g.actions, Resource: []any{res},
					Condition: map[string]map[string][]string{
						"ForAllValues:StringLike": {"dynamodb:LeadingKeys": g.patterns},
					},
				})
			}
		}
	}
	return doc, nil
}

type group struct {
	actions  []string
	patterns []string
}

// batchAction reports whether IAM evaluates one request of the action with
// all its keys at once: dynamodb:LeadingKeys then holds every partition key
// of the batch, and ForAllValues needs one statement that matches them all.
func batchAction(a string) bool {
	return a == "dynamodb:BatchGetItem" || a == "dynamodb:BatchWriteItem"
}

// groupByActions maps each prefix to the IAM actions made on it, then joins
// the prefixes that share one set of actions. A batch action instead gets
// one statement with every prefix the component uses it on, since a single
// request may mix them (joined with a statement of exactly those prefixes
// when there is one).
func groupByActions(uses []grants.Use, onIndex bool) []group {
	byPrefix := map[string][]string{}
	byBatch := map[string][]string{}
	for _, u := range uses {
		if (u.Index != "") != onIndex || u.Prefix == "" {
			continue
		}
		a := grants.Action(u.Op)
		if batchAction(a) {
			if !slices.Contains(byBatch[a], u.Prefix+"*") {
				byBatch[a] = append(byBatch[a], u.Prefix+"*")
			}
			continue
		}
		if !slices.Contains(byPrefix[u.Prefix], a) {
			byPrefix[u.Prefix] = append(byPrefix[u.Prefix], a)
		}
	}
	var out []group
	for _, p := range slices.Sorted(maps.Keys(byPrefix)) {
		acts := byPrefix[p]
		slices.Sort(acts)
		i := slices.IndexFunc(out, func(g group) bool { return slices.Equal(g.actions, acts) })
		if i >= 0 {
			out[i].patterns = append(out[i].patterns, p+"*")
		} else {
			out = append(out, group{actions: acts, patterns: []string{p + "*"}})
		}
	}
	// Batch actions last, so that each joins a statement only by its whole
	// set of prefixes, never by widening another statement's.
	for _, a := range slices.Sorted(maps.Keys(byBatch)) {
		ps := byBatch[a]
		slices.Sort(ps)
		found := false
		for i := range out {
			if slices.Equal(out[i].patterns, ps) {
				out[i].actions = append(out[i].actions, a)
				slices.Sort(out[i].actions)
				found = true
				break
			}
		}
		if !found {
			out = append(out, group{actions: []string{a}, patterns: ps})
		}
	}
	return out
}

// adminPolicy grants what creating, checking, fixing and diagnosing the
// table takes: the table management calls of Table and of this command.
// Request handling needs none of it.
func adminPolicy(r arns) *policyDoc {
	var acts []string
	for _, c := range grants.Components {
		if !c.Admin {
			continue
		}
		for _, u := range c.Uses {
			if a := grants.Action(u.Op); !slices.Contains(acts, a) {
				acts = append(acts, a)
			}
		}
	}
	slices.Sort(acts)
	return &policyDoc{Version: "2012-10-17", Statement: []statement{{
		Sid: "DynaguardTableAdmin", Effect: "Allow", Action: acts, Resource: []any{r.table},
	}}}
}

// checkStatement allows what Table.Check calls: the read-only table
// management calls of the root package.
func checkStatement(r arns) statement {
	c, _ := grants.Lookup("table")
	var acts []string
	for _, u := range c.Uses {
		if strings.HasPrefix(u.Op, "Describe") {
			acts = append(acts, grants.Action(u.Op))
		}
	}
	slices.Sort(acts)
	return statement{Sid: "DynaguardStartupCheck", Effect: "Allow", Action: acts, Resource: []any{r.table}}
}

func sidName(s string) string {
	var b strings.Builder
	b.WriteString("Dynaguard")
	up := true
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z' && up:
			b.WriteRune(r - 'a' + 'A')
			up = false
		case r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			up = false
		default:
			up = true
		}
	}
	return b.String()
}

func (e *env) iamPolicy(args []string) error {
	fs := e.flags("iam-policy")
	table := fs.String("table", "", "table name (required)")
	region := fs.String("region", "*", "region in the ARNs")
	account := fs.String("account", "*", "account id in the ARNs")
	partition := fs.String("partition", "aws", "ARN partition (aws, aws-cn, aws-us-gov)")
	var help strings.Builder
	help.WriteString("runtime components the application uses, comma-separated:")
	for _, c := range grants.Components {
		if !c.Admin {
			fmt.Fprintf(&help, "\n  %-12s %s", c.Name, c.Doc)
		}
	}
	comps := fs.String("components", strings.Join(grants.Runtime(), ","), help.String())
	admin := fs.Bool("admin", false, "print the policy for table management (dynaguard table, doctor, Table.Ensure) instead")
	check := fs.Bool("check", false, "also allow Table.Check at start-up (DescribeTable, DescribeTimeToLive)")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if err := requireTable(e, fs, *table); err != nil {
		return err
	}
	r := plainARNs(*partition, *region, *account, *table)
	var doc *policyDoc
	if *admin {
		doc = adminPolicy(r)
	} else {
		var names []string
		for _, n := range strings.Split(*comps, ",") {
			if n = strings.TrimSpace(n); n != "" && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
		var err error
		if doc, err = runtimePolicy(names, r); err != nil {
			fmt.Fprintf(e.err, "dynaguard iam-policy: %v\n", err)
			return errUsage
		}
		if *check {
			doc.Statement = append(doc.Statement, checkStatement(r))
		}
	}
	return writeJSON(e.out, doc)
}

func writeJSON(w interface{ Write([]byte) (int, error) }, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
