package users

import (
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Limits on identifiers. An email address is at most 254 octets (RFC 5321
// path limit) with a local part of at most 64; the normalised forms are
// bounded too, because NFKC can lengthen text (one code point can expand to
// eighteen) and the normalised form is part of a DynamoDB key.
const (
	MaxEmailBytes    = 254
	MaxUsernameRunes = 64
	maxLocalBytes    = 64
	maxNormBytes     = 4 * MaxEmailBytes
)

// ErrInvalidIdentifier matches every *IdentifierError.
var ErrInvalidIdentifier = errors.New("users: invalid email address or username")

// IdentifierError says why an email address or username was refused.
type IdentifierError struct {
	Field  string // "email" or "username"
	Reason string // a sentence the user can act on
}

func (e *IdentifierError) Error() string {
	return fmt.Sprintf("users: invalid %s: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidIdentifier) true.
func (e *IdentifierError) Is(target error) bool { return target == ErrInvalidIdentifier }

func invalidEmail(reason string) error    { return &IdentifierError{Field: "email", Reason: reason} }
func invalidUsername(reason string) error { return &IdentifierError{Field: "username", Reason: reason} }

// fold maps s to the form under which two identifiers are the same account:
// NFKC, full Unicode case folding, NFKC again (folding can produce text that
// is no longer NFKC — the NFKC_Casefold construction of UAX #31). A Caser
// keeps state, so each call makes its own.
func fold(s string) string {
	return norm.NFKC.String(cases.Fold().String(norm.NFKC.String(s)))
}

// NormalizeEmail validates an email address and returns the form it is
// unique under: NFKC and case folded, the local part included (RFC 5321
// allows case-sensitive local parts, but no mail provider in practical use
// distinguishes them, and two accounts that differ only in case are an
// account-takeover trap). It does not remove dots or "+tags": those are
// provider-specific and different addresses. The domain is processed under
// UTS #46, non-transitional (see normalizeDomain): its Unicode and punycode
// forms are one key, and "faß.de" and "fass.de" are two. Invisible code
// points (see invisible) are refused anywhere in the address.
func NormalizeEmail(email string) (string, error) {
	email = strings.TrimSpace(email)
	switch {
	case email == "":
		return "", invalidEmail("an email address is required")
	case !utf8.ValidString(email):
		return "", invalidEmail("the address is not valid text")
	case len(email) > MaxEmailBytes:
		return "", invalidEmail(fmt.Sprintf("the address is longer than %d bytes", MaxEmailBytes))
	}
	if strings.ContainsFunc(email, invisible) {
		return "", invalidEmail("the address contains an invisible character")
	}
	for _, r := range email {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == '<' || r == '>' || r == '"' || r == '(' || r == ')' || r == ',' || r == ';' || r == '\\' {
			return "", invalidEmail("the address contains a character that is not allowed")
		}
	}
	// net/mail accepts display names and comments; an account address is the
	// bare addr-spec, so the parsed address must be exactly what was typed.
	a, err := mail.ParseAddress(email)
	if err != nil || a.Name != "" || a.Address != email {
		return "", invalidEmail("this is not an email address")
	}
	at := strings.LastIndexByte(email, '@')
	local, domain := email[:at], email[at+1:]
	if len(local) > maxLocalBytes {
		return "", invalidEmail(fmt.Sprintf("the part before @ is longer than %d bytes", maxLocalBytes))
	}
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return "", invalidEmail("the domain after @ is not valid")
	}
	d, err := normalizeDomain(domain)
	if err != nil {
		return "", err
	}
	n := fold(local) + "@" + d
	if len(n) > maxNormBytes || strings.Count(n, "@") != 1 || strings.ContainsFunc(n, func(r rune) bool {
		return unicode.IsControl(r) || unicode.IsSpace(r)
	}) {
		return "", invalidEmail("this is not an email address")
	}
	return n, nil
}

// NormalizeUsername validates a username and returns the form it is unique
// under (NFKC and case folded).
//
// A username is 1 to MaxUsernameRunes letters, digits, combining marks and
// the separators '.', '_' and '-', starting with a letter or digit. It cannot
// contain '@' (so a login name is never ambiguous between email and
// username), spaces, symbols or invisible characters, and its letters must
// come from one script — or from the script combinations of Japanese and
// Korean — so "pаypal" with a Cyrillic "а" cannot pass for "paypal".
func NormalizeUsername(username string) (string, error) {
	username = strings.TrimSpace(username)
	if username == "" {
		return "", invalidUsername("a username is required")
	}
	if !utf8.ValidString(username) {
		return "", invalidUsername("the username is not valid text")
	}
	if strings.ContainsFunc(username, invisible) {
		return "", invalidUsername("a username cannot contain invisible characters")
	}
	n := fold(username)
	if c := utf8.RuneCountInString(n); c > MaxUsernameRunes {
		return "", invalidUsername(fmt.Sprintf("the username is longer than %d characters", MaxUsernameRunes))
	}
	for i, r := range n {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
		case i > 0 && unicode.Is(unicode.M, r):
		case i > 0 && (r == '.' || r == '_' || r == '-'):
		case r == '@':
			return "", invalidUsername("a username cannot contain @")
		case i == 0 && (r == '.' || r == '_' || r == '-' || unicode.Is(unicode.M, r)):
			return "", invalidUsername("a username must start with a letter or a digit")
		default:
			return "", invalidUsername(fmt.Sprintf("a username can only contain letters, digits, '.', '_' and '-' (not %q)", r))
		}
	}
	if !singleScript(n) {
		return "", invalidUsername("a username cannot mix letters from different alphabets")
	}
	return n, nil
}

// scripts that a username's letters may come from; Common and Inherited
// (digits, separators, combining marks) go with any of them.
var scripts = []struct {
	name  string
	table *unicode.RangeTable
}{
	{"Latin", unicode.Latin}, {"Greek", unicode.Greek}, {"Cyrillic", unicode.Cyrillic},
	{"Armenian", unicode.Armenian}, {"Hebrew", unicode.Hebrew}, {"Arabic", unicode.Arabic},
	{"Devanagari", unicode.Devanagari}, {"Bengali", unicode.Bengali}, {"Thai", unicode.Thai},
	{"Georgian", unicode.Georgian}, {"Hangul", unicode.Hangul}, {"Han", unicode.Han},
	{"Hiragana", unicode.Hiragana}, {"Katakana", unicode.Katakana}, {"Tamil", unicode.Tamil},
	{"Telugu", unicode.Telugu}, {"Gujarati", unicode.Gujarati}, {"Gurmukhi", unicode.Gurmukhi},
	{"Kannada", unicode.Kannada}, {"Malayalam", unicode.Malayalam}, {"Ethiopic", unicode.Ethiopic},
}

// singleScript reports whether the letters of s come from one script, or
// from Han with Hiragana/Katakana (Japanese) or Han with Hangul (Korean). A
// letter from a script not listed above counts as its own script.
func singleScript(s string) bool {
	seen := map[string]bool{}
	for _, r := range s {
		if !unicode.IsLetter(r) || unicode.In(r, unicode.Common, unicode.Inherited) {
			continue
		}
		name := "other"
		for _, sc := range scripts {
			if unicode.Is(sc.table, r) {
				name = sc.name
				break
			}
		}
		seen[name] = true
	}
	if len(seen) <= 1 {
		return true
	}
	japanese := map[string]bool{"Han": true, "Hiragana": true, "Katakana": true}
	korean := map[string]bool{"Han": true, "Hangul": true}
	allIn := func(set map[string]bool) bool {
		for k := range seen {
			if !set[k] {
				return false
			}
		}
		return true
	}
	return !seen["other"] && (allIn(japanese) || allIn(korean))
}

// loginKind tells whether a login name is an email address or a username:
// usernames cannot contain '@'.
func loginKind(login string) string {
	if strings.Contains(login, "@") {
		return kindEmail
	}
	return kindUsername
}

const (
	kindEmail    = "email"
	kindUsername = "username"
)

// normalizeLogin normalises what a user typed into a login form. It does not
// validate beyond what normalisation needs: a login name that could not be
// registered simply matches no account (and gets the same answer and the
// same work as any unknown name).
func normalizeLogin(login string) (kind, normalized string) {
	kind, normalized, _ = normalizeLoginLegacy(login)
	return kind, normalized
}

// normalizeLoginLegacy is normalizeLogin that also returns the key an email
// login name had before email domains were processed under UTS #46 (the
// whole address case folded), when it differs: for a domain in punycode,
// or one with ß, ς or a joiner. Accounts registered under such a key keep
// their marker there; see legacyEmailKeys.
func normalizeLoginLegacy(login string) (kind, normalized, legacy string) {
	login = strings.TrimSpace(login)
	kind = loginKind(login)
	if !utf8.ValidString(login) {
		login = strings.ToValidUTF8(login, "\uFFFD")
	}
	if len(login) > maxNormBytes {
		login = login[:maxNormBytes]
		login = strings.ToValidUTF8(login, "")
	}
	n := fold(login)
	old := n
	if kind == kindEmail {
		// The domain as NormalizeEmail keys it; a login name whose domain
		// does not process matches no account either way.
		// (The '@' may have been cut off above.)
		if at := strings.LastIndexByte(login, '@'); at >= 0 {
			if d, err := normalizeDomain(login[at+1:]); err == nil {
				n = fold(login[:at]) + "@" + d
			}
		}
	}
	if len(n) > maxNormBytes {
		n = strings.ToValidUTF8(n[:maxNormBytes], "")
	}
	if len(old) > maxNormBytes {
		old = strings.ToValidUTF8(old[:maxNormBytes], "")
	}
	if kind == kindEmail && old != n {
		legacy = old
	}
	return kind, n, legacy
}

// legacyEmailKeys returns the keys that the mailbox of a valid email
// address could have been registered under before domains were processed
// under UTS #46 — the whole address case folded, as typed, with its domain
// in Unicode, and with its domain in punycode — except key itself. For an
// ASCII domain there are none; for "x@faß.de" there is "x@fass.de", for
// "x@bücher.de" there is "x@xn--bcher-kva.de".
func legacyEmailKeys(email, key string) []string {
	email = strings.TrimSpace(email)
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return nil
	}
	local, domain := email[:at], email[at+1:]
	var out []string
	add := func(k string) {
		if k != key && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	add(fold(email))
	if d, err := domainProfile.ToUnicode(domain); err == nil {
		add(fold(local + "@" + d))
	}
	if d, err := domainProfile.ToASCII(domain); err == nil {
		add(fold(local + "@" + d))
	}
	return out
}
