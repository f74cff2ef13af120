package nonce

import (
	"net/http"
	"strings"
)

// variesOnCookie reports whether h already has a Vary field that lists
// Cookie (or "*"), so that prepare does not add a second "Vary: Cookie"
// after scs's LoadAndSave has added its own. It allocates nothing.
func variesOnCookie(h http.Header) bool {
	for _, v := range h["Vary"] {
		for v != "" {
			var f string
			f, v, _ = strings.Cut(v, ",")
			f = strings.TrimSpace(f)
			if f == "*" || strings.EqualFold(f, "Cookie") {
				return true
			}
		}
	}
	return false
}
