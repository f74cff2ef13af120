package users

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"

	"golang.org/x/text/unicode/norm"

	"github.com/dynaguard/dynaguard"
)

// input returns the bytes a hasher sees for password: the password in NFKC
// (as typed for RawInput hashers), replaced by base64(HMAC-SHA256(pepper,
// password)) when the hash is peppered. The HMAC is encoded so that every
// hasher gets printable input of a fixed 44 bytes (bcrypt's limit never
// applies, and no implementation can stop at a NUL byte). ok is false when
// the pepper key is no longer in the keyring.
func (s *Users) input(password string, h Hasher, pepperID string) (in []byte, ok bool) {
	if r, raw := h.(RawInput); !raw || !r.RawInput() {
		password = norm.NFKC.String(password)
	}
	if pepperID == "" {
		return []byte(password), true
	}
	for _, k := range s.keys.Keys(dynaguard.PurposePasswordPepper) {
		if k.ID == pepperID {
			m := hmac.New(sha256.New, k.Secret)
			m.Write([]byte(password))
			return []byte(base64.StdEncoding.EncodeToString(m.Sum(nil))), true
		}
	}
	return nil, false
}

// currentPepper returns the ID of the pepper new hashes get ("" for none).
func (s *Users) currentPepper() string {
	if !s.pepper {
		return ""
	}
	return s.keys.Key(dynaguard.PurposePasswordPepper).ID
}

// hashPassword hashes a new password with the current hasher and pepper,
// in a hashing slot.
func (s *Users) hashPassword(ctx context.Context, password string) (hash, pepperID string, err error) {
	release, err := s.limiter.acquire(ctx)
	if err != nil {
		return "", "", err
	}
	defer release()
	return s.hashLocked(password)
}

// hashLocked is hashPassword for a caller that holds a slot.
func (s *Users) hashLocked(password string) (hash, pepperID string, err error) {
	pepperID = s.currentPepper()
	in, _ := s.input(password, s.hasher, pepperID)
	hash, err = s.hasher.Hash(in)
	return hash, pepperID, err
}

// hasherFor returns the configured hasher that made encoded, and whether
// it is the current one.
func (s *Users) hasherFor(encoded string) (h Hasher, current, found bool) {
	if s.hasher.Identify(encoded) {
		return s.hasher, true, true
	}
	for _, h := range s.legacy {
		if h.Identify(encoded) {
			return h, false, true
		}
	}
	return nil, false, false
}

// verifyLocked checks password against the user's hash (u == nil: against
// the dummy hash, for an unknown account). It always runs exactly one hash
// verification — the dummy one when the stored hash cannot be used — so
// that every failure costs the same. The caller holds a hashing slot.
//
// A stored hash over the cost caps (or whose parameters do not parse) is
// refused before any hasher sees it, and nothing is verified: it is logged
// and fails at once (see checkHashCost).
func (s *Users) verifyLocked(password string, u *User) (ok, rehash bool) {
	if u != nil && u.hash != "" {
		if err := checkHashCost(u.hash); err != nil {
			s.log.Error("users: stored password hash refused without verification; the account needs a password reset", "user", u.ID, "err", err)
			return false, false
		}
	}
	if u != nil {
		if h, current, found := s.hasherFor(u.hash); found {
			if in, keyed := s.input(password, h, u.pepperID); keyed {
				match, err := h.Verify(in, u.hash)
				if err != nil {
					s.log.Error("users: stored password hash cannot be verified", "user", u.ID, "err", err)
				}
				return match, match && (!current || s.hasher.NeedsRehash(u.hash) || u.pepperID != s.currentPepper())
			}
			s.log.Error("users: the pepper of this password hash is no longer in the keyring; the account needs a password reset", "user", u.ID, "pepper", u.pepperID)
		} else if u.hash != "" {
			s.log.Error("users: no configured hasher recognises this password hash", "user", u.ID)
		}
	}
	in, _ := s.input(password, s.hasher, s.currentPepper())
	_, _ = s.hasher.Verify(in, s.dummyHash)
	return false, false
}
