package dynaguard_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

// One secret keys every component: each purpose gets its own key, and a
// rotated keyring still knows the keys of the previous secret.
func ExampleNewKeyring() {
	oldSecret, newSecret := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32) // in production: random, from DYNAGUARD_SECRET
	keys, err := dynaguard.NewKeyring(oldSecret)
	if err != nil {
		fmt.Println(err)
		return
	}
	sessions, nonces := keys.Key(dynaguard.PurposeSessionID), keys.Key(dynaguard.PurposeNonceHash)
	fmt.Println(len(sessions.Secret), bytes.Equal(sessions.Secret, nonces.Secret))

	rotated, _ := dynaguard.NewKeyring(newSecret, oldSecret) // current first
	all := rotated.Keys(dynaguard.PurposeSessionID)
	fmt.Println(len(all), all[0].ID == sessions.ID, all[1].ID == sessions.ID)

	_, err = dynaguard.ParseKeyring("c0ffee")
	fmt.Println(err)
	// Output:
	// 32 false
	// 2 false true
	// dynaguard: secret must be at least 32 bytes (secret 0 has 3). DYNAGUARD_SECRET takes hex secrets of at least 32 bytes, current first, comma-separated; make one with `dynaguard secret` (go run github.com/dynaguard/dynaguard/cmd/dynaguard@latest secret) or `openssl rand -hex 32`
}

// At start-up: create the table when it is missing, or check that it has
// dynaguard's layout (key schema, the gsi1 index, TTL on ttl).
func ExampleTable_Ensure() {
	ctx := context.Background()
	client := ddbtest.ExampleClient() // in production: dynamodb.NewFromConfig(awsConfig)
	tbl := dynaguard.NewTable(client, ddbtest.ExampleTableName("ensure"))
	defer ddbtest.DropTable(tbl)

	fmt.Println(tbl.Ensure(ctx)) // creates it
	fmt.Println(tbl.Ensure(ctx)) // checks it
	// Output:
	// <nil>
	// <nil>
}

// A table made by hand with another layout is reported with everything
// that differs, at once, before any request is served.
func ExampleTable_Check() {
	ctx := context.Background()
	client := ddbtest.ExampleClient()
	name := ddbtest.ExampleTableName("check")
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	tbl := dynaguard.NewTable(client, name)
	defer ddbtest.DropTable(tbl)

	err = tbl.Check(ctx)
	var ce *dynaguard.CheckError
	if errors.As(err, &ce) {
		for _, p := range ce.Problems {
			fmt.Println(p.Code)
		}
	}
	fmt.Println(errors.Is(err, dynaguard.ErrTableMisconfigured))
	// Output:
	// key-schema
	// index-missing
	// ttl-disabled
	// true
}
