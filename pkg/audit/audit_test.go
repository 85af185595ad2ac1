package audit_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/pgtest"
	"github.com/tollgate/tollgate/pkg/audit"
	"github.com/tollgate/tollgate/pkg/sqlite"
)

func sqliteDB(t *testing.T) *sql.DB {
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "tollgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// dialects runs a test on SQLite and on PostgreSQL (a schema of its own;
// skipped without TOLLGATE_TEST_POSTGRES).
func dialects(t *testing.T, test func(t *testing.T, db *sql.DB)) {
	t.Run("sqlite", func(t *testing.T) { test(t, sqliteDB(t)) })
	t.Run("postgres", func(t *testing.T) { test(t, pgtest.NewSchema(t).DB(t)) })
}

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// seed records seven entries, two a minute from t0 (so ties in time are
// broken by id), with alternating actions and rotating targets.
func seed(t *testing.T, s *audit.Store) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	for i := 0; i < 7; i++ {
		e := audit.Entry{
			Time:      t0.Add(time.Duration(i/2) * time.Minute), // two entries per minute: ties broken by id
			RequestID: fmt.Sprintf("req_%d", i),
			Actor:     audit.Actor{Kind: "admin", Name: "ana", RemoteAddr: "127.0.0.1", UserAgent: "curl/8"},
			Action:    []string{audit.ActionKeyCreate, audit.ActionBudgetUpdate}[i%2],
			Target:    []string{"key_a", "key_b", "cache"}[i%3],
			After:     json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)),
		}
		if i%2 == 1 {
			e.Before = json.RawMessage(`{"rpm":1}`)
		}
		if err := s.Record(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func requestIDs(es []audit.Entry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.RequestID)
	}
	return out
}

func TestListFiltersAndPages(t *testing.T) {
	dialects(t, func(t *testing.T, db *sql.DB) {
		ctx := context.Background()
		s, err := audit.Open(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		seed(t, s)
		tests := []struct {
			name string
			f    audit.Filter
			want []string // request ids, newest first, over every page
		}{
			{"everything", audit.Filter{}, []string{"req_6", "req_5", "req_4", "req_3", "req_2", "req_1", "req_0"}},
			{"action", audit.Filter{Action: audit.ActionBudgetUpdate}, []string{"req_5", "req_3", "req_1"}},
			{"target", audit.Filter{Target: "key_a"}, []string{"req_6", "req_3", "req_0"}},
			{"action and target", audit.Filter{Action: audit.ActionKeyCreate, Target: "key_a"}, []string{"req_6", "req_0"}},
			{"since inclusive", audit.Filter{Since: t0.Add(2 * time.Minute)}, []string{"req_6", "req_5", "req_4"}},
			{"until exclusive", audit.Filter{Until: t0.Add(time.Minute)}, []string{"req_1", "req_0"}},
			{"range", audit.Filter{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}, []string{"req_5", "req_4", "req_3", "req_2"}},
			{"nothing", audit.Filter{Action: audit.ActionConfigReload}, []string{}},
		}
		for _, tt := range tests {
			for _, limit := range []int{1, 2, 3, 500} {
				t.Run(fmt.Sprintf("%s/limit %d", tt.name, limit), func(t *testing.T) {
					f := tt.f
					f.Limit = limit
					var got []audit.Entry
					for pages := 0; ; pages++ {
						if pages > 10 {
							t.Fatal("paging does not end")
						}
						p, err := s.List(ctx, f)
						if err != nil {
							t.Fatal(err)
						}
						if len(p.Entries) > limit {
							t.Fatalf("page of %d, limit %d", len(p.Entries), limit)
						}
						got = append(got, p.Entries...)
						if p.Next == nil {
							break
						}
						if len(p.Entries) != limit {
							t.Fatalf("a short page (%d of %d) has a next cursor", len(p.Entries), limit)
						}
						// Through its text form, as a client sends it back.
						if f.After, err = audit.ParseCursor(p.Next.String()); err != nil {
							t.Fatal(err)
						}
					}
					if ids := requestIDs(got); !reflect.DeepEqual(ids, tt.want) {
						t.Fatalf("got %v, want %v", ids, tt.want)
					}
				})
			}
		}
	})
}

func TestRecordKeepsEveryField(t *testing.T) {
	dialects(t, func(t *testing.T, db *sql.DB) {
		ctx := context.Background()
		s, err := audit.Open(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		want := seed(t, s)
		p, err := s.List(ctx, audit.Filter{Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Entries) != len(want) {
			t.Fatalf("%d entries, want %d", len(p.Entries), len(want))
		}
		for i, got := range p.Entries {
			w := want[len(want)-1-i]
			if got.ID < 1 {
				t.Fatalf("entry %d has no id", i)
			}
			w.ID = got.ID
			if !reflect.DeepEqual(got, w) {
				t.Fatalf("got  %+v\nwant %+v", got, w)
			}
			if got.Before == nil && i%2 == 1 {
				t.Fatal("no before")
			}
		}
		// The JSON shape: a missing snapshot is null.
		b, _ := json.Marshal(p.Entries[0])
		if !json.Valid(b) || !strings.Contains(string(b), `"before":null`) {
			t.Fatalf("%s", b)
		}
		if s.Failures() != 0 {
			t.Fatalf("failures %d", s.Failures())
		}
	})
}

func TestRecordFailuresAreCounted(t *testing.T) {
	ctx := context.Background()
	db := sqliteDB(t)
	s, err := audit.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		e    audit.Entry
	}{
		{"no action", audit.Entry{Time: t0}},
		{"no time", audit.Entry{Action: audit.ActionKeyCreate}},
		{"snapshot not JSON", audit.Entry{Time: t0, Action: audit.ActionKeyCreate, After: json.RawMessage(`{`)}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Record(ctx, tt.e); err == nil {
				t.Fatal("recorded")
			}
			if s.Failures() != int64(i+1) {
				t.Fatalf("failures %d", s.Failures())
			}
		})
	}
	db.Close()
	if err := s.Record(ctx, audit.Entry{Time: t0, Action: audit.ActionKeyCreate}); err == nil || s.Failures() != int64(len(tests)+1) {
		t.Fatalf("closed database: %v, failures %d", err, s.Failures())
	}
}

func TestParseCursor(t *testing.T) {
	tests := []struct {
		name, in string
	}{
		{"empty", ""},
		{"not base64", "!!"},
		{"no dot", "MTIz"},
		{"zero id", audit.Cursor{}.String()},
		{"letters", "YS5i"}, // "a.b"
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := audit.ParseCursor(tt.in); !errors.Is(err, audit.ErrBadCursor) {
				t.Fatalf("%q: %v", tt.in, err)
			}
		})
	}
}
