package ddbtest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/grants"
)

// Usage recording: every client this package builds carries an SDK
// middleware that notes, for each request, which package of the module made
// it (the first non-test dynaguard frame on the caller's stack), the
// operation (a transaction's parts one by one, as IAM sees them), the
// resource (table or index) and the prefix of each partition key value. A
// package's TestMain hands its suite to [Main], which compares what the
// suite made its component do with the declaration in internal/grants — the
// one list the IAM policy generator reads. So the policy allows exactly what
// the tests saw each component do.

type usageKey struct {
	pkg string     // import path of the caller
	use grants.Use // operation, resource, key prefix
}

var (
	usageMu sync.Mutex
	usage   = map[usageKey]int{}
	// recording is switched on by Main for a test run. Benchmarks, the
	// benchmark report and packages without Main only pay one atomic load
	// per request.
	recording atomic.Bool
)

const modulePath = "github.com/dynaguard/dynaguard"

// usageMiddleware records the request in the usage table. It never changes
// the request.
var usageMiddleware = middleware.InitializeMiddlewareFunc("ddbtest.usage",
	func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		if !recording.Load() {
			return next.HandleInitialize(ctx, in)
		}
		if pkg := callerPackage(); pkg != "" {
			uses := usesOf(in.Parameters)
			usageMu.Lock()
			for _, u := range uses {
				usage[usageKey{pkg, u}]++
			}
			usageMu.Unlock()
		}
		return next.HandleInitialize(ctx, in)
	})

// recordUsage is the APIOptions of every client NewClient builds.
var recordUsage = []func(*middleware.Stack) error{func(s *middleware.Stack) error {
	return s.Initialize.Add(usageMiddleware, middleware.Before)
}}

// callerPackage returns the import path of the innermost module package
// (outside this harness and internal/budget's client wrapper) that made the request, or "" when that frame is in
// a _test.go file: a test's own set-up and inspection calls are not the
// component's.
func callerPackage() string {
	var pcs [128]uintptr
	n := runtime.Callers(3, pcs[:])
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		fn := f.Function
		switch {
		case strings.HasPrefix(fn, modulePath+"/internal/ddbtest."),
			// client wrappers every component's calls pass through
			strings.HasPrefix(fn, modulePath+"/internal/obs."),
			strings.HasPrefix(fn, modulePath+"/internal/budget."):
		case strings.HasPrefix(fn, modulePath):
			if strings.HasSuffix(f.File, "_test.go") {
				return ""
			}
			return packageOf(fn)
		}
		if !more {
			return ""
		}
	}
}

// packageOf cuts a function's full name to its package's import path.
func packageOf(fn string) string {
	slash := strings.LastIndexByte(fn, '/')
	if dot := strings.IndexByte(fn[slash+1:], '.'); dot >= 0 {
		return fn[:slash+1+dot]
	}
	return fn
}

func keyPrefix(item map[string]types.AttributeValue, attr string) string {
	v, ok := ddb.Str(item, attr)
	if !ok {
		return "?"
	}
	return grants.PrefixOf(v)
}

