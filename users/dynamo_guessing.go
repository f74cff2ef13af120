package users

// Counters against online guessing (see Throttle):
//
//	user#<id>                              ucn, ucla, ucv: failed unknown-client logins on the account,
//	                                       the last one's time (Unix s), the credential version they were counted under
//	thr#acct#<h(login)>                    ucn, ucla, ucv (0), ttl: the same for a login name with no account
//	thr#dev#<h(device id)>#<window>        n, la, ttl: attempts from one device cookie
//	thr#net#<h(prefix)>#<window>           n, la, ttl: failures from one wider address range
//
// The unknown-client count lives on the account item, which a login reads
// anyway, so it costs no read of its own, links the account's email and
// username, and lapses by itself on a password change or reset (ucv is
// no longer the credential version).

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
)

const (
	attrUnknownN    = "ucn"
	attrUnknownLast = "ucla"
	attrUnknownCV   = "ucv"
)

// unknownCount decodes the unknown-client count of an account item
// (account) or of a login name's item (!account): zero when absent, lapsed
// (window after the last failure) or counted under an older credential
// version. It also says whether the stored count is live, which decides
// the form of the next write.
func unknownCount(it item, account bool, window time.Duration, now time.Time) (c counter, live bool) {
	if it == nil {
		return counter{}, false
	}
	n, okN := ddb.Int(it, attrUnknownN)
	la, okL := ddb.Int(it, attrUnknownLast)
	cv, _ := ddb.Int(it, attrUnknownCV)
	want := int64(0)
	if account {
		want, _ = ddb.Int(it, attrCred)
	}
	if !okN || !okL || cv != want || !now.Before(time.Unix(la, 0).Add(window)) {
		return counter{}, false
	}
	return counter{n: n, last: la}, true
}

// countUnknownClient adds a failed unknown-client attempt to the count on
// pk (an account item when account, else a login name's item), in one
// conditional UpdateItem: added to a live count, or started over at 1 when
// the stored one lapsed. The two forms have complementary conditions, so
// when another attempt changed the state between the read and the write,
// the other form succeeds; after three tries (a state that keeps flipping)
// the failure is logged and dropped. An account deleted meanwhile is not
// recreated.
func (st *store) countUnknownClient(ctx context.Context, pk string, account, live bool, window time.Duration, now time.Time) error {
	// Whole seconds, rounded down both: "live" is la > now - window, as
	// unknownCount decides it, and the count lapses no later than a
	// window after the failure.
	cutoff := now.Add(-window).Unix()
	names := map[string]string{"#n": attrUnknownN, "#la": attrUnknownLast, "#cv": attrUnknownCV}
	vals := item{":one": ddb.N(1), ":now": ddb.N(now.Unix()), ":cut": ddb.N(cutoff)}
	cvRef, exists, ttl := ":zero", "", ""
	if account {
		cvRef, exists = "#acv", "attribute_exists(#pk) AND "
		names["#acv"], names["#pk"] = attrCred, dynaguard.AttrPK
	} else {
		vals[":zero"] = ddb.N(0)
		vals[":exp"] = ddb.TTLValue(now.Add(window))
		names["#ttl"] = dynaguard.AttrTTL
		ttl = ", #ttl = :exp"
	}
	add := &dynamodb.UpdateItemInput{
		UpdateExpression:    aws.String("ADD #n :one SET #la = :now" + ttl),
		ConditionExpression: aws.String(exists + "#la > :cut AND #cv = " + cvRef),
	}
	restart := &dynamodb.UpdateItemInput{
		UpdateExpression:    aws.String("SET #n = :one, #la = :now, #cv = " + cvRef + ttl),
		ConditionExpression: aws.String(exists + "(attribute_not_exists(#la) OR #la <= :cut OR #cv <> " + cvRef + ")"),
	}
	for try := range 3 {
		in := restart
		if live == (try%2 == 0) {
			in = add
		}
		in.TableName, in.Key = st.name(), ddb.Key(pk)
		in.ExpressionAttributeNames, in.ExpressionAttributeValues = names, vals
		_, err := st.tbl.Client.UpdateItem(ctx, in)
		if err == nil {
			return nil
		}
		if !dynaguard.IsConditionFailed(err) {
			return unavailable("UpdateItem", err)
		}
	}
	return nil // the account is gone, or the count kept changing under us
}

// parallel runs the writes of one outcome at once — they touch different
// items and none depends on another — so that they cost one round trip of
// latency. It returns the first error.
func parallel(ctx context.Context, writes ...func(context.Context) error) error {
	if len(writes) == 1 {
		return writes[0](ctx)
	}
	errs := make([]error, len(writes))
	var wg sync.WaitGroup
	for i, w := range writes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
