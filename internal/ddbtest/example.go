package ddbtest

import (
	"context"
	"crypto/rand"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
)

// Runnable godoc Examples cannot take a *testing.T, so they get their
// DynamoDB Local client and table names from here. An Example run without
// DYNAMODB_ENDPOINT panics with the same advice Client gives: it fails, it
// never passes silently.

// ExampleClient returns a client for the test endpoint.
func ExampleClient() *dynamodb.Client {
	ep := Endpoint()
	if ep == "" {
		panic(EnvEndpoint + " is not set: this Example needs DynamoDB Local. Run `make test`, or start one with " +
			"`scripts/dynamodb-local start` and set " + EnvEndpoint + "=http://127.0.0.1:8000")
	}
	clientOnce.Do(func() { client = NewClient(ep) })
	return client
}

// ExampleTableName returns a fresh table name with the given prefix.
func ExampleTableName(prefix string) string {
	return "ex_" + prefix + "_" + strings.ToLower(rand.Text()[:10])
}

// DropTable deletes an Example's table, ignoring errors.
func DropTable(tbl *dynaguard.Table) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = ExampleClient().DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(tbl.Name)})
}
