package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/budget"
	"github.com/tollgate/tollgate/pkg/keys"
)

// TestCostReportJSONGolden pins GET /admin/reports/cost's JSON: amounts
// with six fixed decimals however small (one micro-dollar is 0.000001,
// never 1e-06) or large, and rows grouped by key carrying the key's name
// (null for an id no key has any more). Key ids are random, so they are
// replaced by their names' placeholders before the comparison; each model
// has one key, so grouping by model first fixes the order.
func TestCostReportJSONGolden(t *testing.T) {
	s := newStack(t, stackOptions{budgets: true})
	alpha, _, err := s.keys.Create(t.Context(), keys.New{Name: "alpha team"})
	if err != nil {
		t.Fatal(err)
	}
	beta, _, err := s.keys.Create(t.Context(), keys.New{Name: `beta "quoted" <team>`})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)
	for i, e := range []budget.Entry{
		{KeyID: alpha.ID, Model: "sim-large", Cost: 1},
		{KeyID: alpha.ID, Model: "sim-large", Cost: 9, Saved: 1},
		{KeyID: beta.ID, Model: "sim-small", Cost: 1_234_567, Saved: 2_500_000, PromptTokens: 10, CompletionTokens: 5},
		{KeyID: "key_gone", Model: "sim-embed", Cost: 100},
		{KeyID: "key_free", Model: "sim-free"},
	} {
		e.Time, e.RequestID, e.Status, e.Attempts = at.Add(time.Duration(i)*time.Second), fmt.Sprintf("req-%d", i), 200, 1
		s.ledger.Accounts.Record(e)
	}
	ids := strings.NewReplacer(alpha.ID, "KEY_ALPHA", beta.ID, "KEY_BETA")

	tests := []struct {
		name    string
		groupBy string
	}{
		{"by model and key", "model,key"},
		{"by model", "model"},
		{"totals only", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, raw := adminDo(t, s, "GET", "/admin/reports/cost?from=2026-11-01&to=2026-11-03&group_by="+tt.groupBy, "")
			if status != 200 {
				t.Fatalf("%d %s", status, raw)
			}
			if strings.Contains(raw, "e-") || strings.Contains(raw, "e+") {
				t.Errorf("an amount in exponent form: %s", raw)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, []byte(ids.Replace(raw)), "", "  "); err != nil {
				t.Fatalf("%v: %s", err, raw)
			}
			pretty.WriteByte('\n')
			path := filepath.Join("testdata", "cost_report", strings.ReplaceAll(tt.name, " ", "_")+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if got := pretty.String(); got != string(want) {
				t.Errorf("%s:\ngot\n%s\nwant\n%s", path, got, want)
			}
		})
	}
}
