package users

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// PasskeyConfig configures passkeys (WebAuthn discoverable credentials):
// registration, passkey sign-in, a passkey as the second step of a
// password login, and a passkey assertion as a step-up Proof. Passkeys are
// off unless RPID and Origins are set; every passkey operation then fails
// with ErrPasskeysDisabled.
//
// User verification (a PIN or a biometric on the authenticator) is always
// required, at registration and at every assertion: a user-verified passkey
// is two factors at once (something held, something known or been), which
// is what lets it replace a password and a TOTP code. A response without
// the UV flag is refused. There is no setting to lower this.
type PasskeyConfig struct {
	// RPID is the WebAuthn relying party ID: the site's registrable domain
	// or a host name ("example.com"), without scheme or port. Credentials
	// are bound to it by the authenticator; it cannot be changed later
	// without every user registering their passkeys again.
	RPID string
	// RPName is the name the authenticator shows ("Example"). Default RPID.
	RPName string
	// Origins are the exact origins a response may come from
	// ("https://example.com"); each must be RPID or a subdomain of it. A
	// response from any other origin — a phishing site relaying the
	// ceremony — is refused.
	Origins []string
	// ChallengeTTL is how long a challenge stays valid after it was issued.
	// Default 5 minutes.
	ChallengeTTL time.Duration
	// Timeout is the ceremony timeout the browser is given (the options'
	// "timeout"). Default ChallengeTTL; never longer than it.
	Timeout time.Duration
	// MaxPerAccount bounds the passkeys of one account (the account item
	// lists them, and account deletion removes them in one transaction).
	// Default 10; at most 50.
	MaxPerAccount int
	// CookieName names the short-lived browser-binding cookie that a
	// challenge is bound to (HttpOnly, SameSite=Strict, Path=/, living
	// ChallengeTTL). Default "__Host-dg-webauthn", or "dg-webauthn" with
	// Insecure.
	CookieName string
	// Insecure drops the cookie's Secure attribute and __Host- prefix, for
	// plain-HTTP development on localhost only.
	Insecure bool
}

const (
	defaultChallengeTTL = 5 * time.Minute
	defaultMaxPasskeys  = 10
	maxMaxPasskeys      = 50
	// maxPasskeyResponse bounds the JSON of a WebAuthn response that is
	// parsed at all: real ones are a few hundred bytes to a few KB
	// (attestation certificates); anything larger is refused unread.
	maxPasskeyResponse = 64 << 10
	// maxPasskeyName bounds a passkey's label, in bytes.
	maxPasskeyName = 64
)

func (c PasskeyConfig) enabled() bool { return c.RPID != "" && len(c.Origins) > 0 }

func (c PasskeyConfig) withDefaults() PasskeyConfig {
	c.Origins = append([]string(nil), c.Origins...)
	if c.RPName == "" {
		c.RPName = c.RPID
	}
	if c.ChallengeTTL <= 0 {
		c.ChallengeTTL = defaultChallengeTTL
	}
	if c.Timeout <= 0 || c.Timeout > c.ChallengeTTL {
		c.Timeout = c.ChallengeTTL
	}
	if c.MaxPerAccount <= 0 {
		c.MaxPerAccount = defaultMaxPasskeys
	}
	if c.CookieName == "" {
		c.CookieName = "__Host-dg-webauthn"
		if c.Insecure {
			c.CookieName = "dg-webauthn"
		}
	}
	return c
}

func (c PasskeyConfig) validate() error {
	if c.RPID == "" && len(c.Origins) == 0 {
		return nil // off
	}
	if c.RPID == "" || len(c.Origins) == 0 {
		return errors.New("users: Passkeys needs both RPID and Origins (or neither, to leave passkeys off)")
	}
	if strings.ContainsAny(c.RPID, ":/ ") || strings.ToLower(c.RPID) != c.RPID {
		return fmt.Errorf("users: Passkeys.RPID %q must be a lower-case host name without scheme or port", c.RPID)
	}
	for _, o := range c.Origins {
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("users: Passkeys.Origins: %q is not an origin (scheme://host[:port])", o)
		}
		h := u.Hostname()
		if h != c.RPID && !strings.HasSuffix(h, "."+c.RPID) {
			return fmt.Errorf("users: Passkeys.Origins: %q is not RPID %q or a subdomain of it", o, c.RPID)
		}
		if u.Scheme != "https" && !(u.Scheme == "http" && h == "localhost") {
			return fmt.Errorf("users: Passkeys.Origins: %q must be https (http only for localhost)", o)
		}
	}
	if c.MaxPerAccount > maxMaxPasskeys {
		return fmt.Errorf("users: Passkeys.MaxPerAccount is at most %d", maxMaxPasskeys)
	}
	if c.Insecure && (strings.HasPrefix(c.CookieName, "__Host-") || strings.HasPrefix(c.CookieName, "__Secure-")) {
		return errors.New("users: Passkeys.CookieName " + c.CookieName + " needs the Secure attribute, which Insecure drops")
	}
	if c.CookieName != "" && !validCookieName(c.CookieName) {
		return errors.New("users: Passkeys.CookieName is not a valid cookie name")
	}
	return nil
}

