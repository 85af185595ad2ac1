package migrate

import "testing"

func TestRebind(t *testing.T) {
	for _, tc := range []struct {
		name, in, sqlite, postgres string
	}{
		{"none", "SELECT 1", "SELECT 1", "SELECT 1"},
		{"positional", "UPDATE t SET a = ?, b = ? WHERE id = ?", "UPDATE t SET a = ?, b = ? WHERE id = ?", "UPDATE t SET a = $1, b = $2 WHERE id = $3"},
		{"numbered", "SELECT ?2, ?1, ?10", "SELECT ?2, ?1, ?10", "SELECT $2, $1, $10"},
		{"at the end", "LIMIT ?", "LIMIT ?", "LIMIT $1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Rebind(SQLite, tc.in); got != tc.sqlite {
				t.Errorf("sqlite: %q, want %q", got, tc.sqlite)
			}
			if got := Rebind(Postgres, tc.in); got != tc.postgres {
				t.Errorf("postgres: %q, want %q", got, tc.postgres)
			}
		})
	}
}
