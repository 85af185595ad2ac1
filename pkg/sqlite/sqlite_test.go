package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "t.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v", mode, err)
	}
	v1 := []string{`CREATE TABLE a (x INTEGER)`}
	v2 := append(v1, `ALTER TABLE a ADD COLUMN y TEXT`)
	for _, steps := range [][]string{v1, v1, v2, v2} { // re-running is a no-op
		if err := Migrate(ctx, db, "test", steps); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`INSERT INTO a (x, y) VALUES (1, 'z')`); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, db, "test", v1); err == nil || !strings.Contains(err.Error(), "newer than this build") {
		t.Fatalf("downgrade not refused: %v", err)
	}
	if err := Migrate(ctx, db, "bad", []string{`CREATE TABLE (`}); err == nil {
		t.Fatal("bad step accepted")
	}
}
