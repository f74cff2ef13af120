// Package dynaguard holds the DynamoDB plumbing shared by the dynaguard
// middleware suite: the client interface ([API]), the single-table key
// layout ([Table]), per-purpose key derivation from one configured secret
// ([Keyring]), an injectable [Clock], the classification of DynamoDB errors
// into typed errors, and the expiry rules every component follows.
//
// The features live in sub-packages:
//
//   - sessionstore: an scs/v2 session store (hashed tokens, expiry on read,
//     strong reads, delete-wins, cheap sliding expiry, per-user sessions).
//   - nonce: single-use form nonces, issued without storage and consumed by
//     one conditional write.
//   - idempotency: Idempotency-Key handling with exactly-once execution;
//     idempotency/lambdaevents runs SQS and DynamoDB Streams consumers on
//     AWS Lambda exactly once per record.
//   - users: accounts, password hashing, throttled authentication, password
//     reset and a replay-proof TOTP second factor.
//   - middleware: the ready-made chain that wraps any router.
//
// # One table
//
// Every component can share one table, with one TTL setting and one IAM
// policy. The layout is fixed (see docs/ARCHITECTURE.md):
//
//	pk      S   partition key, "<component prefix><id>"
//	ttl     N   expiry, epoch seconds; DynamoDB's TTL attribute
//	gsi1pk  S   owner key of the "gsi1" index (sparse, KEYS_ONLY)
//	gsi1sk  S   sort key of the "gsi1" index
//
// # Expiry
//
// DynamoDB deletes expired items lazily — up to about 48 hours late on AWS.
// An item whose ttl has passed is therefore treated as absent everywhere: on
// every read and in every write condition, by one rule that every component
// shares (live while now < ttl).
package dynaguard
