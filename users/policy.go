package users

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	zxcvbn "github.com/ccojocar/zxcvbn-go"
	"github.com/ccojocar/zxcvbn-go/frequency"
	"github.com/ccojocar/zxcvbn-go/match"
	"github.com/ccojocar/zxcvbn-go/matching"
	"golang.org/x/text/unicode/norm"
)

// Policy is the password policy of NIST SP 800-63B and OWASP ASVS 5.0: a
// minimum length, a generous maximum, no composition rules (no "one digit,
// one symbol"), and a check against common, guessable and breached
// passwords and against the user's own identifiers. It applies to new
// passwords (Create, ChangePassword); logging in never applies it.
type Policy struct {
	// MinLength is the minimum length in characters (Unicode code points
	// after NFKC). Default 8, NIST's minimum when the password is one of two
	// factors; use 15 when the password is the only factor.
	MinLength int
	// MaxLength is the maximum length in characters. Default 128; NIST asks
	// that at least 64 be accepted, so a smaller value is raised to 64.
	MaxLength int
	// MinScore is the lowest acceptable zxcvbn score (0–4). Default 1:
	// refuse passwords an attacker would guess in under about a million
	// tries (every entry of common-password lists scores 0). -1 turns the
	// estimator off (the common-password list and the other rules remain).
	MinScore int
	// Breach, when set, is asked whether the password appears in known
	// breaches (for example a [RangeClient] for the Pwned Passwords API).
	Breach BreachChecker
	// BreachFailOpen accepts the password when Breach fails (timeout,
	// outage). By default the password is refused with
	// ErrBreachCheckUnavailable, and the caller can ask the user to retry.
	BreachFailOpen bool
}

func (p Policy) withDefaults() Policy {
	if p.MinLength <= 0 {
		p.MinLength = 8
	}
	if p.MaxLength == 0 {
		p.MaxLength = 128
	}
	if p.MaxLength < 64 {
		p.MaxLength = 64
	}
	if p.MaxLength < p.MinLength {
		p.MaxLength = p.MinLength
	}
	if p.MinScore == 0 {
		p.MinScore = 1
	}
	if p.MinScore > 4 {
		p.MinScore = 4
	}
	return p
}

// Rule names a password rule.
type Rule string

// The password rules. A *PolicyError names the one that failed.
const (
	RuleTooShort   Rule = "too-short"        // fewer than MinLength characters
	RuleTooLong    Rule = "too-long"         // more than MaxLength characters (or 72 bytes for bcrypt)
	RuleInvalid    Rule = "invalid-text"     // not valid UTF-8, or contains control characters
	RuleCommon     Rule = "common"           // on the list of the most common passwords
	RuleGuessable  Rule = "guessable"        // the strength estimator scores it below MinScore
	RuleContext    Rule = "contains-account" // built from the user's own email address or username
	RuleBreached   Rule = "breached"         // found in known breaches
	RuleUnverified Rule = "breach-check-unavailable"
)

// ErrPasswordPolicy matches every *PolicyError.
var ErrPasswordPolicy = errors.New("users: password does not meet the policy")

// ErrBreachCheckUnavailable is returned (wrapped in a *PolicyError with
// RuleUnverified) when the breach check failed and the policy fails closed.
// It is a temporary condition: the same password may be accepted later.
var ErrBreachCheckUnavailable = errors.New("users: the breach check is unavailable")

// PolicyError says which password rule failed. Its message is fit to show
// to the user.
type PolicyError struct {
	Rule  Rule
	Limit int  // the length limit for RuleTooShort and RuleTooLong
	Bytes bool // Limit counts bytes, not characters (bcrypt's 72)
	Count int  // for RuleBreached: how often the breach service has seen it
	Err   error
}

func (e *PolicyError) Error() string {
	switch e.Rule {
	case RuleTooShort:
		return fmt.Sprintf("the password must have at least %d characters", e.Limit)
	case RuleTooLong:
		if e.Bytes {
			return fmt.Sprintf("the password must not be longer than %d bytes", e.Limit)
		}
		return fmt.Sprintf("the password must not have more than %d characters", e.Limit)
	case RuleInvalid:
		return "the password contains characters that cannot be used"
	case RuleCommon:
		return "this is one of the most common passwords; choose another"
	case RuleGuessable:
		return "this password is too easy to guess; a longer phrase of unrelated words works well"
	case RuleContext:
		return "the password must not be built from your email address or username"
	case RuleBreached:
		return "this password has appeared in a data breach; choose another"
	case RuleUnverified:
		return "the password could not be checked against known breaches right now; try again shortly"
	}
	return "the password does not meet the policy"
}

// Is makes errors.Is(err, ErrPasswordPolicy) true, and errors.Is(err,
// ErrBreachCheckUnavailable) for RuleUnverified.
func (e *PolicyError) Is(target error) bool {
	return target == ErrPasswordPolicy || (target == ErrBreachCheckUnavailable && e.Rule == RuleUnverified)
}

// Unwrap returns the breach checker's error, if any.
func (e *PolicyError) Unwrap() error { return e.Err }

// maxEstimatorRunes bounds the input of the strength estimator: its cost
// grows with the square of the length, and a password longer than this is
// judged by its first maxEstimatorRunes characters.
const maxEstimatorRunes = 64

