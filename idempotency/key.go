package idempotency

import (
	"errors"
	"strings"
)

// HeaderKey is the request header that carries the idempotency key, and
// HeaderReplayed the response header that marks a replayed response.
const (
	HeaderKey      = "Idempotency-Key"
	HeaderReplayed = "Idempotent-Replayed"
)

// MaxKeyLen is the longest idempotency key accepted, in characters.
const MaxKeyLen = 255

// ErrMalformedKey is returned by [ParseKey] for a header value that is not a
// valid idempotency key.
var ErrMalformedKey = errors.New("idempotency: malformed Idempotency-Key")

// ParseKey parses the value of an Idempotency-Key header and returns the key.
//
// It accepts the form the IETF draft specifies, a Structured Field String
// (RFC 9651: "..." with \" and \\ as the only escapes), and, for the many
// clients that send the key without quotes, a bare value. Both forms of the
// same key yield the same key, so a client may switch between them on a
// retry. The key is 1 to [MaxKeyLen] printable ASCII characters (a quoted
// key may contain spaces). A bare key may not contain space, '"', '\', ','
// or ';': each would make the value mean something else as a structured
// field (a string, an escape, a list, parameters). Surrounding spaces and
// tabs are ignored; anything after the closing quote, including
// structured-field parameters, is rejected rather than silently dropped.
func ParseKey(v string) (string, error) {
	v = strings.Trim(v, " \t")
	if v == "" {
		return "", ErrMalformedKey
	}
	if v[0] != '"' {
		if len(v) > MaxKeyLen {
			return "", ErrMalformedKey
		}
		for i := 0; i < len(v); i++ {
			if c := v[i]; c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == ',' || c == ';' {
				return "", ErrMalformedKey
			}
		}
		return v, nil
	}
	// A quoted key can hold at most MaxKeyLen characters, each escaped at
	// worst, so reject longer values before doing any work on them.
	if len(v) > 2*MaxKeyLen+2 {
		return "", ErrMalformedKey
	}
	var b []byte // allocated only when the key contains an escape
	start := 1
	for i := 1; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\':
			if i+1 >= len(v) || (v[i+1] != '"' && v[i+1] != '\\') {
				return "", ErrMalformedKey
			}
			if b == nil {
				b = make([]byte, 0, len(v))
			}
			b = append(b, v[start:i]...)
			i++
			start = i
		case c == '"':
			if i != len(v)-1 {
				return "", ErrMalformedKey
			}
			var key string
			if b == nil {
				key = v[1:i]
			} else {
				key = string(append(b, v[start:i]...))
			}
			if key == "" || len(key) > MaxKeyLen {
				return "", ErrMalformedKey
			}
			return key, nil
		case c < 0x20 || c >= 0x7f:
			return "", ErrMalformedKey
		}
	}
	return "", ErrMalformedKey // no closing quote
}

// FormatKey renders key as a Structured Field String, the form the IETF
// draft specifies for the Idempotency-Key header. It does not validate key;
// use [ParseKey] on the result to check it.
func FormatKey(key string) string {
	var b strings.Builder
	b.Grow(len(key) + 2)
	b.WriteByte('"')
	for i := 0; i < len(key); i++ {
		if key[i] == '"' || key[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(key[i])
	}
	b.WriteByte('"')
	return b.String()
}
