package dynaguard_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

// proxiedClient is a NewClient client that reaches the test table through a
// fault proxy.
func proxiedClient(t *testing.T, cc dynaguard.ClientConfig, optFns ...func(*dynamodb.Options)) (*dynamodb.Client, *ddbtest.Proxy, *dynaguard.Table) {
	t.Helper()
	tbl := ddbtest.NewTable(t)
	proxy, err := ddbtest.NewProxy(strings.TrimPrefix(ddbtest.Endpoint(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	optFns = append([]func(*dynamodb.Options){func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(proxy.URL()) }}, optFns...)
	c := dynaguard.NewClient(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("dynaguard", "dynaguard", ""),
	}, cc, optFns...)
	return c, proxy, tbl
}

func getItem(c *dynamodb.Client, tbl *dynaguard.Table) error {
	_, err := c.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(tbl.Name), Key: ddb.Key("user#x"), ConsistentRead: aws.Bool(true)})
	return err
}

// A DynamoDB that refuses connections trips the breaker: calls then fail
// with ErrUnavailable without an attempt, and the first probe after
// DynamoDB listens again restores service.
func TestNewClientFailsFastAndRecovers(t *testing.T) {
	c, proxy, tbl := proxiedClient(t, dynaguard.ClientConfig{})
	if err := getItem(c, tbl); err != nil {
		t.Fatal(err)
	}
	if err := proxy.Set(ddbtest.Refuse); err != nil {
		t.Fatal(err)
	}
	var err error
	for range 5 {
		if err = getItem(c, tbl); errors.Is(err, dynaguard.ErrUnavailable) {
			break
		}
	}
	if !errors.Is(err, dynaguard.ErrUnavailable) {
		t.Fatalf("after failed calls: %v, want ErrUnavailable", err)
	}
	if err := proxy.Set(ddbtest.Pass); err != nil {
		t.Fatal(err)
	}
	if !waitFor(t, 5*time.Second, func() bool { return getItem(c, tbl) == nil }) {
		t.Fatal("no recovery after DynamoDB listened again")
	}
}

// A DynamoDB that accepts connections and never answers costs each call at
// most MaxAttempts attempt timeouts, even without a deadline on the
// caller's context (the SDK's default client would wait forever).
func TestNewClientBoundsStalledAttempts(t *testing.T) {
	c, proxy, tbl := proxiedClient(t, dynaguard.ClientConfig{AttemptTimeout: 200 * time.Millisecond})
	if err := proxy.Set(ddbtest.Freeze); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- getItem(c, tbl) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a frozen DynamoDB answered")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a call to a frozen DynamoDB did not end")
	}
	_ = proxy.Set(ddbtest.Pass)
}
