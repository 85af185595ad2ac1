package sqlite

import (
	"path/filepath"
	"testing"
)

// TestOpen: the file and its directory are created, with the settings every
// store relies on. Migrations are internal/migrate's, tested there.
func TestOpen(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "sub", "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tc := range []struct {
		name, pragma, want string
	}{
		{"wal", "journal_mode", "wal"},
		{"busy timeout", "busy_timeout", "10000"},
		{"foreign keys", "foreign_keys", "1"},
		{"synchronous normal", "synchronous", "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got string
			if err := db.QueryRow(`PRAGMA ` + tc.pragma).Scan(&got); err != nil || got != tc.want {
				t.Fatalf("PRAGMA %s = %q, %v; want %q", tc.pragma, got, err, tc.want)
			}
		})
	}
}
