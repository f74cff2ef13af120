package dynaguard_test

import (
	"os"
	"strings"
	"testing"

	"github.com/dynaguard/dynaguard"
)

// docs/EVENTS.md has one row per name of the catalogue, with its outcome
// and severity.
func TestEventsDocumented(t *testing.T) {
	b, err := os.ReadFile("docs/EVENTS.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "| `") {
			name := strings.Trim(strings.SplitN(line, "|", 3)[1], " `")
			rows[name] = line
		}
	}
	levels := map[string]string{"DEBUG": "Debug", "INFO": "Info", "WARN": "Warn", "ERROR": "Error"}
	for _, n := range dynaguard.EventNames() {
		row, ok := rows[n.String()]
		if !ok {
			t.Errorf("docs/EVENTS.md has no row for %s", n)
			continue
		}
		cells := strings.Split(row, "|")
		if got, want := strings.TrimSpace(cells[2]), n.Outcome().String(); got != want {
			t.Errorf("%s: outcome %q in the docs, %q in the code", n, got, want)
		}
		if got, want := strings.TrimSpace(cells[3]), levels[n.Level().String()]; got != want {
			t.Errorf("%s: severity %q in the docs, %q in the code", n, got, want)
		}
	}
}
