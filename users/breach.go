package users

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// BreachChecker reports how often a password has been seen in known data
// breaches (0: never). An error means the check could not be made; the
// policy then refuses or accepts the password as configured
// (Policy.BreachFailOpen).
type BreachChecker interface {
	Breached(ctx context.Context, password string) (count int, err error)
}

// RangeClient checks passwords against a k-anonymity range API in the format
// of Have I Been Pwned's Pwned Passwords: only the first 5 hex characters of
// the password's SHA-1 leave the process (GET <BaseURL>/range/<prefix>), the
// service answers with every known suffix for that prefix ("SUFFIX:COUNT"
// lines), and the match is made locally. With padding (the default), the
// response also carries decoy suffixes with count 0, so its size does not
// reveal the prefix's real bucket to an observer of the traffic.
type RangeClient struct {
	// BaseURL defaults to https://api.pwnedpasswords.com. Point it at a
	// self-hosted mirror to keep even the prefix inside your network.
	BaseURL string
	// Client defaults to an http.Client with a 3 s timeout.
	Client *http.Client
	// UserAgent is sent with each request (the public API requires one).
	// Default "dynaguard-users".
	UserAgent string
	// NoPadding turns off the Add-Padding request header.
	NoPadding bool
}

// DefaultRangeURL is the public Pwned Passwords range API.
const DefaultRangeURL = "https://api.pwnedpasswords.com"

// maxRangeBody bounds the response read: a real range response is a few
// tens of kilobytes (padded: at most about 1,000 lines of 40 bytes).
const maxRangeBody = 1 << 20

var defaultRangeHTTP = &http.Client{Timeout: 3 * time.Second}

// errRangeResponse is wrapped by every malformed-response error.
var errRangeResponse = errors.New("users: malformed range API response")

// Breached asks the range API about password.
func (c *RangeClient) Breached(ctx context.Context, password string) (int, error) {
	sum := sha1.Sum([]byte(password))
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	prefix, suffix := h[:5], h[5:]

	base := c.BaseURL
	if base == "" {
		base = DefaultRangeURL
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/range/"+prefix, nil)
	if err != nil {
		return 0, err
	}
	ua := c.UserAgent
	if ua == "" {
		ua = "dynaguard-users"
	}
	req.Header.Set("User-Agent", ua)
	if !c.NoPadding {
		req.Header.Set("Add-Padding", "true")
	}
	hc := c.Client
	if hc == nil {
		hc = defaultRangeHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return 0, fmt.Errorf("users: range API answered %s", resp.Status)
	}
	body := io.LimitReader(resp.Body, maxRangeBody+1)
	sc := bufio.NewScanner(body)
	read := 0
	found := 0
	for sc.Scan() {
		line := sc.Text()
		read += len(line) + 1
		if read > maxRangeBody {
			return 0, fmt.Errorf("%w: larger than %d bytes", errRangeResponse, maxRangeBody)
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		s, n, ok := strings.Cut(line, ":")
		if !ok || len(s) != 35 || !isHex(s) {
			return 0, fmt.Errorf("%w: %q", errRangeResponse, truncate(line, 60))
		}
		count, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil || count < 0 {
			return 0, fmt.Errorf("%w: bad count in %q", errRangeResponse, truncate(line, 60))
		}
		if strings.EqualFold(s, suffix) {
			found = count
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return found, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

var _ BreachChecker = (*RangeClient)(nil)
