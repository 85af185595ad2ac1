package budget

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/budget")

// fixtureRow is a request of the report fixture.
type fixtureRow struct {
	at                         string // RFC 3339
	key, route, model, prov    string
	cache                      string
	prompt, completion, status int
	cost, saved                llm.Micros
}

// reportFixture spans three New York days, with rows on both sides of
// local midnight (which is 04:00 or 05:00 UTC).
var reportFixture = []fixtureRow{
	{"2026-03-09T14:00:00Z", "key_a", "chat", "gpt-4o-mini", "openai", "miss", 120, 80, 200, 1_250, 0},
	{"2026-03-09T15:00:00Z", "key_a", "chat", "gpt-4o-mini", "openai", "hit", 120, 80, 200, 0, 1_250},
	{"2026-03-09T16:00:00Z", "key_b", "chat", "claude-haiku", "anthropic", "miss", 300, 20, 200, 3_333, 0},
	{"2026-03-10T03:59:59Z", "key_a", "code", "gpt-4o", "openai", "miss", 1_000, 500, 200, 7_500, 2_000}, // 23:59:59 on the 9th in New York
	{"2026-03-10T04:00:00Z", "key_a", "code", "gpt-4o", "openai", "miss", 1_000, 500, 200, 7_501, 0},     // midnight of the 10th
	{"2026-03-10T12:00:00Z", "key_b", "chat", "claude-haiku", "anthropic", "semantic-hit", 50, 10, 200, 0, 999},
	{"2026-03-10T13:00:00Z", "key_b", "chat", "claude-haiku", "anthropic", "miss", 0, 0, 502, 0, 0},
	{"2026-03-10T18:30:00Z", "key_c", "chat", "gpt-4o-mini", "openai", "bypass", 10, 5, 200, 17, 0},
	{"2026-03-11T09:00:00Z", "key_a", "chat", "gpt-4o-mini", "openai", "miss", 77, 33, 200, 1_000_001, 0},
	{"2026-03-11T09:00:01Z", "key_c", "code", "gpt-4o", "openai", "miss", 5, 5, 200, 1, 0},
}

// loadFixture writes the fixture through the Ledger's own paths: Settle
// for priced calls, Record for cache hits and failures.
func loadFixture(t *testing.T) (*Ledger, *time.Location) {
	t.Helper()
	ny := mustLoad(t, "America/New_York")
	clk := newClock(reportFixture[0].at)
	l, _ := newTestDB(t).open(t, Options{Now: clk.Now, Location: ny})
	for i, f := range reportFixture {
		at, _ := time.Parse(time.RFC3339, f.at)
		clk.Set(at)
		e := Entry{RequestID: fmt.Sprintf("req-%02d", i), KeyID: f.key, Route: f.route, RequestedModel: f.model, Model: f.model, Provider: f.prov,
			Cache: f.cache, PromptTokens: f.prompt, CompletionTokens: f.completion, Status: f.status, Cost: f.cost, Saved: f.saved, Attempts: 1}
		if f.cost == 0 {
			l.Accounts.Record(e)
			continue
		}
		r, err := l.Accounts.Reserve(ctx, f.key, e.RequestID, f.cost)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Accounts.Settle(ctx, r, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Store.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return l, ny
}

// expectedReport computes the report from the fixture in Go, as an
// independent oracle for the SQL.
func expectedReport(groupBy []string, loc *time.Location, from, to time.Time) ([]ReportRow, ReportRow) {
	groups := map[string]*ReportRow{}
	var total ReportRow
	for _, f := range reportFixture {
		at, _ := time.Parse(time.RFC3339, f.at)
		if (!from.IsZero() && at.Before(from)) || (!to.IsZero() && !at.Before(to)) {
			continue
		}
		var g []string
		for _, name := range groupBy {
			g = append(g, map[string]string{"key": f.key, "model": f.model, "provider": f.prov, "route": f.route, "cache": f.cache,
				"day": at.In(loc).Format(time.DateOnly)}[name])
		}
		k := strings.Join(g, "\x00")
		if groups[k] == nil {
			groups[k] = &ReportRow{Group: g}
		}
		row := ReportRow{Requests: 1, PromptTokens: int64(f.prompt), CompletionTokens: int64(f.completion), Cost: f.cost, Saved: f.saved}
		groups[k].add(row)
		total.add(row)
	}
	var rows []ReportRow
	for _, r := range groups {
		rows = append(rows, *r)
	}
	day := -1
	for i, g := range groupBy {
		if g == "day" {
			day = i
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i].Group, rows[j].Group
		if day >= 0 && a[day] != b[day] {
			return a[day] < b[day]
		}
		return strings.Join(a, "\x00") < strings.Join(b, "\x00")
	})
	return rows, total
}

func TestReport(t *testing.T) {
	l, ny := loadFixture(t)
	at := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }
	tests := []struct {
		name     string
		groupBy  []string
		from, to time.Time
		rows     int
	}{
		{"no grouping: one row", nil, time.Time{}, time.Time{}, 1},
		{"key", []string{"key"}, time.Time{}, time.Time{}, 3},
		{"model, provider", []string{"model", "provider"}, time.Time{}, time.Time{}, 3},
		{"day in New York", []string{"day"}, time.Time{}, time.Time{}, 3},
		{"key by day", []string{"key", "day"}, time.Time{}, time.Time{}, 7},
		{"day first, then route and model", []string{"day", "route", "model"}, time.Time{}, time.Time{}, 8},
		{"cache", []string{"cache"}, time.Time{}, time.Time{}, 4},
		{"everything", GroupBy, time.Time{}, time.Time{}, 10},
		{"a range: only the 10th (UTC)", []string{"key"}, at("2026-03-10T00:00:00Z"), at("2026-03-11T00:00:00Z"), 3},
		{"a range cutting a local day", []string{"day"}, at("2026-03-10T03:00:00Z"), at("2026-03-10T13:00:00Z"), 2},
		{"an empty range", []string{"key"}, at("2030-01-01T00:00:00Z"), time.Time{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.Store.Report(ctx, tt.from, tt.to, tt.groupBy, ReportFilter{})
			if err != nil {
				t.Fatal(err)
			}
			want, total := expectedReport(tt.groupBy, ny, tt.from, tt.to)
			if len(got.Rows) != tt.rows || len(want) != tt.rows {
				t.Fatalf("%d rows (oracle %d), want %d: %+v", len(got.Rows), len(want), tt.rows, got.Rows)
			}
			for i := range want {
				if fmt.Sprint(got.Rows[i]) != fmt.Sprint(want[i]) {
					t.Errorf("row %d = %+v, want %+v", i, got.Rows[i], want[i])
				}
			}
			if fmt.Sprint(got.Totals) != fmt.Sprint(total) {
				t.Errorf("totals %+v, want %+v", got.Totals, total)
			}
		})
	}
}

