package app

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The input rules of transfers, without DynamoDB (the integration tests at
// the repository root run the app end to end against DynamoDB Local).

func TestParseDecimalAmount(t *testing.T) {
	for in, want := range map[string]int64{"12": 1200, "12.5": 1250, "12.50": 1250, " 0.01 ": 1, "1000000": 100000000} {
		if got, msg := parseDecimalAmount(in); got != want || msg != "" {
			t.Errorf("parseDecimalAmount(%q) = %d %q, want %d", in, got, msg, want)
		}
	}
	for _, in := range []string{"", "0", "0.00", "-1", "1.234", "1.", ".5", "1e3", "12,50", "1000000.01", "99999999", "１２", "0x10"} {
		if got, msg := parseDecimalAmount(in); msg == "" {
			t.Errorf("parseDecimalAmount(%q) = %d, want a refusal", in, got)
		}
	}
}

func TestDecodeTransfer(t *testing.T) {
	ok := map[string]validTransfer{
		`{"to":"bob","amount":1250}`:          {to: "bob", amount: 1250},
		` {"amount": 1, "to": "  Ann Lee "} `: {to: "Ann Lee", amount: 1},
		`{"to":"bob","amount":100000000}`:     {to: "bob", amount: 100000000},
	}
	for body, want := range ok {
		got, msg := decodeTransfer(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)))
		if msg != "" || got != want {
			t.Errorf("%s: %+v %q, want %+v", body, got, msg, want)
		}
	}
	for _, body := range []string{
		``, `null`, `[]`, `{}`, `{"to":"bob"}`, `{"amount":1}`,
		`{"to":"bob","amount":1,"x":1}`, `{"to":"bob","amount":1}{}`, `{"to":"bob","amount":1} x`,
		`{"to":"bob","amount":1.0}`, `{"to":"bob","amount":1e2}`, `{"to":"bob","amount":"1"}`, `{"to":"bob","amount":01}`,
		`{"to":"bob","amount":0}`, `{"to":"bob","amount":-1}`, `{"to":"bob","amount":100000001}`,
		`{"to":"","amount":1}`, `{"to":5,"amount":1}`, `{"to":"a\u0000b","amount":1}`,
		`{"to":"` + strings.Repeat("x", 65) + `","amount":1}`, `{"to":"bob","amount":1` + strings.Repeat(" ", 5000) + `}`,
	} {
		if got, msg := decodeTransfer(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))); msg == "" {
			t.Errorf("%.60q accepted as %+v", body, got)
		}
	}
}

// Ambiguous JSON is refused, each with a message that names the problem:
// a reader with other rules (v1 takes the last duplicate, folds case and
// replaces bad UTF-8) must never see a different transfer.
func TestDecodeTransferStrict(t *testing.T) {
	for _, tc := range []struct{ name, body, msg string }{
		{"duplicate member", `{"to":"bob","amount":1,"amount":100000}`, `"amount" appears more than once`},
		{"duplicate after escape", `{"to":"bob","\u0074o":"eve","amount":1}`, `"to" appears more than once`},
		{"name in another case", `{"To":"bob","amount":1}`, `Unknown member "To"`},
		{"upper-case name", `{"to":"bob","AMOUNT":1}`, `Unknown member "AMOUNT"`},
		{"unknown member", `{"to":"bob","amount":1,"memo":"x"}`, `Unknown member "memo"`},
		{"invalid UTF-8", "{\"to\":\"b\xffob\",\"amount\":1}", "not valid UTF-8"},
		{"unpaired surrogate", `{"to":"b\ud800ob","amount":1}`, "UTF-8"},
		{"wrong type", `{"to":5,"amount":1}`, `"to" has the wrong type`},
		{"trailing data", `{"to":"bob","amount":1} {}`, "exactly one valid JSON object"},
	} {
		_, msg := decodeTransfer(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body)))
		if !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: %q, want a refusal containing %q", tc.name, msg, tc.msg)
		}
	}
}

func TestTransferIDIsPerUserAndKey(t *testing.T) {
	a, b, c := transferID("u1", "k"), transferID("u1", "k2"), transferID("u2", "k")
	if a != transferID("u1", "k") || a == b || a == c || len(a) != 16 {
		t.Fatalf("transferID: %q %q %q", a, b, c)
	}
}

func TestDevice(t *testing.T) {
	for ua, want := range map[string]string{
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36":                   "Chrome on Linux",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5 Mobile/15E148 Safari/604.1": "Safari on iPhone",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0":                                    "Firefox on Windows",
		"curl/8.5.0": "curl",
		"":           "Unknown device",
	} {
		if got := device(ua); got != want {
			t.Errorf("device(%q) = %q, want %q", ua, got, want)
		}
	}
}

func TestFormatAmount(t *testing.T) {
	for in, want := range map[int64]string{0: "0.00", 5: "0.05", 1250: "12.50", 100000000: "1000000.00", -130: "-1.30"} {
		if got := formatAmount(in); got != want {
			t.Errorf("formatAmount(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestContentSecurityPolicyAllowsNoInlineScript(t *testing.T) {
	csp, err := contentSecurityPolicy()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe") || !strings.Contains(csp, "'sha256-") {
		t.Fatalf("CSP %q", csp)
	}
}

func TestTemplatesParse(t *testing.T) {
	pages, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"home", "register", "login", "login_totp", "logout", "account", "password", "email",
		"sessions", "totp", "reset", "reset_confirm", "verify", "transfers", "transfer_new", "mail"} {
		if pages[p] == nil {
			t.Errorf("no template for page %s", p)
		}
	}
}