// CheckPassword applies p to password for an account with the given email
// address and username (either may be empty). It returns nil or a
// *PolicyError. Only the breach check, when configured, leaves the process
// — and then only a 5-character hash prefix.
func (p Policy) CheckPassword(ctx context.Context, password, email, username string) error {
	p = p.withDefaults()
	if len(password) > 16*p.MaxLength {
		// Longer than NFKC could bring under MaxLength: refuse before
		// spending time normalising it.
		return &PolicyError{Rule: RuleTooLong, Limit: p.MaxLength}
	}
	if !utf8.ValidString(password) {
		return &PolicyError{Rule: RuleInvalid}
	}
	pw := norm.NFKC.String(password)
	for _, r := range pw {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return &PolicyError{Rule: RuleInvalid}
		}
	}
	n := utf8.RuneCountInString(pw)
	if n < p.MinLength {
		return &PolicyError{Rule: RuleTooShort, Limit: p.MinLength}
	}
	if n > p.MaxLength {
		return &PolicyError{Rule: RuleTooLong, Limit: p.MaxLength}
	}
	folded := fold(pw)
	plain := unleet(folded)
	if commonPassword(folded) || commonPassword(plain) || commonPassword(strings.TrimRightFunc(folded, unicode.IsDigit)) {
		return &PolicyError{Rule: RuleCommon}
	}
	words := contextWords(email, username)
	for _, cand := range []string{folded, plain} {
		if builtFrom(cand, words, p.MinLength) {
			return &PolicyError{Rule: RuleContext}
		}
	}
	if p.MinScore > 0 && score(pw, words) < p.MinScore {
		return &PolicyError{Rule: RuleGuessable}
	}
	if p.Breach != nil {
		count, err := p.Breach.Breached(ctx, pw)
		switch {
		case err != nil && !p.BreachFailOpen:
			return &PolicyError{Rule: RuleUnverified, Err: fmt.Errorf("%w: %w", ErrBreachCheckUnavailable, err)}
		case err == nil && count > 0:
			return &PolicyError{Rule: RuleBreached, Count: count}
		}
	}
	return nil
}

var (
	commonOnce sync.Once
	common     map[string]struct{}
)

// commonPassword reports whether s is on zxcvbn's list of common passwords
// (about 30,000 entries from leaked password sets, all lowercase).
func commonPassword(s string) bool {
	commonOnce.Do(func() {
		list := frequency.Lists["Passwords"].List
		common = make(map[string]struct{}, len(list))
		for _, w := range list {
			common[strings.ToLower(w)] = struct{}{}
		}
	})
	_, ok := common[s]
	return ok
}

// leet maps the usual character substitutions to the letter they stand for.
// zxcvbn's own l33t matcher enumerates every combination of substitutions,
// which takes seconds on a 16-character input made of substitutable
// characters — a denial of service on a sign-up form — so it is disabled and
// this single linear mapping is used instead.
var leet = strings.NewReplacer(
	"4", "a", "@", "a", "8", "b", "(", "c", "{", "c", "[", "c", "<", "c", "3", "e",
	"6", "g", "9", "g", "1", "i", "!", "i", "|", "i", "0", "o", "$", "s", "5", "s",
	"7", "t", "+", "t", "%", "x", "2", "z",
)

func unleet(s string) string { return leet.Replace(s) }

// contextWords returns the folded identifiers of the account that a
// password must not be built from: the username, the email address, its
// local part and the local part's pieces (john.smith → john, smith) of at
// least 3 characters.
func contextWords(email, username string) []string {
	var words []string
	add := func(w string) {
		w = fold(strings.TrimSpace(w))
		if utf8.RuneCountInString(w) >= 3 {
			words = append(words, w)
		}
	}
	add(username)
	if email != "" {
		add(email)
		local, _, _ := strings.Cut(email, "@")
		add(local)
		for _, piece := range strings.FieldsFunc(local, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
			if piece != local {
				add(piece)
			}
		}
	}
	return words
}

// builtFrom reports whether pw, with every occurrence of the context words
// removed, has fewer than minLen characters left: "alice2024!" for the
// user alice is built from the username, a long phrase that happens to
// contain it is not.
func builtFrom(pw string, words []string, minLen int) bool {
	found := false
	rest := pw
	for _, w := range words {
		if strings.Contains(rest, w) {
			found = true
			rest = strings.ReplaceAll(rest, w, "")
		}
	}
	return found && utf8.RuneCountInString(rest) < minLen
}

// skipLeet excludes zxcvbn's l33t matcher (see leet).
func skipLeet(m match.Matcher) bool { return m.ID == matching.L33TMatcherName }

// score returns the zxcvbn score (0–4) of pw — the lower of the password as
// typed and with substitutions undone — with the account's identifiers as
// user inputs. A panic in the estimator counts as score 0: the password is
// refused rather than accepted unchecked.
func score(pw string, words []string) (s int) {
	defer func() {
		if recover() != nil {
			s = 0
		}
	}()
	if r := []rune(pw); len(r) > maxEstimatorRunes {
		pw = string(r[:maxEstimatorRunes])
	}
	a := zxcvbn.PasswordStrength(pw, words, skipLeet).Score
	if u := unleet(pw); u != pw {
		a = min(a, zxcvbn.PasswordStrength(u, words, skipLeet).Score)
	}
	return a
}