// TestReportMatchesLedger: the report's totals are the ledger's own sums,
// to the micro-dollar.
func TestReportMatchesLedger(t *testing.T) {
	l, _ := loadFixture(t)
	var cost, saved, n int64
	if err := l.Store.db.QueryRow(`SELECT SUM(cost), SUM(saved), COUNT(*) FROM budget_ledger`).Scan(&cost, &saved, &n); err != nil {
		t.Fatal(err)
	}
	for _, g := range [][]string{nil, {"key"}, {"day", "cache"}, GroupBy} {
		r, err := l.Store.Report(ctx, time.Time{}, time.Time{}, g, ReportFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var sum ReportRow
		for _, row := range r.Rows {
			sum.add(row)
		}
		if int64(r.Totals.Cost) != cost || int64(r.Totals.Saved) != saved || r.Totals.Requests != n || fmt.Sprint(sum) != fmt.Sprint(r.Totals) {
			t.Errorf("%v: totals %+v, rows sum %+v; ledger cost %d saved %d rows %d", g, r.Totals, sum, cost, saved, n)
		}
	}
	// And one key's history is its rows.
	hist, err := l.Store.Spend(ctx, "key_a", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var sum llm.Micros
	for _, e := range hist {
		sum += e.Cost
	}
	if len(hist) != 5 || sum != 1_250+7_500+7_501+1_000_001 {
		t.Fatalf("history %d rows, %s", len(hist), sum)
	}
}

func TestReportBadGroupBy(t *testing.T) {
	l, _ := newTestDB(t).open(t, Options{})
	tests := []struct {
		groupBy []string
		want    string
	}{
		{[]string{"key", "color"}, `unknown group_by "color"`},
		{[]string{"key; DROP TABLE budget_ledger"}, `unknown group_by "key; DROP TABLE budget_ledger"`},
		{[]string{"day", "day"}, `group_by "day" given twice`},
	}
	for _, tt := range tests {
		if _, err := l.Store.Report(ctx, time.Time{}, time.Time{}, tt.groupBy, ReportFilter{}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v", tt.groupBy, err)
		}
		var b bytes.Buffer
		if err := l.Store.WriteReportCSV(ctx, &b, time.Time{}, time.Time{}, tt.groupBy, ReportFilter{}); err == nil || b.Len() != 0 {
			t.Errorf("CSV %v: %v, wrote %q", tt.groupBy, err, b.String())
		}
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("..", "..", "testdata", "budget", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestReportGolden(t *testing.T) {
	l, _ := loadFixture(t)
	tests := []struct {
		file    string
		groupBy []string
	}{
		{"report_key_day.csv", []string{"key", "day"}},
		{"report_model_cache.csv", []string{"model", "cache"}},
		{"report_total.csv", nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			var b bytes.Buffer
			if err := l.Store.WriteReportCSV(ctx, &b, time.Time{}, time.Time{}, tt.groupBy, ReportFilter{}); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.file, b.Bytes())
		})
	}
	t.Run("report_provider_route.json", func(t *testing.T) {
		r, err := l.Store.Report(ctx, time.Time{}, time.Time{}, []string{"provider", "route"}, ReportFilter{})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, raw, "", "  "); err != nil {
			t.Fatal(err)
		}
		pretty.WriteByte('\n')
		golden(t, "report_provider_route.json", pretty.Bytes())
	})
}