// queryPrefix finds the value compared with the partition key attr in a
// KeyConditionExpression ("#a = :v" or "pk = :v").
func queryPrefix(in *dynamodb.QueryInput, attr string) string {
	toks := strings.Fields(strings.NewReplacer("(", " ", ")", " ", "=", " = ").Replace(deref(in.KeyConditionExpression)))
	for i := 0; i+2 < len(toks); i++ {
		name := toks[i]
		if strings.HasPrefix(name, "#") {
			name = in.ExpressionAttributeNames[name]
		}
		if name == attr && toks[i+1] == "=" {
			return keyPrefix(in.ExpressionAttributeValues, toks[i+2])
		}
	}
	return "?"
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// usesOf lists what one request does, as IAM evaluates it.
func usesOf(p any) []grants.Use {
	table := func(op, prefix string) grants.Use { return grants.Use{Op: op, Prefix: prefix} }
	switch in := p.(type) {
	case *dynamodb.GetItemInput:
		return []grants.Use{table("GetItem", keyPrefix(in.Key, dynaguard.AttrPK))}
	case *dynamodb.PutItemInput:
		return []grants.Use{table("PutItem", keyPrefix(in.Item, dynaguard.AttrPK))}
	case *dynamodb.UpdateItemInput:
		return []grants.Use{table("UpdateItem", keyPrefix(in.Key, dynaguard.AttrPK))}
	case *dynamodb.DeleteItemInput:
		return []grants.Use{table("DeleteItem", keyPrefix(in.Key, dynaguard.AttrPK))}
	case *dynamodb.QueryInput:
		if in.IndexName != nil {
			return []grants.Use{{Op: "Query", Index: *in.IndexName, Prefix: queryPrefix(in, dynaguard.AttrGSI1PK)}}
		}
		return []grants.Use{table("Query", queryPrefix(in, dynaguard.AttrPK))}
	case *dynamodb.BatchGetItemInput:
		var us []grants.Use
		for _, ka := range in.RequestItems {
			for _, k := range ka.Keys {
				us = append(us, table("BatchGetItem", keyPrefix(k, dynaguard.AttrPK)))
			}
		}
		return us
	case *dynamodb.BatchWriteItemInput:
		var us []grants.Use
		for _, reqs := range in.RequestItems {
			for _, r := range reqs {
				switch {
				case r.PutRequest != nil:
					us = append(us, table("BatchWriteItem", keyPrefix(r.PutRequest.Item, dynaguard.AttrPK)))
				case r.DeleteRequest != nil:
					us = append(us, table("BatchWriteItem", keyPrefix(r.DeleteRequest.Key, dynaguard.AttrPK)))
				}
			}
		}
		return us
	case *dynamodb.TransactWriteItemsInput:
		var us []grants.Use
		for _, ti := range in.TransactItems {
			switch {
			case ti.Put != nil:
				us = append(us, table("TransactWriteItems/Put", keyPrefix(ti.Put.Item, dynaguard.AttrPK)))
			case ti.Update != nil:
				us = append(us, table("TransactWriteItems/Update", keyPrefix(ti.Update.Key, dynaguard.AttrPK)))
			case ti.Delete != nil:
				us = append(us, table("TransactWriteItems/Delete", keyPrefix(ti.Delete.Key, dynaguard.AttrPK)))
			case ti.ConditionCheck != nil:
				us = append(us, table("TransactWriteItems/ConditionCheck", keyPrefix(ti.ConditionCheck.Key, dynaguard.AttrPK)))
			}
		}
		return us
	default:
		// Table management and everything else: the operation alone.
		name := reflect.TypeOf(p).String()
		name = strings.TrimSuffix(strings.TrimPrefix(name, "*dynamodb."), "Input")
		return []grants.Use{{Op: name}}
	}
}

// Recorded returns what the suite so far made the package pkg (an import
// path) do, sorted.
func Recorded(pkg string) []grants.Use {
	usageMu.Lock()
	defer usageMu.Unlock()
	var out []grants.Use
	for k := range usage {
		if k.pkg == pkg {
			out = append(out, k.use)
		}
	}
	grants.Sort(out)
	return out
}

func recordedPackages() []string {
	usageMu.Lock()
	defer usageMu.Unlock()
	var out []string
	for k := range usage {
		if !slices.Contains(out, k.pkg) {
			out = append(out, k.pkg)
		}
	}
	slices.Sort(out)
	return out
}

// Main runs a package's tests (call it from TestMain as
// os.Exit(ddbtest.Main(m, pkg))) and then proves internal/grants right:
//
//   - no package of the module may have made a request its declaration does
//     not list (the IAM policy would refuse it in production), and
//   - after a complete run of the suite (no -run, -skip or -short), the
//     package pkg must have made every request its declaration lists (the
//     policy would grant something nothing uses).
//
// It fails the run, with the difference, when either is false.
func Main(m *testing.M, pkg string) int {
	if !flag.Parsed() {
		flag.Parse() // m.Run would parse them; the bench flag is read first
	}
	benchmarking := lookupFlag("test.bench") != ""
	recording.Store(!benchmarking)
	code := m.Run()
	recording.Store(false)
	if code != 0 || benchmarking {
		return code
	}
	if msg := checkUsage(pkg, fullRun()); msg != "" {
		fmt.Fprintln(os.Stderr, msg)
		return 1
	}
	return 0
}

func fullRun() bool {
	for _, name := range []string{"test.run", "test.skip"} {
		if f := lookupFlag(name); f != "" {
			return false
		}
	}
	return !testing.Short()
}

func checkUsage(pkg string, full bool) string {
	var b strings.Builder
	for _, p := range recordedPackages() {
		declared, ok := grants.Declared(p)
		got := Recorded(p)
		if !ok && strings.HasPrefix(p, modulePath+"/example/") {
			continue // the example app's own items are the application's business
		}
		if !ok {
			fmt.Fprintf(&b, "ddbtest: package %s made DynamoDB requests but internal/grants declares none for it: %v\n", p, got)
			continue
		}
		if extra := grants.Minus(got, declared); len(extra) > 0 {
			fmt.Fprintf(&b, "ddbtest: package %s made requests internal/grants does not declare (its IAM policy would refuse them): %v\n", p, extra)
		}
	}
	if full {
		if declared, ok := grants.Declared(pkg); ok {
			if missing := grants.Minus(declared, Recorded(pkg)); len(missing) > 0 {
				fmt.Fprintf(&b, "ddbtest: internal/grants declares requests for %s that its whole test suite never made (drop them, or test them): %v\n", pkg, missing)
			}
		}
	}
	if b.Len() > 0 && os.Getenv("DYNAGUARD_GRANTS_DUMP") != "" {
		for _, p := range recordedPackages() {
			fmt.Fprintf(&b, "recorded %s: %#v\n", p, Recorded(p))
		}
	}
	return b.String()
}

func lookupFlag(name string) string {
	if f := flag.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}