// Passkey is one registered passkey of an account, as Passkeys lists it.
type Passkey struct {
	// ID names the passkey for RenamePasskey and RemovePasskey. It is the
	// keyed hash under which the credential is stored, not the
	// authenticator's credential ID.
	ID string
	// Name is the user's label for it ("" until named).
	Name string
	// AAGUID identifies the authenticator's model (all zero when the
	// authenticator does not say), in the 8-4-4-4-12 hex form. It is
	// self-reported: registration asks for no attestation ("none"), so
	// nothing vouches for it — show it as a hint ("looks like a YubiKey"),
	// never base a decision on it.
	AAGUID string
	// Transports are what the browser reported it can reach the
	// authenticator through ("internal", "hybrid", "usb", ...).
	Transports []string
	// BackupEligible and BackedUp are the authenticator's BE and BS flags
	// as of the last use: a synced passkey (in a password manager or a
	// platform account) is eligible, and usually backed up.
	BackupEligible, BackedUp bool
	Created                  time.Time
	// LastUsed is the last accepted assertion (zero: never used).
	LastUsed time.Time
	// Cloned: an assertion came with a signature counter that did not
	// advance, which a genuine authenticator never sends — its key was
	// probably copied. A cloned passkey is refused from then on; remove it.
	Cloned bool
}

// Passkey errors. Every refused WebAuthn response matches
// ErrInvalidPasskey, whatever the cause (a wrong origin or RP ID, a bad
// signature, a missing user verification, an unknown, removed or cloned
// credential, a challenge that is wrong, expired, already used, or issued
// for another purpose, session or browser), so that the answer tells an
// attacker nothing; the cause is in the security event (passkey.refused
// and its reason) and the log.
var (
	// ErrPasskeysDisabled: Config.Passkeys has no RPID and Origins.
	ErrPasskeysDisabled = errors.New("users: passkeys are not configured")
	// ErrInvalidPasskey: the WebAuthn response was refused.
	ErrInvalidPasskey = errors.New("users: passkey not accepted")
	// ErrPasskeyCloned matches a refusal because the credential is marked
	// cloned (now or earlier); it also matches ErrInvalidPasskey.
	ErrPasskeyCloned = errors.New("users: passkey refused: its signature counter went back (a copied key)")
	// ErrPasskeyTaken: the credential is already registered (to this
	// account or another). It also matches ErrInvalidPasskey.
	ErrPasskeyTaken = errors.New("users: passkey already registered")
	// ErrTooManyPasskeys: the account has PasskeyConfig.MaxPerAccount
	// passkeys already.
	ErrTooManyPasskeys = errors.New("users: too many passkeys on this account")
	// ErrPasskeyNotFound: no passkey with this ID on the account.
	ErrPasskeyNotFound = errors.New("users: no such passkey")
	// ErrNoBrowserBinding: a passkey ceremony was started or finished
	// outside LoadUser (or RequireUser), which is what lets this package
	// read and set the cookie a challenge is bound to. A programming
	// error: wrap the handler.
	ErrNoBrowserBinding = errors.New("users: passkey ceremonies need the request to pass through LoadUser")
)

// passkeyRefused is a refused response: it matches ErrInvalidPasskey, and
// reason is the event's word for the cause.
type passkeyRefused struct {
	reason string
	cause  error // an extra sentinel (ErrPasskeyCloned, ErrPasskeyTaken) or nil
}

func (e *passkeyRefused) Error() string {
	if e.cause != nil {
		return e.cause.Error()
	}
	return ErrInvalidPasskey.Error() + " (" + e.reason + ")"
}

func (e *passkeyRefused) Is(target error) bool {
	return target == ErrInvalidPasskey || (e.cause != nil && target == e.cause)
}

func refuse(reason string) error { return &passkeyRefused{reason: reason} }
