// Package lambdaevents runs AWS Lambda queue and stream consumers exactly
// once per record, on top of idempotency.Guard: an SQS batch handler and a
// DynamoDB Streams handler, both answering with partial batch failure
// responses. It lives apart from the idempotency package so that only
// applications that consume Lambda events depend on
// github.com/aws/aws-lambda-go.
//
//	guard, err := idempotency.New(idempotency.Config{Table: tbl, Keyring: keys, Scope: idempotency.UserOrSession})
//	handler, err := lambdaevents.SQS(lambdaevents.Config{Guard: guard}, processOrder)
//	lambda.Start(handler)
//
// # What it stops
//
//   - Duplicate execution. SQS delivers at least once, a stream batch is
//     retried whole when one record fails, and several consumers may hold
//     copies of one message at the same time. Each record's work runs under
//     a key claimed with one conditional write (Guard.Do): at most one
//     consumer runs it while the key's record lives, the others are told
//     it is in flight (and report the record as failed, to be redelivered
//     and then answered from the stored outcome).
//   - Replays after the validity window (CWE-294, CWE-613). A record older
//     than Config.Window — by its stream creation time or the message's
//     SentTimestamp — is refused and never run: an event re-injected or
//     redelivered long after it was meaningful does not take effect again,
//     and no record older than what the Guard still remembers (its
//     Retention) can slip past the deduplication.
//   - Failing open. When DynamoDB fails before the work runs, the record is
//     reported as failed (it will be redelivered) and the work is not run.
//
// # Outcomes per record
//
//	work ran and returned nil, or a duplicate of work done   success
//	work returned an error or panicked (key released)        failed: redelivered, runs again
//	another consumer runs it now (idempotency.ErrInFlight)    failed: redelivered, then replayed
//	DynamoDB failed before the work ran                       failed: redelivered
//	same key, different message body                         failed (logged as an error)
//	older than Window, or without a timestamp                 never run: SQS reports it failed
//	                                                          (it ends in the dead-letter queue);
//	                                                          a stream logs it and moves on
//
// Stream records that fail stop the batch: the records after the first
// failure are not run and are reported failed too, so a shard's records run
// in order. The same holds for FIFO queues (an event source ARN ending in
// ".fifo"); records of a standard queue are independent and may run
// concurrently (Config.Concurrency).
//
// The partial responses take effect only when the event source mapping has
// ReportBatchItemFailures turned on; without it, Lambda ignores them. When
// every record of a batch fails, the handler also returns an error
// (ErrBatchFailed), so that the batch is retried in either case.
//
// # Cost
//
// Per record, as Guard.Do: a first delivery costs two writes (the claim and
// the completion), a duplicate one failed conditional write, a refused
// record none.
package lambdaevents
