package users

import (
	"strings"
	"unicode"

	"github.com/mtibben/confusables"
	"golang.org/x/net/idna"
)

// invisible reports whether r is a code point that renders as nothing, or
// changes only how its neighbours render, so that two identifiers that
// differ by it look the same: the Default_Ignorable_Code_Point set of
// UAX #44 (format characters such as U+200B ZERO WIDTH SPACE, the
// combining grapheme joiner U+034F, the Hangul fillers), the variation
// selectors (U+FE00–FE0F, U+180B–180F, U+E0100–E01EF) and the bidi
// controls (U+202A–202E, U+2066–2069, U+200E, U+200F, U+061C). Such a code
// point in a username or in the local part of an email address is refused:
// NFKC keeps most of them, so without this "alice" followed by U+034F
// would be a second "alice".
func invisible(r rune) bool {
	return unicode.In(r, unicode.Cf, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector,
		unicode.Bidi_Control, unicode.Join_Control)
}

// domainProfile processes the domain of an email address under UTS #46
// (IDNA 2008 with the UTS #46 mapping), non-transitional: case and width
// are folded and the punycode and Unicode forms of one name are the same
// name, but "faß.de" and "fass.de" — two domains that two different
// people can own — stay two domains. Plain case folding would merge them
// (ß folds to "ss"), so that whoever holds one could take over the
// accounts of the other.
var domainProfile = idna.New(idna.MapForLookup(), idna.Transitional(false), idna.BidiRule())

// normalizeDomain returns the form an email domain is unique under: its
// UTS #46 Unicode form (lower case, NFC, punycode decoded).
func normalizeDomain(domain string) (string, error) {
	d, err := domainProfile.ToUnicode(domain)
	if err != nil || d == "" {
		return "", invalidEmail("the domain after @ is not valid")
	}
	return d, nil
}

// usernameSkeleton returns the confusable skeleton of a normalised
// username (UTS #39 section 4, with the Unicode confusables data): two
// usernames with the same skeleton look alike — "аррӏе" in Cyrillic and
// "apple" in Latin, "alıce" and "alice", "rn" and "m" — and so cannot both
// be registered. The skeleton is folded again, because usernames are
// compared case-insensitively: "0" and "O" have the skeleton "O", which
// must meet "o". One mapping is added to UTS #39's: 'i' becomes 'l'.
// Usernames are unique case-insensitively but displayed as typed, so a
// capital I must meet an 'l' even after folding made it an 'i' — "maIl"
// (the account "mail") and "mall" look the same in most sans-serif fonts —
// and so does the Cyrillic palochka "ӏ", whose UTS #39 skeleton is 'i'.
func usernameSkeleton(key string) string {
	return strings.ReplaceAll(fold(confusables.Skeleton(key)), "i", "l")
}
