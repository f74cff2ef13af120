package users

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddb"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
)

// Invisible code points are refused in usernames and email addresses.
func TestInvisibleRefused(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		username, email string
	}{
		{"alice\u034F", "alice\u034F@example.com"}, // combining grapheme joiner (Default_Ignorable)
		{"alice\uFE0F", "alice\uFE0F@example.com"}, // variation selector 16
		{"alice\u180B", "alice\u180B@example.com"}, // Mongolian free variation selector
		{"ali\u200Bce", "ali\u200Bce@example.com"}, // zero width space
		{"alice\u200D", "alice\u200D@example.com"}, // zero width joiner
		{"\u202Ealice", "\u202Ealice@example.com"}, // right-to-left override
		{"alice\u2066", "alice\u2066@example.com"}, // left-to-right isolate
		{"alice\u00AD", "alice\u00AD@example.com"}, // soft hyphen
		{"alice\U000E0100", "alice\U000E0100@example.com"},
		{"alice\u3164", "alice\u3164@example.com"}, // Hangul filler
	} {
		if _, err := NormalizeUsername(c.username); !errors.Is(err, ErrInvalidIdentifier) {
			t.Errorf("username %+q: %v; want refused", c.username, err)
		}
		if _, err := NormalizeEmail(c.email); !errors.Is(err, ErrInvalidIdentifier) {
			t.Errorf("email %+q: %v; want refused", c.email, err)
		}
	}
}

// Email domains are keyed under UTS #46, non-transitional.
func TestEmailDomainKeys(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"ceo@faß.de", "ceo@faß.de"},
		{"ceo@FASS.de", "ceo@fass.de"},
		{"ceo@xn--fa-hia.de", "ceo@faß.de"},
		{"Ceo@Bücher.DE", "ceo@bücher.de"},
		{"ceo@xn--bcher-kva.de", "ceo@bücher.de"},
		{"ceo@ＥＸＡＭＰＬＥ.com", "ceo@example.com"},
		{"Straße@example.com", "strasse@example.com"}, // the local part is case folded as before
		{"ceo@ex_ample.com", ""},
	} {
		got, err := NormalizeEmail(c.in)
		if c.want == "" {
			if err == nil {
				t.Errorf("%q = %q; want refused", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q = %q, %v; want %q", c.in, got, err, c.want)
		}
		if kind, key := normalizeLogin(c.in); kind != kindEmail || key != c.want {
			t.Errorf("login %q = %q; want %q", c.in, key, c.want)
		}
	}
}

// Look-alike usernames share a skeleton; different ones do not.
func TestUsernameSkeleton(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"apple", "аррӏе", true}, // all Cyrillic
		{"alice", "alıce", true}, // dotless i
		{"paypal", "pаypаl", true},
		{"google", "g00gle", true},
		{"modern", "rnodern", true},
		{"mail", "maIl", true},
		{"mall", "maIl", true}, // capital I looks like l
		{"alice", "alicia", false},
		{"bob", "rob", false},
	} {
		ka, err := NormalizeUsername(c.a)
		if err != nil {
			t.Fatal(err)
		}
		kb := fold(c.b) // some are refused as usernames (mixed script); the skeleton still says why
		if got := usernameSkeleton(ka) == usernameSkeleton(kb); got != c.same {
			t.Errorf("%q (%q) vs %q (%q): same = %v", c.a, usernameSkeleton(ka), c.b, usernameSkeleton(kb), got)
		}
	}
}

// Every look-alike of an existing username is refused as taken, on
// DynamoDB; the skeleton moves with a username change and is released
// when the account is deleted.
func TestLookAlikeUsernamesTaken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("apple@example.com", "apple")
	alice := e.create("alice@example.com", "alice")
	for i, name := range []string{"аррӏе", "APPLE", "alıce", "AIice"} {
		_, err := e.users.Create(ctx, NewUser{Email: "x" + string(rune('a'+i)) + "@example.com", Username: name, Password: goodPassword})
		if !errors.Is(err, ErrUsernameTaken) {
			t.Errorf("%q: %v; want ErrUsernameTaken", name, err)
		}
	}
	for _, name := range []string{"alice\u034F", "alice\uFE0F", "alice\u180B"} {
		if _, err := e.users.Create(ctx, NewUser{Email: "y@example.com", Username: name, Password: goodPassword}); !errors.Is(err, ErrInvalidIdentifier) {
			t.Errorf("%+q: %v; want ErrInvalidIdentifier", name, err)
		}
	}
	if _, err := e.users.Create(ctx, NewUser{Email: "ali\u200Bce@example.com", Username: "alice2", Password: goodPassword}); !errors.Is(err, ErrInvalidIdentifier) {
		t.Errorf("U+200B in the local part: %v", err)
	}
	// A change to a look-alike of one's own name keeps the skeleton;
	// a change to another name frees the old skeleton.
	a2, err := e.users.ChangeUsername(ctx, alice, "alıce")
	if err != nil {
		t.Fatalf("own look-alike: %v", err)
	}
	if _, err := e.users.ChangeUsername(ctx, a2, "alicia"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.users.Create(ctx, NewUser{Email: "new@example.com", Username: "AIice", Password: goodPassword}); err != nil {
		t.Fatalf("the freed skeleton: %v", err)
	}
	if _, err := e.users.Create(ctx, NewUser{Email: "new2@example.com", Username: "alicia", Password: goodPassword}); !errors.Is(err, ErrUsernameTaken) {
		t.Fatalf("alicia: %v", err)
	}
}

