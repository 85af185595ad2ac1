package pgtest

import (
	"context"
	"strings"
	"testing"
)

// TestSchema: what a test opens on a Schema, with either client, works in
// that schema and no other, and the schema is gone once the test ends.
func TestSchema(t *testing.T) {
	base := URL(t)
	ctx := context.Background()
	var first Schema
	t.Run("in the schema", func(t *testing.T) {
		first = NewSchema(t)
		if !strings.Contains(first.URL, "search_path="+first.Name) {
			t.Fatalf("URL %q lacks search_path", first.URL)
		}
		other := NewSchema(t)
		if other.Name == first.Name {
			t.Fatalf("two schemas named %s", first.Name)
		}
		for _, tc := range []struct {
			name  string
			query func(q string, dest ...any) error
		}{
			{"pgxpool", func(q string, dest ...any) error { return first.Pool(t, 2).QueryRow(ctx, q).Scan(dest...) }},
			{"database/sql", func(q string, dest ...any) error { return first.DB(t).QueryRow(q).Scan(dest...) }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var got string
				if err := tc.query(`SELECT current_schema()`, &got); err != nil || got != first.Name {
					t.Fatalf("current_schema() = %q, %v; want %s", got, err, first.Name)
				}
			})
		}
		if _, err := first.DB(t).Exec(`CREATE TABLE t (x int)`); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := other.Pool(t, 1).QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("another schema sees %d tables, %v", n, err)
		}
	})
	var exists bool
	db := Schema{URL: base}.DB(t)
	if err := db.QueryRow(`SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, first.Name).Scan(&exists); err != nil || exists {
		t.Fatalf("schema %s still exists after its test: %v %v", first.Name, exists, err)
	}
}
