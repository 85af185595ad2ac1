package responses_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/pgtest"
	"github.com/tollgate/tollgate/pkg/responses"
	"github.com/tollgate/tollgate/pkg/sqlite"
)

// eachStore runs test against a real SQLite file and, when
// TOLLGATE_TEST_POSTGRES is set, a PostgreSQL schema of its own.
func eachStore(t *testing.T, test func(t *testing.T, db *sql.DB)) {
	t.Run("sqlite", func(t *testing.T) {
		db, err := sqlite.Open(filepath.Join(t.TempDir(), "tollgate.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		test(t, db)
	})
	t.Run("postgres", func(t *testing.T) { test(t, pgtest.NewSchema(t).DB(t)) })
}

func TestStore(t *testing.T) {
	eachStore(t, func(t *testing.T, db *sql.DB) {
		ctx := context.Background()
		var now atomic.Int64
		start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
		now.Store(start.UnixMilli())
		clock := func() time.Time { return time.UnixMilli(now.Load()) }
		s, err := responses.Open(ctx, db, responses.Options{TTL: 24 * time.Hour, Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		put := func(id, key string) {
			t.Helper()
			err := s.Put(ctx, responses.Stored{ID: id, KeyID: key, Response: json.RawMessage(`{"id":"` + id + `"}`), Context: json.RawMessage(`[{"role":"user","content":"hi"}]`)})
			if err != nil {
				t.Fatal(err)
			}
		}
		put("resp_a", "key1")
		put("resp_b", "key1")
		put("resp_c", "key2")

		for _, tc := range []struct {
			name, key, id string
			found         bool
		}{
			{"own response", "key1", "resp_a", true},
			{"another key's response", "key2", "resp_a", false},
			{"unknown id", "key1", "resp_zzz", false},
			{"the other key's own", "key2", "resp_c", true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.Get(ctx, tc.key, tc.id)
				if !tc.found {
					if !errors.Is(err, responses.ErrNotFound) {
						t.Fatalf("Get = %v, %v; want ErrNotFound", got, err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if string(got.Response) != `{"id":"`+tc.id+`"}` || string(got.Context) != `[{"role":"user","content":"hi"}]` || !got.Created.Equal(start) {
					t.Errorf("Get = %+v", got)
				}
			})
		}

		if err := s.Delete(ctx, "key2", "resp_a"); !errors.Is(err, responses.ErrNotFound) {
			t.Errorf("another key deleted resp_a: %v", err)
		}
		if err := s.Delete(ctx, "key1", "resp_a"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "key1", "resp_a"); !errors.Is(err, responses.ErrNotFound) {
			t.Errorf("deleted response still served: %v", err)
		}
		if err := s.Delete(ctx, "key1", "resp_a"); !errors.Is(err, responses.ErrNotFound) {
			t.Errorf("second delete = %v, want ErrNotFound", err)
		}

		// One millisecond before the TTL it is served; at the TTL it is not,
		// and the sweep deletes it.
		now.Store(start.Add(24*time.Hour - time.Millisecond).UnixMilli())
		if _, err := s.Get(ctx, "key1", "resp_b"); err != nil {
			t.Errorf("served before its expiry: %v", err)
		}
		if n, err := s.Sweep(ctx); err != nil || n != 0 {
			t.Errorf("sweep before expiry = %d, %v", n, err)
		}
		now.Store(start.Add(24 * time.Hour).UnixMilli())
		if _, err := s.Get(ctx, "key1", "resp_b"); !errors.Is(err, responses.ErrNotFound) {
			t.Errorf("expired response served: %v", err)
		}
		if n, err := s.Sweep(ctx); err != nil || n != 2 {
			t.Errorf("sweep = %d, %v; want the 2 expired rows", n, err)
		}
		var left int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM responses`).Scan(&left); err != nil || left != 0 {
			t.Errorf("rows left after the sweep = %d, %v", left, err)
		}

		if err := s.Put(ctx, responses.Stored{ID: "resp_x", KeyID: "key1", Response: json.RawMessage(`{`), Context: json.RawMessage(`[]`)}); err == nil {
			t.Error("Put accepted a response that is not JSON")
		}
	})
}

// TestSweeperDeletesExpired: Start's sweeper deletes expired rows on its
// own, keeps the others, and Close stops it.
func TestSweeperDeletesExpired(t *testing.T) {
	eachStore(t, func(t *testing.T, db *sql.DB) {
		ctx := context.Background()
		var now atomic.Int64
		start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
		now.Store(start.UnixMilli())
		s, err := responses.Open(ctx, db, responses.Options{TTL: time.Hour, SweepInterval: time.Millisecond, Now: func() time.Time { return time.UnixMilli(now.Load()) }})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"old", "new"} {
			if id == "new" {
				now.Store(start.Add(30 * time.Minute).UnixMilli())
			}
			if err := s.Put(ctx, responses.Stored{ID: id, KeyID: "k", Response: json.RawMessage(`{}`), Context: json.RawMessage(`[]`)}); err != nil {
				t.Fatal(err)
			}
		}
		now.Store(start.Add(time.Hour).UnixMilli()) // "old" expires now, "new" in 30 minutes
		s.Start(nil)
		defer s.Close()
		deadline := time.Now().Add(30 * time.Second) // a hang guard, not a timing assertion
		for {
			var ids []string
			rows, err := db.QueryContext(ctx, `SELECT id FROM responses ORDER BY id`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var id string
				_ = rows.Scan(&id)
				ids = append(ids, id)
			}
			rows.Close()
			if len(ids) == 1 && ids[0] == "new" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rows left: %q; want only the unexpired one", ids)
			}
			time.Sleep(5 * time.Millisecond)
		}
		s.Close()
		s.Close() // twice is fine
	})
}