// An account registered before skeleton markers (it has none) still stops
// a look-alike whose skeleton is its username, and can be deleted.
func TestLookAlikeOfAccountWithoutSkeleton(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	old := e.create("apple@example.com", "apple")
	if err := removeItem(e, markerPK(kindSkeleton, "apple")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.users.Create(ctx, NewUser{Email: "b@example.com", Username: "аррӏе", Password: goodPassword}); !errors.Is(err, ErrUsernameTaken) {
		t.Fatalf("аррӏе next to a pre-skeleton apple: %v", err)
	}
	old, _ = e.users.Get(ctx, old.ID)
	if err := e.users.Delete(ctx, old); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := e.users.Create(ctx, NewUser{Email: "c@example.com", Username: "аррӏе", Password: goodPassword}); err != nil {
		t.Fatal(err)
	}
}

// A login name whose '@' lies beyond the length normalisation keeps is
// still an email login and must not crash.
func TestNormalizeLoginLongEmail(t *testing.T) {
	t.Parallel()
	for _, login := range []string{
		strings.Repeat("a", 2*maxNormBytes) + "@example.com",
		strings.Repeat("a", maxNormBytes-1) + "@faß.de",
		"@", "a@", "@b", "a@b@faß.de",
	} {
		kind, key := normalizeLogin(login)
		if kind != kindEmail || len(key) > maxNormBytes {
			t.Errorf("%.20q: kind %s, %d bytes", login, kind, len(key))
		}
	}
}

// Accounts registered before email domains were processed under UTS #46
// keep their markers under the old key: they still log in as they did, and
// no new account can take their mailbox under its new key.
func TestLegacyEmailKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, c := range []struct{ typed, oldKey, otherForm string }{
		{"old@xn--bcher-kva.de", "old@xn--bcher-kva.de", "old@bücher.de"},
		{"ceo@faß.de", "ceo@fass.de", "ceo@xn--fa-hia.de"},
	} {
		u := e.create(c.typed, "u"+c.oldKey[:3]+fmt.Sprint(len(c.oldKey)))
		// Move the account to its key of before: what an account made by
		// an earlier version has.
		if err := removeItem(e, markerPK(kindEmail, u.emailKey)); err != nil {
			t.Fatal(err)
		}
		plantMarker(t, e, markerPK(kindEmail, c.oldKey), u.ID)
		setAttr(t, e, userPK(u.ID), attrEmailKey, c.oldKey)
		if _, err := e.auth(c.typed, goodPassword, "192.0.2.5"); err != nil {
			t.Fatalf("%s: the old account no longer logs in: %v", c.typed, err)
		}
		for _, email := range []string{c.typed, c.otherForm} {
			if _, err := e.users.Create(ctx, NewUser{Email: email, Username: "n" + fmt.Sprint(len(email)) + c.oldKey[:2], Password: goodPassword}); !errors.Is(err, ErrEmailTaken) {
				t.Errorf("%s next to the old %s: %v", email, c.oldKey, err)
			}
		}
	}
	if got := legacyEmailKeys("a@example.com", "a@example.com"); len(got) != 0 {
		t.Fatalf("an ASCII domain has legacy keys: %q", got)
	}
}

func plantMarker(t *testing.T, e *env, pk, uid string) {
	t.Helper()
	_, err := ddbtest.Client(t).PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(e.base.Name),
		Item:      item{dynaguard.AttrPK: ddb.S(pk), attrUID: ddb.S(uid)},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func setAttr(t *testing.T, e *env, pk, name, value string) {
	t.Helper()
	_, err := ddbtest.Client(t).UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(e.base.Name),
		Key:                       ddb.Key(pk),
		UpdateExpression:          aws.String("SET #a = :v"),
		ExpressionAttributeNames:  map[string]string{"#a": name},
		ExpressionAttributeValues: item{":v": ddb.S(value)},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// removeItem deletes an item as the test's own set-up: through the table's
// client from here, so that the request is not counted as the component's.
func removeItem(e *env, pk string) error {
	_, err := e.users.st.tbl.Client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: e.users.st.name(), Key: ddb.Key(pk)})
	return err
}
