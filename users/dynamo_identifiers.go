package users

// Confusable-skeleton markers (see usernameSkeleton):
//
//	uniq#uskel#<skeleton>   uid; no ttl: the username look-alike class an account holds
//
// They are written, moved and deleted in the same transactions as the
// username markers, so that two accounts can never hold look-alike
// usernames, whichever instances register them.

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
)

const kindSkeleton = "uskel"

// claimSkeleton returns the transaction items that claim the skeleton of a
// username for uid: the skeleton marker, put unless another account holds
// it, and — for accounts registered before skeleton markers existed, which
// hold none — a check that no account has the skeleton itself as its
// username (so "apple", registered before, still stops "аррӏе"). The check
// is left out when the skeleton is the username's own key. Failing either
// is a taken username.
func (st *store) claimSkeleton(uid, usernameKey string) []types.TransactWriteItem {
	skel := usernameSkeleton(usernameKey)
	items := []types.TransactWriteItem{{Put: &types.Put{
		TableName:                 st.name(),
		Item:                      item{dynaguard.AttrPK: ddb.S(markerPK(kindSkeleton, skel)), attrUID: ddb.S(uid)},
		ConditionExpression:       aws.String("attribute_not_exists(#pk) OR #uid = :uid"),
		ExpressionAttributeNames:  map[string]string{"#pk": dynaguard.AttrPK, "#uid": attrUID},
		ExpressionAttributeValues: item{":uid": ddb.S(uid)},
	}}}
	if skel != usernameKey {
		items = append(items, types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
			TableName:                 st.name(),
			Key:                       ddb.Key(markerPK(kindUsername, skel)),
			ConditionExpression:       aws.String("attribute_not_exists(#pk) OR #uid = :uid"),
			ExpressionAttributeNames:  map[string]string{"#pk": dynaguard.AttrPK, "#uid": attrUID},
			ExpressionAttributeValues: item{":uid": ddb.S(uid)},
		}})
	}
	return items
}

// releaseSkeleton returns the transaction item that deletes the skeleton
// marker of a username uid held — if it points at uid; an account from
// before skeleton markers has none, which is not an error.
func (st *store) releaseSkeleton(uid, usernameKey string) types.TransactWriteItem {
	return types.TransactWriteItem{Delete: &types.Delete{
		TableName:                 st.name(),
		Key:                       ddb.Key(markerPK(kindSkeleton, usernameSkeleton(usernameKey))),
		ConditionExpression:       aws.String("attribute_not_exists(#pk) OR #uid = :uid"),
		ExpressionAttributeNames:  map[string]string{"#pk": dynaguard.AttrPK, "#uid": attrUID},
		ExpressionAttributeValues: item{":uid": ddb.S(uid)},
	}}
}

// moveSkeleton appends to the transaction items of a username change from
// oldKey to newKey what moves the skeleton marker: the new skeleton is
// claimed (items[3], and [4] for the check of accounts from before
// skeletons), the old one released when it differs. A condition check on
// the old username marker, which the transaction deletes, would name one
// item twice — and that marker is this account's anyway — so it is left
// out then. It also returns how many claims it appended: a failed claim
// means the name is taken, a failed release that the account is stale.
func (st *store) moveSkeleton(items []types.TransactWriteItem, uid, oldKey, newKey string) ([]types.TransactWriteItem, int) {
	claim := st.claimSkeleton(uid, newKey)
	if len(claim) == 2 && usernameSkeleton(newKey) == oldKey {
		claim = claim[:1]
	}
	items = append(items, claim...)
	if usernameSkeleton(oldKey) != usernameSkeleton(newKey) {
		items = append(items, st.releaseSkeleton(uid, oldKey))
	}
	return items, len(claim)
}

// checkLegacyEmail returns, for an email address whose mailbox could have
// been registered under another key before domains came to be processed
// under UTS #46 (a punycode domain, or one with ß, ς or a joiner; see
// legacyEmailKeys), a check per such key that no account holds it: an
// account registered before then under "x@xn--bcher-kva.de" still owns
// "x@bücher.de", the same mailbox. None for an ASCII domain.
func (st *store) checkLegacyEmail(email, key string) []types.TransactWriteItem {
	var items []types.TransactWriteItem
	for _, legacy := range legacyEmailKeys(email, key) {
		items = append(items, types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
			TableName:                st.name(),
			Key:                      ddb.Key(markerPK(kindEmail, legacy)),
			ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
			ExpressionAttributeNames: map[string]string{"#pk": dynaguard.AttrPK},
		}})
	}
	return items
}
