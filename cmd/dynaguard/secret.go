package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/dynaguard/dynaguard"
)

const rotateHowTo = `How to rotate DYNAGUARD_SECRET (comma-separated hex secrets, the current one first):

  1. dynaguard secret -rotate "$DYNAGUARD_SECRET" prints NEW,CURRENT. Deploy it to every
     instance. New sessions, nonces, tokens and sealed data use NEW; what CURRENT made
     is still accepted (sessions are moved to NEW keys as they are used). With many
     instances, deploy CURRENT,NEW everywhere first (NEW accepted, not yet used), so that
     no instance refuses what the others make with NEW during the rolling deploy.
  2. Keep CURRENT listed at least as long as what it made may still be presented: the
     longest session lifetime, reset and verification links, nonce and idempotency TTLs.
     With users.Config.Pepper, password hashes and sealed TOTP secrets made with it are
     re-made with NEW at each user's next login; an account that has not logged in
     since still needs CURRENT.
  3. Then set DYNAGUARD_SECRET=NEW alone.

If a secret leaked, replace it without keeping it: every session ends and every form
rendered before is refused; with Pepper on, accounts whose hash used it need a password
reset, and TOTP enrolments sealed under it must be redone. Reset and verification links
are not keyed by the secret and stay valid until used or expired.

After restoring the table from a backup, replace the secret the same way: the restored
table has forgotten the sessions ended and the nonces consumed after the restore point.
Links consumed after that point work again until they expire.
`

func (e *env) secret(args []string) error {
	fs := e.flags("secret")
	rotate := fs.String("rotate", "", "the current DYNAGUARD_SECRET: print a new secret followed by its first (current) secret")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	var b [dynaguard.MinSecretLen]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	fresh := hex.EncodeToString(b[:])
	if *rotate == "" {
		fmt.Fprintln(e.out, fresh)
		fmt.Fprintf(e.err, "\nA new secret (%d random bytes, hex) is above: set it as DYNAGUARD_SECRET.\n\n%s", dynaguard.MinSecretLen, rotateHowTo)
		return nil
	}
	if _, err := dynaguard.ParseKeyring(*rotate); err != nil {
		return fmt.Errorf("-rotate: %w", err)
	}
	parts := strings.Split(strings.TrimSpace(*rotate), ",")
	current := strings.TrimSpace(parts[0])
	fmt.Fprintln(e.out, fresh+","+current)
	if len(parts) > 1 {
		fmt.Fprintf(e.err, "\nDropped %d older secret(s) that followed the current one: list them again only if what they made may still be presented.\n", len(parts)-1)
	}
	fmt.Fprintf(e.err, "\nSet DYNAGUARD_SECRET to the line above on every instance.\n\n%s", rotateHowTo)
	return nil
}
