// Package ddbtest is the test harness shared by every dynaguard package: a
// client for the DynamoDB Local instance that `make test` starts, a fresh
// table per test, a call recorder, a fault injector, a fault proxy on
// loopback (freeze, delay, refuse) and a fake clock.
//
// Storage behaviour is always tested against real DynamoDB (Local); the
// wrappers here only observe calls or replace chosen ones with errors.
package ddbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
)

// EnvEndpoint names the variable that holds the DynamoDB endpoint for tests.
const EnvEndpoint = "DYNAMODB_ENDPOINT"

// Endpoint returns the configured endpoint, or "".
func Endpoint() string { return os.Getenv(EnvEndpoint) }

var (
	clientOnce sync.Once
	client     *dynamodb.Client
)

// Client returns a client for the test endpoint, with fixed static
// credentials and region (DynamoDB Local runs with -sharedDb, so they only
// need to be present). A test that needs DynamoDB and has no endpoint fails —
// it never passes silently.
func Client(t testing.TB) *dynamodb.Client {
	t.Helper()
	ep := Endpoint()
	if ep == "" {
		t.Fatalf("%s is not set: this test needs DynamoDB Local. Run `make test`, which starts one shared "+
			"instance for all packages, or start one with `scripts/dynamodb-local start` and set "+
			"%s=http://127.0.0.1:8000", EnvEndpoint, EnvEndpoint)
	}
	clientOnce.Do(func() { client = NewClient(ep) })
	return client
}

// NewClient returns a client for a DynamoDB Local endpoint. It notes which
// package of the module makes each request (see [Main]).
func NewClient(endpoint string) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		APIOptions:   recordUsage,
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("dynaguard", "dynaguard", ""),
	})
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// TableName returns a valid, unique table name derived from the test's name.
func TableName(t testing.TB) string {
	name := unsafeName.ReplaceAllString(t.Name(), "_")
	if len(name) > 200 {
		name = name[:200]
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	return "t_" + name + "_" + hex.EncodeToString(rnd[:])
}

// NewTable creates a fresh table with dynaguard's layout, uniquely named
// after the test, and deletes it when the test ends.
func NewTable(t testing.TB) *dynaguard.Table {
	t.Helper()
	c := Client(t)
	name := TableName(t)
	tbl := dynaguard.NewTable(c, name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tbl.Create(ctx); err != nil {
		t.Fatalf("create test table: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := c.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)}); err != nil {
			t.Logf("delete test table %s: %v", name, err)
		}
	})
	return tbl
}

// Scan returns every item of the table, for table-dump assertions. Only tests
// scan; the library never does.
func Scan(t testing.TB, tbl *dynaguard.Table) []map[string]string {
	t.Helper()
	c := Client(t)
	var out []map[string]string
	p := dynamodb.NewScanPaginator(c, &dynamodb.ScanInput{TableName: aws.String(tbl.Name), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("scan %s: %v", tbl.Name, err)
		}
		for _, it := range page.Items {
			out = append(out, Flatten(it))
		}
	}
	return out
}

// Dump renders every attribute name and value of the table as one string, so
// a test can assert that a secret appears nowhere in it (in any encoding it
// checks for).
func Dump(t testing.TB, tbl *dynaguard.Table) string {
	var b strings.Builder
	for _, it := range Scan(t, tbl) {
		for k, v := range it {
			b.WriteString(k)
			b.WriteByte('=')
			b.WriteString(v)
			b.WriteByte('\n')
		}
	}
	return b.String()
}
